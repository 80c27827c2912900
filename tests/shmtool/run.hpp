// Runs the real shmtool binary: posix_spawn (or fork + setuid for another
// user), stdin fed from a string, stdout and stderr captured, a hard
// deadline (SIGKILL) so a hang is a test failure, never a stuck run.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace shmtool_test {

struct ToolRun {
  int code = -1;         // exit status, when exited
  int signal = 0;        // the signal that ended it
  bool timed_out = false;
  std::string out, err;
  double seconds = 0;
  bool exited() const { return !timed_out && signal == 0 && code >= 0; }
  int stderr_lines() const;
  std::string describe() const;  // for assertion messages
};

struct RunOptions {
  std::string input;
  int timeout_ms = 20000;
  int as_uid = -1;                  // run as this uid (and gid), via fork + setuid
  std::vector<std::string> env;     // extra NAME=VALUE entries
  RunOptions& in(std::string s) { input = std::move(s); return *this; }
  RunOptions& deadline_ms(int ms) { timeout_ms = ms; return *this; }
  RunOptions& as(int uid) { as_uid = uid; return *this; }
  RunOptions& with_env(std::string e) { env.push_back(std::move(e)); return *this; }
};

// The path of the binary under test (a compile definition).
const std::string& tool_path();
ToolRun run_tool(const std::vector<std::string>& args, const RunOptions& opts = {});

}  // namespace shmtool_test
