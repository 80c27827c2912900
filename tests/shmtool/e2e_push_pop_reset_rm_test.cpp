// End-to-end tests of the shmtool commands that move or change data: push
// and pop (lines, binary frames, limits, end of stream, a busy role), reset
// (refused with live peers, --force) and rm (rechecks, foreign objects,
// symlinks). Each test runs the real binary (run.hpp); objects go under the
// test prefix and are removed by ShmGuard even when a test fails.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "e2e_helpers.hpp"
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

}  // namespace
