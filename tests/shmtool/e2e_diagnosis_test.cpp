// End-to-end tests of what shmtool inspect, verify and list diagnose:
// damaged and foreign objects (exit 4), broken invariants, dead, zombie and
// reused-pid peers, a wedged mutex, an abandoned mpmc slot, another user's
// objects (exit 5) and hostile names. Each test runs the real binary
// (run.hpp); objects go under the test prefix and are removed by ShmGuard even
// when a test fails.
#include <gtest/gtest.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "e2e_helpers.hpp"
#include "endpoint.hpp"  // mpmc_stride
#include "json.hpp"
#include "layout.hpp"
#include "run.hpp"
#include "shmring/ring.hpp"
#include "support/shm_raw.hpp"
#include "support/test_support.hpp"

namespace {

using namespace shmtool_test;
using namespace shmtool_test::e2e;
using shmring::Errc;
using shmring::test::ShmGuard;
using shmring::test::unique_ring_name;
namespace sd = shmring::detail;

// ---- damaged and foreign objects --------------------------------------------------------------

// The bytes of a fresh default spsc ring, its object removed again: an image
// to damage or to plant under another name.
void valid_spsc_image(std::vector<std::byte>* image) {
  const std::string src = unique_ring_name("src");
  ShmGuard g(src);
  ASSERT_EQ(shmring::create(src, cfg_of(shmring::Kind::spsc)), Errc::ok);
  *image = shmring::test::read_object(src);
}

struct Damaged {
  std::string tag;
  std::string expect_status;
  std::string expect_text;
};

TEST(ShmtoolDamaged, EachGetsADiagnosisAndExit4) {
  // A valid ring's bytes to damage.
  std::vector<std::byte> image;
  ASSERT_NO_FATAL_FAILURE(valid_spsc_image(&image));
  ASSERT_EQ(image.size(), 8192u);
  std::mt19937 rng(7);
  std::vector<std::unique_ptr<ShmGuard>> guards;
  std::vector<std::pair<std::string, Damaged>> made;
  auto plant = [&](const std::string& tag, const std::vector<std::byte>& bytes, Damaged d) {
    const std::string n = unique_ring_name(tag);
    guards.push_back(std::make_unique<ShmGuard>(n));
    EXPECT_TRUE(shmring::test::write_object(n, bytes.data(), bytes.size()));
    made.emplace_back(n, d);
  };
  std::vector<std::byte> random(8192);
  for (auto& b : random) b = static_cast<std::byte>(rng());
  plant("random", random, {"", "foreign", "not a shmring object"});
  plant("truncated", std::vector<std::byte>(image.begin(), image.begin() + 100), {"", "truncated", "truncated"});
  std::vector<std::byte> magic = image;
  magic[0] = std::byte{'X'};
  plant("magic", magic, {"", "foreign", "not a shmring object"});
  plant("empty", {}, {"", "initialising", "size 0"});
  plant("zeros", std::vector<std::byte>(8192), {"", "initialising", "initialising"});
  std::vector<std::byte> half = image;  // magic written, init_state not yet ready
  std::memset(half.data() + offsetof(sd::IdentityBlock, init_state), 0, 4);
  plant("halfinit", half, {"", "initialising", "initialising"});
  std::vector<std::byte> version = image;
  version[offsetof(sd::IdentityBlock, layout_version)] = std::byte{99};
  plant("version", version, {"", "incompatible", "layout version 99"});
  std::vector<std::byte> longer = image;
  longer.resize(12288);
  plant("size", longer, {"", "corrupt", "header says 8192"});
  std::vector<std::byte> cap = image;
  cap[offsetof(sd::IdentityBlock, capacity)] = std::byte{3};
  plant("capacity", cap, {"", "corrupt", "impossible ring"});

  const std::string dir = unique_ring_name("dir"), link = unique_ring_name("link"), fifo = unique_ring_name("fifo");
  ShmGuard gd(dir), gl(link), gf(fifo);
  ASSERT_EQ(::mkdir(shmring::test::shm_path(dir).c_str(), 0700), 0);
  ASSERT_EQ(::symlink("/etc/passwd", shmring::test::shm_path(link).c_str()), 0);
  ASSERT_EQ(::mkfifo(shmring::test::shm_path(fifo).c_str(), 0600), 0);
  made.emplace_back(dir, Damaged{"", "not_regular", "directory"});
  made.emplace_back(link, Damaged{"", "symlink", "symbolic link"});
  made.emplace_back(fifo, Damaged{"", "not_regular", "FIFO"});

  for (const auto& [name, d] : made) {
    SCOPED_TRACE(name);
    const ToolRun r = tool({"inspect", name}, RunOptions().deadline_ms(5000));
    EXPECT_EQ(r.code, 4) << r.describe();
    expect_one_error_line(r, name);
    EXPECT_NE(r.err.find(d.expect_text), std::string::npos) << r.describe();
    const ToolRun j = tool({"inspect", name, "--json"}, RunOptions().deadline_ms(5000));
    EXPECT_EQ(j.code, 4);
    const Json doc = parse_json(j.out);
    EXPECT_EQ(doc["ring"]["status"].str, d.expect_status) << j.out;
    EXPECT_EQ(doc["ring"]["exit_code"].u64(), 4u);
    const ToolRun v = tool({"verify", name}, RunOptions().deadline_ms(5000));
    EXPECT_EQ(v.code, 4) << v.describe();
    expect_one_error_line(v, name);
  }
  // list: foreign objects, the directory, the FIFO and the symlink are skipped
  // and counted; the half-made and damaged rings are listed with their state.
  const ToolRun l = tool({"list", "--json"}, RunOptions().deadline_ms(10000));
  ASSERT_EQ(l.code, 0) << l.describe();
  const Json doc = parse_json(l.out);
  EXPECT_GE(doc["skipped_other"].u64(), 5u);
  for (const auto& [name, d] : made) {
    const Json* row = find_ring(doc, name);
    if (d.expect_status == "foreign" || d.expect_status == "not_regular" || d.expect_status == "symlink") {
      EXPECT_EQ(row, nullptr) << name;
    } else {
      ASSERT_NE(row, nullptr) << name;
      const std::string want = d.expect_status == "truncated" ? "corrupt" : d.expect_status;
      EXPECT_EQ((*row)["state"].str, want) << name;
    }
  }
}

TEST(ShmtoolVerify, FindsBrokenInvariants) {
  struct Case {
    const char* what;
    shmring::Kind kind;
    std::function<void(sd::Header*, std::byte* data)> damage;
    const char* expect;
  };
  const std::vector<Case> cases = {
      {"tail beyond capacity", shmring::Kind::spsc,
       [](sd::Header* h, std::byte*) { h->prod.tail = h->cons.head + 8192 + 8; }, "indices out of range"},
      {"unaligned head", shmring::Kind::locked, [](sd::Header* h, std::byte*) { h->cons.head += 3; },
       "indices out of range"},
      {"bad record tag", shmring::Kind::spsc,
       [](sd::Header* h, std::byte* d) { std::memset(d + (h->cons.head & 8191) + 4, 0x55, 4); }, "bad record tag"},
      {"record too long", shmring::Kind::locked,
       [](sd::Header* h, std::byte* d) {
         const std::uint32_t len = 5000;
         std::memcpy(d + (h->cons.head & 8191), &len, 4);
       },
       "exceeds the ring"},
      {"unknown slot state", shmring::Kind::mpmc, [](sd::Header*, std::byte* d) { d[0] = std::byte{9}; },
       "unknown state"},
      {"slot lap far ahead", shmring::Kind::mpmc,
       [](sd::Header*, std::byte* d) {
         const std::uint64_t w = sd::make_word(1000, 0, sd::kSlotEmpty);
         std::memcpy(d + sd::mpmc_stride(64) * 3, &w, 8);
       },
       "lap"},
      {"tickets apart", shmring::Kind::mpmc, [](sd::Header* h, std::byte*) { h->prod.tail = h->cons.head + 1000; },
       "tickets out of range"},
      {"garbage attach entry", shmring::Kind::spsc,
       [](sd::Header* h, std::byte*) { h->attach[7].state = sd::attach_word(-5, 9, 7); }, "attach entry 7"},
      {"impossible waiter count", shmring::Kind::spsc,
       [](sd::Header* h, std::byte*) { h->data_wait.waiters = 0xfffffff0u; }, "waiter count"},
      {"damaged mutex kind", shmring::Kind::locked,
       [](sd::Header* h, std::byte*) { std::memset(h->lock.cons_mutex + 16, 0x7f, 4); }, "mutex kind"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const std::string name = unique_ring_name();
    ShmGuard guard(name);
    ASSERT_EQ(shmring::create(name, cfg_of(c.kind, 8192, 64)), Errc::ok);
    {
      auto p = shmring::Producer::open(name);
      ASSERT_TRUE(p.ok());
      for (int i = 0; i < 3; ++i) ASSERT_EQ(p->send(bytes_of("abcdefgh")), Errc::ok);
    }
    ASSERT_EQ(tool({"verify", name}).code, 0);
    shmring::test::RawMap raw(name);
    ASSERT_TRUE(raw.ok());
    c.damage(raw.header(), raw.data());
    const ToolRun v = tool({"verify", name});
    EXPECT_EQ(v.code, 4) << v.describe();
    expect_one_error_line(v, name);
    EXPECT_NE(v.out.find(c.expect), std::string::npos) << v.describe();
    EXPECT_NE(v.out.find("problem: "), std::string::npos);
    const ToolRun i = tool({"inspect", name, "--json"});
    EXPECT_EQ(i.code, 4) << i.describe();
    const Json doc = parse_json(i.out);
    EXPECT_EQ(doc["ring"]["status"].str, "corrupt");
    EXPECT_FALSE(doc["ring"]["problems"].arr.empty());
  }
}

// ---- liveness as the tool sees it ----------------------------------------------------------------

// A child that attaches as producer, sends one record and exits without
// detaching (as if killed). Returns its pid; reaped unless keep_zombie.
pid_t attach_and_vanish(const std::string& name, bool keep_zombie) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    auto p = shmring::Producer::open(name);
    if (!p.ok()) ::_exit(1);
    (void)p->send(bytes_of("last words"));
    ::_exit(0);  // no destructors: the attach entry stays behind
  }
  if (!keep_zombie) {
    int st = 0;
    ::waitpid(pid, &st, 0);
  }
  return pid;
}

TEST(ShmtoolLiveness, DeadProducerZombieAndReusedPid) {
  const std::string name = unique_ring_name();
  ShmGuard guard(name);
  ASSERT_EQ(shmring::create(name, cfg_of(shmring::Kind::locked)), Errc::ok);
  // A real process that attached and exited without detaching, not reaped.
  const pid_t zombie = attach_and_vanish(name, true);
  for (int i = 0; i < 500; ++i) {
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(zombie), &info, WEXITED | WNOWAIT) == 0) break;
  }
  // A process that is gone (reaped), and a live pid (ours) with another
  // start time: planted entries, as a process would have left them.
  const pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  int st = 0;
  ::waitpid(dead, &st, 0);
  {
    shmring::test::RawMap raw(name);
    ASSERT_TRUE(raw.ok());
    auto plant = [&](int index, pid_t pid, std::uint32_t role, std::uint64_t start) {
      sd::AttachEntry& e = raw.header()->attach[index];
      e.pid = pid;
      e.role = role;
      e.start_time = start;
      e.generation = 1;
      e.state = sd::attach_word(pid, role, sd::kPhaseAttached);
    };
    plant(20, ::getpid(), 2, 12345);
    plant(21, dead, 1, 777);
  }
  const ToolRun r = tool({"inspect", name, "--json"});
  ASSERT_EQ(r.code, 0) << r.describe();
  const Json j = parse_json(r.out);
  EXPECT_EQ(j["ring"]["status"].str, "stale");
  EXPECT_EQ(j["ring"]["peers"]["live"].u64(), 0u);
  EXPECT_EQ(j["ring"]["peers"]["dead"].u64(), 3u);
  std::map<std::int64_t, std::string> seen;
  for (const Json& e : j["ring"]["attach"].arr) seen[e["pid"].i64()] = e["liveness"].str;
  EXPECT_EQ(seen[dead], "dead");
  EXPECT_EQ(seen[zombie], "dead (zombie)");
  EXPECT_EQ(seen[::getpid()], "dead (reused pid)");
  const ToolRun l = tool({"list", "--json"});
  const Json listed = parse_json(l.out);
  const Json* row = find_ring(listed, name);
  ASSERT_NE(row, nullptr);
  EXPECT_EQ((*row)["state"].str, "stale");
  EXPECT_EQ((*row)["peers_dead"].u64(), 3u);
  std::set<std::string> listed_liveness;
  for (const Json& p : (*row)["peers"].arr) listed_liveness.insert(p["liveness"].str);
  EXPECT_EQ(listed_liveness, (std::set<std::string>{"dead", "dead (zombie)", "dead (reused pid)"}));
  const ToolRun t = tool({"inspect", name});
  EXPECT_NE(t.out.find("dead (zombie)"), std::string::npos) << t.out;
  ::waitpid(zombie, &st, 0);
}

// Row 34: inspect on a wedged segment: the producer mutex held by a dead
// owner. inspect must finish fast, never lock, never write, and say who.
TEST(ShmtoolLiveness, WedgedLockedRingRow34) {
  const std::string name = unique_ring_name();
  ShmGuard guard(name);
  ASSERT_EQ(shmring::create(name, cfg_of(shmring::Kind::locked)), Errc::ok);
  {
    auto p = shmring::Producer::open(name);
    ASSERT_TRUE(p.ok());
    ASSERT_EQ(p->send(bytes_of("kept")), Errc::ok);
  }
  const pid_t holder = ::fork();
  if (holder == 0) {
    shmring::test::RawMap raw(name);
    if (!raw.ok()) ::_exit(1);
    auto* m = reinterpret_cast<pthread_mutex_t*>(raw.header()->lock.prod_mutex);
    if (::pthread_mutex_lock(m) != 0) ::_exit(2);
    sd::atom(raw.header()->lock.prod_holder).store(static_cast<std::uint64_t>(::getpid()));
    ::_exit(0);  // dies holding it: the kernel marks it owner-died
  }
  int st = 0;
  ASSERT_EQ(::waitpid(holder, &st, 0), holder);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  const std::vector<std::byte> before = shmring::test::read_object(name);
  const ToolRun r = tool({"inspect", name}, RunOptions().deadline_ms(5000));
  EXPECT_EQ(r.code, 0) << r.describe();
  EXPECT_LT(r.seconds, 1.0);
  EXPECT_NE(r.out.find("held by " + std::to_string(holder) + " (dead)"), std::string::npos) << r.out;
  const ToolRun j = tool({"inspect", name, "--json"});
  const Json doc = parse_json(j.out);
  EXPECT_EQ(doc["ring"]["locks"]["producer"]["holder_pid"].i64(), holder);
  EXPECT_FALSE(doc["ring"]["locks"]["producer"]["holder_alive"].b);
  EXPECT_TRUE(doc["ring"]["locks"]["producer"]["owner_died"].b);
  EXPECT_EQ(doc["ring"]["locks"]["consumer"]["state"].str, "free");
  EXPECT_EQ(tool({"verify", name}).code, 0);
  EXPECT_TRUE(shmring::test::read_object(name) == before) << "inspect/verify must never write";
  // The next producer repairs it; inspect then shows the recovery.
  const ToolRun push = tool({"push", name}, RunOptions().in("after\n"));
  EXPECT_EQ(push.code, 0) << push.describe();
  const Json after = parse_json(tool({"inspect", name, "--json"}).out);
  EXPECT_EQ(after["ring"]["locks"]["producer"]["state"].str, "free");
  EXPECT_EQ(after["ring"]["locks"]["recoveries"].u64(), 1u);
  EXPECT_EQ(tool({"pop", name, "--timeout-ms", "100"}).out, "kept\nafter\n");
}

TEST(ShmtoolLiveness, AbandonedMpmcSlot) {
#ifndef SHMRING_TEST_HOOKS
  GTEST_SKIP() << "crash points compiled out";
#else
  const std::string name = unique_ring_name();
  ShmGuard guard(name);
  ASSERT_EQ(shmring::create(name, cfg_of(shmring::Kind::mpmc, 4096, 64)), Errc::ok);
  ASSERT_EQ(tool({"push", name}, RunOptions().in("1\n2\n")).code, 0);
  const ToolRun crash = tool({"push", name}, RunOptions().in("x\n").with_env("SHMRING_CRASH_AT=mpmc.claim:1"));
  ASSERT_EQ(crash.signal, SIGKILL) << crash.describe();
  const ToolRun r = tool({"inspect", name});
  EXPECT_EQ(r.code, 0) << r.describe();
  EXPECT_NE(r.out.find("abandoned_slots=1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(dead)"), std::string::npos) << r.out;
  const Json doc = parse_json(tool({"inspect", name, "--json"}).out);
  ASSERT_EQ(doc["ring"]["slots"]["abandoned_slots"].arr.size(), 1u);
  EXPECT_EQ(doc["ring"]["slots"]["abandoned_slots"][0]["state"].str, "writing");
  EXPECT_EQ(doc["ring"]["slots"]["abandoned_slots"][0]["owner_pid"].i64(), 0 + doc["ring"]["attach"][0]["pid"].i64());
  // A consumer skips it; the counter says so.
  EXPECT_EQ(tool({"pop", name, "--timeout-ms", "300"}).out, "1\n2\n");
  const Json after = parse_json(tool({"inspect", name, "--json"}).out);
  EXPECT_EQ(after["ring"]["counters"]["abandoned_claims"].u64(), 1u);
  EXPECT_TRUE(after["ring"]["slots"]["abandoned_slots"].arr.empty());
#endif
}

// ---- another user's objects ---------------------------------------------------------------------

TEST(ShmtoolUsers, AnotherUsersObject) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to create objects for another user";
  const uid_t nobody = 65534;
  // (1) root looks at nobody's ring: owner shown.
  const std::string theirs = unique_ring_name("theirs");
  ShmGuard g1(theirs);
  ASSERT_EQ(shmring::create(theirs, cfg_of(shmring::Kind::spsc)), Errc::ok);
  ASSERT_EQ(::chown(shmring::test::shm_path(theirs).c_str(), nobody, nobody), 0);
  const ToolRun r = tool({"inspect", theirs, "--json"});
  ASSERT_EQ(r.code, 0) << r.describe();
  const Json doc = parse_json(r.out);
  EXPECT_EQ(doc["ring"]["object"]["uid"].u64(), nobody);
  if (const passwd* pw = ::getpwuid(nobody)) {
    EXPECT_EQ(doc["ring"]["object"]["owner"].str, pw->pw_name);
  }

  // (2) nobody looks at root's 0600 ring: permission denied everywhere.
  const std::string mine = unique_ring_name("mine");
  ShmGuard g2(mine);
  ASSERT_EQ(shmring::create(mine, cfg_of(shmring::Kind::spsc)), Errc::ok);
  const std::vector<std::byte> before = shmring::test::read_object(mine);
  const RunOptions as_nobody = RunOptions().deadline_ms(10000).as(static_cast<int>(nobody));
  const ToolRun probe = tool({"--help"}, as_nobody);
  if (probe.code == 127 || probe.code == 126)
    GTEST_SKIP() << "the binary cannot be run as nobody here: " << probe.err;
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"inspect", mine}, {"verify", mine}, {"reset", mine}, {"reset", mine, "--force"},
        {"rm", mine}, {"rm", mine, "--force"}, {"pop", mine, "--timeout-ms", "10"}, {"watch", mine, "--count", "1"}}) {
    SCOPED_TRACE(args[0]);
    const ToolRun x = tool(args, as_nobody);
    EXPECT_EQ(x.code, 5) << x.describe();
    expect_one_error_line(x, mine);
  }
  const ToolRun push = tool({"push", mine}, RunOptions().in("x\n").deadline_ms(10000).as(static_cast<int>(nobody)));
  EXPECT_EQ(push.code, 5) << push.describe();
  const ToolRun l = tool({"list", "--json"}, as_nobody);
  ASSERT_EQ(l.code, 0) << l.describe();
  const Json listed = parse_json(l.out);
  const Json* row = find_ring(listed, mine);
  ASSERT_NE(row, nullptr);
  EXPECT_EQ((*row)["state"].str, "permission_denied");
  EXPECT_EQ((*row)["owner"].str, "root");
  const ToolRun lt = tool({"list"}, as_nobody);
  EXPECT_NE(lt.out.find("? (permission denied)"), std::string::npos);
  EXPECT_TRUE(shmring::test::read_object(mine) == before);
  // nobody's own object in the sticky /dev/shm cannot be removed by... root
  // can, nobody cannot remove root's (checked above with rm --force).
  EXPECT_EQ(::access(shmring::test::shm_path(mine).c_str(), F_OK), 0);
}

// Names in /dev/shm may hold anything: output is escaped (text) and valid
// JSON (bytes that are not UTF-8 become U+FFFD), and inspect/rm still work.
TEST(ShmtoolDamaged, HostileNamesAreEscaped) {
  std::vector<std::byte> image;
  ASSERT_NO_FATAL_FAILURE(valid_spsc_image(&image));
  const std::string odd = unique_ring_name() + "_odd\n\x1b[2J\"\\\xff\x01";
  ShmGuard guard(odd);
  ASSERT_TRUE(shmring::test::write_object(odd, image.data(), image.size()));
  const ToolRun l = tool({"list"});
  ASSERT_EQ(l.code, 0) << l.describe();
  EXPECT_EQ(l.out.find('\x1b'), std::string::npos) << "no raw escape byte may reach the terminal";
  EXPECT_NE(l.out.find("_odd\\x0a\\x1b[2J\"\\\\\\xff\\x01"), std::string::npos) << l.out;
  const ToolRun j = tool({"list", "--json"});
  ASSERT_EQ(j.code, 0);
  const Json doc = parse_json(j.out);
  bool found = false;
  for (const Json& r : doc["rings"].arr)
    found = found || r["name"].str == odd.substr(0, odd.size() - 2) + "\xef\xbf\xbd\x01";
  EXPECT_TRUE(found) << j.out.substr(0, 2000);
  const ToolRun i = tool({"inspect", odd});
  EXPECT_EQ(i.code, 0) << i.describe();
  EXPECT_EQ(i.out.find('\x1b'), std::string::npos);
  const ToolRun bad = tool({"inspect", odd + "/x"});
  EXPECT_EQ(bad.code, 2);
  EXPECT_EQ(bad.err.find('\x1b'), std::string::npos);
  EXPECT_EQ(tool({"rm", odd}).code, 0);
}

}  // namespace
