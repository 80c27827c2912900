// End-to-end tests of shmtool's read-only views of healthy rings: create then
// list and inspect (JSON and text) for each kind, a missing ring (exit 3),
// listing a thousand rings, and watch (periodic lines, terminal refresh).
// Each test runs the real binary (run.hpp); objects go under the test prefix
// and are removed by ShmGuard (or PrefixCleanup) even when a test fails.
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "e2e_helpers.hpp"
#include "json.hpp"
#include "run.hpp"
#include "shmring/ring.hpp"
#include "support/test_support.hpp"

namespace {

using namespace shmtool_test;
using namespace shmtool_test::e2e;
using shmring::Errc;
using shmring::test::ShmGuard;
using shmring::test::unique_ring_name;

// ---- create, list, inspect ------------------------------------------------------------

TEST(ShmtoolList, JsonShowsWhatWasCreated) {
  const std::string a = unique_ring_name("spsc"), b = unique_ring_name("mpmc"), c = unique_ring_name("locked");
  ShmGuard ga(a), gb(b), gc(c);
  ToolRun r = tool({"create", a, "--kind", "spsc", "--capacity", "64k"});
  ASSERT_EQ(r.code, 0) << r.describe();
  EXPECT_NE(r.out.find("created " + a), std::string::npos);
  r = tool({"create", b, "--kind", "mpmc", "--capacity", "16k", "--slot-size", "128", "--wait", "spin"});
  ASSERT_EQ(r.code, 0) << r.describe();
  r = tool({"create", c, "--kind", "locked", "--capacity", "4096", "--wait", "sem", "--mode", "0640"});
  ASSERT_EQ(r.code, 0) << r.describe();
  // Exclusive: an existing name is never reused.
  r = tool({"create", a, "--kind", "spsc", "--capacity", "4096"});
  EXPECT_EQ(r.code, 1) << r.describe();
  expect_one_error_line(r, a);
  EXPECT_NE(r.err.find("already exists"), std::string::npos);

  // Some records and a live producer on the spsc ring.
  auto p = shmring::Producer::open(a);
  ASSERT_TRUE(p.ok());
  for (const char* s : {"one", "two", "three"}) ASSERT_EQ(p->send(bytes_of(s)), Errc::ok);

  const ToolRun l = tool({"list", "--json"});
  ASSERT_EQ(l.code, 0) << l.describe();
  const Json j = parse_json(l.out);
  EXPECT_EQ(j["schema_version"].u64(), 1u);
  EXPECT_GE(j["count"].u64(), 3u);
  EXPECT_TRUE(j.has("skipped_other"));
  const Json* ja = find_ring(j, a);
  const Json* jb = find_ring(j, b);
  const Json* jc = find_ring(j, c);
  ASSERT_TRUE(ja && jb && jc) << l.out.substr(0, 3000);
  EXPECT_EQ((*ja)["kind"].str, "spsc");
  EXPECT_EQ((*ja)["capacity"].u64(), 65536u);
  EXPECT_EQ((*ja)["wait"].str, "futex");
  EXPECT_EQ((*ja)["state"].str, "ready");
  EXPECT_EQ((*ja)["fill_records"].u64(), 3u);
  EXPECT_EQ((*ja)["fill_bytes"].u64(), 3 * 16u);  // align8(8 + len) each
  EXPECT_EQ((*ja)["peers_live"].u64(), 1u);
  EXPECT_EQ((*ja)["peers_dead"].u64(), 0u);
  EXPECT_EQ((*ja)["mode"].str, "0600");
  EXPECT_EQ((*ja)["uid"].u64(), static_cast<std::uint64_t>(::geteuid()));
  EXPECT_EQ((*jb)["kind"].str, "mpmc");
  EXPECT_EQ((*jb)["slot_size"].u64(), 128u);
  EXPECT_EQ((*jb)["slot_count"].u64(), 128u);
  EXPECT_EQ((*jb)["wait"].str, "spin");
  EXPECT_TRUE((*jb)["fill_bytes"].is_null());
  EXPECT_EQ((*jc)["kind"].str, "locked");
  EXPECT_EQ((*jc)["wait"].str, "sem");
  EXPECT_EQ((*jc)["mode"].str, "0640");
  EXPECT_EQ((*jc)["state"].str, "ready");

  // The text form has the same rings and the skipped count.
  const ToolRun t = tool({"list"});
  ASSERT_EQ(t.code, 0);
  EXPECT_NE(t.out.find(a), std::string::npos);
  EXPECT_NE(t.out.find("other object"), std::string::npos);
}

TEST(ShmtoolInspect, JsonMatchesEachKind) {
  for (auto kind : {shmring::Kind::spsc, shmring::Kind::mpmc, shmring::Kind::locked}) {
    SCOPED_TRACE(shmring::to_string(kind));
    const std::string name = unique_ring_name(shmring::to_string(kind));
    ShmGuard guard(name);
    ASSERT_EQ(shmring::create(name, cfg_of(kind, 8192, 64)), Errc::ok);
    auto p = shmring::Producer::open(name);
    auto c = shmring::Consumer::open(name);
    ASSERT_TRUE(p.ok() && c.ok());
    for (int i = 0; i < 5; ++i) ASSERT_EQ(p->send(bytes_of("record-" + std::to_string(i))), Errc::ok);
    char buf[64];
    ASSERT_TRUE(c->recv(std::as_writable_bytes(std::span(buf)), shmring::Timeout::try_once()).ok());

    const ToolRun r = tool({"inspect", name, "--json"});
    ASSERT_EQ(r.code, 0) << r.describe();
    EXPECT_TRUE(r.err.empty());
    const Json j = parse_json(r.out);
    EXPECT_EQ(j["schema_version"].u64(), 1u);
    const Json& ring = j["ring"];
    EXPECT_EQ(ring["name"].str, name);
    EXPECT_EQ(ring["status"].str, "ready");
    EXPECT_EQ(ring["kind"].str, shmring::to_string(kind));
    EXPECT_EQ(ring["capacity"].u64(), 8192u);
    EXPECT_EQ(ring["fill"]["records"].u64(), 4u);
    EXPECT_EQ(ring["peers"]["live"].u64(), 2u);
    EXPECT_EQ(ring["header"]["magic"].str, "SHMRING");
    EXPECT_EQ(ring["header"]["creator_pid"].i64(), ::getpid());
    EXPECT_EQ(ring["header"]["init_state"].u64(), 1u);
    EXPECT_TRUE(ring["problems"].arr.empty()) << r.out;
    ASSERT_EQ(ring["attach"].arr.size(), 2u);
    std::set<std::string> roles;
    for (const Json& e : ring["attach"].arr) {
      EXPECT_EQ(e["pid"].i64(), ::getpid());
      EXPECT_EQ(e["liveness"].str, "alive");
      roles.insert(e["role"].str);
    }
    EXPECT_EQ(roles, (std::set<std::string>{"producer", "consumer"}));
    if (kind == shmring::Kind::mpmc) {
      EXPECT_EQ(ring["indices"]["tail"].u64() - ring["indices"]["head"].u64(), 4u);
      EXPECT_EQ(ring["slots"]["full"].u64(), 4u);
      EXPECT_TRUE(ring["slots"]["abandoned_slots"].arr.empty());
    } else {
      EXPECT_EQ(ring["counters"]["published"].u64(), 5u);
      EXPECT_EQ(ring["counters"]["released"].u64(), 1u);
      EXPECT_EQ(ring["records"]["walked"].u64(), 4u);
      EXPECT_EQ(ring["fill"]["bytes"].u64(), 4 * 16u);
    }
    if (kind == shmring::Kind::locked) {
      EXPECT_EQ(ring["locks"]["producer"]["state"].str, "free");
      EXPECT_EQ(ring["locks"]["recoveries"].u64(), 0u);
    }
    // The text form carries the same diagnosis; verify agrees.
    const ToolRun t = tool({"inspect", name});
    EXPECT_EQ(t.code, 0);
    EXPECT_NE(t.out.find("ok: ready"), std::string::npos) << t.out;
    const ToolRun v = tool({"verify", name});
    EXPECT_EQ(v.code, 0) << v.describe();
    EXPECT_NE(v.out.find("ok: " + name), std::string::npos);
  }
}

TEST(ShmtoolInspect, MissingIsExit3) {
  const std::string name = unique_ring_name();
  for (const char* cmd : {"inspect", "verify", "rm", "reset", "watch", "pop", "push"}) {
    SCOPED_TRACE(cmd);
    const ToolRun r = tool({cmd, name}, RunOptions().in("x\n"));
    EXPECT_EQ(r.code, 3) << r.describe();
    expect_one_error_line(r, name);
  }
  const ToolRun j = tool({"inspect", name, "--json"});
  EXPECT_EQ(j.code, 3);
  EXPECT_EQ(parse_json(j.out)["ring"]["status"].str, "not_found");
}

// ---- scale ------------------------------------------------------------------------------------

// Removes every /dev/shm entry starting with a prefix (more objects than
// ShmGuard's table holds), also when the test fails.
class PrefixCleanup {
 public:
  explicit PrefixCleanup(std::string prefix) : prefix_(std::move(prefix)) {}
  ~PrefixCleanup() {
    for (const auto& n : shmring::test::leftover_objects())
      if (n.rfind(prefix_, 0) == 0) ::unlink(("/dev/shm/" + n).c_str());
  }

 private:
  std::string prefix_;
};

TEST(ShmtoolScale, ThousandRingsListedQuickly) {
  const std::string base = unique_ring_name("k");
  PrefixCleanup cleanup(base.substr(1));
  const int n = 1000;
  for (int i = 0; i < n; ++i)
    ASSERT_EQ(shmring::create(base + "_" + std::to_string(i), cfg_of(shmring::Kind::spsc)), Errc::ok) << i;
  const ToolRun l = tool({"list", "--json"}, RunOptions().deadline_ms(60000));
  ASSERT_EQ(l.code, 0) << l.describe();
  const Json doc = parse_json(l.out);
  std::set<std::string> names;
  for (const Json& r : doc["rings"].arr) names.insert(r["name"].str);
  int found = 0;
  for (int i = 0; i < n; ++i) found += names.count(base + "_" + std::to_string(i)) != 0;
  EXPECT_EQ(found, n);
  const ToolRun t = tool({"list"}, RunOptions().deadline_ms(60000));
  ASSERT_EQ(t.code, 0);
  std::printf("list of %zu rings: --json %.3f s, text %.3f s\n", names.size(), l.seconds, t.seconds);
  EXPECT_LT(l.seconds, 5.0);
  EXPECT_LT(t.seconds, 5.0);
}

// ---- watch ------------------------------------------------------------------------------------

TEST(ShmtoolWatch, PeriodicLinesWhenNotATerminal) {
  const std::string name = unique_ring_name();
  ShmGuard guard(name);
  ASSERT_EQ(shmring::create(name, cfg_of(shmring::Kind::spsc, 1 << 16)), Errc::ok);
  auto p = shmring::Producer::open(name);
  auto c = shmring::Consumer::open(name);
  ASSERT_TRUE(p.ok() && c.ok());
  std::atomic<bool> stop{false};
  std::thread traffic([&] {
    char buf[256];
    while (!stop.load()) {
      for (int i = 0; i < 100; ++i) (void)p->send(bytes_of(std::string(100, 'r')), shmring::Timeout::try_once());
      while (c->recv(std::as_writable_bytes(std::span(buf)), shmring::Timeout::try_once()).ok()) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  const ToolRun w = tool({"watch", name, "--interval", "100", "--count", "4"});
  stop = true;
  traffic.join();
  EXPECT_EQ(w.code, 0) << w.describe();
  EXPECT_EQ(std::count(w.out.begin(), w.out.end(), '\n'), 4) << w.out;
  EXPECT_EQ(w.out.find("\x1b["), std::string::npos) << "no escape sequences when not a terminal";
  EXPECT_NE(w.out.find("state=ready"), std::string::npos) << w.out;
  EXPECT_NE(w.out.find("peers=2/0"), std::string::npos) << w.out;
  // Traffic shows as a rate (in at least one interval: a loaded machine may
  // starve the traffic thread for one).
  std::size_t idle = 0;
  for (std::size_t at = w.out.find("in=0rec/s"); at != std::string::npos; at = w.out.find("in=0rec/s", at + 1)) ++idle;
  EXPECT_LT(idle, 4u) << "traffic must show as a rate:\n" << w.out;
}

// On a terminal: refreshed in place, and q (or Ctrl-C) quits.
TEST(ShmtoolWatch, TerminalRefreshQuitsOnQAndCtrlC) {
  const std::string name = unique_ring_name();
  ShmGuard guard(name);
  ASSERT_EQ(shmring::create(name, cfg_of(shmring::Kind::spsc)), Errc::ok);
  for (const char* key : {"q", "\x03"}) {
    SCOPED_TRACE(key[0] == 'q' ? "q" : "Ctrl-C");
    int master = -1;
    const pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::execl(tool_path().c_str(), tool_path().c_str(), "watch", name.c_str(), "--interval", "100", nullptr);
      ::_exit(127);
    }
    std::string screen;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < until && screen.find("waiters") == std::string::npos) {
      pollfd pfd{master, POLLIN, 0};
      if (::poll(&pfd, 1, 100) > 0) {
        char buf[4096];
        const ssize_t n = ::read(master, buf, sizeof buf);
        if (n > 0) screen.append(buf, static_cast<std::size_t>(n));
      }
    }
    EXPECT_NE(screen.find("\x1b[H"), std::string::npos) << "refreshed in place";
    EXPECT_NE(screen.find("records/s"), std::string::npos) << screen;
    ASSERT_EQ(::write(master, key, 1), 1);
    int st = 0;
    pid_t done = 0;
    const auto quit_by = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    while (done == 0 && std::chrono::steady_clock::now() < quit_by) {
      done = ::waitpid(pid, &st, WNOHANG);
      if (done == 0) {
        char buf[4096];
        pollfd pfd{master, POLLIN, 0};
        if (::poll(&pfd, 1, 10) > 0 && ::read(master, buf, sizeof buf) <= 0)
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
    if (done == 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &st, 0);
      ADD_FAILURE() << "watch did not quit";
    } else {
      EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
    }
    ::close(master);
  }
}

}  // namespace
