// End-to-end tests of shmtool's command line: --help for every command,
// strict size parsing, and usage errors (exit 2, one stderr line). Each test
// runs the real binary (run.hpp); objects go under the test prefix and are
// removed by ShmGuard even when a test fails.
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
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

}  // namespace
