// Support for the liveness suite: ring names with RAII unlink (also from a
// fatal-signal handler and the per-test watchdog), helper processes
// (shmring_peer) spawned with fork + execve and an optional crash point,
// bounded reads of their report pipes, bounded waits for their exit, and the
// stress scale. Owned by tests/liveness; independent of tests/support.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "raw_header.hpp"
#include "shmring/ring.hpp"
#include "shmring/shmring.h"

namespace shmring::live {

// ---- Harness -------------------------------------------------------------------

// Per-test watchdog (alarm; kills registered children, unlinks registered
// rings, fails the run), fatal-signal cleanup, and the check that no object
// with this process's prefix is left in /dev/shm. Called by main().
void install_harness(unsigned watchdog_s);

// SHMRING_STRESS_SCALE (default 1.0; 0.25 under ASan/TSan). Always > 0.
double stress_scale();
std::uint64_t scaled(std::uint64_t n, std::uint64_t minimum = 1);
bool under_sanitizer();

// ---- Rings ---------------------------------------------------------------------------

// "/shmlive_<pid>_<n>_<tag>"; every object the suite makes starts with the
// prefix "shmlive_<pid>_" of the test process.
std::string unique_name(std::string_view tag);
std::string name_prefix();

// A ring created for one test and unlinked when the object dies (and by the
// signal handlers if the process dies first).
class TestRing {
 public:
  TestRing(std::string_view tag, Kind kind, WaitStrategy wait, std::size_t capacity);
  ~TestRing();
  TestRing(const TestRing&) = delete;
  TestRing& operator=(const TestRing&) = delete;
  const std::string& name() const noexcept { return name_; }
  const char* c_str() const noexcept { return name_.c_str(); }
  Errc create_result() const noexcept { return created_; }

 private:
  std::string name_;
  Errc created_;
  int slot_ = -1;
};

// A C API handle closed on destruction.
class Handle {
 public:
  Handle() = default;
  ~Handle() { reset(); }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  int open(const std::string& ring, shmring_role role) {
    reset();
    return shmring_open(ring.c_str(), role, &h_);
  }
  void reset() {
    if (h_ != nullptr) shmring_close(h_);
    h_ = nullptr;
  }
  shmring_t* get() const noexcept { return h_; }
  explicit operator bool() const noexcept { return h_ != nullptr; }

 private:
  shmring_t* h_ = nullptr;
};

// ---- Helper processes --------------------------------------------------------------

struct Exit {
  bool exited = false;
  int code = -1;
  int signal = 0;
  bool timed_out = false;  // we killed it at the deadline
  std::string describe() const;
};

// One shmring_peer process. Its fd 3 is the write end of a pipe we read
// (report lines); its stdin is a pipe we hold (closing it releases --hold).
// Destruction kills (SIGKILL) and reaps it if it still runs.
class Peer {
 public:
  // args: the helper's arguments after its own name. crash_at: value of
  // SHMRING_CRASH_AT in the child's environment ("" = unset).
  // wrapper: a command line the helper runs under (e.g. strace ...), whose
  // last word is followed by the helper's path and args.
  explicit Peer(const std::vector<std::string>& args, const std::string& crash_at = "",
                const std::vector<std::string>& wrapper = {});
  ~Peer();
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;

  pid_t pid() const noexcept { return pid_; }
  bool started() const noexcept { return pid_ > 0; }

  // The next report line, or nullopt at EOF or when timeout passes.
  std::optional<std::string> line(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Reads lines until one starts with prefix (the others are kept in
  // history()). Returns the line, or nullopt (EOF / timeout).
  std::optional<std::string> line_starting(std::string_view prefix,
                                           std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Every line read so far.
  const std::vector<std::string>& history() const noexcept { return history_; }
  // Reads everything until EOF (bounded); returns all lines seen.
  const std::vector<std::string>& drain(std::chrono::milliseconds timeout = std::chrono::seconds(10));

  void close_stdin();
  void kill9();
  // Waits (bounded, no sleeping: poll on a pidfd) for the exit; kills it at
  // the deadline.
  Exit wait(std::chrono::milliseconds timeout = std::chrono::seconds(20));

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int in_fd_ = -1;
  int pidfd_ = -1;
  bool reaped_ = false;
  bool eof_ = false;
  int slot_ = -1;
  std::string buf_;
  std::vector<std::string> history_;
  Exit exit_;
};

// Absolute path of an executable found on PATH, or "" (tests skip without it).
std::string find_program(const std::string& name);
// The helper's path (for wrappers that need it).
const char* peer_path() noexcept;

// Splits a report line into words.
std::vector<std::string> words(const std::string& line);
// Field i of a line as an integer (0 when missing).
std::int64_t field(const std::string& line, std::size_t i);

// A temporary directory removed (with its files) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string path(std::string_view file) const { return dir_ + "/" + std::string(file); }

 private:
  std::string dir_;
};

// Median / max of a sample (ns).
std::int64_t median(std::vector<std::int64_t> v);
std::int64_t percentile(std::vector<std::int64_t> v, double p);

const char* errname(int rc) noexcept;

// Time this thread spent runnable but waiting for a CPU (schedstat field 2),
// so timing bounds can tell the library's lateness from a loaded machine's.
std::int64_t run_delay_ns();

}  // namespace shmring::live
