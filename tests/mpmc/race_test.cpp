// Interleavings replayed exactly, by holding one consumer thread inside the
// library's liveness check of a claimer -- its open() of /proc/PID/stat --
// while the rest of the ring moves on. The binary is linked with
// -Wl,--wrap=open: __wrap_open below passes every call through, except the
// one a test armed (that thread, that path), which it holds until released.
//
//   MpmcRace.StaleConsumerDoesNotRetireAQuarantinedSlotTwice
//     A claimer process P is fenced (ABANDONED, quarantined); ring of 2
//     slots. Consumer thread T1 reaches P's slot at ticket 2 and is held
//     while checking whether P is alive. Meanwhile the other consumer skips
//     that ticket and the next lap's (P alive), records flow, then P is
//     killed. T1 resumes with its stale view (ticket 2, the slot word it
//     read then), sees P dead and retires the slot. The ring must still
//     work: the next record must go through.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdarg>
#include <cstring>
#include <string>
#include <thread>

#include "mpmc_common.hpp"
#include "mpmc_test_util.hpp"
#include "record.hpp"
#include "shmring/ring.hpp"
#include "support/test_support.hpp"

namespace {

// The gate: one thread, one path.
std::atomic<long> g_hold_tid{0};
char g_hold_path[64];
std::atomic<bool> g_reached{false};
std::atomic<bool> g_released{false};

void maybe_hold(const char* path) {
  const long tid = g_hold_tid.load(std::memory_order_acquire);
  if (tid == 0 || tid != static_cast<long>(::syscall(SYS_gettid)) || std::strcmp(path, g_hold_path) != 0) return;
  g_hold_tid.store(0, std::memory_order_relaxed);  // once
  g_reached.store(true, std::memory_order_release);
  g_reached.notify_all();
  g_released.wait(false, std::memory_order_acquire);
}

}  // namespace

extern "C" int __real_open(const char* path, int flags, ...);
extern "C" int __wrap_open(const char* path, int flags, ...) {
  int mode = 0;
  if ((flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE) {
    va_list ap;
    va_start(ap, flags);
    mode = va_arg(ap, int);
    va_end(ap);
  }
  if (path != nullptr) maybe_hold(path);
  return __real_open(path, flags, mode);
}

namespace shmring::mpmc_test {
namespace {

using namespace std::chrono_literals;

Errc send_rec(Producer& p, std::uint32_t id, std::uint64_t seq, Timeout t) {
  const std::size_t len = live::record_len(id, seq, 24, static_cast<std::uint32_t>(p.max_record()));
  auto r = p.reserve(len, t);
  if (!r) return r.error();
  live::fill_record(id, seq, r->data(), len);
  return p.commit(len);
}

std::string take_rec(Consumer& c, std::uint32_t id, std::uint64_t seq, Timeout t) {
  auto r = c.peek(t);
  if (!r) return std::string("peek: ") + shmring::errc_name(r.error());
  live::RecordView v;
  std::string why;
  if (!live::check_record(r->data(), r->size(), 24, static_cast<std::uint32_t>(c.max_record()), &v, &why)) return why;
  if (v.id != id || v.seq != seq)
    return "got (" + std::to_string(v.id) + "," + std::to_string(v.seq) + "), expected (" + std::to_string(id) + "," +
           std::to_string(seq) + ")";
  if (Errc e = c.release(); e != Errc::ok) return std::string("release: ") + shmring::errc_name(e);
  return "";
}

bool read_byte(int fd, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
  char c;
  return ::read(fd, &c, 1) == 1;
}

// The thread to hold: it starts its call once `go` is set. Destruction
// opens the gate and joins it on every way out of the test.
struct HeldThread {
  std::thread t;
  std::atomic<bool> go{false};
  std::atomic<bool> abandon{false};
  void start() {
    go.store(true);
    go.notify_all();
  }
  ~HeldThread() {
    g_hold_tid.store(0);
    abandon.store(true);
    start();
    g_released.store(true);
    g_released.notify_all();
    if (t.joinable()) t.join();
  }
};

TEST(MpmcRace, StaleConsumerDoesNotRetireAQuarantinedSlotTwice) {
  Ring ring(4096, 2048);  // 2 slots: a lap is two tickets
  ASSERT_EQ(ring.created, Errc::ok) << last_error_message();
  RingView view(ring.name);
  ASSERT_EQ(view.slot_count(), 2u);
  g_reached.store(false);
  g_released.store(false);

  // P: claims ticket 0 and stays alive, blocked, until killed.
  int ready[2], hold[2];
  ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(hold, O_CLOEXEC), 0);
  const std::string name = ring.name;
  test::Child claimer(
      [name, r = ready[1], h = hold[0]]() -> std::string {
        auto p = Producer::open(name);
        if (!p) return "open failed";
        auto claim = p->reserve(100, Timeout::try_once());
        if (!claim) return "reserve failed";
        if (::write(r, "c", 1) != 1) return "write failed";
        char c;
        while (::read(h, &c, 1) < 0) {
        }
        return "released";
      },
      60s);
  ::close(ready[1]);
  ::close(hold[0]);
  ASSERT_TRUE(read_byte(ready[0], 10s)) << "the claimer never claimed";
  ::close(ready[0]);
  ASSERT_EQ(detail::word_state(view.slot_word(0)), detail::kSlotWriting);

  auto pr = Producer::open(ring.name);
  auto c1 = Consumer::open(ring.name);
  auto c2 = Consumer::open(ring.name);
  ASSERT_TRUE(pr.ok() && c1.ok() && c2.ok());

  // Ticket 1: A. The consumer waits out the stall bound at ticket 0, fences
  // P's claim (ABANDONED, quarantined) and takes A.
  ASSERT_EQ(send_rec(*pr, 1, 0, Timeout::try_once()), Errc::ok);
  ASSERT_EQ(take_rec(*c2, 1, 0, std::chrono::seconds(10)), "");
  ASSERT_EQ(view.fenced_claims(), 1u);
  ASSERT_EQ(detail::word_state(view.slot_word(0)), detail::kSlotAbandoned);
  // Ticket 2 (slot 0, quarantined) is skipped; B gets ticket 3.
  ASSERT_EQ(send_rec(*pr, 1, 1, std::chrono::seconds(2)), Errc::ok);
  ASSERT_EQ(view.tail(), 4u);

  // T1 reaches ticket 2 and is held inside its liveness check of P.
  std::snprintf(g_hold_path, sizeof g_hold_path, "/proc/%d/stat", static_cast<int>(claimer.pid()));
  Errc t1_result = Errc::ok;
  std::atomic<long> t1_tid{0};
  HeldThread t1;
  t1.t = std::thread([&] {
    t1_tid.store(static_cast<long>(::syscall(SYS_gettid)));
    t1_tid.notify_all();
    t1.go.wait(false);
    if (!t1.abandon.load()) t1_result = c1->peek(Timeout::try_once()).error();
  });
  t1_tid.wait(0);
  g_hold_tid.store(t1_tid.load());
  t1.start();
  const bool held = poll_until([] { return g_reached.load(); }, 5s);
  if (!held) {
    g_hold_tid.store(0);
    t1.t.join();
    GTEST_SKIP() << "the consumer never reached its liveness check through __wrap_open (library linked "
                    "dynamically, or the check moved)";
  }

  // Meanwhile: the other consumer skips ticket 2 (P is alive) and takes B;
  // C goes through the next lap the same way (ticket 4 skipped, ticket 5).
  EXPECT_EQ(take_rec(*c2, 1, 1, std::chrono::seconds(5)), "");
  ASSERT_EQ(send_rec(*pr, 1, 2, std::chrono::seconds(2)), Errc::ok);
  EXPECT_EQ(take_rec(*c2, 1, 2, std::chrono::seconds(5)), "");
  EXPECT_EQ(view.head(), 6u);
  EXPECT_EQ(view.tail(), 6u);

  // P dies; T1 resumes with its stale view of ticket 2.
  ::kill(claimer.pid(), SIGKILL);
  const auto pres = claimer.wait();
  EXPECT_EQ(pres.signal, SIGKILL) << pres.describe();
  ::close(hold[1]);
  g_released.store(true);
  g_released.notify_all();
  t1.t.join();
  EXPECT_EQ(t1_result, Errc::would_block);

  // The ring must still work (empty now: head == tail == 6).
  const Errc d = send_rec(*pr, 1, 3, std::chrono::seconds(2));
  EXPECT_EQ(d, Errc::ok) << "the producer cannot write into an empty ring: slot 0 holds word " << std::hex
                         << view.slot_word(0) << " (lap " << std::dec << detail::word_lap(view.slot_word(0))
                         << ", state " << detail::word_state(view.slot_word(0)) << "), head " << view.head()
                         << ", tail " << view.tail();
  if (d != Errc::ok) return;
  EXPECT_EQ(take_rec(*c2, 1, 3, std::chrono::seconds(5)), "");
  // And keeps working, slot 0 included.
  for (std::uint64_t s = 4; s < 12; ++s) {
    ASSERT_EQ(send_rec(*pr, 1, s, std::chrono::seconds(2)), Errc::ok) << "seq " << s;
    ASSERT_EQ(take_rec(s % 2 ? *c1 : *c2, 1, s, std::chrono::seconds(5)), "") << "seq " << s;
  }
  EXPECT_EQ(detail::word_state(view.slot_word(0)), detail::kSlotEmpty);
  EXPECT_EQ(view.fenced_claims(), 1u);
}

}  // namespace
}  // namespace shmring::mpmc_test
