// Test support shared by every shmring test binary: unique ring names, RAII
// cleanup of /dev/shm objects (also on a fatal signal), the leftover check,
// the stress scale, a fork helper with a watchdog, and gtest printers.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

#include "shmring/error.hpp"

namespace shmring {

// gtest prints Errc through this (found by ADL): "corrupt (-8)".
void PrintTo(Errc e, std::ostream* os);
const char* errc_name(Errc e) noexcept;

}  // namespace shmring

namespace shmring::test {

// ---- Names and cleanup ----------------------------------------------------------

// Prefix of every object this test process creates: "shmt_<pid>_". Fixed at
// the first call, so forked children keep their parent's prefix.
const std::string& name_prefix();

// A fresh ring name ("/shmt_<pid>_<suite>.<test>_<n>", valid for the
// library), unique per process, test and call. `tag` is appended for
// readability in /dev/shm listings.
std::string unique_ring_name(std::string_view tag = {});

// The /dev/shm path of a ring name ("/x" -> "/dev/shm/x").
std::string shm_path(std::string_view ring_name);

// Removes whatever sits in /dev/shm under the name on destruction (a
// shared-memory object, a planted symlink, FIFO or directory), also when the
// test fails; and from a fatal-signal handler if the process dies first.
// Only the process that made the guard removes anything.
class ShmGuard {
 public:
  explicit ShmGuard(std::string name);
  ~ShmGuard();
  ShmGuard(const ShmGuard&) = delete;
  ShmGuard& operator=(const ShmGuard&) = delete;
  const std::string& name() const noexcept { return name_; }
  const char* c_str() const noexcept { return name_.c_str(); }

 private:
  std::string name_;
  pid_t owner_;
  int slot_;
};

// Entries of /dev/shm that start with name_prefix() (without the slash).
std::vector<std::string> leftover_objects();

// Installs the gtest environment that fails the run when an object with
// name_prefix() is left in /dev/shm (and removes it), the per-test SIGALRM
// watchdog, and the fatal-signal cleanup. Called by the tests' main().
// Returns the watchdog budget in force (SHMRING_TEST_WATCHDOG_S overrides).
unsigned install_test_harness(unsigned watchdog_seconds);

// ---- Scale -------------------------------------------------------------------------

// SHMRING_STRESS_SCALE from the environment, else the build's default (1.0,
// smaller under sanitizers). Always > 0.
double stress_scale();
// max(minimum, n * stress_scale()).
std::uint64_t scaled(std::uint64_t n, std::uint64_t minimum = 1000);
// Human-readable description of the sanitizer this binary was built with.
const char* sanitizer_name();

// ---- Processes ----------------------------------------------------------------------

// The outcome of a forked child.
struct ChildResult {
  bool exited = false;      // normal exit (exit_code valid)
  int exit_code = -1;
  int signal = 0;           // the signal that ended it, if any
  bool watchdog = false;    // the parent killed it at the deadline
  std::string message;      // what the child reported (empty on success)
  bool ok() const noexcept { return exited && exit_code == 0 && !watchdog; }
  std::string describe() const;
};

// A child process running a function. The function returns an empty string
// on success or a description of what went wrong; the child exits 0 or 1.
// The child also arms alarm() a little past the deadline, so it dies even if
// the parent is gone.
class Child {
 public:
  Child(std::function<std::string()> fn, std::chrono::seconds deadline);
  ~Child();  // kills and reaps a child that was never waited for
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const noexcept { return pid_; }
  // Waits until the child ends or the deadline (counted from the start)
  // passes, then kills it. No sleeping: the parent polls a pidfd.
  ChildResult wait();

 private:
  pid_t pid_ = -1;
  int pidfd_ = -1;
  int msg_fd_ = -1;
  std::int64_t deadline_ns_ = 0;
  bool reaped_ = false;
};

// Runs fn in a child and waits for it.
ChildResult run_in_child(std::function<std::string()> fn, std::chrono::seconds deadline);

std::int64_t now_ns() noexcept;  // CLOCK_MONOTONIC

}  // namespace shmring::test
