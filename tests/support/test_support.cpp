#include "support/test_support.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ostream>
#include <sstream>

// Compile-time sanitizer detection (gcc defines __SANITIZE_*, clang has
// __has_feature).
#if defined(__SANITIZE_THREAD__)
#define SHMRING_TEST_TSAN 1
#elif defined(__SANITIZE_ADDRESS__)
#define SHMRING_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SHMRING_TEST_TSAN 1
#elif __has_feature(address_sanitizer)
#define SHMRING_TEST_ASAN 1
#endif
#endif

#if defined(SHMRING_TEST_ASAN) || defined(SHMRING_TEST_TSAN) || defined(SHMRING_TEST_UBSAN)
#if __has_include(<sanitizer/common_interface_defs.h>)
#include <sanitizer/common_interface_defs.h>
#define SHMRING_TEST_DEATH_CALLBACK 1
#endif
#endif

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

#ifndef SHMRING_TEST_DEFAULT_SCALE
#define SHMRING_TEST_DEFAULT_SCALE 0.0  // 0: choose from the sanitizer below
#endif

namespace shmring {

const char* errc_name(Errc e) noexcept {
  switch (e) {
    case Errc::ok: return "ok";
    case Errc::would_block: return "would_block";
    case Errc::timed_out: return "timed_out";
    case Errc::peer_gone: return "peer_gone";
    case Errc::busy: return "busy";
    case Errc::exists: return "exists";
    case Errc::not_found: return "not_found";
    case Errc::permission_denied: return "permission_denied";
    case Errc::corrupt: return "corrupt";
    case Errc::version_mismatch: return "version_mismatch";
    case Errc::too_big: return "too_big";
    case Errc::reset: return "reset";
    case Errc::invalid_argument: return "invalid_argument";
    case Errc::no_space: return "no_space";
    case Errc::system_error: return "system_error";
  }
  return "unknown";
}

void PrintTo(Errc e, std::ostream* os) { *os << errc_name(e) << " (" << static_cast<int>(e) << ")"; }

}  // namespace shmring

namespace shmring::test {

namespace {

// ---- Registry of live guards, readable from a signal handler ------------------
constexpr int kMaxGuards = 2048;  // fuzz tests hold hundreds at once
constexpr std::size_t kMaxPath = 300;
char g_paths[kMaxGuards][kMaxPath];
std::atomic<bool> g_used[kMaxGuards];
pid_t g_owner_pid = 0;

void remove_path(const char* path) noexcept {
  // Async-signal-safe: unlink(2) removes an object, a symlink or a FIFO;
  // rmdir(2) a planted directory.
  // (Linux says EISDIR for a directory; POSIX allows EPERM.)
  if (::unlink(path) != 0 && (errno == EISDIR || errno == EPERM)) ::rmdir(path);
}

void cleanup_registered() noexcept {
  if (::getpid() != g_owner_pid) return;
  for (int i = 0; i < kMaxGuards; ++i) {
    if (g_used[i].load(std::memory_order_acquire)) remove_path(g_paths[i]);
  }
}

int register_path(const std::string& path) {
  if (path.size() >= kMaxPath) return -1;
  for (int i = 0; i < kMaxGuards; ++i) {
    if (!g_used[i].load(std::memory_order_relaxed)) {
      std::memcpy(g_paths[i], path.c_str(), path.size() + 1);
      g_used[i].store(true, std::memory_order_release);
      return i;
    }
  }
  return -1;
}

// ---- Fatal signals: remove our objects, then die as the signal says ---------------
constexpr int kFatalSignals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTERM, SIGINT, SIGALRM};
struct sigaction g_old_actions[sizeof kFatalSignals / sizeof kFatalSignals[0]];

void write_stderr(const char* s) noexcept {
  ssize_t r = ::write(STDERR_FILENO, s, std::strlen(s));
  (void)r;
}

void on_fatal_signal(int sig, siginfo_t* info, void*) {
  if (sig == SIGALRM) write_stderr("\n*** shmring test watchdog: the test ran past its time budget ***\n");
  cleanup_registered();
  for (std::size_t i = 0; i < sizeof kFatalSignals / sizeof kFatalSignals[0]; ++i) {
    if (kFatalSignals[i] == sig) {
      ::sigaction(sig, &g_old_actions[i], nullptr);
      break;
    }
  }
  if (sig == SIGALRM) {
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    ::sigaction(SIGALRM, &dfl, nullptr);
  }
  // A fault raised by the kernel (si_code > 0) re-executes the faulting
  // instruction on return and reaches the previous handler (a sanitizer's
  // or the default) with the real context. A signal sent by a process
  // (raise, kill, abort: si_code <= 0) is sent again and delivered, to the
  // previous disposition, once this handler returns.
  const bool kernel_fault = info != nullptr && info->si_code > 0 &&
                            (sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL);
  if (!kernel_fault) ::raise(sig);
}

void install_signal_cleanup() {
#if defined(SHMRING_TEST_DEATH_CALLBACK)
  // A sanitizer report ends the process with _exit, not a signal: clean up
  // from its death callback too.
  __sanitizer_set_death_callback(cleanup_registered);
#endif
  for (std::size_t i = 0; i < sizeof kFatalSignals / sizeof kFatalSignals[0]; ++i) {
    struct sigaction sa {};
    sa.sa_sigaction = on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_SIGINFO;
    ::sigaction(kFatalSignals[i], &sa, &g_old_actions[i]);
  }
}

void restore_default_signals_in_child() {
  for (int sig : kFatalSignals) {
    struct sigaction sa {};
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    ::sigaction(sig, &sa, nullptr);
  }
}

std::string sanitize(std::string_view s) {
  std::string out;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '-' || c == '.';
    out += ok ? c : '_';
  }
  return out;
}

// ---- gtest hooks ------------------------------------------------------------------

class LeftoverCheck final : public ::testing::Environment {
 public:
  void TearDown() override {
    const auto left = leftover_objects();
    for (const auto& n : left) {
      ADD_FAILURE() << "object left in /dev/shm by this test run: " << n << " (removed now)";
      remove_path(("/dev/shm/" + n).c_str());
    }
  }
};

class Watchdog final : public ::testing::EmptyTestEventListener {
 public:
  explicit Watchdog(unsigned seconds) : seconds_(seconds) {}
  void OnTestStart(const ::testing::TestInfo&) override { ::alarm(seconds_); }
  void OnTestEnd(const ::testing::TestInfo& info) override {
    ::alarm(0);
    // Name the test that left something behind (the environment fails the run).
    for (const auto& n : leftover_objects()) {
      std::fprintf(stderr, "[ leftover ] %s.%s left /dev/shm/%s\n", info.test_suite_name(), info.name(), n.c_str());
    }
  }

 private:
  unsigned seconds_;
};

}  // namespace

// ---- Names --------------------------------------------------------------------------

const std::string& name_prefix() {
  static const std::string prefix = [] {
    if (g_owner_pid == 0) g_owner_pid = ::getpid();
    return "shmt_" + std::to_string(::getpid()) + "_";
  }();
  return prefix;
}

std::string unique_ring_name(std::string_view tag) {
  static std::atomic<unsigned> counter{0};
  std::string test = "notest";
  if (const auto* info = ::testing::UnitTest::GetInstance()->current_test_info()) {
    test = std::string(info->test_suite_name()) + "." + info->name();
  }
  test = sanitize(test);
  if (test.size() > 100) test.resize(100);
  // Built with append(): gcc 12 gives a false -Wrestrict on "/" + string.
  std::string name(1, '/');
  name.append(name_prefix()).append(test).append(1, '_').append(std::to_string(counter.fetch_add(1)));
  if (!tag.empty()) name.append(1, '_').append(sanitize(tag.substr(0, 40)));
  return name;
}

std::string shm_path(std::string_view ring_name) {
  while (!ring_name.empty() && ring_name.front() == '/') ring_name.remove_prefix(1);
  return "/dev/shm/" + std::string(ring_name);
}

ShmGuard::ShmGuard(std::string name) : name_(std::move(name)), owner_(::getpid()) {
  (void)name_prefix();
  slot_ = register_path(shm_path(name_));
}

ShmGuard::~ShmGuard() {
  if (::getpid() != owner_) return;
  remove_path(shm_path(name_).c_str());
  if (slot_ >= 0) g_used[slot_].store(false, std::memory_order_release);
}

std::vector<std::string> leftover_objects() {
  std::vector<std::string> out;
  DIR* d = ::opendir("/dev/shm");
  if (d == nullptr) return out;
  const std::string& prefix = name_prefix();
  while (const dirent* e = ::readdir(d)) {
    if (std::strncmp(e->d_name, prefix.c_str(), prefix.size()) == 0) out.emplace_back(e->d_name);
  }
  ::closedir(d);
  return out;
}

unsigned install_test_harness(unsigned watchdog_seconds) {
  g_owner_pid = ::getpid();
  (void)name_prefix();
  install_signal_cleanup();
  ::testing::AddGlobalTestEnvironment(new LeftoverCheck);  // gtest owns it
  if (const char* w = std::getenv("SHMRING_TEST_WATCHDOG_S"); w != nullptr && std::atoi(w) > 0) {
    watchdog_seconds = static_cast<unsigned>(std::atoi(w));
  }
  ::testing::UnitTest::GetInstance()->listeners().Append(new Watchdog(watchdog_seconds));
  return watchdog_seconds;
}

// ---- Scale ----------------------------------------------------------------------------

const char* sanitizer_name() {
#if defined(SHMRING_TEST_TSAN)
  return "thread";
#elif defined(SHMRING_TEST_ASAN)
  return "address";
#else
  return "none";
#endif
}

double stress_scale() {
  static const double scale = [] {
    if (const char* s = std::getenv("SHMRING_STRESS_SCALE"); s != nullptr && *s != '\0') {
      char* end = nullptr;
      const double v = std::strtod(s, &end);
      if (end != s && *end == '\0' && v > 0) return v;
      std::fprintf(stderr, "ignoring SHMRING_STRESS_SCALE=%s (want a number > 0)\n", s);
    }
    if (SHMRING_TEST_DEFAULT_SCALE > 0) return double{SHMRING_TEST_DEFAULT_SCALE};
#if defined(SHMRING_TEST_TSAN)
    return 0.05;
#elif defined(SHMRING_TEST_ASAN)
    return 0.1;
#else
    return 1.0;
#endif
  }();
  return scale;
}

std::uint64_t scaled(std::uint64_t n, std::uint64_t minimum) {
  const double v = static_cast<double>(n) * stress_scale();
  const auto s = static_cast<std::uint64_t>(v);
  return s < minimum ? minimum : s;
}

// ---- Processes -----------------------------------------------------------------------

std::int64_t now_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

std::string ChildResult::describe() const {
  std::ostringstream os;
  if (watchdog) os << "killed by the watchdog at its deadline; ";
  if (exited) {
    os << "exit code " << exit_code;
  } else if (signal != 0) {
    os << "killed by signal " << signal << " (" << ::strsignal(signal) << ")";
  } else {
    os << "did not run";
  }
  if (!message.empty()) os << ": " << message;
  return os.str();
}

Child::Child(std::function<std::string()> fn, std::chrono::seconds deadline) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return;
  std::fflush(nullptr);
  deadline_ns_ = now_ns() + std::chrono::duration_cast<std::chrono::nanoseconds>(deadline).count();
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return;
  }
  if (pid == 0) {
    ::close(fds[0]);
    restore_default_signals_in_child();
    // The child's own watchdog: SIGALRM's default action ends it even if the
    // parent died and nobody kills it.
    ::alarm(static_cast<unsigned>(deadline.count()) + 5);
    std::string msg;
    try {
      msg = fn();
    } catch (const std::exception& e) {
      msg = std::string("exception: ") + e.what();
    } catch (...) {
      msg = "unknown exception";
    }
    if (msg.size() > 3000) msg.resize(3000);
    std::size_t off = 0;
    while (off < msg.size()) {
      const ssize_t w = ::write(fds[1], msg.data() + off, msg.size() - off);
      if (w <= 0) break;
      off += static_cast<std::size_t>(w);
    }
    std::fflush(nullptr);
    ::_exit(msg.empty() ? 0 : 1);
  }
  ::close(fds[1]);
  pid_ = pid;
  msg_fd_ = fds[0];
  pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

Child::~Child() {
  if (pid_ > 0 && !reaped_) {
    ::kill(pid_, SIGKILL);
    int st = 0;
    ::waitpid(pid_, &st, 0);
  }
  if (pidfd_ >= 0) ::close(pidfd_);
  if (msg_fd_ >= 0) ::close(msg_fd_);
}

ChildResult Child::wait() {
  ChildResult r;
  if (pid_ <= 0) {
    r.message = "fork failed";
    return r;
  }
  if (reaped_) {
    r.message = "already waited for";
    return r;
  }
  int st = 0;
  for (;;) {
    const pid_t got = ::waitpid(pid_, &st, WNOHANG);
    if (got == pid_) break;
    const std::int64_t left = deadline_ns_ - now_ns();
    if (left <= 0) {
      r.watchdog = true;
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &st, 0);
      break;
    }
    const int ms = static_cast<int>(left / 1'000'000 + 1);
    if (pidfd_ >= 0) {
      // The pidfd turns readable when the child ends: a wait with a deadline
      // and no sleeping.
      pollfd p{pidfd_, POLLIN, 0};
      ::poll(&p, 1, ms);
    } else {
      // No pidfd (old kernel): block until the child ends; its own alarm()
      // bounds the wait.
      ::waitpid(pid_, &st, 0);
      break;
    }
  }
  reaped_ = true;
  if (WIFEXITED(st)) {
    r.exited = true;
    r.exit_code = WEXITSTATUS(st);
  } else if (WIFSIGNALED(st)) {
    r.signal = WTERMSIG(st);
  }
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(msg_fd_, buf, sizeof buf);
    if (n <= 0) break;
    r.message.append(buf, static_cast<std::size_t>(n));
  }
  return r;
}

ChildResult run_in_child(std::function<std::string()> fn, std::chrono::seconds deadline) {
  Child c(std::move(fn), deadline);
  return c.wait();
}

}  // namespace shmring::test
