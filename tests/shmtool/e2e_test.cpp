// End-to-end tests of shmtool: every test runs the real binary (run.hpp)
// against objects it makes in /dev/shm under the test prefix, removed by
// ShmGuard (and the harness's leftover check) even when a test fails.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <pty.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "json.hpp"
#include "endpoint.hpp"  // mpmc_stride
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

ToolRun tool(const std::vector<std::string>& args, const RunOptions& o = {}) { return run_tool(args, o); }

shmring::Config cfg_of(shmring::Kind k, std::size_t cap = 4096, std::size_t slot = 0,
                       shmring::WaitStrategy w = shmring::WaitStrategy::futex, unsigned mode = 0600) {
  shmring::Config c;
  c.kind = k;
  c.capacity = cap;
  c.slot_size = k == shmring::Kind::mpmc ? (slot == 0 ? 64 : slot) : 0;
  c.wait = w;
  c.mode = mode;
  return c;
}

std::span<const std::byte> bytes_of(const std::string& s) { return std::as_bytes(std::span(s.data(), s.size())); }

// The failure contract: a non-zero exit prints exactly one stderr line,
// naming the ring.
void expect_one_error_line(const ToolRun& r, const std::string& ring) {
  EXPECT_EQ(r.stderr_lines(), 1) << r.describe();
  if (!ring.empty()) {
    EXPECT_NE(r.err.find(ring), std::string::npos) << r.describe();
  }
}

const Json* find_ring(const Json& list, const std::string& name) {
  for (const Json& r : list["rings"].arr)
    if (r["name"].str == name) return &r;
  return nullptr;
}

// ---- Help and usage -----------------------------------------------------------------

TEST(ShmtoolCli, HelpForEveryCommand) {
  const ToolRun top = tool({"--help"});
  ASSERT_EQ(top.code, 0) << top.describe();
  for (const char* cmd : {"list", "inspect", "verify", "create", "reset", "rm", "push", "pop", "watch"}) {
    SCOPED_TRACE(cmd);
    EXPECT_NE(top.out.find(cmd), std::string::npos);
    const ToolRun r = tool({cmd, "--help"});
    EXPECT_EQ(r.code, 0) << r.describe();
    EXPECT_NE(r.out.find(std::string("usage: shmtool ") + cmd), std::string::npos) << r.describe();
    EXPECT_TRUE(r.err.empty());
  }
  const ToolRun none = tool({});
  EXPECT_EQ(none.code, 2);
  const ToolRun unknown = tool({"frobnicate"});
  EXPECT_EQ(unknown.code, 2);
  EXPECT_EQ(unknown.stderr_lines(), 1) << unknown.describe();
}

TEST(ShmtoolCli, SizesAreParsedStrictly) {
  const std::string name = unique_ring_name();
  ShmGuard guard(name);
  for (const char* bad : {"-1", "18446744073709551616", "1e9", "0x", "", "0x1000", " 4096", "+4096", "4096 ", "4k5",
                          "17179869184G", "4096B"}) {
    SCOPED_TRACE(std::string("capacity '") + bad + "'");
    const ToolRun r = tool({"create", name, "--kind", "spsc", "--capacity", bad});
    EXPECT_EQ(r.code, 2) << r.describe();
    expect_one_error_line(r, name);
    EXPECT_NE(::access(shmring::test::shm_path(name).c_str(), F_OK), 0) << "nothing may be left behind";
  }
  for (const char* bad : {"-1", "1e3", "", "x"}) {
    const ToolRun r = tool({"pop", name, "--count", bad});
    EXPECT_EQ(r.code, 2) << r.describe();
    const ToolRun t = tool({"pop", name, "--timeout-ms", bad});
    EXPECT_EQ(t.code, 2) << t.describe();
  }
  // Suffixes k, M, G are binary.
  const ToolRun ok = tool({"create", name, "--kind", "spsc", "--capacity", "8k"});
  ASSERT_EQ(ok.code, 0) << ok.describe();
  const Json j = parse_json(tool({"inspect", name, "--json"}).out);
  EXPECT_EQ(j["ring"]["capacity"].u64(), 8192u);
}

TEST(ShmtoolCli, UsageErrorsAreExit2WithOneLine) {
  const std::string name = unique_ring_name();
  ShmGuard guard(name);
  const std::vector<std::vector<std::string>> cases = {
      {"inspect"},
      {"inspect", "a", "b"},
      {"inspect", "a/b"},
      {"inspect", ".."},
      {"inspect", name, "--bogus"},
      {"list", "extra"},
      {"create", name},
      {"create", name, "--kind", "ring", "--capacity", "4096"},
      {"create", name, "--kind", "spsc"},
      {"create", name, "--kind", "mpmc", "--capacity", "4096"},
      {"create", name, "--kind", "spsc", "--capacity", "4096", "--slot-size", "64"},
      {"create", name, "--kind", "spsc", "--capacity", "4096", "--mode", "0999"},
      {"create", name, "--kind", "spsc", "--capacity", "4096", "--mode", "7777"},
      {"create", name, "--kind", "spsc", "--capacity", "4096", "--wait", "sleep"},
      {"create", name, "--kind", "spsc", "--capacity", "4096", "--kind", "spsc"},
      {"create", "bad name", "--kind", "spsc", "--capacity", "4096"},
      {"create", "--", "-leading-dash", "--kind", "spsc", "--capacity", "4096"},
      {"create", "sem.x", "--kind", "spsc", "--capacity", "4096"},
      {"watch", name, "--interval", "10"},
      {"pop", name, "--count"},
  };
  for (const auto& args : cases) {
    std::string shown;
    for (const auto& a : args) shown += a + " ";
    SCOPED_TRACE(shown);
    const ToolRun r = tool(args);
    EXPECT_EQ(r.code, 2) << r.describe();
    EXPECT_EQ(r.stderr_lines(), 1) << r.describe();
    EXPECT_TRUE(r.out.empty()) << r.describe();
  }
}

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

// ---- push and pop -----------------------------------------------------------------------

TEST(ShmtoolPushPop, LinesRoundTripWithOddBytes) {
  for (auto kind : {shmring::Kind::spsc, shmring::Kind::mpmc, shmring::Kind::locked}) {
    SCOPED_TRACE(shmring::to_string(kind));
    const std::string name = unique_ring_name();
    ShmGuard guard(name);
    ASSERT_EQ(shmring::create(name, cfg_of(kind, 1 << 16, 512)), Errc::ok);
    std::string input;
    std::string expected;
    const std::vector<std::string> lines = {"plain",
                                            "",
                                            std::string("nul\0inside", 10),
                                            "tab\tand\rcarriage",
                                            "\x01\x02\x7f\x80\xfe\xff high bytes",
                                            "\x1b[31mnot a colour\x1b[0m",
                                            std::string(500, 'x'),
                                            "\xe2\x82\xac utf-8 \xf0\x9f\x98\x80"};
    for (const auto& l : lines) {
      input += l + "\n";
      expected += l + "\n";
    }
    input += "last line without newline";
    expected += "last line without newline\n";
    const ToolRun push = tool({"push", name}, RunOptions().in(input));
    ASSERT_EQ(push.code, 0) << push.describe();
    EXPECT_TRUE(push.out.empty() && push.err.empty());
    const ToolRun pop = tool({"pop", name, "--timeout-ms", "200"});
    ASSERT_EQ(pop.code, 0) << pop.describe();
    EXPECT_EQ(pop.out, expected);
    EXPECT_TRUE(pop.err.empty());
    // Empty now: a timeout before the first record is exit 7.
    const ToolRun empty = tool({"pop", name, "--timeout-ms", "50"});
    EXPECT_EQ(empty.code, 7) << empty.describe();
    expect_one_error_line(empty, name);
    const ToolRun try_once = tool({"pop", name, "--timeout-ms", "0"});
    EXPECT_EQ(try_once.code, 7) << try_once.describe();
  }
}

TEST(ShmtoolPushPop, BinaryFramesRoundTrip) {
  const std::string name = unique_ring_name();
  ShmGuard guard(name);
  ASSERT_EQ(shmring::create(name, cfg_of(shmring::Kind::spsc, 1 << 16)), Errc::ok);
  std::mt19937 rng(42);
  std::string frames;
  for (int i = 0; i < 200; ++i) {
    const std::uint32_t len = rng() % 3000;
    std::string payload(len, '\0');
    for (auto& ch : payload) ch = static_cast<char>(rng());  // newlines, NULs, anything
    const char hdr[4] = {static_cast<char>(len & 0xff), static_cast<char>((len >> 8) & 0xff), 0, 0};
    frames.append(hdr, 4);
    frames += payload;
  }
  // More than the ring holds at once: push waits while pop drains.
  std::thread popper;
  ToolRun pop;
  popper = std::thread([&] { pop = tool({"pop", name, "--binary", "--count", "200", "--timeout-ms", "5000"}); });
  const ToolRun push = tool({"push", name, "--binary", "--timeout-ms", "5000"}, RunOptions().in(frames));
  popper.join();
  ASSERT_EQ(push.code, 0) << push.describe();
  ASSERT_EQ(pop.code, 0) << pop.describe();
  EXPECT_EQ(pop.out.size(), frames.size());
  EXPECT_TRUE(pop.out == frames) << "binary frames differ";
}

TEST(ShmtoolPushPop, CountTooBigAndTruncatedFrames) {
  const std::string name = unique_ring_name();
  ShmGuard guard(name);
  ASSERT_EQ(shmring::create(name, cfg_of(shmring::Kind::spsc, 4096)), Errc::ok);
  // max record is 4096/2 - 8 = 2040 bytes
  const ToolRun big = tool({"push", name}, RunOptions().in("a\nb\n" + std::string(3000, 'z') + "\nc\n"));
  EXPECT_EQ(big.code, 1) << big.describe();
  expect_one_error_line(big, name);
  EXPECT_NE(big.err.find("line 3"), std::string::npos) << big.err;
  const ToolRun two = tool({"pop", name, "--count", "1"});
  EXPECT_EQ(two.code, 0);
  EXPECT_EQ(two.out, "a\n");
  const ToolRun rest = tool({"pop", name, "--count", "2", "--timeout-ms", "50"});
  EXPECT_EQ(rest.code, 7) << rest.describe();  // only one left: --count not reached
  EXPECT_EQ(rest.out, "b\n");
  const ToolRun trunc = tool({"push", name, "--binary"}, RunOptions().in(std::string("\x05\x00\x00\x00" "ab", 6)));
  EXPECT_EQ(trunc.code, 1) << trunc.describe();
  expect_one_error_line(trunc, name);
}

TEST(ShmtoolPushPop, PopEndsWhenTheProducerLeaves) {
  const std::string name = unique_ring_name();
  ShmGuard guard(name);
  ASSERT_EQ(shmring::create(name, cfg_of(shmring::Kind::spsc, 4096)), Errc::ok);
  ToolRun pop;
  std::thread popper([&] { pop = tool({"pop", name}, RunOptions().deadline_ms(10000)); });
  // Wait until pop is fully open and asleep on the empty ring (a waiter on
  // data_wait). Its attach entry alone is not enough: the library takes the
  // peer-gone snapshot after publishing the entry, so a producer that came
  // and went in between would not count as seen (see the closing notes).
  shmring::test::RawMap raw(name);
  ASSERT_TRUE(raw.ok());
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < until &&
         sd::atom(raw.header()->data_wait.waiters).load(std::memory_order_acquire) == 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  {
    auto p = shmring::Producer::open(name);
    ASSERT_TRUE(p.ok());
    ASSERT_EQ(p->send(bytes_of("first")), Errc::ok);
    ASSERT_EQ(p->send(bytes_of("second")), Errc::ok);
  }  // the producer closes: end of stream once drained
  popper.join();
  EXPECT_EQ(pop.code, 0) << pop.describe();
  EXPECT_EQ(pop.out, "first\nsecond\n");
  EXPECT_LT(pop.seconds, 5.0);
}

TEST(ShmtoolPushPop, BusyRoleIsExit6) {
  const std::string name = unique_ring_name();
  ShmGuard guard(name);
  ASSERT_EQ(shmring::create(name, cfg_of(shmring::Kind::spsc, 4096)), Errc::ok);
  auto c = shmring::Consumer::open(name);
  ASSERT_TRUE(c.ok());
  const ToolRun r = tool({"pop", name, "--timeout-ms", "10"});
  EXPECT_EQ(r.code, 6) << r.describe();
  expect_one_error_line(r, name);
  EXPECT_NE(r.err.find(std::to_string(::getpid())), std::string::npos) << r.err;
}

// ---- reset and rm --------------------------------------------------------------------------

TEST(ShmtoolReset, RefusesWithLivePeerThenForceGivesReset) {
  for (auto kind : {shmring::Kind::spsc, shmring::Kind::mpmc, shmring::Kind::locked}) {
    SCOPED_TRACE(shmring::to_string(kind));
    const std::string name = unique_ring_name();
    ShmGuard guard(name);
    ASSERT_EQ(shmring::create(name, cfg_of(kind, 4096, 64)), Errc::ok);
    auto p = shmring::Producer::open(name);
    auto c = shmring::Consumer::open(name);
    ASSERT_TRUE(p.ok() && c.ok());
    ASSERT_EQ(p->send(bytes_of("before")), Errc::ok);
    const std::vector<std::byte> before = shmring::test::read_object(name);

    const ToolRun refused = tool({"reset", name});
    EXPECT_EQ(refused.code, 6) << refused.describe();
    expect_one_error_line(refused, name);
    EXPECT_NE(refused.err.find(std::to_string(::getpid())), std::string::npos) << refused.err;
    EXPECT_TRUE(shmring::test::read_object(name) == before) << "a refused reset must not touch the ring";

    const ToolRun forced = tool({"reset", name, "--force"});
    EXPECT_EQ(forced.code, 0) << forced.describe();
    // Live handles get Errc::reset on their next call, never stale data.
    EXPECT_EQ(p->send(bytes_of("after")), Errc::reset);
    auto got = c->peek(shmring::Timeout::try_once());
    EXPECT_EQ(got.error(), Errc::reset);
    p = shmring::Producer();
    c = shmring::Consumer();
    // After the peers are gone, a plain reset succeeds and the ring works.
    const ToolRun again = tool({"reset", name});
    EXPECT_EQ(again.code, 0) << again.describe();
    const Json j = parse_json(tool({"inspect", name, "--json"}).out);
    EXPECT_EQ(j["ring"]["status"].str, "ready");
    EXPECT_EQ(j["ring"]["fill"]["records"].u64(), 0u);
    EXPECT_GE(j["ring"]["header"]["reset_gen"].u64(), 2u);
    const ToolRun push = tool({"push", name}, RunOptions().in("fresh\n"));
    EXPECT_EQ(push.code, 0) << push.describe();
    EXPECT_EQ(tool({"pop", name, "--timeout-ms", "100"}).out, "fresh\n");
  }
}

TEST(ShmtoolReset, RefusesSymlinksDirectoriesAndDamage) {
  const std::string link = unique_ring_name("link"), dir = unique_ring_name("dir"), junk = unique_ring_name("junk");
  ShmGuard gl(link), gd(dir), gj(junk);
  ASSERT_EQ(::symlink("/etc/hostname", shmring::test::shm_path(link).c_str()), 0);
  ASSERT_EQ(::mkdir(shmring::test::shm_path(dir).c_str(), 0700), 0);
  const std::string bytes(8192, 'j');
  ASSERT_TRUE(shmring::test::write_object(junk, bytes.data(), bytes.size()));
  for (const auto& n : {link, dir, junk}) {
    const ToolRun r = tool({"reset", n, "--force"});
    EXPECT_EQ(r.code, 4) << r.describe();
    expect_one_error_line(r, n);
  }
  EXPECT_TRUE(shmring::test::read_object(junk).size() == bytes.size());
}

TEST(ShmtoolRm, RemovesRechecksAndRefuses) {
  const std::string ring = unique_ring_name("ring"), junk = unique_ring_name("junk"), link = unique_ring_name("link"),
                    dir = unique_ring_name("dir");
  ShmGuard g1(ring), g2(junk), g3(link), g4(dir);
  ASSERT_EQ(shmring::create(ring, cfg_of(shmring::Kind::spsc)), Errc::ok);
  {
    auto p = shmring::Producer::open(ring);
    ASSERT_TRUE(p.ok());
    const ToolRun busy = tool({"rm", ring});
    EXPECT_EQ(busy.code, 6) << busy.describe();
    expect_one_error_line(busy, ring);
    EXPECT_EQ(::access(shmring::test::shm_path(ring).c_str(), F_OK), 0);
  }
  const ToolRun ok = tool({"rm", ring});
  EXPECT_EQ(ok.code, 0) << ok.describe();
  EXPECT_NE(::access(shmring::test::shm_path(ring).c_str(), F_OK), 0);
  const ToolRun again = tool({"rm", ring});
  EXPECT_EQ(again.code, 3) << again.describe();

  const std::string bytes(5000, 'q');
  ASSERT_TRUE(shmring::test::write_object(junk, bytes.data(), bytes.size()));
  const ToolRun foreign = tool({"rm", junk});
  EXPECT_EQ(foreign.code, 4) << foreign.describe();
  expect_one_error_line(foreign, junk);
  EXPECT_EQ(::access(shmring::test::shm_path(junk).c_str(), F_OK), 0);
  EXPECT_EQ(tool({"rm", junk, "--force"}).code, 0);

  // A planted symlink: refused, then --force removes the link, never its target.
  const std::string target = ::testing::TempDir() + "/shmtool_rm_target_" + std::to_string(::getpid());
  {
    FILE* f = std::fopen(target.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("keep me", f);
    std::fclose(f);
  }
  ASSERT_EQ(::symlink(target.c_str(), shmring::test::shm_path(link).c_str()), 0);
  const ToolRun sl = tool({"rm", link});
  EXPECT_EQ(sl.code, 4) << sl.describe();
  EXPECT_EQ(tool({"rm", link, "--force"}).code, 0);
  struct stat st {};
  EXPECT_EQ(::lstat(shmring::test::shm_path(link).c_str(), &st), -1);
  EXPECT_EQ(::stat(target.c_str(), &st), 0) << "the link's target must survive";
  ::unlink(target.c_str());

  ASSERT_EQ(::mkdir(shmring::test::shm_path(dir).c_str(), 0700), 0);
  const ToolRun d = tool({"rm", dir, "--force"});
  EXPECT_EQ(d.code, 4) << d.describe();
}

// ---- damaged and foreign objects --------------------------------------------------------------

struct Damaged {
  std::string tag;
  std::string expect_status;
  std::string expect_text;
};

TEST(ShmtoolDamaged, EachGetsADiagnosisAndExit4) {
  // A valid ring's bytes to damage.
  const std::string src = unique_ring_name("src");
  std::vector<std::byte> image;
  {
    ShmGuard g(src);
    ASSERT_EQ(shmring::create(src, cfg_of(shmring::Kind::spsc)), Errc::ok);
    image = shmring::test::read_object(src);
  }
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
  const std::string src = unique_ring_name("src");
  std::vector<std::byte> image;
  {
    ShmGuard g(src);
    ASSERT_EQ(shmring::create(src, cfg_of(shmring::Kind::spsc)), Errc::ok);
    image = shmring::test::read_object(src);
  }
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
