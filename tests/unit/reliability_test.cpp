// The rows of shared/reliability.md that need the environment bent: a
// too-small /dev/shm (row 23), another user's and a group's rings, the wall
// clock stepped under timed waits (row 28), an object truncated under a live
// mapping (row 22), a separate /dev/shm as in a container (row 25), and many
// rings at once. docs/reliability.md maps every row to its test.
//
// Tests that need root (mounts, other uids) skip without it; the clock test
// skips without libfaketime (tools/install-deps installs it).
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "admin.hpp"
#include "layout.hpp"
#include "shmring/ring.hpp"
#include "shmring/shmring.h"
#include "support/ring_fixture.hpp"
#include "support/shm_raw.hpp"
#include "support/test_support.hpp"

namespace shmring::test {
namespace {

// ---- helpers ----------------------------------------------------------------------

// Moves the calling (child) process into a mount namespace with its own
// /dev/shm of `size` (a tmpfs option such as "1m"), as a container has.
std::string private_dev_shm(const char* size) {
  if (::unshare(CLONE_NEWNS) != 0) return std::string("unshare(CLONE_NEWNS): ") + std::strerror(errno);
  if (::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    return std::string("mount --make-rprivate /: ") + std::strerror(errno);
  const std::string opts = std::string("size=") + size + ",mode=1777";
  if (::mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, opts.c_str()) != 0)
    return std::string("mount tmpfs on /dev/shm: ") + std::strerror(errno);
  return "";
}

std::vector<std::string> dev_shm_entries() {
  std::vector<std::string> out;
  if (DIR* d = ::opendir("/dev/shm")) {
    while (dirent* e = ::readdir(d)) {
      const std::string n = e->d_name;
      if (n != "." && n != "..") out.push_back(n);
    }
    ::closedir(d);
  }
  return out;
}

std::string become(uid_t uid, gid_t gid) {
  if (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0)
    return std::string("could not become ") + std::to_string(uid) + ":" + std::to_string(gid) + ": " +
           std::strerror(errno);
  return "";
}

std::string self_exe() {
  char exe[4096];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return "";
  exe[n] = '\0';
  return exe;
}

const char* kind_name(Kind k) { return to_string(k); }

Config config_of(Kind k, std::size_t capacity) {
  Config cfg;
  cfg.kind = k;
  cfg.capacity = capacity;
  if (k == Kind::mpmc) cfg.slot_size = 64;
  return cfg;
}

// CLOCK_MONOTONIC straight from the kernel, never through an interposed
// clock_gettime (the clock test runs under libfaketime).
std::int64_t raw_monotonic_ns() {
  timespec ts{};
  ::syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// ---- row 23: a /dev/shm too small for the ring -------------------------------------

// create() reserves the whole object with posix_fallocate before publishing
// it, so a ring that does not fit fails at once with no_space and removes
// its half-made object; one that fits can be filled without a SIGBUS.
TEST(Reliability, TooSmallDevShmCreateIsNoSpaceAndLeavesNothing) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a small private /dev/shm";
  auto r = run_in_child(
      []() -> std::string {
        if (auto e = private_dev_shm("1m"); !e.empty()) return e;
        std::string err;
        for (Kind k : {Kind::spsc, Kind::mpmc, Kind::locked}) {
          const std::string name = std::string("/toobig_") + kind_name(k);
          const Errc e = create(name, config_of(k, std::size_t{4} << 20));
          if (e != Errc::no_space) err += std::string(kind_name(k)) + ": 4 MiB ring in 1 MiB: " + errc_name(e) + "; ";
          if (std::string(last_error_message()).find(name) == std::string::npos)
            err += std::string("message does not name the ring: ") + last_error_message() + "; ";
          if (!dev_shm_entries().empty()) err += std::string(kind_name(k)) + ": left " + dev_shm_entries()[0] + "; ";
        }
        // One ring that fits, then a second that no longer fits beside it.
        if (Errc e = create("/fits", config_of(Kind::spsc, std::size_t{512} << 10)); e != Errc::ok)
          return err + "512 KiB ring in 1 MiB: " + errc_name(e);
        if (Errc e = create("/second", config_of(Kind::spsc, std::size_t{512} << 10)); e != Errc::no_space)
          err += std::string("second 512 KiB ring: ") + errc_name(e) + "; ";
        if (dev_shm_entries().size() != 1) err += "the failed create left an object; ";
        // The ring that fits is fully backed: fill every byte of it.
        auto p = Producer::open("/fits");
        auto c = Consumer::open("/fits");
        if (!p || !c) return err + "open /fits failed: " + last_error_message();
        std::uint64_t n = 0;
        while (push_record(*p, n, 4000) == Errc::ok) ++n;
        if (n < 120) err += "only " + std::to_string(n) + " records of 4000 B fit in 512 KiB; ";
        for (std::uint64_t i = 0; i < n; ++i) {
          if (auto e = pop_record(*c, i, 4000); !e.empty()) {
            err += "record " + std::to_string(i) + ": " + e + "; ";
            break;
          }
        }
        return err;
      },
      std::chrono::seconds(60));
  EXPECT_TRUE(r.ok()) << r.describe();
}

// ---- users and groups ----------------------------------------------------------------

// A ring made 0660 by a process whose effective group is G is usable by
// every member of G and by nobody else; in the sticky /dev/shm only its
// owner (or root) can remove it, so a group member cannot clean up another
// member's ring, and `shmtool rm` as that member fails with exit 5 too.
TEST(Reliability, GroupSharedRingIsUsableByTheGroupAndRemovableOnlyByItsOwner) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to act as several users";
  constexpr gid_t kGroup = 47010;
  constexpr uid_t kOwner = 47011, kMember = 47012, kOutsider = 47013;
  constexpr gid_t kOutsiderGroup = 47013;
  const auto name = unique_ring_name("group");
  ShmGuard guard(name);
  struct stat dir {};
  ASSERT_EQ(::stat("/dev/shm", &dir), 0);
  const bool sticky = (dir.st_mode & S_ISVTX) != 0;

  auto owner = run_in_child(
      [&]() -> std::string {
        if (auto e = become(kOwner, kGroup); !e.empty()) return e;
        Config cfg = config_of(Kind::spsc, 64 << 10);
        cfg.mode = 0660;
        if (Errc e = create(name, cfg); e != Errc::ok) return std::string("create: ") + last_error_message();
        auto p = Producer::open(name);
        if (!p) return std::string("producer: ") + last_error_message();
        for (std::uint64_t i = 0; i < 100; ++i)
          if (push_record(*p, i, 100) != Errc::ok) return "push " + std::to_string(i);
        return "";
      },
      std::chrono::seconds(30));
  ASSERT_TRUE(owner.ok()) << owner.describe();
  struct stat st {};
  ASSERT_EQ(::stat(shm_path(name).c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kOwner);
  EXPECT_EQ(st.st_gid, kGroup);
  EXPECT_EQ(st.st_mode & 07777, 0660u);

  auto member = run_in_child(
      [&]() -> std::string {
        if (auto e = become(kMember, kGroup); !e.empty()) return e;
        auto c = Consumer::open(name);
        if (!c) return std::string("member consumer: ") + last_error_message();
        for (std::uint64_t i = 0; i < 100; ++i)
          if (auto e = pop_record(*c, i, 100); !e.empty()) return "record " + std::to_string(i) + ": " + e;
        auto p = Producer::open(name);
        if (!p) return std::string("member producer: ") + last_error_message();
        if (sticky && unlink(name) != Errc::permission_denied)
          return "a group member removed another member's ring in the sticky /dev/shm";
        return "";
      },
      std::chrono::seconds(30));
  EXPECT_TRUE(member.ok()) << member.describe();

  auto outsider = run_in_child(
      [&]() -> std::string {
        if (auto e = become(kOutsider, kOutsiderGroup); !e.empty()) return e;
        std::string err;
        if (auto p = Producer::open(name); p.error() != Errc::permission_denied)
          err += std::string("outsider producer: ") + errc_name(p.error()) + "; ";
        if (auto c = Consumer::open(name); c.error() != Errc::permission_denied)
          err += std::string("outsider consumer: ") + errc_name(c.error()) + "; ";
        if (sticky && unlink(name) != Errc::permission_denied) err += "outsider removed the ring; ";
        return err;
      },
      std::chrono::seconds(30));
  EXPECT_TRUE(outsider.ok()) << outsider.describe();

  auto cleanup = run_in_child(
      [&]() -> std::string {
        if (auto e = become(kOwner, kGroup); !e.empty()) return e;
        return unlink(name) == Errc::ok ? "" : std::string("owner could not remove it: ") + last_error_message();
      },
      std::chrono::seconds(30));
  EXPECT_TRUE(cleanup.ok()) << cleanup.describe();
  EXPECT_NE(::access(shm_path(name).c_str(), F_OK), 0);
}

// ---- row 28: the wall clock jumps during timed waits -----------------------------------

constexpr const char* kFaketime = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

// Runs in a re-executed copy of this binary under libfaketime, whose
// CLOCK_REALTIME follows the offset in $SHMRING_CLOCK_STEP_FILE (monotonic
// left alone). Every timed wait of every kind and wait strategy, on an empty
// ring (consumer) and a full one (producer), runs while another thread steps
// the wall clock by +1 h and then -2 h. Each wait must end with timed_out
// (no false peer_gone: the peer is alive) on its monotonic deadline.
TEST(ReliabilityChild, TimedWaitsIgnoreWallClockSteps) {
  const char* file = std::getenv("SHMRING_CLOCK_STEP_FILE");
  if (file == nullptr) GTEST_SKIP() << "runs only inside Reliability.WallClockStepsDoNotMoveTimedWaits";
  auto set_offset = [&](const char* off) { std::ofstream(file, std::ios::trunc) << off << "\n"; };
  constexpr std::int64_t kWaitNs = 300'000'000;
  std::int64_t worst_late = 0;
  for (Kind k : {Kind::spsc, Kind::mpmc, Kind::locked}) {
    for (WaitStrategy w : {WaitStrategy::futex, WaitStrategy::spin, WaitStrategy::sem}) {
      SCOPED_TRACE(std::string(kind_name(k)) + "/" + to_string(w));
      const auto name = unique_ring_name("clock");
      ShmGuard guard(name);
      Config cfg = config_of(k, 4096);
      cfg.wait = w;
      ASSERT_EQ(create(name, cfg), Errc::ok) << last_error_message();
      auto p = Producer::open(name);
      auto c = Consumer::open(name);
      ASSERT_TRUE(p.ok() && c.ok()) << last_error_message();
      for (int side = 0; side < 2; ++side) {
        if (side == 1) {
          while (push_record(*p, 0, 32) == Errc::ok) {
          }
        }
        set_offset("+0");
        std::thread stepper([&] {
          std::this_thread::sleep_for(std::chrono::milliseconds(60));
          set_offset("+3600");
          std::this_thread::sleep_for(std::chrono::milliseconds(60));
          set_offset("-3600");
        });
        const std::int64_t t0 = raw_monotonic_ns();
        const auto seen0 = std::chrono::system_clock::now();  // faked
        Errc e = Errc::ok;
        if (side == 0) {
          e = c->peek(std::chrono::nanoseconds(kWaitNs)).error();
        } else {
          e = p->reserve(32, std::chrono::nanoseconds(kWaitNs)).error();
        }
        const std::int64_t took = raw_monotonic_ns() - t0;
        stepper.join();
        const auto seen1 = std::chrono::system_clock::now();
        set_offset("+0");
        EXPECT_EQ(e, Errc::timed_out) << (side == 0 ? "consumer" : "producer");
        EXPECT_GE(took, kWaitNs);
        EXPECT_LT(took, kWaitNs + 200'000'000) << "the wait ended " << (took - kWaitNs) / 1000 << " us late";
        worst_late = std::max(worst_late, took - kWaitNs);
        // Control: the process really saw the wall clock go back an hour
        // while the wait ran (else this test proves nothing).
        const auto seen = std::chrono::duration_cast<std::chrono::seconds>(seen1 - seen0).count();
        EXPECT_LT(seen, -3000) << "libfaketime did not step CLOCK_REALTIME";
      }
    }
  }
  std::printf("worst wake-up after the deadline: %lld us\n", static_cast<long long>(worst_late / 1000));
}

TEST(Reliability, WallClockStepsDoNotMoveTimedWaits) {
  if (::access(kFaketime, R_OK) != 0) GTEST_SKIP() << "libfaketime is not installed (tools/install-deps installs it)";
  // Seen here: libfaketime's start-up dlsym calls malloc inside the ASan
  // runtime's own initialisation and the process hangs. The behaviour under
  // test does not depend on the sanitizer; the Release stage runs it.
  if (std::string(sanitizer_name()) != "none")
    GTEST_SKIP() << "libfaketime deadlocks with the " << sanitizer_name() << " sanitizer runtime at start-up";
  const std::string self = self_exe();
  ASSERT_FALSE(self.empty());
  const char* exe = self.c_str();
  char tmpl[] = "/tmp/shmring-clockstep.XXXXXX";
  const int fd = ::mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  ::close(fd);
  const std::string step_file = tmpl;
  auto r = run_in_child(
      [&]() -> std::string {
        ::setenv("LD_PRELOAD", kFaketime, 1);
        ::setenv("FAKETIME_TIMESTAMP_FILE", step_file.c_str(), 1);
        ::setenv("FAKETIME_NO_CACHE", "1", 1);
        ::setenv("FAKETIME_DONT_FAKE_MONOTONIC", "1", 1);
        ::setenv("SHMRING_CLOCK_STEP_FILE", step_file.c_str(), 1);
        ::execl(exe, exe, "--gtest_filter=ReliabilityChild.TimedWaitsIgnoreWallClockSteps", "--gtest_color=no",
                static_cast<char*>(nullptr));
        return std::string("exec: ") + std::strerror(errno);
      },
      std::chrono::seconds(90));
  ::unlink(step_file.c_str());
  EXPECT_TRUE(r.ok()) << r.describe();
}

// ---- row 22: the object truncated under a live mapping ---------------------------------

// Documented behaviour (docs/reliability.md, row 22): the library maps the
// object once and does not re-check its size on every access, so a process
// whose ring is truncated under it gets SIGBUS at its next access to the
// lost pages, like any user of a shared mapping; it is not turned into an
// error. What the library does guarantee: a later open refuses the
// truncated object (corrupt: its size no longer matches the header), and
// shmtool, which only preads, reports it without faulting.
TEST(Reliability, TruncatedUnderALiveMappingFaultsTheMapperAndIsRefusedOnOpen) {
  const auto name = unique_ring_name("truncated");
  ShmGuard guard(name);
  ASSERT_EQ(create(name, config_of(Kind::spsc, 64 << 10)), Errc::ok);
  int ready[2], go[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(go), 0);
  Child child(
      [&]() -> std::string {
        struct sigaction sa {};
        sa.sa_handler = [](int) { ::_exit(77); };
        ::sigaction(SIGBUS, &sa, nullptr);
        auto p = Producer::open(name);
        auto c = Consumer::open(name);
        if (!p || !c) return std::string("open: ") + last_error_message();
        if (push_record(*p, 0, 1000) != Errc::ok) return "push";
        char b = 'r';
        if (::write(ready[1], &b, 1) != 1) return "write ready";
        if (::read(go[0], &b, 1) != 1) return "read go";
        auto r = c->peek(Timeout::try_once());  // touches the truncated data area
        return std::string("peek on the truncated ring returned ") + errc_name(r.error()) + " instead of faulting";
      },
      std::chrono::seconds(30));
  char b = 0;
  pollfd pfd{ready[0], POLLIN, 0};
  ASSERT_EQ(::poll(&pfd, 1, 20'000), 1) << "the child never got ready";
  ASSERT_EQ(::read(ready[0], &b, 1), 1);
  ASSERT_TRUE(truncate_object(name, detail::kHeaderSize));
  ASSERT_EQ(::write(go[1], &b, 1), 1);
  const ChildResult r = child.wait();
  for (int fd : {ready[0], ready[1], go[0], go[1]}) ::close(fd);
  EXPECT_TRUE((r.exited && r.exit_code == 77) || r.signal == SIGBUS) << r.describe();
  auto again = Consumer::open(name);
  EXPECT_EQ(again.error(), Errc::corrupt) << last_error_message();
}

// ---- row 25: a peer with its own /dev/shm (a container without a shared IPC mount) --

// Each side sees only its own /dev/shm: opening the other's ring is
// not_found at once (never a hang), and what one creates the other cannot
// see. There is no error that could say "the peer is in another
// namespace": docs/reliability.md row 25 says how to diagnose it.
TEST(Reliability, PeerWithItsOwnDevShmGetsNotFoundAtOnce) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a private /dev/shm";
  const auto name = unique_ring_name("ns");
  ShmGuard guard(name);
  ASSERT_EQ(create(name, config_of(Kind::spsc, 4096)), Errc::ok);
  const std::string theirs = name + "_theirs";
  ShmGuard guard2(theirs);
  auto r = run_in_child(
      [&]() -> std::string {
        if (auto e = private_dev_shm("1m"); !e.empty()) return e;
        const std::int64_t t0 = raw_monotonic_ns();
        auto c = Consumer::open(name);
        const std::int64_t took = raw_monotonic_ns() - t0;
        if (c.error() != Errc::not_found) return std::string("open across mounts: ") + errc_name(c.error());
        if (took > 100'000'000) return "not_found took " + std::to_string(took / 1000) + " us";
        return create(theirs, config_of(Kind::spsc, 4096)) == Errc::ok ? "" : "create in the private /dev/shm failed";
      },
      std::chrono::seconds(30));
  EXPECT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(Consumer::open(theirs).error(), Errc::not_found);
}

// ---- many rings ------------------------------------------------------------------------

int open_fds() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (::readdir(d) != nullptr) ++n;
    ::closedir(d);
  }
  return n;
}

// 600 rings of every kind open at once in one process (1200 handles, each
// its own mapping): each moves its own records, nothing is shared by
// mistake, and closing them all gives back every descriptor.
TEST(Reliability, ManyRingsAtOnceStayIndependent) {
  const int fds_before = open_fds();
  constexpr int kRings = 600;
  std::deque<ShmGuard> guards;
  std::vector<Producer> prods;
  std::vector<Consumer> conss;
  const Kind kinds[] = {Kind::spsc, Kind::mpmc, Kind::locked};
  for (int i = 0; i < kRings; ++i) {
    const auto& g = guards.emplace_back(unique_ring_name("many"));
    ASSERT_EQ(create(g.name(), config_of(kinds[i % 3], 4096)), Errc::ok) << i << ": " << last_error_message();
    auto p = Producer::open(g.name());
    auto c = Consumer::open(g.name());
    ASSERT_TRUE(p.ok() && c.ok()) << i << ": " << last_error_message();
    prods.push_back(std::move(*p));
    conss.push_back(std::move(*c));
  }
  for (int round = 0; round < 3; ++round)
    for (int i = 0; i < kRings; ++i)
      ASSERT_EQ(push_record(prods[i], static_cast<std::uint64_t>(i) * 10 + round, 40), Errc::ok) << i;
  for (int i = kRings - 1; i >= 0; --i)
    for (int round = 0; round < 3; ++round)
      ASSERT_EQ(pop_record(conss[i], static_cast<std::uint64_t>(i) * 10 + round, 40), "") << i;
  for (auto& c : conss) EXPECT_EQ(c.peek(Timeout::try_once()).error(), Errc::would_block);
  prods.clear();
  conss.clear();
  EXPECT_EQ(open_fds(), fds_before);
}

// ---- row 33: the attach table is full ----------------------------------------------------

// Every handle takes one entry of the 32-entry attach table. The 33rd gets
// busy (never a hang or a silent attach), and closing one handle frees its
// entry for the next open. Reclaiming dead processes' entries is covered by
// the liveness crash tests.
TEST(Reliability, AttachTableFullIsBusyAndAClosedHandleFreesItsEntry) {
  const auto name = unique_ring_name("table");
  ShmGuard guard(name);
  ASSERT_EQ(create(name, config_of(Kind::mpmc, 4096)), Errc::ok);
  std::vector<Consumer> held;
  for (std::uint32_t i = 0; i < detail::kAttachEntries; ++i) {
    auto c = Consumer::open(name);
    ASSERT_TRUE(c.ok()) << i << ": " << last_error_message();
    held.push_back(std::move(*c));
  }
  auto extra = Producer::open(name);
  EXPECT_EQ(extra.error(), Errc::busy);
  EXPECT_NE(std::string(last_error_message()).find("attach table full"), std::string::npos) << last_error_message();
  held.pop_back();
  auto again = Producer::open(name);
  ASSERT_TRUE(again.ok()) << last_error_message();
  ASSERT_EQ(push_record(*again, 7, 40), Errc::ok);
  EXPECT_EQ(pop_record(held.front(), 7, 40), "");
}

// ---- row 19: processes race to create the same ring ----------------------------------------

// Twelve processes released together call create() on one name (half of
// them with another capacity), then open it as producers and each write one
// record. Exactly one create succeeds, every other one gets exists, and
// every producer opens the one ring that won (open waits for its creator to
// finish): all twelve records arrive.
TEST(Reliability, ConcurrentCreatorsExactlyOneWinsAndEveryoneOpensIt) {
  constexpr int kProcs = 12;
  const auto name = unique_ring_name("race");
  ShmGuard guard(name);
  int gate[2];
  ASSERT_EQ(::pipe(gate), 0);
  std::vector<std::unique_ptr<Child>> kids;
  for (int i = 0; i < kProcs; ++i) {
    kids.push_back(std::make_unique<Child>(
        [&, i]() -> std::string {
          ::close(gate[1]);
          char b;
          if (::read(gate[0], &b, 1) != 0) return "gate";
          const Errc e = create(name, config_of(Kind::mpmc, i % 2 == 0 ? 4096 : 8192));
          if (e != Errc::ok && e != Errc::exists) return std::string("create: ") + errc_name(e);
          OpenOptions o;
          o.init_timeout = std::chrono::seconds(5);
          auto p = Producer::open(name, o);
          if (!p) return std::string("open: ") + last_error_message();
          if (push_record(*p, static_cast<std::uint64_t>(i), 40, std::chrono::seconds(5)) != Errc::ok) return "push";
          // The exit status says who created the ring.
          if (e == Errc::ok) ::_exit(42);
          return "";
        },
        std::chrono::seconds(60)));
  }
  ::close(gate[0]);
  ::close(gate[1]);  // releases every child at once
  int creators = 0;
  for (auto& k : kids) {
    const ChildResult r = k->wait();
    if (r.exited && r.exit_code == 42) {
      ++creators;
    } else {
      EXPECT_TRUE(r.ok()) << r.describe();
    }
  }
  EXPECT_EQ(creators, 1);
  auto c = Consumer::open(name);
  ASSERT_TRUE(c.ok()) << last_error_message();
  std::vector<bool> seen(kProcs, false);
  for (int i = 0; i < kProcs; ++i) {
    auto r = c->peek(Timeout::try_once());
    ASSERT_TRUE(r.ok()) << "only " << i << " records";
    std::string why;
    bool matched = false;
    for (int id = 0; id < kProcs && !matched; ++id) {
      if (!seen[id] && check_record(kFixtureSeed, static_cast<std::uint64_t>(id), 40, r->data(), r->size(), &why)) {
        seen[id] = matched = true;
      }
    }
    EXPECT_TRUE(matched) << "record " << i << " is nobody's";
    ASSERT_EQ(c->release(), Errc::ok);
  }
}

// ---- glibc words a peer can damage -------------------------------------------------------

// A damaged semaphore (its futex-flags word) or robust mutex (its kind word)
// must not let glibc abort the process (found by fuzz_segment; the checks
// are lib/wait.cpp sem_plausible and lib/locked.cpp mutex_plausible). Runs
// in a child so that an abort is a test failure, not a crashed binary.
TEST(Reliability, DamagedSemaphoreFlagsAreNotFatalAndRecordsStillFlow) {
  const auto name = unique_ring_name("semflags");
  ShmGuard guard(name);
  Config cfg = config_of(Kind::spsc, 4096);
  cfg.wait = WaitStrategy::sem;
  ASSERT_EQ(create(name, cfg), Errc::ok);
  auto r = run_in_child(
      [&]() -> std::string {
        auto p = Producer::open(name);
        auto c = Consumer::open(name);
        if (!p || !c) return std::string("open: ") + last_error_message();
        {
          RawMap raw(name);
          if (!raw.ok()) return "map";
          for (unsigned char* sem : {raw.header()->sems.data_sem, raw.header()->sems.space_sem}) {
            const int garbage = 0x12345;
            std::memcpy(sem + 8, &garbage, sizeof garbage);
          }
        }
        // The consumer sleeps (on the damaged semaphore) while the producer
        // publishes (and would post it).
        std::string err;
        std::thread consumer([&] {
          for (std::uint64_t i = 0; i < 50 && err.empty(); ++i)
            if (auto e = pop_record(*c, i, 64, std::chrono::seconds(5)); !e.empty()) err = "record " + std::to_string(i) + ": " + e;
        });
        for (std::uint64_t i = 0; i < 50; ++i) {
          if (push_record(*p, i, 64, std::chrono::seconds(5)) != Errc::ok) {
            err = "push";
            break;
          }
          if (i % 10 == 0) std::this_thread::yield();
        }
        consumer.join();
        return err;
      },
      std::chrono::seconds(60));
  EXPECT_TRUE(r.ok()) << r.describe();
}

TEST(Reliability, DamagedMutexKindIsCorruptNotFatal) {
  const auto name = unique_ring_name("mutexkind");
  ShmGuard guard(name);
  ASSERT_EQ(create(name, config_of(Kind::locked, 4096)), Errc::ok);
  auto r = run_in_child(
      [&]() -> std::string {
        auto p = Producer::open(name);
        auto c = Consumer::open(name);
        if (!p || !c) return std::string("open: ") + last_error_message();
        if (push_record(*p, 0, 64) != Errc::ok) return "push before the damage";
        {
          RawMap raw(name);
          if (!raw.ok()) return "map";
          auto* m = reinterpret_cast<pthread_mutex_t*>(raw.header()->lock.prod_mutex);
          // The robust bit cleared (glibc: PTHREAD_MUTEX_ROBUST_NORMAL_NP is
          // 16, the pshared bit 128): glibc would lock it as a plain mutex
          // and silently stop handing out EOWNERDEAD; other damage makes it
          // abort. Either way the handle must stop using it.
          m->__data.__kind &= ~16;
        }
        std::string err;
        if (auto e = p->reserve(64, Timeout::try_once()).error(); e != Errc::corrupt)
          err += std::string("reserve on a damaged mutex: ") + errc_name(e) + "; ";
        // The consumer's own mutex is intact: the record written before the
        // damage is still delivered.
        if (auto e = pop_record(*c, 0, 64); !e.empty()) err += "consumer: " + e + "; ";
        if (auto again = Producer::open(name); again.error() != Errc::corrupt)
          err += std::string("open on a damaged mutex: ") + errc_name(again.error()) + "; ";
        return err;
      },
      std::chrono::seconds(60));
  EXPECT_TRUE(r.ok()) << r.describe();
}

// ---- row 16: the creator is killed in the middle of create() ---------------------------

// Runs in a re-executed copy of this binary with SHMRING_CRASH_AT set:
// creates the ring $SHMRING_CREATE_NAME (kind $SHMRING_CREATE_KIND) and is
// killed at the crash point inside create().
TEST(ReliabilityChild, CreateAndDie) {
  const char* name = std::getenv("SHMRING_CREATE_NAME");
  const char* kind = std::getenv("SHMRING_CREATE_KIND");
  if (name == nullptr || kind == nullptr) GTEST_SKIP() << "runs only inside Reliability.CreatorKilledMidCreation...";
  Config cfg = config_of(std::string(kind) == "mpmc" ? Kind::mpmc : Kind::locked, 64 << 10);
  cfg.wait = WaitStrategy::sem;  // sem_init and, for locked, the mutexes: every init step
  const Errc e = create(name, cfg);
  FAIL() << "create returned " << errc_name(e) << ": the crash point never fired";
}

// At each step of create() (object opened, memory reserved, fields written,
// magic written) the creator is SIGKILLed. The half-made object must never
// be used: an open waits at most its init_timeout and then fails with
// timed_out; the name stays taken (create gets exists) until it is removed,
// after which a new ring can be made under it. shmtool shows such an object
// as empty or initialising (ShmtoolDamaged tests).
TEST(Reliability, CreatorKilledMidCreationIsNeverUsedAndOpenGivesUpInTime) {
  const std::string exe = self_exe();
  ASSERT_FALSE(exe.empty());
  for (const char* point : {"create.after_open", "create.after_reserve", "create.before_magic", "create.before_publish"}) {
    for (const char* kind : {"locked", "mpmc"}) {
      SCOPED_TRACE(std::string(point) + " " + kind);
      const auto name = unique_ring_name("halfmade");
      ShmGuard guard(name);
      auto r = run_in_child(
          [&]() -> std::string {
            ::setenv("SHMRING_CRASH_AT", (std::string(point) + ":1").c_str(), 1);
            ::setenv("SHMRING_CREATE_NAME", name.c_str(), 1);
            ::setenv("SHMRING_CREATE_KIND", kind, 1);
            ::execl(exe.c_str(), exe.c_str(), "--gtest_filter=ReliabilityChild.CreateAndDie", "--gtest_color=no",
                    static_cast<char*>(nullptr));
            return std::string("exec: ") + std::strerror(errno);
          },
          std::chrono::seconds(60));
      EXPECT_EQ(r.signal, SIGKILL) << r.describe();
      ASSERT_EQ(::access(shm_path(name).c_str(), F_OK), 0) << "the killed creator left no object";
      OpenOptions o;
      o.init_timeout = std::chrono::milliseconds(200);
      const std::int64_t t0 = raw_monotonic_ns();
      auto c = Consumer::open(name, o);
      const std::int64_t took = raw_monotonic_ns() - t0;
      EXPECT_EQ(c.error(), Errc::timed_out) << last_error_message();
      EXPECT_GE(took, 200'000'000);
      EXPECT_LT(took, 1'200'000'000);
      EXPECT_EQ(create(name, config_of(Kind::spsc, 4096)), Errc::exists);
      ASSERT_EQ(unlink(name), Errc::ok);
      ASSERT_EQ(create(name, config_of(Kind::spsc, 4096)), Errc::ok) << last_error_message();
      auto p = Producer::open(name);
      auto c2 = Consumer::open(name);
      ASSERT_TRUE(p.ok() && c2.ok()) << last_error_message();
      ASSERT_EQ(push_record(*p, 1, 64), Errc::ok);
      EXPECT_EQ(pop_record(*c2, 1, 64), "");
    }
  }
}

// ---- row 5: a mutex left not recoverable -------------------------------------------------

// A holder dies inside its critical section and the next locker unlocks
// without pthread_mutex_consistent (a foreign or buggy peer: the library
// itself always repairs and marks it consistent). The mutex is then
// ENOTRECOVERABLE for everyone: the library's calls get corrupt, never a
// hang or an abort, and only a reset with nobody attached (shmtool reset)
// re-initialises the mutex and brings the ring back.
TEST(Reliability, NotRecoverableMutexIsCorruptUntilAReset) {
  const auto name = unique_ring_name("notrecoverable");
  ShmGuard guard(name);
  ASSERT_EQ(create(name, config_of(Kind::locked, 4096)), Errc::ok);
  {
    RawMap raw(name);
    ASSERT_TRUE(raw.ok());
    auto* m = reinterpret_cast<pthread_mutex_t*>(raw.header()->lock.prod_mutex);
    auto holder = run_in_child(
        [m]() -> std::string {
          if (::pthread_mutex_lock(m) != 0) return "lock";
          ::_exit(0);  // dies holding it
        },
        std::chrono::seconds(30));
    ASSERT_TRUE(holder.ok()) << holder.describe();
    ASSERT_EQ(::pthread_mutex_lock(m), EOWNERDEAD);
    ASSERT_EQ(::pthread_mutex_unlock(m), 0);  // without consistent(): not recoverable
  }
  // Two handles in turn (each quarantines itself at the first corrupt): both
  // are refused, whether they try once or wait.
  for (int i = 0; i < 2; ++i) {
    auto p = Producer::open(name);
    ASSERT_TRUE(p.ok()) << last_error_message();
    EXPECT_EQ(p->reserve(64, i == 0 ? Timeout::try_once() : Timeout(std::chrono::milliseconds(50))).error(),
              Errc::corrupt);
  }
  {
    // Control: glibc itself still says so (and its trylock leaves the lock
    // word with the caller's tid: the library must never call it here).
    RawMap raw(name);
    ASSERT_TRUE(raw.ok());
    EXPECT_EQ(::pthread_mutex_trylock(reinterpret_cast<pthread_mutex_t*>(raw.header()->lock.prod_mutex)),
              ENOTRECOVERABLE);
  }
  std::string detail;
  ASSERT_EQ(detail::reset_ring(name, false, &detail), Errc::ok) << detail;
  auto p = Producer::open(name);
  auto c = Consumer::open(name);
  ASSERT_TRUE(p.ok() && c.ok()) << last_error_message();
  ASSERT_EQ(push_record(*p, 3, 64), Errc::ok);
  EXPECT_EQ(pop_record(*c, 3, 64), "");
}

}  // namespace
}  // namespace shmring::test
