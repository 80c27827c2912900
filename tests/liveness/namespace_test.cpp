// Liveness across PID namespaces, across fork() and exec(): most peers here
// run under `unshare --pid --fork --kill-child --mount-proc`, so each is pid 1 of
// its own PID namespace (two helpers share a pid number, exactly the case a
// pid-based check gets wrong). Needs root for unshare(CLONE_NEWPID); skipped
// with the reason printed otherwise. The fork/exec tests need no namespace.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>

#include "live_support.hpp"
#include "record.hpp"
#include "variants.hpp"

namespace shmring::live {
namespace {

constexpr std::int64_t kMs = 1'000'000;
// A blocked waiter checks the peer every half liveness period (50 ms of the
// default 100 ms), so a death is seen within 50 ms plus a wake-up. Tests
// allow the whole period plus 400 ms for a loaded 2-core machine (the helper
// reports through a pipe, and the kill itself goes through pid 1 of a
// namespace). The measured distribution is printed.
constexpr std::int64_t kLivenessNs = 100 * kMs;
constexpr std::int64_t kMarginNs = 400 * kMs;

// The wrapper that starts a helper as pid 1 of a new PID namespace with its
// own /proc (as in a container: the other namespaces' processes are not
// visible there); the helper dies with the unshare process (--kill-child).
std::vector<std::string> in_new_pid_ns() {
  return {"/usr/bin/unshare", "--pid", "--fork", "--kill-child", "--mount-proc"};
}

// Why namespaces cannot be used here, or "" when they can.
std::string namespace_skip_reason() {
  if (::geteuid() != 0) return "needs root: unshare --pid (CLONE_NEWPID) is refused to other users";
  if (::access("/usr/bin/unshare", X_OK) != 0) return "/usr/bin/unshare not installed";
  const int rc = std::system("/usr/bin/unshare --pid --fork --kill-child --mount-proc /bin/true >/dev/null 2>&1");
  if (rc != 0) return "unshare --pid --fork fails here (seccomp or a container without CAP_SYS_ADMIN)";
  return "";
}

#define NEED_PID_NAMESPACES()                                                                  \
  do {                                                                                         \
    static const std::string why_ = namespace_skip_reason();                                   \
    if (!why_.empty()) {                                                                       \
      std::printf("[  SKIPPED ] %s\n", why_.c_str());                                          \
      GTEST_SKIP() << why_;                                                                    \
    }                                                                                          \
  } while (0)

// The helper's pid as seen from here: the only child of the unshare process.
pid_t inner_pid(pid_t unshare_pid) {
  for (int i = 0; i < 2000; ++i) {
    std::ifstream f("/proc/" + std::to_string(unshare_pid) + "/task/" + std::to_string(unshare_pid) + "/children");
    pid_t p = 0;
    if (f >> p && p > 0) return p;
    ::usleep(1000);  // the fork inside unshare has not happened yet: poll, bounded
  }
  return -1;
}

// The pid namespace inode of a process, from /proc/PID/ns/pid ("pid:[N]").
std::string pid_ns_of(pid_t p) {
  char buf[64] = {};
  const std::string link = "/proc/" + std::to_string(p) + "/ns/pid";
  const ssize_t n = ::readlink(link.c_str(), buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

TEST(PidNamespace, HelpersReallyRunInSeparateNamespacesAsPidOne) {
  NEED_PID_NAMESPACES();
  TestRing ring("ns_probe", Kind::spsc, WaitStrategy::futex, 4096);
  ASSERT_EQ(ring.create_result(), Errc::ok);
  Peer a(args({"hold", ring.name(), "--role", "producer"}), "", in_new_pid_ns());
  Peer b(args({"hold", ring.name(), "--role", "consumer"}), "", in_new_pid_ns());
  std::string l;
  LIVE_EXPECT_LINE(a, "opened", 5000, l);
  EXPECT_EQ(l, "opened 0");
  LIVE_EXPECT_LINE(b, "opened", 5000, l);
  EXPECT_EQ(l, "opened 0");
  const pid_t ia = inner_pid(a.pid()), ib = inner_pid(b.pid());
  ASSERT_GT(ia, 0);
  ASSERT_GT(ib, 0);
  const std::string self = pid_ns_of(::getpid()), na = pid_ns_of(ia), nb = pid_ns_of(ib);
  EXPECT_NE(na, self);
  EXPECT_NE(nb, self);
  EXPECT_NE(na, nb);
  // Both recorded themselves as pid 1 (their own namespace's view).
  RawHeader raw(ring.name());
  ASSERT_TRUE(raw.ok());
  int ones = 0;
  for (std::uint32_t i = 0; i < detail::kAttachEntries; ++i) {
    const std::uint64_t w = RawHeader::load(raw.get()->attach[i].state);
    if (w != 0 && detail::attach_word_pid(w) == 1) ++ones;
  }
  EXPECT_EQ(ones, 2);
  a.close_stdin();
  b.close_stdin();
  EXPECT_TRUE(a.wait().exited);
  EXPECT_TRUE(b.wait().exited);
}

// Where the two helpers run: 0 consumer in a new PID namespace and the
// producer in ours (the consumer cannot see the producer's pid at all),
// 1 the reverse, 2 each in its own new namespace (both are pid 1).
struct NsCase {
  KW kw;
  int where;
};
std::string ns_case_name(const ::testing::TestParamInfo<NsCase>& i) {
  static const char* const w[] = {"consumer_ns", "producer_ns", "both_ns"};
  return to_string(i.param.kw.kind) + std::string("_") + w[i.param.where];
}

class NsStream : public ::testing::TestWithParam<NsCase> {};

// A producer and a consumer in different PID namespaces stream records with
// ids, sequence numbers and checksums (the consumer verifies each and exits
// 1 on a bad, missing or duplicated one).
TEST_P(NsStream, MillionRecordsNothingLost) {
  NEED_PID_NAMESPACES();
  const NsCase c = GetParam();
  const std::uint64_t n = scaled(1'000'000, 10'000);
  TestRing ring("ns_stream", c.kw.kind, c.kw.wait, 64 * 1024);
  ASSERT_EQ(ring.create_result(), Errc::ok);
  const std::string count = std::to_string(n);
  const std::vector<std::string> none;
  Peer cons(args({"consume", ring.name(), "--count", count, "--min", "24", "--max", "200", "--deadline-s", "170"}),
            "", c.where != 1 ? in_new_pid_ns() : none);
  std::string l;
  LIVE_EXPECT_LINE(cons, "opened", 5000, l);
  ASSERT_EQ(l, "opened 0");
  Peer prod(args({"produce", ring.name(), "--count", count, "--min", "24", "--max", "200", "--deadline-s", "170"}),
            "", c.where != 0 ? in_new_pid_ns() : none);
  LIVE_EXPECT_LINE(prod, "done", 170'000, l);
  EXPECT_EQ(field(l, 1), SHMRING_OK) << l;
  EXPECT_EQ(static_cast<std::uint64_t>(field(l, 2)), n) << l;
  LIVE_EXPECT_LINE(cons, "done", 170'000, l);
  EXPECT_EQ(field(l, 1), SHMRING_OK) << l;
  EXPECT_EQ(static_cast<std::uint64_t>(field(l, 2)), n) << l;
  const Exit e = cons.wait();
  EXPECT_TRUE(e.exited && e.code == 0) << e.describe() << " " << ::testing::PrintToString(cons.history());
  prod.wait();
}

INSTANTIATE_TEST_SUITE_P(Kinds, NsStream,
                         ::testing::Values(NsCase{KW{Kind::spsc, WaitStrategy::futex}, 0},
                                           NsCase{KW{Kind::spsc, WaitStrategy::futex}, 1},
                                           NsCase{KW{Kind::spsc, WaitStrategy::futex}, 2},
                                           NsCase{KW{Kind::locked, WaitStrategy::futex}, 0},
                                           NsCase{KW{Kind::locked, WaitStrategy::futex}, 2}),
                         ns_case_name);

// kill -9 of the producer (consumer blocked on an empty ring) or of the
// consumer (producer blocked on a full ring), each in its own namespace: the
// survivor gets EPEERGONE within the liveness period (plus the margin).
TEST(PidNamespace, KillNineOfEitherSideIsDetected) {
  NEED_PID_NAMESPACES();
  for (const bool kill_producer : {true, false}) {
    SCOPED_TRACE(kill_producer ? "producer killed" : "consumer killed");
    TestRing ring("ns_kill", Kind::spsc, WaitStrategy::futex, 4096);
    ASSERT_EQ(ring.create_result(), Errc::ok);
    RawHeader raw(ring.name());
    ASSERT_TRUE(raw.ok());
    std::string l;
    std::optional<Peer> victim, survivor;
    if (kill_producer) {
      survivor.emplace(args({"consume", ring.name(), "--timeout-ms", "-1", "--deadline-s", "30"}), "",
                       in_new_pid_ns());
      LIVE_EXPECT_LINE(*survivor, "opened", 5000, l);
      victim.emplace(args({"produce", ring.name(), "--count", "5", "--hold"}), "", in_new_pid_ns());
      LIVE_EXPECT_LINE(*victim, "done", 5000, l);
      ASSERT_EQ(field(l, 1), SHMRING_OK);
    } else {
      victim.emplace(args({"hold", ring.name(), "--role", "consumer"}), "", in_new_pid_ns());
      LIVE_EXPECT_LINE(*victim, "opened", 5000, l);
      survivor.emplace(args({"produce", ring.name(), "--count", "100000", "--timeout-ms", "-1", "--deadline-s", "30"}),
                       "", in_new_pid_ns());
      LIVE_EXPECT_LINE(*survivor, "opened", 5000, l);
    }
    // Wait (bounded) until the survivor sleeps in the kernel, so the death
    // is found by the blocked waiter's own periodic check.
    detail::WaitLine& line = kill_producer ? raw.get()->data_wait : raw.get()->space_wait;
    const std::int64_t until = now_ns() + 5000 * kMs;
    while (RawHeader::load(line.waiters) == 0 && now_ns() < until) ::usleep(200);
    ASSERT_GT(RawHeader::load(line.waiters), 0u) << "the survivor never went to sleep";
    const pid_t inner = inner_pid(victim->pid());
    ASSERT_GT(inner, 0);
    const std::int64_t t0 = now_ns();
    ASSERT_EQ(::kill(inner, SIGKILL), 0);
    LIVE_EXPECT_LINE(*survivor, "done", 5000, l);
    EXPECT_EQ(field(l, 1), SHMRING_EPEERGONE) << l;
    const std::int64_t seen = field(l, kill_producer ? 3 : 4) - t0;
    std::printf("[   INFO   ] %s killed: detected after %.1f ms\n", kill_producer ? "producer" : "consumer",
                to_ms(seen));
    EXPECT_LT(seen, kLivenessNs + kMarginNs);
    victim->wait();
    survivor->wait();
  }
}

// The detection time across namespaces, sampled: a consumer in one PID
// namespace blocks on an empty ring, the producer (in another) is killed.
TEST(PidNamespace, DetectionTimeDistribution) {
  NEED_PID_NAMESPACES();
  const int rounds = static_cast<int>(scaled(50, 10));
  std::vector<std::int64_t> seen;
  for (int k = 0; k < rounds; ++k) {
    TestRing ring("ns_dist", Kind::spsc, WaitStrategy::futex, 4096);
    ASSERT_EQ(ring.create_result(), Errc::ok);
    RawHeader raw(ring.name());
    ASSERT_TRUE(raw.ok());
    std::string l;
    Peer cons(args({"consume", ring.name(), "--timeout-ms", "-1", "--deadline-s", "30"}), "", in_new_pid_ns());
    LIVE_EXPECT_LINE(cons, "opened", 5000, l);
    Peer prod(args({"produce", ring.name(), "--count", "1", "--hold"}), "", in_new_pid_ns());
    LIVE_EXPECT_LINE(prod, "done", 5000, l);
    const std::int64_t until = now_ns() + 5000 * kMs;
    while (RawHeader::load(raw.get()->data_wait.waiters) == 0 && now_ns() < until) ::usleep(200);
    const pid_t inner = inner_pid(prod.pid());
    ASSERT_GT(inner, 0);
    // Kill at a random phase of the waiter's check period.
    ::usleep(static_cast<useconds_t>((k * 7919) % 50'000));
    const std::int64_t t0 = now_ns();
    ASSERT_EQ(::kill(inner, SIGKILL), 0);
    LIVE_EXPECT_LINE(cons, "done", 5000, l);
    ASSERT_EQ(field(l, 1), SHMRING_EPEERGONE) << l;
    seen.push_back(field(l, 3) - t0);
    cons.wait();
    prod.wait();
  }
  std::sort(seen.begin(), seen.end());
  std::printf("[   INFO   ] detection across PID namespaces, %d kills: min %.1f ms, median %.1f ms, p99 %.1f ms, "
              "max %.1f ms\n",
              rounds, to_ms(seen.front()), to_ms(median(seen)), to_ms(percentile(seen, 0.99)), to_ms(seen.back()));
  EXPECT_LT(median(seen), kLivenessNs);
  EXPECT_LT(seen.back(), kLivenessNs + kMarginNs);
}

// A second producer in a third namespace is refused (EBUSY) while the first
// lives, although both are "pid 1"; after the first is killed it takes over
// and continues the sequence after the last committed record.
TEST(PidNamespace, SecondProducerBusyWhileFirstLivesThenTakesOver) {
  NEED_PID_NAMESPACES();
  TestRing ring("ns_busy", Kind::spsc, WaitStrategy::futex, 64 * 1024);
  ASSERT_EQ(ring.create_result(), Errc::ok);
  std::string l;
  Peer first(args({"produce", ring.name(), "--count", "10", "--min", "24", "--max", "200", "--hold"}), "",
             in_new_pid_ns());
  LIVE_EXPECT_LINE(first, "done", 5000, l);
  ASSERT_EQ(field(l, 1), SHMRING_OK) << l;
  {
    Peer second(args({"produce", ring.name(), "--count", "10", "--start", "10", "--min", "24", "--max", "200"}), "",
                in_new_pid_ns());
    LIVE_EXPECT_LINE(second, "opened", 5000, l);
    EXPECT_EQ(l, "opened " + std::to_string(SHMRING_EBUSY)) << "a second live producer was let in";
    second.wait();
  }
  const pid_t inner = inner_pid(first.pid());
  ASSERT_GT(inner, 0);
  ASSERT_EQ(::kill(inner, SIGKILL), 0);
  first.wait();
  Peer third(args({"produce", ring.name(), "--count", "10", "--start", "10", "--min", "24", "--max", "200"}), "",
             in_new_pid_ns());
  LIVE_EXPECT_LINE(third, "opened", 5000, l);
  EXPECT_EQ(l, "opened 0") << "the role of a killed producer was not handed over";
  LIVE_EXPECT_LINE(third, "done", 5000, l);
  EXPECT_EQ(field(l, 1), SHMRING_OK) << l;
  // Read afterwards (a consumer blocked across the first producer's death
  // would rightly get EPEERGONE before the third one attaches).
  Peer cons(args({"consume", ring.name(), "--count", "20", "--min", "24", "--max", "200", "--deadline-s", "30"}), "",
            in_new_pid_ns());
  LIVE_EXPECT_LINE(cons, "done", 5000, l);
  EXPECT_EQ(field(l, 1), SHMRING_OK) << l;
  EXPECT_EQ(field(l, 2), 20) << "records 0..19 from the two producers, in order, each once";
  const Exit e = cons.wait();
  EXPECT_TRUE(e.exited && e.code == 0) << e.describe();
  third.wait();
}

// shmtool reset refuses while a live peer is attached. Run as pid 1 of its
// own namespace, the resetter shares its pid number with a holder that is
// pid 1 of another: that holder is a peer, not the resetter's own handle.
TEST(PidNamespace, ResetRefusedByAPeerWithTheSamePidNumber) {
  NEED_PID_NAMESPACES();
  TestRing ring("ns_reset", Kind::spsc, WaitStrategy::futex, 4096);
  ASSERT_EQ(ring.create_result(), Errc::ok);
  Peer holder(args({"hold", ring.name(), "--role", "producer"}), "", in_new_pid_ns());
  std::string l;
  LIVE_EXPECT_LINE(holder, "opened", 5000, l);
  ASSERT_EQ(l, "opened 0");
  Peer resetter(args({"reset", ring.name()}), "", in_new_pid_ns());
  LIVE_EXPECT_LINE(resetter, "reset", 5000, l);
  EXPECT_EQ(l, "reset " + std::to_string(SHMRING_EBUSY)) << "the reset ignored a live peer of another namespace";
  resetter.wait();
  holder.close_stdin();
  EXPECT_TRUE(holder.wait().exited);
}

// ---- fork() and exec() -----------------------------------------------------------

// The producer forks a child that never uses the handle and lives on; then
// the producer is killed. The child's inherited descriptor must not keep the
// producer's lock: the consumer sees the producer gone. (Without the fork
// handler that closes inherited descriptors this waits until the timeout.)
TEST(ForkExec, ChildOfAKilledProducerDoesNotKeepItAlive) {
  TestRing ring("fork_child", Kind::spsc, WaitStrategy::futex, 4096);
  ASSERT_EQ(ring.create_result(), Errc::ok);
  Handle cons;
  ASSERT_EQ(cons.open(ring.name(), SHMRING_CONSUMER), SHMRING_OK);
  Peer prod(args({"hold", ring.name(), "--role", "producer", "--fork-child"}));
  std::string l;
  LIVE_EXPECT_LINE(prod, "opened", 5000, l);
  ASSERT_EQ(l, "opened 0");
  LIVE_EXPECT_LINE(prod, "child", 5000, l);
  const pid_t child = static_cast<pid_t>(field(l, 1));
  ASSERT_GT(child, 0);
  prod.kill9();
  prod.wait();
  ASSERT_EQ(::kill(child, 0), 0) << "the forked child must still be alive for this test";
  const void* p = nullptr;
  std::size_t n = 0;
  const std::int64_t t0 = now_ns();
  const int rc = shmring_peek(cons.get(), &p, &n, 2000 * kMs);
  EXPECT_EQ(rc, SHMRING_EPEERGONE) << errname(rc) << ": the child kept its dead parent's lock";
  EXPECT_LT(now_ns() - t0, kLivenessNs + kMarginNs);
  ::kill(child, SIGKILL);  // not our child (the helper's): init reaps it
}

// The producer execs another program (same pid, alive): the handle did not
// survive the exec (close-on-exec), so the consumer sees the producer gone.
TEST(ForkExec, ExecDropsTheHandle) {
  TestRing ring("exec", Kind::spsc, WaitStrategy::futex, 4096);
  ASSERT_EQ(ring.create_result(), Errc::ok);
  Handle cons;
  ASSERT_EQ(cons.open(ring.name(), SHMRING_CONSUMER), SHMRING_OK);
  Peer prod(args({"hold", ring.name(), "--role", "producer", "--exec-sleep"}));
  std::string l;
  LIVE_EXPECT_LINE(prod, "opened", 5000, l);
  ASSERT_EQ(l, "opened 0");
  LIVE_EXPECT_LINE(prod, "ready", 5000, l);  // the exec'd program runs
  ASSERT_EQ(::kill(prod.pid(), 0), 0);
  const void* p = nullptr;
  std::size_t n = 0;
  const int rc = shmring_peek(cons.get(), &p, &n, 2000 * kMs);
  EXPECT_EQ(rc, SHMRING_EPEERGONE) << errname(rc);
  prod.close_stdin();
  prod.wait();
}

// Many handles in one process: one descriptor per open handle (not per
// call), all closed again on close.
TEST(ForkExec, OneDescriptorPerHandle) {
  auto count_fds = [] {
    int n = 0;
    for (int fd = 0; fd < 4096; ++fd) n += ::fcntl(fd, F_GETFD) != -1 ? 1 : 0;
    return n;
  };
  const int before = count_fds();
  std::vector<std::unique_ptr<TestRing>> rings;
  std::vector<std::unique_ptr<Handle>> handles;
  for (int i = 0; i < 20; ++i) {
    rings.push_back(std::make_unique<TestRing>("fds", Kind::locked,
                                               WaitStrategy::futex, 4096));
    ASSERT_EQ(rings.back()->create_result(), Errc::ok);
    for (shmring_role role : {SHMRING_PRODUCER, SHMRING_CONSUMER}) {
      handles.push_back(std::make_unique<Handle>());
      ASSERT_EQ(handles.back()->open(rings.back()->name(), role), SHMRING_OK);
    }
  }
  EXPECT_EQ(count_fds() - before, 40);
  // Records move without opening anything.
  for (std::size_t i = 0; i < handles.size(); i += 2) {
    const char rec[32] = "x";
    ASSERT_EQ(shmring_send(handles[i]->get(), rec, sizeof rec, 0), SHMRING_OK);
    char out[64];
    std::size_t n = 0;
    ASSERT_EQ(shmring_recv(handles[i + 1]->get(), out, sizeof out, &n, 0), SHMRING_OK);
  }
  EXPECT_EQ(count_fds() - before, 40);
  handles.clear();
  EXPECT_EQ(count_fds(), before);
}

}  // namespace
}  // namespace shmring::live
