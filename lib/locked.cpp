// The locked ring: variable-length records (the spsc framing), any number of
// producers and consumers. Producers are serialised by one robust,
// process-shared mutex, consumers by another; each side then works like the
// spsc ring's single producer or consumer. Ordering labels
// (docs/memory-ordering.md):
//
//   LP-R1 producer: tail.store(release)   publishes records; pairs with LC-A1
//   LC-A1 consumer: tail.load(acquire)
//   LC-R1 consumer: head.store(release)   hands space back; pairs with LP-A1
//   LP-A1 producer: head.load(acquire)
//
// Holder death: a process that dies holding a mutex leaves the indices in a
// consistent state, because each side changes its index with one store at
// the end (commit, release). What it leaves behind is at most an
// unpublished reservation (bytes past tail, never visible) or a peeked but
// unreleased record (before head, delivered again). The next locker gets
// EOWNERDEAD, checks the indices (idempotent: it only reads and re-checks),
// counts the recovery, marks the mutex consistent and carries on.
#include <linux/futex.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

#include "endpoint.hpp"
#include "hooks.hpp"
#include "mutex_state.hpp"
#include "records.hpp"
#include "wait.hpp"

namespace shmring::detail {

namespace {

// How long one lock attempt may block before the caller re-checks its
// deadline and the peers' liveness.
constexpr std::int64_t kLockSliceNs = 1'000'000'000;

timespec abs_timespec(std::int64_t ns) noexcept {
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
  return ts;
}

// Robust + process-shared, NORMAL type (not ERRORCHECK/RECURSIVE: their
// owner checks compare thread ids, which collide across pid namespaces).
bool init_robust_mutex(pthread_mutex_t* m) noexcept {
  pthread_mutexattr_t a;
  if (::pthread_mutexattr_init(&a) != 0) return false;
  const bool ok = ::pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED) == 0 &&
                  ::pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST) == 0 &&
                  ::pthread_mutexattr_settype(&a, PTHREAD_MUTEX_NORMAL) == 0 && ::pthread_mutex_init(m, &a) == 0;
  ::pthread_mutexattr_destroy(&a);
  return ok;
}

int reference_mutex_kind() noexcept {
  pthread_mutex_t m;
  if (!init_robust_mutex(&m)) return -1;
  const int kind = m.__data.__kind;
  ::pthread_mutex_destroy(&m);
  return kind;
}

// glibc aborts on some damaged robust mutexes instead of failing (it reads
// the type from the mutex on every call), so the kind word is compared with
// a freshly initialised mutex's before the first lock and before every
// lock after it. glibc-specific: __data.__kind. A peer that changes it
// between this check and glibc's own read can still win that race
// (docs/reliability.md).
bool mutex_plausible(const unsigned char* m) noexcept {
  static const int want = reference_mutex_kind();
  const auto* pm = reinterpret_cast<const pthread_mutex_t*>(m);
  // Relaxed: a plausibility check of a word only glibc's own calls use; it
  // orders nothing.
  return atom(const_cast<int&>(pm->__data.__kind)).load(std::memory_order_relaxed) == want;
}

// One robust mutex of the lock block, with the repair protocol.
class RobustLock {
 public:
  // pid: this process's, cached (glibc no longer caches getpid(), and a
  // system call per lock would be most of the locked kind's cost). Handles
  // do not survive fork(), so it never goes stale.
  RobustLock(unsigned char* m, std::uint64_t* holder, std::uint64_t* recoveries, pid_t pid) noexcept
      : m_(reinterpret_cast<pthread_mutex_t*>(m)), holder_(holder), recoveries_(recoveries), pid_(pid) {}

  // try_only: a single try. Otherwise deadline(now) gives the call's
  // absolute CLOCK_MONOTONIC deadline, fixed once per call (the first time
  // anything in the call reads the clock: see Waiter::fix_deadline); it is
  // asked only when the mutex is busy, so a free mutex (the common case)
  // costs no clock read. Returns ok (held), would_block (busy; the wait
  // goes on), timed_out (still busy at the deadline), or corrupt
  // (unrecoverable). `repair` runs
  // under the lock after a holder died, before the mutex is marked
  // consistent; it must be idempotent and return ok or corrupt.
  template <class Deadline, class Repair>
  Errc lock(bool try_only, Deadline&& deadline, Repair&& repair) {
    // The kind word was checked at open; a peer may have damaged it since,
    // and glibc can abort on a damaged robust mutex instead of failing.
    if (!mutex_plausible(reinterpret_cast<const unsigned char*>(m_))) return Errc::corrupt;
    if (not_recoverable()) return Errc::corrupt;
    // A try first: it takes a free mutex (and an owner-died one, with
    // EOWNERDEAD) exactly like the timed lock, without reading the clock.
    int rc = ::pthread_mutex_trylock(m_);
    if (rc == EBUSY && !try_only) {
      const std::int64_t now = monotonic_ns();
      const std::int64_t d = deadline(now);
      if (now >= d) return Errc::timed_out;  // every later poll would block again until d
      const std::int64_t until = std::min(d, now + kLockSliceNs);
      const timespec ts = abs_timespec(until);
      // clocklock on CLOCK_MONOTONIC: a wall-clock step cannot stretch it.
      rc = ::pthread_mutex_clocklock(m_, CLOCK_MONOTONIC, &ts);
    }
    if (rc == EBUSY || rc == ETIMEDOUT) return Errc::would_block;
    if (rc == EOWNERDEAD) {
      // We hold the lock; the holder died inside its critical section.
      SHMRING_CRASHPOINT("locked.repair");
      const Errc e = repair();
      // Statistic for shmtool; the mutex orders it.
      atom(*recoveries_).fetch_add(1, std::memory_order_relaxed);
      ::pthread_mutex_consistent(m_);
      if (e != Errc::ok) {
        ::pthread_mutex_unlock(m_);
        return e;
      }
      rc = 0;
    }
    if (rc == ENOTRECOVERABLE) release_stray_lock();
    if (rc != 0) return Errc::corrupt;  // ENOTRECOVERABLE, EINVAL: a damaged lock
    // Diagnostic for shmtool (who holds it, or held it last); ordered by the
    // mutex. Written only when it changes and never cleared: prod_holder and
    // cons_holder share a cache line, and a store per lock and unlock on
    // both sides made that line cross cores up to four times per record.
    // shmtool decides free/held from glibc's lock word and uses this field
    // only to name the holder (docs/format.md).
    if (atom(*holder_).load(std::memory_order_relaxed) != static_cast<std::uint64_t>(pid_))
      atom(*holder_).store(static_cast<std::uint64_t>(pid_), std::memory_order_relaxed);
    return Errc::ok;
  }

  void unlock() noexcept { ::pthread_mutex_unlock(m_); }

 private:
  // glibc marks a robust mutex that was unlocked without
  // pthread_mutex_consistent (never by this library; by a foreign or buggy
  // peer) by storing PTHREAD_MUTEX_NOTRECOVERABLE in __owner. Every later
  // lock must fail, so that is checked before calling glibc at all:
  // glibc 2.36's trylock answers ENOTRECOVERABLE but leaves the lock word
  // holding the caller's tid, which would wedge every other locker.
  // glibc-specific, like mutex_plausible. Relaxed: a plausibility check.
  bool not_recoverable() const noexcept {
    return atom(m_->__data.__owner).load(std::memory_order_relaxed) == kMutexOwnerNotRecoverable;
  }
  // The race the check above cannot close (the mutex became not
  // recoverable after it): give back the lock word glibc's trylock left
  // with our tid, so that the next locker gets ENOTRECOVERABLE too instead
  // of waiting on us forever.
  void release_stray_lock() noexcept {
    int expected = static_cast<int>(::syscall(SYS_gettid));
    // Release: nothing was written under this non-lock; pairs with the
    // acquire of whichever locker takes the word next.
    if (atom(m_->__data.__lock).compare_exchange_strong(expected, 0, std::memory_order_release))
      ::syscall(SYS_futex, &m_->__data.__lock, FUTEX_WAKE, 1, nullptr, nullptr, 0);
  }


  pthread_mutex_t* m_;
  std::uint64_t* holder_;
  std::uint64_t* recoveries_;
  pid_t pid_;
};

// The deadline of a call with timeout_ns (not 0) for a lock that found the
// mutex busy at `now`: the call's one deadline, fixed by whichever reads the
// clock first, this lock or the waiter after its first polls. Each of those
// polls may reach a busy mutex; before this was fixed once per call, every
// poll computed its own now + timeout_ns and blocked that long again, and
// a 100 ms call returned after ~1.8 s (docs/wait-strategies.md).
std::int64_t lock_deadline(Waiter& w, std::int64_t timeout_ns, std::int64_t now) noexcept {
  return w.fix_deadline(now, timeout_ns);
}

// The shared words one side of a locked ring uses.
struct SideWords {
  unsigned char* mutex;
  std::uint64_t* holder;
  std::uint64_t* index;    // this side's index: prod.tail or cons.head
  std::uint64_t* records;  // this side's record counter (statistic)
  WaitLine* wait_line;     // the line this side waits on
  unsigned char* wait_sem;
  WaitLine* wake_line;     // the other side's line, woken after a publish
  unsigned char* wake_sem;
  const char* lock_what;      // "producer" / "consumer", for the quarantine reason
  const char* after_publish;  // crash point
};

// What the producer side and the consumer side share: the side's mutex, its
// own index (prod.tail or cons.head), which it holds in pos_ while it has
// the lock and stores back when it publishes, its record counter, and the
// wait line of the other side, which it wakes after publishing.
class LockedSide : public Endpoint {
 protected:

  LockedSide(OpenedSegment seg, Attachment att, Role role, SideWords (*words)(Header&)) noexcept
      : Endpoint(std::move(seg), std::move(att), role),
        w_(words(*seg_.hdr)),
        area_{seg_.data, seg_.geo.capacity, seg_.geo.max_record},
        lock_(w_.mutex, w_.holder, &seg_.hdr->lock.recoveries, ::getpid()),
        peer_(seg_.hdr, role == Role::producer ? Role::consumer : Role::producer, seg_.geo.liveness_ms,
              att_.peer_attaches_before()),
        waiter_(seg_.geo.wait, seg_.hdr, w_.wait_line, w_.wait_sem, &peer_, sleep_flag()) {}

  // Takes the side's mutex (unless held) and loads the side's index into
  // pos_. Under the lock, the previous holder's publish (LP-R1 / LC-R1) is
  // ordered before us by the mutex, or after its death by EOWNERDEAD's
  // acquire; the load is an acquire anyway.
  Errc take_lock(std::int64_t timeout_ns) {
    if (holding_) return Errc::ok;
    const Errc e = lock_.lock(
        timeout_ns == 0, [&](std::int64_t now) { return lock_deadline(waiter_, timeout_ns, now); },
        [&] { return check_indices(); });
    if (e == Errc::corrupt) return quarantine(std::string(w_.lock_what) + " lock unusable or indices damaged");
    if (e != Errc::ok) return e;
    holding_ = true;
    published_ = pos_ = atom(*w_.index).load(std::memory_order_acquire);
    // RG-1: an index a reset stored (R-R2 pairs with this acquire) means the
    // reset is visible now: give the lock back and never combine this
    // position with an index cached before the reset.
    if (was_reset()) return reset_exit();
    return Errc::ok;
  }

  // The ring was reset under this handle: let go of the lock if we hold it
  // (the other handles, old and new, must not wait on us) and say so.
  Errc reset_exit() noexcept {
    if (holding_) {
      holding_ = false;
      lock_.unlock();
    }
    return Errc::reset;
  }

  // Stores pos_ back as the side's index if it moved, unlocks, and wakes the
  // other side. `open_item`: a reservation or peek is still open (commit or
  // release it first).
  Errc publish(bool open_item) {
    if (!holding_) return corrupt_ ? Errc::corrupt : Errc::ok;
    if (was_reset()) return reset_exit();  // never publish stale indices into a re-initialised ring
    if (open_item) return Errc::invalid_argument;
    const bool moved = pos_ != published_;
    if (moved) {
      // LP-R1 (producer: publishes the records; pairs with LC-A1) or LC-R1
      // (consumer: hands the space back; pairs with LP-A1): release.
      atom(*w_.index).store(pos_, std::memory_order_release);
      // Statistic; each side is serialised by its mutex, so a plain load
      // and store (no locked RMW) count exactly; a holder that dies between
      // them leaves the count short, never the ring wrong.
      auto rec = atom(*w_.records);
      rec.store(rec.load(std::memory_order_relaxed) + pending_records_, std::memory_order_relaxed);
      pending_records_ = 0;
      published_ = pos_;
      SHMRING_CRASHPOINT(w_.after_publish);
    }
    holding_ = false;
    lock_.unlock();
    if (moved) notify(seg_.geo.wait, *seg_.hdr, *w_.wake_line, w_.wake_sem);
    return Errc::ok;
  }

  Errc check_indices() {
    const std::uint64_t t = atom(seg_.hdr->prod.tail).load(std::memory_order_acquire);  // LC-A1
    const std::uint64_t h = atom(seg_.hdr->cons.head).load(std::memory_order_acquire);  // LP-A1
    return indices_sane(area_, h, t) ? Errc::ok : Errc::corrupt;
  }

  Errc quarantine(std::string why) {
    corrupt_ = true;
    return fail(Errc::corrupt, seg_.name, std::move(why));
  }

  const SideWords w_;
  const RingArea area_;
  RobustLock lock_;
  PeerWatch peer_;
  Waiter waiter_;
  std::uint64_t pos_ = 0;        // this side's position (valid while holding_)
  std::uint64_t published_ = 0;  // this side's index as last stored (valid while holding_)
  std::uint64_t pending_records_ = 0;
  bool holding_ = false;
  bool corrupt_ = false;
};

SideWords producer_words(Header& h) {
  return {h.lock.prod_mutex, &h.lock.prod_holder, &h.prod.tail,    &h.prod.records,
          &h.space_wait,     h.sems.space_sem,    &h.data_wait,    h.sems.data_sem,
          "producer",        "locked.commit.after_publish"};
}

SideWords consumer_words(Header& h) {
  return {h.lock.cons_mutex, &h.lock.cons_holder, &h.cons.head,    &h.cons.records,
          &h.data_wait,      h.sems.data_sem,     &h.space_wait,   h.sems.space_sem,
          "consumer",        "locked.release.after_publish"};
}

class LockedProducer final : public LockedSide {
 public:
  LockedProducer(OpenedSegment seg, Attachment att) noexcept
      : LockedSide(std::move(seg), std::move(att), Role::producer, &producer_words) {}

  ~LockedProducer() override {
    has_reservation_ = false;  // an open reservation is dropped whole
    flush();
  }

  Errc reserve(std::size_t n, std::byte** out, std::int64_t timeout_ns) override {
    if (corrupt_) return Errc::corrupt;
    if (was_reset()) return reset_exit();
    if (n > area_.max_record) return Errc::too_big;
    has_reservation_ = false;  // a second reserve replaces the first
    const Errc e = waiter_.wait([&] { return acquire_space(n, timeout_ns); }, timeout_ns);
    if (e != Errc::ok) return e;
    SHMRING_CRASHPOINT("locked.reserve");
    reserved_pos_ = place_record(area_, pos_, n);
    pos_ = reserved_pos_;
    reserved_n_ = n;
    has_reservation_ = true;
    *out = area_.data + (reserved_pos_ & area_.mask()) + sizeof(RecordHeader);
    return Errc::ok;
  }

  Errc commit(std::size_t n, bool publish_now) override {
    if (corrupt_) return Errc::corrupt;
    if (was_reset()) return reset_exit();
    if (!has_reservation_ || n > reserved_n_) return Errc::invalid_argument;
    write_record_header(area_, reserved_pos_, n);
    SHMRING_CRASHPOINT("locked.commit.before_publish");
    pos_ = reserved_pos_ + record_footprint(n);
    has_reservation_ = false;
    ++pending_records_;
    if (publish_now) return flush();
    return Errc::ok;  // the lock stays held until the batch is published
  }

  Errc flush() override { return publish(has_reservation_); }

 private:
  // Under the producer lock: is there room for n bytes at the tail?
  Errc acquire_space(std::size_t n, std::int64_t timeout_ns) {
    if (const Errc e = take_lock(timeout_ns); e != Errc::ok) return e;
    // The head as last read (by this process) is at most the real one: the
    // head only moves forward, so it can only under-state the space. It is
    // reloaded only when it says full, as in the spsc ring: a load per
    // record would miss on the consumers' line every time.
    const std::uint64_t need = bytes_needed(area_, pos_, n);
    if (indices_sane(area_, head_seen_, published_) && pos_ + need - head_seen_ <= area_.cap) return Errc::ok;
    // LP-A1: acquire, pairs with LC-R1: consumers are done with that space.
    const std::uint64_t h = atom(seg_.hdr->cons.head).load(std::memory_order_acquire);
    if (was_reset()) return reset_exit();  // RG-1, as in take_lock
    if (!indices_sane(area_, h, published_)) {
      flush();
      return quarantine("consumer index " + std::to_string(h) + " out of range");
    }
    head_seen_ = h;
    if (pos_ + need - h <= area_.cap) return Errc::ok;
    flush();  // full: publish what we deferred and let the others in
    return Errc::would_block;
  }

  std::uint64_t head_seen_ = 0;  // cons.head as last loaded (LP-A1); never ahead of it
  std::uint64_t reserved_pos_ = 0;
  std::size_t reserved_n_ = 0;
  bool has_reservation_ = false;
};

class LockedConsumer final : public LockedSide {
 public:
  LockedConsumer(OpenedSegment seg, Attachment att) noexcept
      : LockedSide(std::move(seg), std::move(att), Role::consumer, &consumer_words) {}

  ~LockedConsumer() override {
    has_peek_ = false;  // a peeked, unreleased record stays for the next consumer
    flush();
  }

  Errc peek(const std::byte** out, std::size_t* n, std::int64_t timeout_ns) override {
    if (corrupt_) return Errc::corrupt;
    if (was_reset()) return reset_exit();
    if (!has_peek_) {
      const Errc e = waiter_.wait([&] { return next_record(timeout_ns); }, timeout_ns);
      if (e != Errc::ok) return e;
    }
    SHMRING_CRASHPOINT("locked.peek");
    *out = area_.data + (pos_ & area_.mask()) + sizeof(RecordHeader);
    *n = peek_len_;
    return Errc::ok;
  }

  Errc release(bool publish_now) override {
    if (corrupt_) return Errc::corrupt;
    if (was_reset()) return reset_exit();
    if (!has_peek_) return Errc::invalid_argument;
    SHMRING_CRASHPOINT("locked.release.before_publish");
    pos_ += record_footprint(peek_len_);
    has_peek_ = false;
    ++pending_records_;
    if (publish_now) return flush();
    return Errc::ok;  // the lock stays held until the batch is handed back
  }

  Errc flush() override { return publish(has_peek_); }

 private:
  Errc next_record(std::int64_t timeout_ns) {
    if (const Errc e = take_lock(timeout_ns); e != Errc::ok) return e;
    std::uint32_t len = 0;
    std::string why;
    // The tail as last read (by this process): records before it were
    // whole when LC-A1 read it and stay so until released. While it is
    // ahead of our position it is used as is, as in the spsc ring; it is
    // reloaded only when it says empty (or when other consumers have moved
    // the head past it).
    Errc e = Errc::would_block;
    if (static_cast<std::int64_t>(tail_seen_ - pos_) > 0 && indices_sane(area_, published_, tail_seen_)) {
      e = find_record(area_, &pos_, tail_seen_, &len, &why);
    }
    if (e == Errc::would_block) {
      // LC-A1: acquire, pairs with LP-R1: the records before tail are whole.
      const std::uint64_t t = atom(seg_.hdr->prod.tail).load(std::memory_order_acquire);
      if (was_reset()) return reset_exit();  // RG-1, as in take_lock
      if (!indices_sane(area_, published_, t) || t - pos_ > area_.cap) {
        flush();
        return quarantine("producer index " + std::to_string(t) + " out of range");
      }
      tail_seen_ = t;
      e = find_record(area_, &pos_, t, &len, &why);
    }
    if (e == Errc::ok) {
      peek_len_ = len;
      has_peek_ = true;
      return Errc::ok;
    }
    flush();  // empty (or damaged): hand back what we consumed, let others in
    if (e == Errc::corrupt) return quarantine(std::move(why));
    return e;
  }

  std::uint64_t tail_seen_ = 0;  // prod.tail as last loaded (LC-A1); never ahead of it
  std::size_t peek_len_ = 0;
  bool has_peek_ = false;
};

}  // namespace

Errc init_locked_mutexes(Header* h) {
  const bool ok = init_robust_mutex(reinterpret_cast<pthread_mutex_t*>(h->lock.prod_mutex)) &&
                  init_robust_mutex(reinterpret_cast<pthread_mutex_t*>(h->lock.cons_mutex));
  return ok ? Errc::ok : Errc::system_error;
}

bool locked_mutexes_plausible(const Header& h) noexcept {
  return mutex_plausible(h.lock.prod_mutex) && mutex_plausible(h.lock.cons_mutex);
}

std::unique_ptr<Endpoint> make_locked_endpoint(OpenedSegment seg, Attachment att, Role role, Errc* err) {
  if (!locked_mutexes_plausible(*seg.hdr)) {
    att.detach();
    *err = fail(Errc::corrupt, seg.name, "the ring's mutex is damaged (unexpected kind word)");
    return nullptr;
  }
  *err = Errc::ok;
  if (role == Role::producer) return std::make_unique<LockedProducer>(std::move(seg), std::move(att));
  return std::make_unique<LockedConsumer>(std::move(seg), std::move(att));
}

}  // namespace shmring::detail
