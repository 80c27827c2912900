#include "liveness.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <vector>

#include "segment.hpp"

namespace shmring::detail {

// One descriptor of one mapping (see SegmentLock). Process-local; every field
// is guarded by g_mu.
struct LockNode {
  int fd = -1;                  // -1 after fork() in the child
  const std::byte* base = nullptr;  // nullptr once the mapping is gone
  std::size_t len = 0;
  std::string name;             // canonical "/name"
  std::uint32_t held = 0;       // bit i: this process holds entry i through fd
  int refs = 0;                 // the SegmentLock and each Attachment
  std::int64_t next_orphan_check = 0;
  bool orphaned = false;
};

namespace {

std::mutex g_mu;
std::vector<LockNode*>& nodes() {
  static auto* v = new std::vector<LockNode*>();  // never destroyed: used from atexit-time destructors
  return *v;
}
std::atomic<std::uint64_t> g_start_time{0};

void fork_prepare() noexcept { g_mu.lock(); }
void fork_parent() noexcept { g_mu.unlock(); }
// The child must not keep its parent's attach locks alive: an OFD lock lives
// as long as any descriptor of its open file description, and the child's
// copies are such descriptors. Close them all; the handles the child
// inherited no longer hold (or judge) anything.
void fork_child() noexcept {
  for (LockNode* n : nodes()) {
    if (n->fd >= 0) ::close(n->fd);
    n->fd = -1;
    n->held = 0;
  }
  g_start_time.store(0, std::memory_order_relaxed);
  g_mu.unlock();
}

void install_fork_handlers() {
  static std::once_flag once;
  std::call_once(once, [] { ::pthread_atfork(fork_prepare, fork_parent, fork_child); });
}

// Caller holds g_mu.
LockNode* find_locked(const void* p) noexcept {
  const auto* b = static_cast<const std::byte*>(p);
  for (LockNode* n : nodes()) {
    if (n->base != nullptr && b >= n->base && b < n->base + n->len) return n;
  }
  return nullptr;
}

// Caller holds g_mu.
void unref_locked(LockNode* n) noexcept {
  if (--n->refs > 0) return;
  auto& v = nodes();
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (*it == n) {
      v.erase(it);
      break;
    }
  }
  if (n->fd >= 0) ::close(n->fd);  // drops every lock still held through it
  delete n;
}

struct flock byte_lock(short type, std::uint32_t index) noexcept {
  struct flock fl {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = lock_offset(index);
  fl.l_len = 1;
  fl.l_pid = 0;  // required for the OFD commands
  return fl;
}

std::string errno_text(int err) {
  char buf[128];
  return strerror_r(err, buf, sizeof buf);
}

}  // namespace

SegmentLock::~SegmentLock() {
  if (node_ == nullptr) return;
  std::lock_guard<std::mutex> g(g_mu);
  node_->base = nullptr;  // the mapping goes with the OpenedSegment
  unref_locked(node_);
}

SegmentLock& SegmentLock::operator=(SegmentLock&& o) noexcept {
  if (this != &o) {
    this->~SegmentLock();
    node_ = o.node_;
    o.node_ = nullptr;
  }
  return *this;
}

void SegmentLock::adopt(int fd, const void* base, std::size_t len, const std::string& name) {
  install_fork_handlers();
  auto* n = new LockNode;
  n->fd = fd;
  n->base = static_cast<const std::byte*>(base);
  n->len = len;
  n->name = name;
  n->refs = 1;
  std::lock_guard<std::mutex> g(g_mu);
  if (node_ != nullptr) {
    node_->base = nullptr;
    unref_locked(node_);
  }
  nodes().push_back(n);
  node_ = n;
}

int SegmentLock::fd() const noexcept {
  if (node_ == nullptr) return -1;
  std::lock_guard<std::mutex> g(g_mu);
  return node_->fd;
}

bool segment_orphaned(const Header* h, std::int64_t period_ns) noexcept {
  std::lock_guard<std::mutex> g(g_mu);
  LockNode* n = find_locked(h);
  if (n == nullptr || n->fd < 0) return false;
  const std::int64_t now = monotonic_ns();
  if (now < n->next_orphan_check) return n->orphaned;
  n->next_orphan_check = now + period_ns;
  struct stat mine {};
  struct stat named {};
  if (::fstat(n->fd, &mine) != 0) return n->orphaned;
  const std::string path = "/dev/shm" + n->name;
  if (::stat(path.c_str(), &named) != 0) {
    // Only a name that is gone counts; any other failure (EACCES on the
    // directory, EINTR...) leaves the last answer.
    if (errno == ENOENT) n->orphaned = true;
    return n->orphaned;
  }
  n->orphaned = named.st_dev != mine.st_dev || named.st_ino != mine.st_ino;
  return n->orphaned;
}

std::uint64_t own_start_time() noexcept {
  // For display only (shmtool shows when the process started); liveness
  // never uses it. Read once per process (the fork child reads its own).
  std::uint64_t v = g_start_time.load(std::memory_order_relaxed);
  if (v != 0) return v;
  const int fd = ::open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[1024];
  const ssize_t got = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (got <= 0) return 0;
  buf[got] = '\0';
  // comm (field 2) may hold spaces and ')': count fields after the last ')'.
  const char* p = std::strrchr(buf, ')');
  for (int field = 2; p != nullptr && field < 22; ++field) {
    p = std::strchr(p + 1, ' ');
  }
  if (p == nullptr) return 0;
  v = std::strtoull(p + 1, nullptr, 10);
  g_start_time.store(v, std::memory_order_relaxed);
  return v;
}

std::uint64_t own_pid_namespace() noexcept {
  struct stat st {};
  if (::stat("/proc/self/ns/pid", &st) != 0) return 0;
  return static_cast<std::uint64_t>(st.st_ino);
}

Liveness entry_liveness(const Header& h, std::uint32_t index, std::uint64_t w) noexcept {
  if (w == 0) return Liveness::free;
  if (index >= kAttachEntries) return Liveness::dead;
  const std::uint64_t phase = attach_word_phase(w);
  if (phase != kPhaseClaiming && phase != kPhaseAttached) return Liveness::dead;
  std::lock_guard<std::mutex> g(g_mu);
  LockNode* n = find_locked(&h);
  // A header we hold no descriptor for, or a handle inherited across fork()
  // (its descriptor was closed in the child): we cannot judge, and "alive"
  // is the answer that never takes anything away from anybody.
  if (n == nullptr || n->fd < 0) return Liveness::alive;
  // Our own locks do not conflict with our own query: ask the table.
  if ((n->held >> index) & 1u) return Liveness::alive;
  struct flock fl = byte_lock(F_WRLCK, index);
  if (::fcntl(n->fd, F_OFD_GETLK, &fl) != 0) return Liveness::alive;
  return fl.l_type == F_UNLCK ? Liveness::dead : Liveness::alive;
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
      node_(o.node_),
      pid_(o.pid_),
      entry_(o.entry_),
      generation_(o.generation_),
      peer_attaches_before_(o.peer_attaches_before_),
      peer_closed_before_(o.peer_closed_before_),
      peer_died_before_(o.peer_died_before_),
      role_(o.role_),
      exclusive_(o.exclusive_) {
  o.h_ = nullptr;
  o.node_ = nullptr;
  o.entry_ = -1;
}

Attachment& Attachment::operator=(Attachment&& o) noexcept {
  if (this != &o) {
    detach();
    h_ = o.h_;
    node_ = o.node_;
    pid_ = o.pid_;
    entry_ = o.entry_;
    generation_ = o.generation_;
    peer_attaches_before_ = o.peer_attaches_before_;
    peer_closed_before_ = o.peer_closed_before_;
    peer_died_before_ = o.peer_died_before_;
    role_ = o.role_;
    exclusive_ = o.exclusive_;
    o.h_ = nullptr;
    o.node_ = nullptr;
    o.entry_ = -1;
  }
  return *this;
}

bool Attachment::owned_by_this_process() const noexcept { return h_ != nullptr && pid_ == ::getpid(); }

Errc Attachment::attach(Header* h, const std::string& name, Role role, bool exclusive) {
  detach();
  const auto pid = static_cast<std::int32_t>(::getpid());
  const std::uint64_t start = own_start_time();
  const std::uint64_t pid_ns = own_pid_namespace();
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
  {
    std::lock_guard<std::mutex> g(g_mu);
    LockNode* n = find_locked(h);
    if (n == nullptr || n->fd < 0) {
      return fail(Errc::invalid_argument, name,
                  "no open descriptor for this mapping (a handle inherited across fork() cannot attach)");
    }
    // Take the first entry whose lock nobody holds: it is free, or its
    // process is gone. The lock is the claim; the state word follows.
    for (std::uint32_t i = 0; i < kAttachEntries && mine < 0; ++i) {
      if ((n->held >> i) & 1u) continue;  // ours through this very descriptor
      struct flock fl = byte_lock(F_WRLCK, i);
      if (::fcntl(n->fd, F_OFD_SETLK, &fl) != 0) {
        const int err = errno;
        if (err == EAGAIN || err == EACCES) continue;  // held: a live process
        return fail(Errc::system_error, name,
                    "cannot take the attach lock (fcntl F_OFD_SETLK on the object: " + errno_text(err) +
                        "); liveness needs open-file-description locks on the shared-memory filesystem");
      }
      n->held |= 1u << i;
      mine = static_cast<std::int32_t>(i);
    }
    if (mine >= 0) {
      ++n->refs;
      node_ = n;
    }
  }
  if (mine < 0) {
    return fail(Errc::busy, name, "attach table full: " + std::to_string(kAttachEntries) + " live processes attached");
  }
  AttachEntry& e = h->attach[mine];
  // The entry is ours (its lock); whatever word is left in it is a dead
  // holder's, or 0. acq_rel: the claim is ordered before the field writes
  // below. Only a forced reset (which clears dead words) races with us here.
  std::uint64_t w = atom(e.state).load(std::memory_order_acquire);  // L-A1
  while (!atom(e.state).compare_exchange_weak(w, claiming, std::memory_order_acq_rel)) {
  }
  // D-R2: a dead process's word was still there: we reclaimed its entry (a
  // racing reclaim_dead that freed it first counted it instead; the word
  // CAS decides who counts).
  if (w != 0) count_death(*h, w);
  // The fields are read by other processes with relaxed loads after an
  // acquire of the state word (L-A1).
  atom(e.pid).store(pid, std::memory_order_relaxed);
  atom(e.role).store(r, std::memory_order_relaxed);
  atom(e.start_time).store(start, std::memory_order_relaxed);
  atom(e.attach_time_ns).store(realtime_ns(), std::memory_order_relaxed);
  atom(e.pid_ns).store(pid_ns, std::memory_order_relaxed);
  atom(e.sleeping).store(0, std::memory_order_relaxed);  // not the dead owner's flags
  generation_ = atom(e.generation).fetch_add(1, std::memory_order_relaxed) + 1;
  // L-R1: release, publishes the fields above; pairs with L-A1.
  atom(e.state).store(attach_word(pid, r, kPhaseAttached), std::memory_order_release);
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
        // The owner's entry is ours now: its owner is gone. Otherwise the
        // owner lives while its entry still carries its word and is locked
        // (a pid alone proves nothing across PID namespaces, but a live
        // entry with the owner's pid and role is the owner: only one
        // process can hold the role, and it keeps its entry while it does).
        if (idx < kAttachEntries && idx != static_cast<std::uint32_t>(mine)) {
          const std::uint64_t ow = atom(h->attach[idx].state).load(std::memory_order_acquire);  // L-A1
          alive = attach_word_pid(ow) == attach_word_pid(o) && attach_word_role(ow) == r &&
                  entry_liveness(*h, idx, ow) == Liveness::alive;
        }
        if (alive) {
          const std::uint64_t ns = atom(h->attach[idx].pid_ns).load(std::memory_order_relaxed);
          detach();
          return fail(Errc::busy, name,
                      std::string("the ") + to_string(role) + " role is held by live process " +
                          std::to_string(attach_word_pid(o)) +
                          (ns != 0 && ns != pid_ns ? " (pid in another PID namespace)" : ""));
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
  if (h_ != nullptr && entry_ >= 0 && pid_ == ::getpid()) {
    // A handle inherited across fork() belongs to the parent's entry: only
    // the process that attached gives it back.
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
  if (node_ != nullptr) {
    std::lock_guard<std::mutex> g(g_mu);
    if (entry_ >= 0 && node_->fd >= 0 && ((node_->held >> entry_) & 1u)) {
      // After the word is cleared: a successor that takes the lock finds 0.
      struct flock fl = byte_lock(F_UNLCK, static_cast<std::uint32_t>(entry_));
      ::fcntl(node_->fd, F_OFD_SETLK, &fl);
      node_->held &= ~(1u << entry_);
    }
    unref_locked(node_);
  }
  node_ = nullptr;
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
