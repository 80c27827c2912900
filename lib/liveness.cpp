#include "liveness.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "segment.hpp"

namespace shmring::detail {

std::uint64_t process_start_time(pid_t pid) noexcept {
  if (pid <= 0) return 0;
  char path[32];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    // /proc hidden from us (hidepid): fall back to "exists", without the
    // reused-pid protection.
    if (errno == EACCES) return ::kill(pid, 0) == 0 || errno == EPERM ? 1 : 0;
    return 0;
  }
  char buf[1024];
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  // Field 2 (comm) may hold spaces and ')': parse from the last ')'.
  const char* p = std::strrchr(buf, ')');
  if (p == nullptr || p[1] != ' ') return 0;
  p += 2;
  const char state = *p;
  if (state == 'Z' || state == 'X' || state == 'x') return 0;  // exited, maybe not reaped
  // Fields 3..22: the state is field 3, starttime field 22.
  for (int field = 3; field < 22; ++field) {
    p = std::strchr(p, ' ');
    if (p == nullptr) return 0;
    ++p;
  }
  char* end = nullptr;
  const unsigned long long v = std::strtoull(p, &end, 10);
  if (end == p) return 0;
  return v == 0 ? 1 : v;  // 0 is reserved for "gone"
}

Liveness entry_liveness(const Header& h, std::uint32_t index, std::uint64_t w) noexcept {
  if (w == 0) return Liveness::free;
  if (index >= kAttachEntries) return Liveness::dead;
  const std::int32_t pid = attach_word_pid(w);
  if (pid <= 0) return Liveness::dead;
  if (pid == ::getpid()) return Liveness::alive;
  const std::uint64_t phase = attach_word_phase(w);
  const std::uint64_t now_start = process_start_time(pid);
  if (phase == kPhaseClaiming) return now_start != 0 ? Liveness::alive : Liveness::dead;
  if (phase != kPhaseAttached) return Liveness::dead;
  // Written before the attached word was release-stored; the caller read the
  // word with acquire (pairs with L-R1 in Attachment::attach).
  const std::uint64_t recorded =
      atom(const_cast<std::uint64_t&>(h.attach[index].start_time)).load(std::memory_order_relaxed);
  return now_start != 0 && now_start == recorded ? Liveness::alive : Liveness::dead;
}

bool any_live(const Header& h, Role role) noexcept {
  for (std::uint32_t i = 0; i < kAttachEntries; ++i) {
    // L-A1: acquire, pairs with L-R1: the entry's fields are complete.
    const std::uint64_t w =
        atom(const_cast<std::uint64_t&>(h.attach[i].state)).load(std::memory_order_acquire);
    if (w == 0 || attach_word_role(w) != static_cast<std::uint32_t>(role)) continue;
    if (entry_liveness(h, i, w) == Liveness::alive) return true;
  }
  return false;
}

namespace {

// D-R2: counts a dead process's entry that this process just reclaimed (its
// CAS from the dead word won, so exactly one reclaimer counts each death).
// Release, pairs with D-A1 in peer_departure.
void count_death(Header& h, std::uint64_t dead_word) noexcept {
  const std::uint32_t r = attach_word_role(dead_word);
  if (r != 1 && r != 2) return;  // a garbage entry: nobody's departure
  atom(h.departures.died[r - 1]).fetch_add(1, std::memory_order_release);
}

}  // namespace

std::uint32_t reclaim_dead(Header& h, Role role) noexcept {
  std::uint32_t freed = 0;
  for (std::uint32_t i = 0; i < kAttachEntries; ++i) {
    // L-A1: acquire, pairs with L-R1 (the entry's start time is complete).
    std::uint64_t w = atom(h.attach[i].state).load(std::memory_order_acquire);
    if (w == 0 || attach_word_role(w) != static_cast<std::uint32_t>(role)) continue;
    if (entry_liveness(h, i, w) != Liveness::dead) continue;
    // L-R3: free the dead entry, as a claim in Attachment::attach would;
    // acq_rel like that claim. Loses to a racing reclaimer, who counts it.
    if (!atom(h.attach[i].state).compare_exchange_strong(w, 0, std::memory_order_acq_rel)) continue;
    count_death(h, w);
    ++freed;
  }
  return freed;
}

Departure Attachment::peer_departure() const noexcept {
  if (h_ == nullptr) return Departure::none;
  const auto peer = role_ == Role::producer ? Role::consumer : Role::producer;
  const auto p = static_cast<std::uint32_t>(peer);
  // A peer that died is counted when its entry is reclaimed: do it now
  // rather than wait for the next process that needs a slot.
  reclaim_dead(*h_, peer);
  // D-A1: acquire, pairs with D-R1 (a clean detach) and D-R2 (a death).
  if (atom(h_->departures.died[p - 1]).load(std::memory_order_acquire) != peer_died_before_) return Departure::died;
  if (atom(h_->departures.closed[p - 1]).load(std::memory_order_acquire) != peer_closed_before_)
    return Departure::closed;
  return Departure::none;
}

Attachment::Attachment(Attachment&& o) noexcept
    : h_(o.h_),
      pid_(o.pid_),
      entry_(o.entry_),
      generation_(o.generation_),
      peer_attaches_before_(o.peer_attaches_before_),
      peer_closed_before_(o.peer_closed_before_),
      peer_died_before_(o.peer_died_before_),
      role_(o.role_),
      exclusive_(o.exclusive_) {
  o.h_ = nullptr;
  o.entry_ = -1;
}

Attachment& Attachment::operator=(Attachment&& o) noexcept {
  if (this != &o) {
    detach();
    h_ = o.h_;
    pid_ = o.pid_;
    entry_ = o.entry_;
    generation_ = o.generation_;
    peer_attaches_before_ = o.peer_attaches_before_;
    peer_closed_before_ = o.peer_closed_before_;
    peer_died_before_ = o.peer_died_before_;
    role_ = o.role_;
    exclusive_ = o.exclusive_;
    o.h_ = nullptr;
    o.entry_ = -1;
  }
  return *this;
}

bool Attachment::owned_by_this_process() const noexcept { return h_ != nullptr && pid_ == ::getpid(); }

Errc Attachment::attach(Header* h, const std::string& name, Role role, bool exclusive) {
  const auto pid = static_cast<std::int32_t>(::getpid());
  const std::uint64_t start = process_start_time(pid);
  const auto r = static_cast<std::uint32_t>(role);
  const std::uint64_t claiming = attach_word(pid, r, kPhaseClaiming);
  // A-A1: acquire, pairs with A-R1. Read before our entry is published, so a
  // peer that attaches (and maybe leaves) while we finish attaching still
  // counts as "seen" for the peer-gone rule.
  const std::uint32_t peer = r == static_cast<std::uint32_t>(Role::producer) ? 2 : 1;
  // Departures: peers already dead now are counted before the snapshot, so
  // that only a peer leaving after this moment moves the counters.
  reclaim_dead(*h, static_cast<Role>(peer));
  // D-A1: acquire, pairs with D-R1/D-R2.
  const std::uint64_t peer_died = atom(h->departures.died[peer - 1]).load(std::memory_order_acquire);
  const std::uint64_t peer_closed = atom(h->departures.closed[peer - 1]).load(std::memory_order_acquire);
  const std::uint64_t peer_before = atom(h->roles.attaches[peer - 1]).load(std::memory_order_acquire);
  std::int32_t mine = -1;
  for (std::uint32_t i = 0; i < kAttachEntries && mine < 0; ++i) {
    AttachEntry& e = h->attach[i];
    // L-A1: acquire, pairs with L-R1 (a complete entry) or L-R2 (freed).
    std::uint64_t w = atom(e.state).load(std::memory_order_acquire);
    if (w != 0 && entry_liveness(*h, i, w) != Liveness::dead) continue;
    // Claim a free entry, or reclaim a dead one. acq_rel: the claim is
    // ordered before the field writes below; the loser retries elsewhere.
    if (!atom(e.state).compare_exchange_strong(w, claiming, std::memory_order_acq_rel)) continue;
    if (w != 0) count_death(*h, w);  // D-R2: we reclaimed a dead process's entry
    // The fields are read by other processes with relaxed loads after an
    // acquire of the state word (L-A1).
    atom(e.pid).store(pid, std::memory_order_relaxed);
    atom(e.role).store(r, std::memory_order_relaxed);
    atom(e.start_time).store(start, std::memory_order_relaxed);
    atom(e.attach_time_ns).store(realtime_ns(), std::memory_order_relaxed);
    atom(e.sleeping).store(0, std::memory_order_relaxed);  // not the dead owner's flags
    generation_ = atom(e.generation).fetch_add(1, std::memory_order_relaxed) + 1;
    // L-R1: release, publishes the fields above; pairs with L-A1.
    atom(e.state).store(attach_word(pid, r, kPhaseAttached), std::memory_order_release);
    mine = static_cast<std::int32_t>(i);
  }
  if (mine < 0) {
    return fail(Errc::busy, name, "attach table full: " + std::to_string(kAttachEntries) + " live processes attached");
  }
  h_ = h;
  pid_ = pid;
  entry_ = mine;
  role_ = role;
  exclusive_ = false;
  peer_attaches_before_ = peer_before;
  peer_closed_before_ = peer_closed;
  peer_died_before_ = peer_died;
  if (exclusive) {
    std::uint64_t& owner = h->roles.owner[r - 1];
    const std::uint64_t want = owner_word(pid, static_cast<std::uint32_t>(mine));
    for (;;) {
      // O-A1: acquire, pairs with O-R1: the owner's entry was complete.
      std::uint64_t o = atom(owner).load(std::memory_order_acquire);
      if (o != 0) {
        const std::uint32_t idx = static_cast<std::uint32_t>(o & 0xffffffffu) - 1;
        bool alive = false;
        if (idx < kAttachEntries) {
          const std::uint64_t w = atom(h->attach[idx].state).load(std::memory_order_acquire);  // L-A1
          alive = attach_word_pid(w) == attach_word_pid(o) && attach_word_role(w) == r &&
                  entry_liveness(*h, idx, w) == Liveness::alive;
        }
        if (alive) {
          detach();
          return fail(Errc::busy, name,
                      std::string("the ") + to_string(role) + " role is held by live process " +
                          std::to_string(attach_word_pid(o)));
        }
      }
      // O-R1: take the role (free, or held by a dead process). acq_rel so
      // that a racing taker sees either our word or its own.
      if (atom(owner).compare_exchange_strong(o, want, std::memory_order_acq_rel)) break;
    }
    exclusive_ = true;
  }
  // A-R1: release, counts this attach after the entry is published; pairs
  // with A-A1 in PeerWatch (a peer that sees the count also sees the entry).
  atom(h->roles.attaches[r - 1]).fetch_add(1, std::memory_order_release);
  return Errc::ok;
}

void Attachment::detach() noexcept {
  if (h_ == nullptr || entry_ < 0) return;
  // A handle inherited across fork() belongs to the parent's entry.
  if (pid_ == ::getpid()) {
    const auto r = static_cast<std::uint32_t>(role_);
    if (exclusive_) {
      std::uint64_t mine = owner_word(pid_, static_cast<std::uint32_t>(entry_));
      // O-R2: release the role only if it is still ours.
      atom(h_->roles.owner[r - 1]).compare_exchange_strong(mine, 0, std::memory_order_acq_rel);
    }
    std::uint64_t w = attach_word(pid_, r, kPhaseAttached);
    // D-R1: counts a clean detach before the entry is freed; the release of
    // L-R2 below orders it before the free, so a watcher that finds no live
    // peer (L-A1) and then loads the counter (D-A1) sees it.
    atom(h_->departures.closed[r - 1]).fetch_add(1, std::memory_order_relaxed);
    // L-R2: release, frees the entry after our last access through it.
    atom(h_->attach[entry_].state).compare_exchange_strong(w, 0, std::memory_order_acq_rel);
  }
  h_ = nullptr;
  entry_ = -1;
}

PeerWatch::PeerWatch(const Header* h, Role peer_role, std::uint32_t liveness_ms,
                     std::uint64_t attaches_at_open) noexcept
    : h_(h),
      peer_role_(peer_role),
      attaches_at_open_(attaches_at_open),
      period_ns_(std::int64_t{liveness_ms} * 1'000'000 / 2) {
  seen_ = any_live(*h, peer_role);
}

bool PeerWatch::gone(std::int64_t now) noexcept {
  next_check_ = now + period_ns_;
  if (!seen_) {
    const auto r = static_cast<std::uint32_t>(peer_role_);
    // A-A1: acquire, pairs with A-R1: if the count moved, the entry of the
    // peer that moved it is visible to any_live below.
    const std::uint64_t a =
        atom(const_cast<std::uint64_t&>(h_->roles.attaches[r - 1])).load(std::memory_order_acquire);
    if (a == attaches_at_open_ && !any_live(*h_, peer_role_)) return false;
    seen_ = true;
  }
  return !any_live(*h_, peer_role_);
}

}  // namespace shmring::detail
