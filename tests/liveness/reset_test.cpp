// A forced reset under waiting handles, and timed calls on a locked ring
// whose lock another process holds. Each waiter or holder is a forked
// process of its own; the resetter is this process, through the library's
// reset_ring (what `shmtool reset --force` calls).
//
//   ResetUnderWaiter.*   every kind x wait strategy x side (a consumer
//                        waiting on an empty ring, a producer waiting on a
//                        full one) x how it waits (asleep: a blocking call,
//                        in the kernel for futex and sem, spinning for spin;
//                        polling: a loop of try-once calls) x how far the
//                        indices are from zero when the reset moves them
//                        back (the ring carried records first: many laps,
//                        or half a lap). The waiting call (peek, reserve)
//                        must return SHMRING_ERESET: never a record, never
//                        ECORRUPT, never space in the new ring. After
//                        it, a fresh consumer sees only the records sent
//                        after the reset.
//   LockedTimeout.*      a locked ring whose producer (consumer) lock is
//                        held by a stopped process: send (peek) with 1, 10
//                        and 100 ms return ETIMEDOUT no earlier than the
//                        timeout and no later than the timeout plus
//                        kLateMarginNs (docs/wait-strategies.md) plus the
//                        time this thread spent runnable but not running.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cinttypes>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>

#include "admin.hpp"  // internal: reset_ring (shmtool reset --force)
#include "live_support.hpp"
#include "raw_header.hpp"
#include "variants.hpp"

namespace shmring::live {
namespace {

constexpr std::int64_t kMs = 1'000'000;
constexpr std::uint64_t kPre = 0x5052452d5245434bULL;   // "PRE-RECK": sent before the reset
constexpr std::uint64_t kPost = 0x504f53542d524543ULL;  // "POST-REC": sent after it

struct Rec {
  std::uint64_t tag;
  std::uint64_t seq;
};

// Words the forked child and this process share (an anonymous shared
// mapping made before the fork).
struct Board {
  std::atomic<int> phase{0};  // 1: about to wait; 2: finished
  std::atomic<int> rc{1};     // the waiting call's result (1: none yet)
  std::atomic<std::uint64_t> polls{0};
  std::atomic<std::uint64_t> filled{0};
  Rec got{};  // the record a consumer received instead of ERESET, if any
};

class SharedBoard {
 public:
  SharedBoard() {
    void* p = ::mmap(nullptr, sizeof(Board), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED) b_ = new (p) Board();
  }
  ~SharedBoard() {
    if (b_ != nullptr) ::munmap(b_, sizeof(Board));
  }
  SharedBoard(const SharedBoard&) = delete;
  SharedBoard& operator=(const SharedBoard&) = delete;
  Board* operator->() const noexcept { return b_; }
  explicit operator bool() const noexcept { return b_ != nullptr; }

 private:
  Board* b_ = nullptr;
};

// A forked child running fn; its exit status is fn's return. Killed
// (SIGKILL) and reaped on destruction if it still runs. The child dies by
// alarm() after 60 s whatever happens.
class Child {
 public:
  explicit Child(const std::function<int()>& fn) {
    std::fflush(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::alarm(60);
      const int code = fn();
      ::_exit(code);
    }
    if (pid_ > 0) pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
  }
  ~Child() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      ::kill(pid_, SIGCONT);
      int st = 0;
      ::waitpid(pid_, &st, 0);
    }
    if (pidfd_ >= 0) ::close(pidfd_);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  pid_t pid() const noexcept { return pid_; }

  // Waits (poll on the pidfd, bounded) for the exit; returns "exit N",
  // "signal N" or "still running".
  std::string wait(std::int64_t timeout_ns) {
    if (pidfd_ >= 0) {
      pollfd p{pidfd_, POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(timeout_ns / kMs));
    }
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) != pid_) return "still running";
    reaped_ = true;
    if (WIFEXITED(st)) return "exit " + std::to_string(WEXITSTATUS(st));
    return "signal " + std::to_string(WTERMSIG(st));
  }

 private:
  pid_t pid_ = -1;
  int pidfd_ = -1;
  bool reaped_ = false;
};

// The scheduler state letter of a process (/proc/PID/stat field 3): 'S'
// sleeping in the kernel, 'R' running, 'T' stopped.
char proc_state(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const auto close = s.rfind(')');
  return close == std::string::npos || close + 2 >= s.size() ? '?' : s[close + 2];
}

// CPU time (ns) a process has used so far, or -1.
std::int64_t cpu_ns(pid_t pid) {
  clockid_t c;
  if (::clock_getcpuclockid(pid, &c) != 0) return -1;
  timespec ts{};
  if (::clock_gettime(c, &ts) != 0) return -1;
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// Polls pred (yielding the CPU between checks, never sleeping a fixed time)
// until it holds or timeout passes.
template <class Pred>
bool until(Pred&& pred, std::int64_t timeout_ns) {
  const std::int64_t deadline = now_ns() + timeout_ns;
  while (!pred()) {
    if (now_ns() > deadline) return false;
    ::sched_yield();
  }
  return true;
}

// A ring of any kind, unlinked on destruction.
class KindRing {
 public:
  KindRing(std::string_view tag, Kind kind, WaitStrategy wait) : name_(unique_name(tag)) {
    Config cfg;
    cfg.kind = kind;
    cfg.wait = wait;
    cfg.capacity = 4096;
    if (kind == Kind::mpmc) cfg.slot_size = 64;
    created_ = create(name_, cfg);
  }
  ~KindRing() { (void)shmring::unlink(name_); }
  KindRing(const KindRing&) = delete;
  KindRing& operator=(const KindRing&) = delete;
  const std::string& name() const noexcept { return name_; }
  Errc create_result() const noexcept { return created_; }

 private:
  std::string name_;
  Errc created_;
};

int send_rec(shmring_t* p, std::uint64_t tag, std::uint64_t seq, std::int64_t timeout_ns) {
  const Rec r{tag, seq};
  return shmring_send(p, &r, sizeof r, timeout_ns);
}

int recv_rec(shmring_t* c, Rec* r, std::int64_t timeout_ns) {
  std::size_t n = 0;
  *r = Rec{};
  const int rc = shmring_recv(c, r, sizeof *r, &n, timeout_ns);
  if (rc == SHMRING_OK && n != sizeof *r) *r = Rec{0, n};
  return rc;
}

shmring_role c_role(Role r) { return r == Role::producer ? SHMRING_PRODUCER : SHMRING_CONSUMER; }

// ---- Defect: a forced reset under a waiting handle ------------------------------------

enum class How { asleep, polling };

// How many records the ring carried before the waiter came: `far` moves the
// byte indices around the 4 KiB ring about 12 times (mpmc: 2000 tickets
// over 64 slots); `near` leaves them inside the first lap, where an index
// cached before the reset still looks plausible next to the reset's zeros.
enum class Carry { near, far };

struct ResetCase {
  KW kw;
  Role side;  // the waiter's role: consumer waits on empty, producer on full
  How how;
  Carry carry;
};

std::string describe(const ResetCase& c, const char* sep) {
  std::ostringstream os;
  os << to_string(c.kw.kind) << sep << to_string(c.kw.wait) << sep << to_string(c.side) << sep
     << (c.how == How::asleep ? "asleep" : "polling") << sep << (c.carry == Carry::far ? "far" : "near");
  return os.str();
}

void PrintTo(const ResetCase& c, std::ostream* os) { *os << describe(c, "/"); }

std::string reset_case_name(const ::testing::TestParamInfo<ResetCase>& i) { return describe(i.param, "_"); }

std::vector<ResetCase> reset_cases() {
  std::vector<ResetCase> v;
  for (Kind k : {Kind::spsc, Kind::mpmc, Kind::locked})
    for (WaitStrategy w : {WaitStrategy::futex, WaitStrategy::spin, WaitStrategy::sem})
      for (Role r : {Role::consumer, Role::producer})
        for (How h : {How::asleep, How::polling})
          for (Carry c : {Carry::far, Carry::near}) v.push_back({{k, w}, r, h, c});
  return v;
}

class ResetUnderWaiter : public ::testing::TestWithParam<ResetCase> {};

// The waiting call: a consumer's peek (a record it returns is the
// record's one delivery, whatever release says after it), a producer's
// reserve (a buffer it returns is space in the ring). The record peeked, if
// any, goes to b->got; a reserved buffer is filled and committed.
int waiting_call(shmring_t* h, Role side, std::uint64_t seq, std::int64_t timeout_ns, Board* b) {
  if (side == Role::consumer) {
    const void* buf = nullptr;
    std::size_t n = 0;
    const int rc = shmring_peek(h, &buf, &n, timeout_ns);
    if (rc == SHMRING_OK) {
      b->got = Rec{0, n};
      if (n == sizeof(Rec)) std::memcpy(&b->got, buf, sizeof(Rec));
      (void)shmring_release(h);
    }
    return rc;
  }
  void* buf = nullptr;
  const int rc = shmring_reserve(h, sizeof(Rec), &buf, timeout_ns);
  if (rc == SHMRING_OK) {
    const Rec r{kPre, seq};
    std::memcpy(buf, &r, sizeof r);
    (void)shmring_commit(h, sizeof r);
  }
  return rc;
}

// The waiter's body (in the child). Returns the exit status: 0 when the
// waiting call ended (its result is in b->rc), 10+ when setting up failed.
int waiter_body(const std::string& ring, const ResetCase& c, Board* b) {
  shmring_t* h = nullptr;
  if (shmring_open(ring.c_str(), c_role(c.side), &h) != SHMRING_OK) return 10;
  std::uint64_t seq = 0;
  if (c.side == Role::consumer) {
    Rec r{};
    if (recv_rec(h, &r, 0) != SHMRING_EWOULDBLOCK) return 11;  // the ring must be empty
  } else {
    int rc;
    while ((rc = send_rec(h, kPre, seq, 0)) == SHMRING_OK) ++seq;  // fill the ring
    if (rc != SHMRING_EWOULDBLOCK || seq == 0) return 12;
    b->filled.store(seq);
  }
  b->phase.store(1);
  const std::int64_t long_wait = 20'000 * kMs;
  int rc;
  if (c.how == How::asleep) {
    rc = waiting_call(h, c.side, seq, long_wait, b);
  } else {
    const std::int64_t end = now_ns() + long_wait;
    do {
      rc = waiting_call(h, c.side, seq, 0, b);
      b->polls.fetch_add(1, std::memory_order_relaxed);
    } while (rc == SHMRING_EWOULDBLOCK && now_ns() < end);
  }
  b->rc.store(rc);
  b->phase.store(2);
  shmring_close(h);
  return 0;
}

TEST_P(ResetUnderWaiter, GetsResetNeverAStaleRecord) {
  const ResetCase c = GetParam();
  KindRing ring("rst", c.kw.kind, c.kw.wait);
  ASSERT_EQ(ring.create_result(), Errc::ok);
  RawHeader raw(ring.name());
  ASSERT_TRUE(raw.ok());

  // Carry records first (spsc/locked footprint: 24 bytes a record).
  const std::uint64_t carried = c.carry == Carry::far ? 2000 : 100;
  {
    Handle p, q;
    ASSERT_EQ(p.open(ring.name(), SHMRING_PRODUCER), SHMRING_OK);
    ASSERT_EQ(q.open(ring.name(), SHMRING_CONSUMER), SHMRING_OK);
    for (std::uint64_t i = 0; i < carried; ++i) {
      ASSERT_EQ(send_rec(p.get(), kPre, 1'000'000 + i, 1000 * kMs), SHMRING_OK);
      Rec r{};
      ASSERT_EQ(recv_rec(q.get(), &r, 1000 * kMs), SHMRING_OK);
      ASSERT_EQ(r.seq, 1'000'000 + i);
    }
  }
  // spsc/locked: byte indices (far: > 10 laps; near: the second half of
  // the first lap); mpmc: tickets (64 slots).
  if (c.kw.kind == Kind::mpmc) {
    ASSERT_EQ(raw.tail(), carried);
  } else if (c.carry == Carry::far) {
    ASSERT_GT(raw.tail(), 10 * raw.capacity());
  } else {
    ASSERT_GT(raw.tail(), raw.capacity() / 2);
    ASSERT_LE(raw.tail(), raw.capacity());
  }

  SharedBoard b;
  ASSERT_TRUE(b);
  Child child([&] { return waiter_body(ring.name(), c, &*b.operator->()); });
  ASSERT_GT(child.pid(), 0);
  ASSERT_TRUE(until([&] { return b->phase.load() >= 1; }, 10'000 * kMs))
      << "the waiter never got ready: " << child.wait(0);

  // Make sure the waiter is inside its wait before the reset.
  const bool kernel = c.how == How::asleep && c.kw.wait != WaitStrategy::spin;
  if (kernel) {
    // Asleep in the kernel: it announced itself on the line (W1) and the
    // process sleeps (the only sleep in its wait is FUTEX_WAIT / sem_wait).
    auto waiters = [&] { return c.side == Role::consumer ? raw.data_waiters() : raw.space_waiters(); };
    ASSERT_TRUE(until([&] { return waiters() > 0 && proc_state(child.pid()) == 'S'; }, 10'000 * kMs))
        << "the waiter never slept: waiters " << waiters() << ", state " << proc_state(child.pid());
  } else {
    // Spinning (spin strategy) or polling: it has burned 20 ms of CPU since
    // it said it was about to wait, which it can only have done in there.
    const std::int64_t cpu0 = cpu_ns(child.pid());
    ASSERT_GE(cpu0, 0);
    ASSERT_TRUE(until([&] { return cpu_ns(child.pid()) - cpu0 >= 20 * kMs && b->phase.load() == 1; }, 10'000 * kMs))
        << "the waiter never spun (phase " << b->phase.load() << ")";
    if (c.how == How::polling) {
      EXPECT_GT(b->polls.load(), 0u);
    }
  }
  ASSERT_EQ(b->phase.load(), 1) << "the waiter finished before the reset: rc " << b->rc.load();

  std::string detail;
  ASSERT_EQ(detail::reset_ring(ring.name(), true, &detail), Errc::ok) << detail;

  // A new producer sends three records right after the reset, so a waiter
  // that wakes late finds the indices moving forward again in the new ring.
  Handle np;
  ASSERT_EQ(np.open(ring.name(), SHMRING_PRODUCER), SHMRING_OK);
  const bool producer_side = c.side == Role::producer;
  if (!producer_side) {
    for (std::uint64_t i = 0; i < 3; ++i) ASSERT_EQ(send_rec(np.get(), kPost, i, 1000 * kMs), SHMRING_OK);
  }

  const std::string how_exited = child.wait(10'000 * kMs);
  ASSERT_EQ(how_exited, "exit 0");
  const int rc = b->rc.load();
  EXPECT_EQ(rc, SHMRING_ERESET) << "the waiter got " << errname(rc)
                                << (rc == SHMRING_OK && !producer_side
                                        ? " with a record: tag " +
                                              std::string(b->got.tag == kPre    ? "PRE (sent before the reset)"
                                                          : b->got.tag == kPost ? "POST"
                                                                                : "unknown") +
                                              ", seq " + std::to_string(b->got.seq)
                                        : std::string());

  // After the reset the ring holds only what was sent after it.
  if (producer_side) {
    for (std::uint64_t i = 0; i < 3; ++i) ASSERT_EQ(send_rec(np.get(), kPost, i, 1000 * kMs), SHMRING_OK);
  }
  Handle nc;
  ASSERT_EQ(nc.open(ring.name(), SHMRING_CONSUMER), SHMRING_OK);
  for (std::uint64_t i = 0; i < 3; ++i) {
    Rec r{};
    ASSERT_EQ(recv_rec(nc.get(), &r, 1000 * kMs), SHMRING_OK);
    EXPECT_EQ(r.tag, kPost) << "record " << i << " after the reset is not one sent after it (seq " << r.seq << ")";
    EXPECT_EQ(r.seq, i);
  }
  Rec r{};
  EXPECT_EQ(recv_rec(nc.get(), &r, 0), SHMRING_EWOULDBLOCK) << "an extra record: tag " << r.tag << " seq " << r.seq;
}

INSTANTIATE_TEST_SUITE_P(All, ResetUnderWaiter, ::testing::ValuesIn(reset_cases()), reset_case_name);

// ---- Defect: a timed call on a locked ring overran its timeout ---------------------------

// How late a timed call may return ETIMEDOUT on top of its timeout and of
// the time the calling thread spent runnable but not running (a loaded
// machine's delay, not the library's): documented in docs/wait-strategies.md.
constexpr std::int64_t kLateMarginNs = 50 * kMs;

class LockedTimeout : public ::testing::TestWithParam<KW> {};

void timed_calls_bounded(const KW& kw, Role held) {
  KindRing ring("lto", Kind::locked, kw.wait);
  ASSERT_EQ(ring.create_result(), Errc::ok);
  // Both roles stay attached in this process (the peer rule never ends the
  // wait), and one record waits for the consumer holder to peek.
  Handle p, q;
  ASSERT_EQ(p.open(ring.name(), SHMRING_PRODUCER), SHMRING_OK);
  ASSERT_EQ(q.open(ring.name(), SHMRING_CONSUMER), SHMRING_OK);
  ASSERT_EQ(send_rec(p.get(), kPre, 0, 1000 * kMs), SHMRING_OK);

  // The holder takes the lock (reserve without commit / peek without
  // release), then stops itself (SIGSTOP) until we let it go.
  SharedBoard b;
  ASSERT_TRUE(b);
  Child holder([&]() -> int {
    shmring_t* h = nullptr;
    if (shmring_open(ring.name().c_str(), c_role(held), &h) != SHMRING_OK) return 10;
    int rc;
    if (held == Role::producer) {
      void* buf = nullptr;
      rc = shmring_reserve(h, 16, &buf, 1000 * kMs);
    } else {
      const void* buf = nullptr;
      std::size_t n = 0;
      rc = shmring_peek(h, &buf, &n, 1000 * kMs);
    }
    b->rc.store(rc);
    b->phase.store(1);
    if (rc != SHMRING_OK) return 11;
    ::raise(SIGSTOP);
    shmring_close(h);
    return 0;
  });
  ASSERT_GT(holder.pid(), 0);
  ASSERT_TRUE(until([&] { return b->phase.load() == 1 && proc_state(holder.pid()) == 'T'; }, 10'000 * kMs))
      << "the holder never stopped holding the lock: rc " << b->rc.load() << ", " << holder.wait(0);
  ASSERT_EQ(b->rc.load(), SHMRING_OK);

  const std::int64_t started = now_ns();
  for (std::int64_t t_ms : {1, 10, 100}) {
    for (int round = 0; round < 3; ++round) {
      const std::int64_t delay0 = run_delay_ns();
      const std::int64_t t0 = now_ns();
      int rc;
      if (held == Role::producer) {
        rc = send_rec(p.get(), kPost, 0, t_ms * kMs);
      } else {
        const void* buf = nullptr;
        std::size_t n = 0;
        rc = shmring_peek(q.get(), &buf, &n, t_ms * kMs);
      }
      const std::int64_t took = now_ns() - t0;
      const std::int64_t queued = run_delay_ns() - delay0;
      LIVE_MEASURE("timed_" + std::to_string(t_ms), "locked/%s %s %" PRId64 " ms with the %s lock held: %s after %.2f ms (runnable-not-running %.2f ms)",
                   to_string(kw.wait), held == Role::producer ? "send" : "peek", t_ms, to_string(held), errname(rc),
                   to_ms(took), to_ms(queued));
      EXPECT_EQ(rc, SHMRING_ETIMEDOUT);
      EXPECT_GE(took, t_ms * kMs);
      EXPECT_LE(took, t_ms * kMs + kLateMarginNs + queued)
          << "a " << t_ms << " ms call took " << to_ms(took) << " ms";
    }
  }
  // The holder was stopped throughout (the calls above are bounded by the
  // watchdog even if they overran); let it finish.
  EXPECT_EQ(proc_state(holder.pid()), 'T') << "the holder ran during the measurement";
  LIVE_MEASURE("held_for", "the lock was held for %.0f ms", to_ms(now_ns() - started));
  ::kill(holder.pid(), SIGCONT);
  EXPECT_EQ(holder.wait(10'000 * kMs), "exit 0");
}

TEST_P(LockedTimeout, SendWithProducerLockHeld) { timed_calls_bounded(GetParam(), Role::producer); }
TEST_P(LockedTimeout, PeekWithConsumerLockHeld) { timed_calls_bounded(GetParam(), Role::consumer); }

INSTANTIATE_TEST_SUITE_P(Waits, LockedTimeout,
                         ::testing::Values(KW{Kind::locked, WaitStrategy::futex}, KW{Kind::locked, WaitStrategy::spin},
                                           KW{Kind::locked, WaitStrategy::sem}),
                         kw_name);

}  // namespace
}  // namespace shmring::live
