#include "admin.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "endpoint.hpp"
#include "liveness.hpp"
#include "segment.hpp"
#include "wait.hpp"

namespace shmring::detail {

Errc reset_ring(std::string_view name_in, bool force, std::string* detail) {
  std::string name;
  if (Errc e = canonicalize(name_in, &name); e != Errc::ok) return e;
  OpenedSegment seg;
  if (Errc e = open_segment(name, std::chrono::milliseconds(0), &seg); e != Errc::ok) return e;
  Header* h = seg.hdr;
  std::string live;
  const auto self = ::getpid();
  const std::uint64_t self_ns = own_pid_namespace();
  for (std::uint32_t i = 0; i < kAttachEntries; ++i) {
    // L-A1: acquire, pairs with L-R1 (complete entries; pid_ns is written
    // before the attached word is published).
    const std::uint64_t w = atom(h->attach[i].state).load(std::memory_order_acquire);
    if (w == 0) continue;
    // Our own handles are not peers; a process of another PID namespace
    // may carry the same pid number and is one.
    if (attach_word_pid(w) == self && atom(h->attach[i].pid_ns).load(std::memory_order_relaxed) == self_ns) continue;
    if (entry_liveness(*h, i, w) == Liveness::alive) {
      if (!live.empty()) live += ", ";
      live += std::to_string(attach_word_pid(w)) + " (" +
              to_string(static_cast<Role>(attach_word_role(w))) + ")";
    }
  }
  if (!live.empty() && !force) {
    *detail = "live peers attached: " + live;
    return fail(Errc::busy, name, *detail + " (use --force to reset under them)");
  }
  // R-R1: release; live handles see the new generation on their next call
  // (R-A1) and stop touching the ring before we re-initialise it.
  atom(h->id.reset_gen).fetch_add(1, std::memory_order_acq_rel);
  // R-R2: release fence, pairs with every acquire load of a word we
  // re-initialise below (the indices: C-A1, P-A1, LC-A1, LP-A1, T-A1, and
  // the mpmc slot words: MC-A1, MP-A1). Fence-to-acquire synchronisation
  // makes each relaxed store below a release of the new generation: a
  // handle whose acquire load reads one of them sees R-R1, so its reset
  // check right after the load (RG-1, docs/memory-ordering.md) answers
  // "reset" before it validates or uses the value.
  std::atomic_thread_fence(std::memory_order_release);
  const bool quiet = live.empty();
  atom(h->prod.tail).store(0, std::memory_order_relaxed);
  atom(h->prod.records).store(0, std::memory_order_relaxed);
  atom(h->cons.head).store(0, std::memory_order_relaxed);
  atom(h->cons.records).store(0, std::memory_order_relaxed);
  if (seg.geo.kind == Kind::mpmc) init_mpmc_slots(seg.data, seg.geo);
  for (int r = 0; r < 2; ++r) {
    atom(h->roles.owner[r]).store(0, std::memory_order_relaxed);
  }
  atom(h->roles.abandoned_claims).store(0, std::memory_order_relaxed);
  atom(h->roles.dropped_reads).store(0, std::memory_order_relaxed);
  atom(h->roles.fenced_claims).store(0, std::memory_order_relaxed);
  atom(h->roles.fenced_reads).store(0, std::memory_order_relaxed);
  for (std::uint32_t i = 0; i < kAttachEntries; ++i) {
    std::uint64_t w = atom(h->attach[i].state).load(std::memory_order_acquire);  // L-A1
    if (w != 0 && (quiet || entry_liveness(*h, i, w) != Liveness::alive)) {
      atom(h->attach[i].state).compare_exchange_strong(w, 0, std::memory_order_acq_rel);  // L-R2
    }
  }
  if (quiet) {
    // Nobody can be inside these objects: re-initialise them (this also
    // clears a mutex left ENOTRECOVERABLE).
    atom(h->data_wait.waiters).store(0, std::memory_order_relaxed);
    atom(h->space_wait.waiters).store(0, std::memory_order_relaxed);
    if (seg.geo.wait == WaitStrategy::sem) {
      ::sem_destroy(reinterpret_cast<sem_t*>(h->sems.data_sem));
      ::sem_destroy(reinterpret_cast<sem_t*>(h->sems.space_sem));
      ::sem_init(reinterpret_cast<sem_t*>(h->sems.data_sem), 1, 0);
      ::sem_init(reinterpret_cast<sem_t*>(h->sems.space_sem), 1, 0);
    }
    if (seg.geo.kind == Kind::locked) {
      ::pthread_mutex_destroy(reinterpret_cast<pthread_mutex_t*>(h->lock.prod_mutex));
      ::pthread_mutex_destroy(reinterpret_cast<pthread_mutex_t*>(h->lock.cons_mutex));
      if (init_locked_mutexes(h) != Errc::ok) return fail(Errc::system_error, name, "re-initialising the mutexes");
      atom(h->lock.prod_holder).store(0, std::memory_order_relaxed);
      atom(h->lock.cons_holder).store(0, std::memory_order_relaxed);
    }
  } else {
    // Wake every sleeper so it notices the reset now, not at its next
    // liveness check.
    for (WaitLine* l : {&h->data_wait, &h->space_wait}) {
      atom(l->seq).fetch_add(1, std::memory_order_release);  // pairs with W2
      futex_wake_all(&l->seq);
    }
    if (seg.geo.wait == WaitStrategy::sem) {
      for (int i = 0; i < 8; ++i) {
        ::sem_post(reinterpret_cast<sem_t*>(h->sems.data_sem));
        ::sem_post(reinterpret_cast<sem_t*>(h->sems.space_sem));
      }
    }
    *detail = "forced under live peers: " + live;
  }
  return Errc::ok;
}

}  // namespace shmring::detail
