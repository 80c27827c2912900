#include "live_support.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>

#ifndef SHMRING_PEER_PATH
#error "SHMRING_PEER_PATH must name the shmring_peer helper"
#endif

extern char** environ;

namespace shmring::live {

namespace {

// ---- Async-signal-safe registries of what to clean up ---------------------------

constexpr int kSlots = 128;
char g_paths[kSlots][256];                 // /dev/shm paths to unlink
std::atomic<bool> g_path_used[kSlots];
std::atomic<pid_t> g_pids[kSlots];         // children to kill
unsigned g_watchdog_s = 120;
const char* g_current_test = "";

int register_path(const std::string& ring_name) {
  for (int i = 0; i < kSlots; ++i) {
    bool expected = false;
    if (g_path_used[i].load() || !g_path_used[i].compare_exchange_strong(expected, true)) continue;
    std::snprintf(g_paths[i], sizeof g_paths[i], "/dev/shm%s", ring_name.c_str());
    return i;
  }
  return -1;
}
void unregister_path(int slot) {
  if (slot >= 0) g_path_used[slot].store(false);
}
int register_pid(pid_t pid) {
  for (int i = 0; i < kSlots; ++i) {
    pid_t expected = 0;
    if (g_pids[i].compare_exchange_strong(expected, pid)) return i;
  }
  return -1;
}
void unregister_pid(int slot) {
  if (slot >= 0) g_pids[slot].store(0);
}

void cleanup_from_signal() {
  for (int i = 0; i < kSlots; ++i) {
    const pid_t p = g_pids[i].load();
    if (p > 0) ::kill(p, SIGKILL);
  }
  for (int i = 0; i < kSlots; ++i)
    if (g_path_used[i].load()) ::unlink(g_paths[i]);
}

void write_err(const char* s) {
  const ssize_t r = ::write(2, s, std::strlen(s));
  (void)r;
}

void on_alarm(int) {
  write_err("\nliveness watchdog: test ");
  write_err(g_current_test);
  write_err(" exceeded its time budget; children killed, rings unlinked\n");
  cleanup_from_signal();
  ::_exit(3);
}

void on_fatal(int sig) {
  cleanup_from_signal();
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

class Watchdog : public ::testing::EmptyTestEventListener {
  void OnTestStart(const ::testing::TestInfo& info) override {
    static std::string name;
    name = std::string(info.test_suite_name()) + "." + info.name();
    g_current_test = name.c_str();
    ::alarm(g_watchdog_s);
  }
  void OnTestEnd(const ::testing::TestInfo&) override { ::alarm(0); }
};

std::vector<std::string> leftovers() {
  std::vector<std::string> out;
  const std::string prefix = name_prefix();
  DIR* d = ::opendir("/dev/shm");
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    if (std::strncmp(e->d_name, prefix.c_str(), prefix.size()) == 0) out.emplace_back(e->d_name);
  }
  ::closedir(d);
  return out;
}

class LeftoverCheck : public ::testing::Environment {
  void TearDown() override {
    for (const std::string& n : leftovers()) {
      ADD_FAILURE() << "object left in /dev/shm: " << n;
      ::unlink(("/dev/shm/" + n).c_str());
    }
  }
};

// Objects of this suite left by a test process that no longer exists (it
// was SIGKILLed, e.g. by a ctest timeout, or stopped by a sanitizer): their
// names carry the creator's pid ("shmlive_<pid>_..."). Removed at start-up.
void remove_orphans() {
  DIR* d = ::opendir("/dev/shm");
  if (d == nullptr) return;
  std::vector<std::string> dead;
  while (dirent* e = ::readdir(d)) {
    int pid = 0;
    if (std::sscanf(e->d_name, "shmlive_%d_", &pid) != 1 || pid <= 0) continue;
    if (::kill(pid, 0) != 0 && errno == ESRCH) dead.emplace_back(e->d_name);
  }
  ::closedir(d);
  for (const std::string& n : dead) ::unlink(("/dev/shm/" + n).c_str());
}

}  // namespace

}  // namespace shmring::live

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define LIVE_SANITIZER_RT 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define LIVE_SANITIZER_RT 1
#endif
#if defined(LIVE_SANITIZER_RT)
extern "C" void __sanitizer_set_death_callback(void (*callback)(void));
#endif

namespace shmring::live {

void install_harness(unsigned watchdog_s) {
  remove_orphans();
#if defined(LIVE_SANITIZER_RT)
  // A sanitizer that stops the process (halt_on_error) still lets us kill
  // the children and unlink the rings.
  __sanitizer_set_death_callback([] { cleanup_from_signal(); });
#endif
  if (const char* e = std::getenv("SHMRING_LIVE_WATCHDOG_S")) watchdog_s = static_cast<unsigned>(std::atoi(e));
  g_watchdog_s = watchdog_s == 0 ? 120 : watchdog_s;
  (void)name_prefix();
  struct sigaction sa {};
  sa.sa_handler = on_alarm;
  ::sigaction(SIGALRM, &sa, nullptr);
  sa.sa_handler = on_fatal;
  sa.sa_flags = SA_RESETHAND;
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGQUIT}) ::sigaction(s, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  ::testing::UnitTest::GetInstance()->listeners().Append(new Watchdog);
  ::testing::AddGlobalTestEnvironment(new LeftoverCheck);
}

bool under_sanitizer() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
  return true;
#else
  return false;
#endif
#else
  return false;
#endif
}

double stress_scale() {
  static const double s = [] {
    if (const char* e = std::getenv("SHMRING_STRESS_SCALE")) {
      const double v = std::strtod(e, nullptr);
      if (v > 0) return v;
    }
    return under_sanitizer() ? 0.25 : 1.0;
  }();
  return s;
}

std::uint64_t scaled(std::uint64_t n, std::uint64_t minimum) {
  const auto v = static_cast<std::uint64_t>(static_cast<double>(n) * stress_scale());
  return std::max(v, minimum);
}

// ---- Names and rings --------------------------------------------------------------

std::string name_prefix() {
  static const std::string p = "shmlive_" + std::to_string(::getpid()) + "_";
  return p;
}

std::string unique_name(std::string_view tag) {
  static std::atomic<unsigned> n{0};
  // (Built with append: GCC 12 warns falsely (-Wrestrict) on "/" + string.)
  std::string s = "/";
  s.append(name_prefix()).append(std::to_string(n.fetch_add(1))).append("_").append(tag);
  return s;
}

TestRing::TestRing(std::string_view tag, Kind kind, WaitStrategy wait, std::size_t capacity)
    : name_(unique_name(tag)) {
  slot_ = register_path(name_);
  Config cfg;
  cfg.kind = kind;
  cfg.wait = wait;
  cfg.capacity = capacity;
  created_ = create(name_, cfg);
}

TestRing::~TestRing() {
  (void)shmring::unlink(name_);
  unregister_path(slot_);
}

// ---- Peers ------------------------------------------------------------------------------

std::string Exit::describe() const {
  std::ostringstream os;
  if (timed_out) os << "killed at the deadline; ";
  if (exited) os << "exit " << code;
  else if (signal != 0) os << "signal " << signal << " (" << strsignal(signal) << ")";
  else os << "not reaped";
  return os.str();
}

const char* peer_path() noexcept { return SHMRING_PEER_PATH; }

std::string find_program(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= p.size()) {
    const std::size_t end = p.find(':', start);
    const std::string dir = p.substr(start, end == std::string::npos ? std::string::npos : end - start);
    const std::string full = (dir.empty() ? std::string(".") : dir) + "/" + name;
    if (::access(full.c_str(), X_OK) == 0) return full;
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return "";
}

Peer::Peer(const std::vector<std::string>& args, const std::string& crash_at,
           const std::vector<std::string>& wrapper) {
  int out[2], in[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return;
  if (::pipe2(in, O_CLOEXEC) != 0) {
    ::close(out[0]);
    ::close(out[1]);
    return;
  }
  // Build argv and envp before fork: the child only calls async-signal-safe
  // functions until execve.
  std::vector<std::string> argv_s(wrapper.begin(), wrapper.end());
  argv_s.emplace_back(SHMRING_PEER_PATH);
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s;
  for (char** e = environ; *e != nullptr; ++e)
    if (std::strncmp(*e, "SHMRING_CRASH_AT=", 17) != 0) env_s.emplace_back(*e);
  if (!crash_at.empty()) env_s.push_back("SHMRING_CRASH_AT=" + crash_at);
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);

  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(98);
    // Move both ends out of the way first (one of them may be fd 0 or 3),
    // then dup2, which clears FD_CLOEXEC on the targets.
    const int o = ::fcntl(out[1], F_DUPFD_CLOEXEC, 10);
    const int i = ::fcntl(in[0], F_DUPFD_CLOEXEC, 10);
    if (o < 0 || i < 0 || ::dup2(o, 3) < 0 || ::dup2(i, 0) < 0) ::_exit(97);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(in[0]);
  if (pid < 0) {
    ::close(out[0]);
    ::close(in[1]);
    return;
  }
  pid_ = pid;
  slot_ = register_pid(pid);
  out_fd_ = out[0];
  in_fd_ = in[1];
  pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

Peer::~Peer() {
  if (pid_ > 0 && !reaped_) {
    ::kill(pid_, SIGKILL);
    int st = 0;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
  }
  unregister_pid(slot_);
  for (int fd : {out_fd_, in_fd_, pidfd_})
    if (fd >= 0) ::close(fd);
}

std::optional<std::string> Peer::line(std::chrono::milliseconds timeout) {
  const std::int64_t deadline = now_ns() + std::chrono::nanoseconds(timeout).count();
  for (;;) {
    const auto nl = buf_.find('\n');
    if (nl != std::string::npos) {
      std::string l = buf_.substr(0, nl);
      buf_.erase(0, nl + 1);
      history_.push_back(l);
      return l;
    }
    if (eof_ || out_fd_ < 0) return std::nullopt;
    const std::int64_t left = deadline - now_ns();
    if (left <= 0) return std::nullopt;
    pollfd p{out_fd_, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left / 1'000'000 + 1, 1'000'000)));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    char tmp[4096];
    const ssize_t n = ::read(out_fd_, tmp, sizeof tmp);
    if (n > 0) buf_.append(tmp, static_cast<std::size_t>(n));
    else if (n == 0 || errno != EINTR) eof_ = true;
  }
}

std::optional<std::string> Peer::line_starting(std::string_view prefix, std::chrono::milliseconds timeout) {
  const std::int64_t deadline = now_ns() + std::chrono::nanoseconds(timeout).count();
  for (;;) {
    const std::int64_t left = deadline - now_ns();
    if (left <= 0) return std::nullopt;
    auto l = line(std::chrono::milliseconds(left / 1'000'000 + 1));
    if (!l) return std::nullopt;
    if (l->compare(0, prefix.size(), prefix) == 0) return l;
  }
}

const std::vector<std::string>& Peer::drain(std::chrono::milliseconds timeout) {
  const std::int64_t deadline = now_ns() + std::chrono::nanoseconds(timeout).count();
  for (;;) {
    const std::int64_t left = deadline - now_ns();
    if (left <= 0) break;
    if (!line(std::chrono::milliseconds(left / 1'000'000 + 1))) break;
  }
  return history_;
}

void Peer::close_stdin() {
  if (in_fd_ >= 0) ::close(in_fd_);
  in_fd_ = -1;
}

void Peer::kill9() {
  if (pid_ > 0 && !reaped_) ::kill(pid_, SIGKILL);
}

Exit Peer::wait(std::chrono::milliseconds timeout) {
  if (pid_ <= 0 || reaped_) return exit_;
  if (pidfd_ >= 0) {
    const std::int64_t deadline = now_ns() + std::chrono::nanoseconds(timeout).count();
    for (;;) {
      const std::int64_t left = deadline - now_ns();
      if (left <= 0) {
        exit_.timed_out = true;
        ::kill(pid_, SIGKILL);
        break;
      }
      pollfd p{pidfd_, POLLIN, 0};
      const int r = ::poll(&p, 1, static_cast<int>(left / 1'000'000 + 1));
      if (r > 0) break;
    }
  }
  int st = 0;
  while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
  }
  reaped_ = true;
  unregister_pid(slot_);
  slot_ = -1;
  if (WIFEXITED(st)) {
    exit_.exited = true;
    exit_.code = WEXITSTATUS(st);
  } else if (WIFSIGNALED(st)) {
    exit_.signal = WTERMSIG(st);
  }
  return exit_;
}

std::vector<std::string> words(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream is(line);
  std::string w;
  while (is >> w) out.push_back(w);
  return out;
}

std::int64_t field(const std::string& line, std::size_t i) {
  const auto w = words(line);
  return i < w.size() ? std::strtoll(w[i].c_str(), nullptr, 10) : 0;
}

TempDir::TempDir() {
  char tmpl[] = "/tmp/shmlive_XXXXXX";
  if (::mkdtemp(tmpl) != nullptr) dir_ = tmpl;
}

TempDir::~TempDir() {
  if (dir_.empty()) return;
  if (DIR* d = ::opendir(dir_.c_str())) {
    while (dirent* e = ::readdir(d)) {
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0)
        ::unlink((dir_ + "/" + e->d_name).c_str());
    }
    ::closedir(d);
  }
  ::rmdir(dir_.c_str());
}

std::int64_t median(std::vector<std::int64_t> v) { return percentile(std::move(v), 0.5); }

std::int64_t percentile(std::vector<std::int64_t> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

std::int64_t run_delay_ns() {
  FILE* f = std::fopen("/proc/thread-self/schedstat", "r");
  if (f == nullptr) return 0;
  unsigned long long cpu = 0, delay = 0;
  const int n = std::fscanf(f, "%llu %llu", &cpu, &delay);
  std::fclose(f);
  return n == 2 ? static_cast<std::int64_t>(delay) : 0;
}

const char* errname(int rc) noexcept {
  switch (rc) {
    case SHMRING_OK: return "OK";
    case SHMRING_EWOULDBLOCK: return "EWOULDBLOCK";
    case SHMRING_ETIMEDOUT: return "ETIMEDOUT";
    case SHMRING_EPEERGONE: return "EPEERGONE";
    case SHMRING_EBUSY: return "EBUSY";
    case SHMRING_EEXIST: return "EEXIST";
    case SHMRING_ENOENT: return "ENOENT";
    case SHMRING_EPERM: return "EPERM";
    case SHMRING_ECORRUPT: return "ECORRUPT";
    case SHMRING_EVERSION: return "EVERSION";
    case SHMRING_ETOOBIG: return "ETOOBIG";
    case SHMRING_ERESET: return "ERESET";
    case SHMRING_EINVAL: return "EINVAL";
    case SHMRING_ENOSPC: return "ENOSPC";
    case SHMRING_ESYSTEM: return "ESYSTEM";
  }
  return "?";
}

}  // namespace shmring::live
