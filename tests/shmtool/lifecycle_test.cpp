// shmtool and the library on a ring's life cycle: robust mutexes driven into
// each glibc state by real processes, how a peer left (closed or died), and
// push/pop detaching cleanly on signals and a closed stdout. Every test runs
// the real binary (run.hpp) on objects under the test prefix, removed by
// ShmGuard even when a test fails.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "json.hpp"
#include "layout.hpp"
#include "run.hpp"
#include "shmring/ring.hpp"
#include "support/shm_raw.hpp"
#include "support/test_support.hpp"

namespace {

using namespace shmtool_test;
using shmring::Errc;
using shmring::test::ShmGuard;
using shmring::test::unique_ring_name;
namespace sd = shmring::detail;

shmring::Config cfg_of(shmring::Kind k, shmring::WaitStrategy w = shmring::WaitStrategy::futex) {
  shmring::Config c;
  c.kind = k;
  c.capacity = 4096;
  c.slot_size = k == shmring::Kind::mpmc ? 64 : 0;
  c.wait = w;
  return c;
}

// One byte through a pipe: the parent and a child take turns without sleeps.
struct Pipe {
  int fd[2] = {-1, -1};
  Pipe() { EXPECT_EQ(::pipe2(fd, O_CLOEXEC), 0); }
  ~Pipe() {
    for (int f : fd)
      if (f >= 0) ::close(f);
  }
  bool put(char c) const { return ::write(fd[1], &c, 1) == 1; }
  // Waits for one byte (the watchdog of the test binary bounds a hang).
  char get() const {
    char c = 0;
    for (;;) {
      const ssize_t n = ::read(fd[0], &c, 1);
      if (n == 1) return c;
      if (n < 0 && errno == EINTR) continue;
      return 0;
    }
  }
};

struct LockReport {
  int inspect_code = -1;
  int verify_code = -1;
  std::string condition, text;
  bool owner_died = false, not_recoverable = false, repairing = false;
};

LockReport inspect_producer_lock(const std::string& name) {
  LockReport r;
  const ToolRun j = run_tool({"inspect", name, "--json"});
  r.inspect_code = j.code;
  const Json doc = parse_json(j.out);
  const Json& lock = doc["ring"]["locks"]["producer"];
  r.condition = lock.has("condition") ? lock["condition"].str : "(absent)";
  r.owner_died = lock["owner_died"].b;
  r.not_recoverable = lock["not_recoverable"].b;
  r.repairing = lock.has("repair_in_progress") && lock["repair_in_progress"].b;
  r.text = run_tool({"inspect", name}).out;
  r.verify_code = run_tool({"verify", name}).code;
  return r;
}

// ---- Defect: robust-mutex owner values ------------------------------------------------

// Real mutexes in each of glibc's states: a holder that died (owner died), a
// locker that got EOWNERDEAD and is paused before pthread_mutex_consistent
// (repair in progress: __owner == INT_MAX), and one that unlocked without
// making it consistent (not recoverable: __owner == INT_MAX - 1).
TEST(ShmtoolMutexStates, RealMutexesInEachState) {
  const std::string name = unique_ring_name();
  ShmGuard guard(name);
  ASSERT_EQ(shmring::create(name, cfg_of(shmring::Kind::locked)), Errc::ok);

  const LockReport fresh = inspect_producer_lock(name);
  EXPECT_EQ(fresh.condition, "free");
  EXPECT_EQ(fresh.verify_code, 0);

  // 1. The holder dies holding it.
  {
    shmring::test::Child holder(
        [&]() -> std::string {
          shmring::test::RawMap raw(name);
          if (!raw.ok()) return "map failed";
          auto* m = reinterpret_cast<pthread_mutex_t*>(raw.header()->lock.prod_mutex);
          if (::pthread_mutex_lock(m) != 0) return "lock failed";
          ::_exit(0);  // dies holding it: the kernel marks it owner-died
        },
        std::chrono::seconds(20));
    ASSERT_TRUE(holder.wait().ok());
  }
  const LockReport died = inspect_producer_lock(name);
  EXPECT_EQ(died.inspect_code, 0) << died.text;
  EXPECT_EQ(died.condition, "owner_died");
  EXPECT_TRUE(died.owner_died);
  EXPECT_FALSE(died.not_recoverable);
  EXPECT_FALSE(died.repairing);
  EXPECT_NE(died.text.find("owner died; the next locker repairs it"), std::string::npos) << died.text;
  EXPECT_EQ(died.text.find("not recoverable"), std::string::npos) << died.text;
  EXPECT_EQ(died.verify_code, 0) << "an owner-died mutex is repaired by the next locker";

  // 2. and 3. The next locker gets EOWNERDEAD and pauses (repair in
  // progress); then it unlocks without pthread_mutex_consistent.
  Pipe to_parent, to_child;
  shmring::test::Child repairer(
      [&]() -> std::string {
        shmring::test::RawMap raw(name);
        if (!raw.ok()) return "map failed";
        auto* m = reinterpret_cast<pthread_mutex_t*>(raw.header()->lock.prod_mutex);
        const int rc = ::pthread_mutex_lock(m);
        if (rc != EOWNERDEAD) return "lock gave " + std::to_string(rc) + ", not EOWNERDEAD";
        to_parent.put('r');
        if (to_child.get() != 'u') return "no go-ahead";
        if (::pthread_mutex_unlock(m) != 0) return "unlock failed";
        to_parent.put('u');
        if (to_child.get() != 'x') return "no exit order";
        return "";
      },
      std::chrono::seconds(60));
  ASSERT_EQ(to_parent.get(), 'r');
  const LockReport repairing = inspect_producer_lock(name);
  EXPECT_EQ(repairing.inspect_code, 0) << repairing.text;
  EXPECT_EQ(repairing.condition, "repairing");
  EXPECT_TRUE(repairing.repairing);
  EXPECT_FALSE(repairing.not_recoverable);
  EXPECT_NE(repairing.text.find("repair in progress"), std::string::npos) << repairing.text;
  EXPECT_EQ(repairing.text.find("not recoverable"), std::string::npos) << repairing.text;
  EXPECT_EQ(repairing.verify_code, 0) << "a repair in progress is not damage";

  ASSERT_TRUE(to_child.put('u'));
  ASSERT_EQ(to_parent.get(), 'u');
  const LockReport lost = inspect_producer_lock(name);
  EXPECT_EQ(lost.inspect_code, 4) << lost.text;
  EXPECT_EQ(lost.condition, "not_recoverable");
  EXPECT_TRUE(lost.not_recoverable);
  EXPECT_FALSE(lost.repairing);
  EXPECT_NE(lost.text.find("not recoverable"), std::string::npos) << lost.text;
  EXPECT_EQ(lost.text.find("repair in progress"), std::string::npos) << lost.text;
  EXPECT_EQ(lost.verify_code, 4) << "a not-recoverable mutex wedges the ring";
  ASSERT_TRUE(to_child.put('x'));
  const auto res = repairer.wait();
  EXPECT_TRUE(res.ok()) << res.describe();
}

}  // namespace
