// Helpers shared by the benchmark binaries: clocks, CPU pinning, object names
// that are always unlinked, forked peers with a control pipe, percentiles.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <mqueue.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

namespace bench {

// ---- Clocks -------------------------------------------------------------------

inline std::int64_t now_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// Cheap timestamps for per-round-trip samples: the TSC where it is invariant
// (constant_tsc + nonstop_tsc), calibrated once against CLOCK_MONOTONIC;
// CLOCK_MONOTONIC otherwise. Only differences taken on one thread are used.
class Ticks {
 public:
  static Ticks& get() {
    static Ticks t;
    return t;
  }
  std::uint64_t now() const noexcept {
#if defined(__x86_64__)
    if (use_tsc_) {
      unsigned aux;
      return __rdtscp(&aux);
    }
#endif
    return static_cast<std::uint64_t>(now_ns());
  }
  double ns_per_tick() const noexcept { return ns_per_tick_; }
  const char* source() const noexcept { return use_tsc_ ? "rdtscp (calibrated)" : "clock_gettime(CLOCK_MONOTONIC)"; }

 private:
  Ticks() {
#if defined(__x86_64__)
    use_tsc_ = cpu_flag("constant_tsc") && cpu_flag("nonstop_tsc");
    if (use_tsc_) {
      unsigned aux;
      const std::int64_t t0 = now_ns();
      const std::uint64_t c0 = __rdtscp(&aux);
      while (now_ns() - t0 < 20'000'000) {
      }
      const std::int64_t t1 = now_ns();
      const std::uint64_t c1 = __rdtscp(&aux);
      ns_per_tick_ = static_cast<double>(t1 - t0) / static_cast<double>(c1 - c0);
    }
#endif
  }
  static bool cpu_flag(const char* flag) {
    FILE* f = std::fopen("/proc/cpuinfo", "r");
    if (!f) return false;
    char line[8192];
    bool found = false;
    while (!found && std::fgets(line, sizeof line, f)) {
      if (std::strncmp(line, "flags", 5) != 0) continue;
      const std::size_t n = std::strlen(flag);
      for (char* p = std::strstr(line, flag); p; p = std::strstr(p + 1, flag)) {
        if ((p[-1] == ' ' || p[-1] == '\t') && (p[n] == ' ' || p[n] == '\n' || p[n] == 0)) found = true;
      }
      break;
    }
    std::fclose(f);
    return found;
  }
  bool use_tsc_ = false;
  double ns_per_tick_ = 1.0;
};

// Percentile q (0..1) of unsorted tick samples, in ns (nearest rank).
struct Percentiles {
  double p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0, mean = 0;
};
inline Percentiles percentiles(std::vector<std::uint64_t>& v) {
  Percentiles r;
  if (v.empty()) return r;
  std::sort(v.begin(), v.end());
  const double k = Ticks::get().ns_per_tick();
  auto at = [&](double q) {
    std::size_t i = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size())));
    i = i == 0 ? 0 : i - 1;
    return static_cast<double>(v[std::min(i, v.size() - 1)]) * k;
  };
  r.p50 = at(0.50);
  r.p90 = at(0.90);
  r.p99 = at(0.99);
  r.p999 = at(0.999);
  r.max = static_cast<double>(v.back()) * k;
  long double sum = 0;
  for (auto x : v) sum += x;
  r.mean = static_cast<double>(sum / v.size()) * k;
  return r;
}

// ---- CPU pinning ------------------------------------------------------------------

inline bool pin_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return ::sched_setaffinity(0, sizeof set, &set) == 0;
}

// Pins the calling thread for a scope and restores its mask afterwards.
class ScopedPin {
 public:
  explicit ScopedPin(int cpu) {
    ::sched_getaffinity(0, sizeof old_, &old_);
    if (cpu >= 0) ok_ = pin_to_cpu(cpu);
  }
  ~ScopedPin() { ::sched_setaffinity(0, sizeof old_, &old_); }
  ScopedPin(const ScopedPin&) = delete;
  ScopedPin& operator=(const ScopedPin&) = delete;
  bool ok() const { return ok_; }

 private:
  cpu_set_t old_{};
  bool ok_ = true;
};

// ---- Names that never outlive the benchmark -------------------------------------------
//
// Every object a case creates gets a unique name "/shmring-bench-<pid>-<n>".
// A NameGuard removes it on scope exit; a signal handler removes every armed
// one on SIGINT/SIGTERM/... (async-signal-safe unlink/mq_unlink); and at start
// sweep_stale() removes /dev/shm leftovers of benchmark processes that died
// by SIGKILL.

enum class ObjKind { shm, mq };

namespace detail {
struct Armed {
  std::atomic<int> state{0};  // 0 free, 1 armed
  ObjKind kind = ObjKind::shm;
  char path[96] = {};  // /dev/shm/<name> for shm; /<name> for mq
};
inline Armed g_armed[64];

inline void remove_path(ObjKind k, const char* path) {
  if (k == ObjKind::shm) {
    ::unlink(path);
  } else {
    // mq_unlink is the mq_unlink(2) system call (async-signal-safe in practice).
    ::mq_unlink(path);
  }
}

inline void on_fatal_signal(int sig) {
  for (auto& a : g_armed) {
    if (a.state.load() == 1) remove_path(a.kind, a.path);
  }
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}
}  // namespace detail

inline void install_cleanup_handlers() {
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGSEGV, SIGABRT, SIGBUS}) ::signal(s, detail::on_fatal_signal);
  ::signal(SIGPIPE, SIG_IGN);
}

inline std::string unique_name(const char* tag) {
  static std::atomic<unsigned> counter{0};
  char buf[80];
  std::snprintf(buf, sizeof buf, "/shmring-bench-%d-%u-%s", static_cast<int>(::getpid()), counter.fetch_add(1), tag);
  return buf;
}

class NameGuard {
 public:
  NameGuard() = default;
  NameGuard(ObjKind k, const std::string& name) { arm(k, name); }
  ~NameGuard() { release(); }
  NameGuard(const NameGuard&) = delete;
  NameGuard& operator=(const NameGuard&) = delete;
  void arm(ObjKind k, const std::string& name) {
    release();
    for (auto& a : detail::g_armed) {
      int zero = 0;
      if (a.state.compare_exchange_strong(zero, 2)) {
        a.kind = k;
        std::snprintf(a.path, sizeof a.path, "%s%s", k == ObjKind::shm ? "/dev/shm" : "", name.c_str());
        a.state.store(1);
        slot_ = &a;
        return;
      }
    }
  }
  // Removes the name now (open handles keep working).
  void release() {
    if (!slot_) return;
    detail::remove_path(slot_->kind, slot_->path);
    slot_->state.store(0);
    slot_ = nullptr;
  }

 private:
  detail::Armed* slot_ = nullptr;
};

// Removes /dev/shm/shmring-bench-<pid>-* left by benchmark processes that no
// longer exist (killed with SIGKILL before they could unlink).
inline void sweep_stale() {
  DIR* d = ::opendir("/dev/shm");
  if (!d) return;
  while (dirent* e = ::readdir(d)) {
    int pid = 0;
    if (std::sscanf(e->d_name, "shmring-bench-%d-", &pid) != 1 || pid <= 0) continue;
    if (pid == ::getpid() || (::kill(pid, 0) != 0 && errno == ESRCH)) {
      std::string p = std::string("/dev/shm/") + e->d_name;
      ::unlink(p.c_str());
    }
  }
  ::closedir(d);
}

// ---- Forked peers ------------------------------------------------------------------

// Child -> parent messages on the control pipe (one write each, < PIPE_BUF).
struct Msg {
  enum Kind : std::uint32_t { ready = 1, warm = 2, done = 3, error = 4 } kind;
  std::uint64_t value;  // records received (done), ...
  std::int64_t t_ns;    // CLOCK_MONOTONIC at the event
  std::uint64_t extra[6];
  char text[200];
};

inline bool write_all(int fd, const void* p, std::size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t w = ::write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    c += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

inline bool read_all(int fd, void* p, std::size_t n) {
  char* c = static_cast<char*>(p);
  while (n > 0) {
    const ssize_t r = ::read(fd, c, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    c += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

inline void send_msg(int fd, Msg::Kind k, std::uint64_t value = 0, const char* text = nullptr) {
  Msg m{};
  m.kind = k;
  m.value = value;
  m.t_ns = now_ns();
  if (text) std::snprintf(m.text, sizeof m.text, "%s", text);
  (void)write_all(fd, &m, sizeof m);
}

// A forked peer: runs body() in the child (pinned to `cpu` unless -1), which
// returns 0 on success; the child always leaves with _exit, so nothing of the
// parent (benchmark framework, atexit handlers, stdio buffers) runs in it.
class Peer {
 public:
  Peer() = default;
  ~Peer() { reap(); }
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;

  // Returns false (with err) if the fork failed. `close_in_child` are parent
  // descriptors the child must not keep.
  template <class Body>
  bool start(int cpu, Body&& body, std::string* err) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      *err = std::string("pipe: ") + std::strerror(errno);
      return false;
    }
    const pid_t parent = ::getpid();
    std::fflush(nullptr);
    pid_ = ::fork();
    if (pid_ < 0) {
      *err = std::string("fork: ") + std::strerror(errno);
      ::close(fds[0]);
      ::close(fds[1]);
      return false;
    }
    if (pid_ == 0) {
      ::close(fds[0]);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(3);
      for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) ::signal(s, SIG_DFL);
      ctl_ = fds[1];
      if (cpu >= 0 && !pin_to_cpu(cpu)) {
        send_msg(ctl_, Msg::error, 0, "sched_setaffinity failed in the child");
        ::_exit(2);
      }
      int rc = 1;
      try {
        rc = body(ctl_);
      } catch (const std::exception& e) {
        send_msg(ctl_, Msg::error, 0, e.what());
      } catch (...) {
        send_msg(ctl_, Msg::error, 0, "unknown exception in the child");
      }
      ::_exit(rc);
    }
    ::close(fds[1]);
    ctl_ = fds[0];
    return true;
  }

  // Waits for the next message; false (with err) on timeout, EOF or error message.
  bool wait(Msg::Kind want, Msg* out, int timeout_ms, std::string* err) {
    pollfd p{ctl_, POLLIN, 0};
    int rc;
    do {
      rc = ::poll(&p, 1, timeout_ms);
    } while (rc < 0 && errno == EINTR);
    if (rc == 0) {
      *err = "peer did not answer within " + std::to_string(timeout_ms) + " ms";
      return false;
    }
    Msg m{};
    if (!read_all(ctl_, &m, sizeof m)) {
      *err = "peer exited without a report";
      collect_status(err);
      return false;
    }
    if (m.kind == Msg::error) {
      *err = std::string("peer: ") + m.text;
      return false;
    }
    if (m.kind != want) {
      *err = "unexpected message from peer";
      return false;
    }
    if (out) *out = m;
    return true;
  }

  // Waits (bounded) for the child to exit, then kills it if needed.
  int reap(int timeout_ms = 5000) {
    if (ctl_ >= 0) {
      ::close(ctl_);
      ctl_ = -1;
    }
    if (pid_ <= 0) return status_;
    const std::int64_t until = now_ns() + std::int64_t{timeout_ms} * 1'000'000;
    for (;;) {
      int st = 0;
      const pid_t r = ::waitpid(pid_, &st, WNOHANG);
      if (r == pid_) {
        status_ = st;
        break;
      }
      if (r < 0 && errno != EINTR) break;
      if (now_ns() > until) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &st, 0);
        status_ = st;
        break;
      }
      ::usleep(1000);
    }
    pid_ = -1;
    return status_;
  }
  bool exited_ok() { return WIFEXITED(status_) && WEXITSTATUS(status_) == 0; }
  pid_t pid() const { return pid_; }

 private:
  void collect_status(std::string* err) {
    reap(2000);
    if (WIFSIGNALED(status_)) *err += " (killed by signal " + std::to_string(WTERMSIG(status_)) + ")";
    if (WIFEXITED(status_)) *err += " (exit status " + std::to_string(WEXITSTATUS(status_)) + ")";
  }
  pid_t pid_ = -1;
  int ctl_ = -1;
  int status_ = 0;
};

// ---- Records ---------------------------------------------------------------------
//
// Every record is at least 8 bytes: [0,8) its sequence number; records of 16
// bytes or more also carry seq ^ kTailMangle in their last 8 bytes, so a torn
// or stale record shows. The producer writes every byte of every record
// (memcpy from a template, then the two stamps); the receiver checks both
// stamps of every record.

inline constexpr std::uint64_t kTailMangle = 0x5a5a'1234'8765'a5a5ULL;

inline void stamp(std::byte* rec, std::size_t size, std::uint64_t seq) noexcept {
  std::memcpy(rec, &seq, 8);
  if (size >= 16) {
    const std::uint64_t t = seq ^ kTailMangle;
    std::memcpy(rec + size - 8, &t, 8);
  }
}

inline bool check(const std::byte* rec, std::size_t len, std::size_t size, std::uint64_t want) noexcept {
  if (len != size) return false;
  std::uint64_t s;
  std::memcpy(&s, rec, 8);
  if (s != want) return false;
  if (size >= 16) {
    std::uint64_t t;
    std::memcpy(&t, rec + size - 8, 8);
    if (t != (want ^ kTailMangle)) return false;
  }
  return true;
}

inline std::string describe_bad(const std::byte* rec, std::size_t len, std::size_t size, std::uint64_t want) {
  std::uint64_t s = 0;
  if (len >= 8) std::memcpy(&s, rec, 8);
  char buf[160];
  std::snprintf(buf, sizeof buf, "record %llu: got length %zu (expected %zu), sequence %llu%s",
                static_cast<unsigned long long>(want), len, size, static_cast<unsigned long long>(s),
                s == want ? " with a torn tail" : (s < want ? " (duplicate or reordered)" : " (records lost)"));
  return buf;
}

inline std::vector<std::byte> make_template(std::size_t size) {
  std::vector<std::byte> t(size);
  for (std::size_t i = 0; i < size; ++i) t[i] = static_cast<std::byte>((i * 131 + 7) & 0xff);
  return t;
}

inline std::string size_label(std::size_t n) { return std::to_string(n); }

// "--name=value" flags of our own, removed from argv before Google Benchmark
// sees it.
inline bool take_flag(int* argc, char** argv, const char* name, std::string* value) {
  const std::size_t n = std::strlen(name);
  for (int i = 1; i < *argc; ++i) {
    if (std::strncmp(argv[i], name, n) == 0 && argv[i][n] == '=') {
      *value = argv[i] + n + 1;
      for (int j = i; j + 1 < *argc; ++j) argv[j] = argv[j + 1];
      --*argc;
      return true;
    }
  }
  return false;
}

inline std::string cpu_model() {
  FILE* f = std::fopen("/proc/cpuinfo", "r");
  if (!f) return "unknown";
  char line[512];
  std::string model = "unknown";
  while (std::fgets(line, sizeof line, f)) {
    if (std::strncmp(line, "model name", 10) == 0) {
      const char* c = std::strchr(line, ':');
      if (c) {
        model = c + 2;
        while (!model.empty() && (model.back() == '\n' || model.back() == ' ')) model.pop_back();
      }
      break;
    }
  }
  std::fclose(f);
  return model;
}

// ---- Running with the fixed names -------------------------------------------------
//
// Google Benchmark appends "/real_time" and "/iterations:N" to the name of a
// case registered with UseRealTime() or Iterations(). The names are a fixed
// contract (shared/design.md), so the reporters below print them without
// those suffixes, and run_benchmarks() widens a filter's "$" anchors to
// accept them.

template <class Base>
class CleanNames : public Base {
 public:
  using Base::Base;
  void ReportRuns(const std::vector<benchmark::BenchmarkReporter::Run>& runs) override {
    std::vector<benchmark::BenchmarkReporter::Run> copy = runs;
    for (auto& r : copy) {
      r.run_name.time_type.clear();
      r.run_name.iterations.clear();
    }
    Base::ReportRuns(copy);
  }
};

inline std::unique_ptr<benchmark::BenchmarkReporter> make_reporter(const std::string& format, bool tabular) {
  if (format == "json") return std::make_unique<CleanNames<benchmark::JSONReporter>>();
  int opts = tabular ? benchmark::ConsoleReporter::OO_Tabular : benchmark::ConsoleReporter::OO_None;
  if (::isatty(1)) opts |= benchmark::ConsoleReporter::OO_Color;
  return std::make_unique<CleanNames<benchmark::ConsoleReporter>>(
      static_cast<benchmark::ConsoleReporter::OutputOptions>(opts));
}

// A filter sees the long names; an end anchor "$" is widened so that
// "throughput/ring_spsc/64$" still matches "throughput/ring_spsc/64/real_time".
inline std::string widen_anchors(const std::string& re) {
  std::string out;
  for (std::size_t i = 0; i < re.size(); ++i) {
    if (re[i] == '$' && (i == 0 || re[i - 1] != '\\')) {
      out += "(/iterations:[0-9]+)?(/real_time|/manual_time)?$";
    } else {
      out += re[i];
    }
  }
  return out;
}

// Initialize + RunSpecifiedBenchmarks with the name-cleaning reporters
// (formats: console, json; --benchmark_out with --benchmark_out_format).
inline int run_benchmarks(int argc, char** argv) {
  std::string format = "console", out, out_format = "json";
  bool tabular = false;
  static std::string filter;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--benchmark_filter=", 0) == 0) {
      filter = "--benchmark_filter=" + widen_anchors(a.substr(19));
      argv[i] = filter.data();
    }
    auto val = [&](const char* f) { return a.substr(std::strlen(f)); };
    if (a.rfind("--benchmark_format=", 0) == 0) format = val("--benchmark_format=");
    if (a.rfind("--benchmark_out=", 0) == 0) out = val("--benchmark_out=");
    if (a.rfind("--benchmark_out_format=", 0) == 0) out_format = val("--benchmark_out_format=");
    if (a == "--benchmark_counters_tabular" || a == "--benchmark_counters_tabular=true") tabular = true;
  }
  for (const std::string& f : {format, out_format}) {
    if (f != "console" && f != "json") {
      std::fprintf(stderr, "%s: format '%s' not supported (console or json)\n", argv[0], f.c_str());
      return 1;
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  auto display = make_reporter(format, tabular);
  std::unique_ptr<benchmark::BenchmarkReporter> file;
  if (!out.empty()) file = make_reporter(out_format, false);
  benchmark::RunSpecifiedBenchmarks(display.get(), file.get());
  benchmark::Shutdown();
  return 0;
}

}  // namespace bench
