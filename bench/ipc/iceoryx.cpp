// ipc_compare: Eclipse iceoryx (Debian's 2.0.3), publish/subscribe with
// loans, busy-poll.
//
// The sender loans a chunk (UntypedPublisher::loan), builds the record in it
// and publishes it; the subscriber take()s the chunk, the receiver checks it
// in place and release()s it. Sender and receiver busy-poll (take() in a
// loop; publish() waits itself when the queue is full: WAIT_FOR_CONSUMER with
// BLOCK_PRODUCER, so nothing is dropped). The subscriber queue holds the
// ring's 1 MiB budget in records, at most 256 (iceoryx's maximum).
//
// RouDi: ipc_compare starts its own iox-roudi for the first iceoryx case,
// with a private config (mempools for these record sizes, monitoring off) in
// a temporary directory, and stops it at exit (SIGTERM; it also gets SIGTERM
// if ipc_compare dies). RouDi's names are global (/dev/shm/iceoryx_mgmt,
// /dev/shm/<user>, /tmp/roudi, ...): if any of them exists before we start,
// another RouDi may be running and the case is skipped with that reason;
// after ours stops, whatever of them is left is removed.
//
// An iceoryx runtime is one per process and cannot be carried across fork(),
// so the benchmark process has its runtime (initialised at its first case)
// and the peer child execs a fresh ipc_compare (--iox_peer ...) that runs the
// same receiver / echo loop as every other transport.
#include "harness.hpp"

#if SHMRING_BENCH_ICEORYX
#include <pwd.h>
#include <sys/stat.h>

#include "iceoryx_hoofs/log/logmanager.hpp"
#include "iceoryx_posh/mepoo/chunk_header.hpp"
#include "iceoryx_posh/popo/untyped_publisher.hpp"
#include "iceoryx_posh/popo/untyped_subscriber.hpp"
#include "iceoryx_posh/runtime/posh_runtime.hpp"
#endif

namespace ipc {

#if SHMRING_BENCH_ICEORYX
namespace {

std::string find_roudi() {
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/bin:/bin";
  std::size_t a = 0;
  while (a <= p.size()) {
    std::size_t b = p.find(':', a);
    if (b == std::string::npos) b = p.size();
    const std::string cand = p.substr(a, b - a) + "/iox-roudi";
    if (::access(cand.c_str(), X_OK) == 0) return cand;
    a = b + 1;
  }
  return {};
}

// Everything RouDi 2.0.3 creates under a global name.
std::vector<std::string> roudi_paths() {
  std::string user = "root";
  if (const passwd* pw = ::getpwuid(::geteuid())) user = pw->pw_name;
  return {"/dev/shm/iceoryx_mgmt", "/dev/shm/" + user, "/tmp/roudi", "/tmp/roudi.lock", "/tmp/iox-unique-roudi.lock"};
}

bool exists(const std::string& p) {
  struct stat sb{};
  return ::lstat(p.c_str(), &sb) == 0;
}

const char kRoudiConfig[] = R"([general]
version = 1

[[segment]]

[[segment.mempool]]
size = 128
count = 2048

[[segment.mempool]]
size = 1024
count = 1024

[[segment.mempool]]
size = 8192
count = 600

[[segment.mempool]]
size = 66560
count = 300

[[segment.mempool]]
size = 1049600
count = 12
)";

// The daemon of this process: started once, stopped when the process ends
// (a function-local static constructed before the runtime, so destroyed
// after it has deregistered).
class Roudi {
 public:
  static Roudi& get() {
    static Roudi r;
    return r;
  }
  bool ensure(std::string* why) {
    if (pid_ > 0) return true;
    if (!why_.empty()) {  // tried and failed: do not retry for every case
      *why = why_;
      return false;
    }
    why_ = start();
    *why = why_;
    return why_.empty();
  }
  ~Roudi() { stop(); }

 private:
  std::string start() {
    const std::string bin = find_roudi();
    if (bin.empty()) return "iox-roudi not found in PATH (Debian package iceoryx)";
    for (const std::string& p : roudi_paths()) {
      if (exists(p)) return p + " exists: another RouDi may be running (stop it, or remove a stale " + p + ")";
    }
    char tmpl[] = "/tmp/ipc_compare-roudi-XXXXXX";
    if (!::mkdtemp(tmpl)) return std::string("mkdtemp: ") + std::strerror(errno);
    dir_ = tmpl;
    const std::string cfg = dir_ + "/roudi.toml", log = dir_ + "/roudi.log";
    if (FILE* f = std::fopen(cfg.c_str(), "w")) {
      std::fputs(kRoudiConfig, f);
      std::fclose(f);
    }
    std::fflush(nullptr);
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) return std::string("fork: ") + std::strerror(errno);
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(3);
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE}) ::signal(s, SIG_DFL);
      ::execl(bin.c_str(), bin.c_str(), "-c", cfg.c_str(), "-m", "off", "-l", "warning", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    // Ready when it says so (it reserves ~100 MB of shared memory first).
    const std::int64_t until = bench::now_ns() + 20'000'000'000;
    while (bench::now_ns() < until) {
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        const std::string out = read_log();
        cleanup();
        return "iox-roudi exited at start: " + out;
      }
      if (read_log().find("RouDi is ready for clients") != std::string::npos) return {};
      ::usleep(10'000);  // polling a log file, not synchronising data
    }
    stop();
    return "iox-roudi did not become ready within 20 s";
  }
  std::string read_log() const {
    std::string out;
    if (FILE* f = std::fopen((dir_ + "/roudi.log").c_str(), "r")) {
      char buf[512];
      std::size_t n;
      while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
      std::fclose(f);
    }
    while (!out.empty() && (out.back() == '\n')) out.pop_back();
    return out;
  }
  void stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      const std::int64_t until = bench::now_ns() + 10'000'000'000;
      int st = 0;
      while (::waitpid(pid_, &st, WNOHANG) == 0) {
        if (bench::now_ns() > until) {
          ::kill(pid_, SIGKILL);
          ::waitpid(pid_, &st, 0);
          break;
        }
        ::usleep(10'000);
      }
      pid_ = -1;
    }
    cleanup();
  }
  // Only after our own RouDi ran (start() refused to run over existing names).
  void cleanup() {
    if (dir_.empty()) return;
    for (const std::string& p : roudi_paths()) ::unlink(p.c_str());
    ::unlink((dir_ + "/roudi.toml").c_str());
    ::unlink((dir_ + "/roudi.log").c_str());
    ::rmdir(dir_.c_str());
    dir_.clear();
  }

  pid_t pid_ = -1;
  std::string dir_, why_;
};

// This process's runtime, once (after RouDi is ready): "bench" in the
// benchmark process, "peer" in an exec'd peer.
void init_runtime(const char* role) {
  static bool done = false;
  if (done) return;
  // Warnings and errors only (the runtime logs every shutdown at verbose).
  iox::log::LogManager::GetLogManager().SetDefaultLogLevel(iox::log::LogLevel::kWarn, iox::log::LogLevelOutput::kHideLogLevel);
  const std::string name = std::string("ipc_compare_") + role + "_" + std::to_string(::getpid());
  iox::runtime::PoshRuntime::initRuntime(iox::RuntimeName_t(iox::cxx::TruncateToCapacity, name.c_str(), name.size()));
  done = true;
}

// (The (pointer, count) constructors: with a bare pointer, GCC warns about
// the copy of a string shorter than the capacity.)
iox::capro::IdString_t id_string(const std::string& s) {
  return iox::capro::IdString_t(iox::cxx::TruncateToCapacity, s.c_str(), s.size());
}

iox::capro::ServiceDescription service(const std::string& id) {
  return {id_string("ipc_compare"), id_string(id), id_string("records")};
}

std::uint64_t subscriber_depth(const Case& c) {
  return std::clamp<std::uint64_t>(buffer_bytes(c) / c.size, 4, iox::MAX_SUBSCRIBER_QUEUE_CAPACITY);
}

struct IoxChannel {
  std::string id;  // the service's instance name, unique per channel
  std::size_t size = 0;
  std::size_t depth = 0;

  bool create(const Case& c, std::string* err) {
    if (!Roudi::get().ensure(err)) {
      *err = "skipped: " + *err;
      return false;
    }
    static unsigned counter = 0;
    id = std::to_string(::getpid()) + "-" + std::to_string(counter++);
    size = c.size;
    depth = subscriber_depth(c);
    return true;
  }
  void keep_sender() {}
  void keep_receiver() {}
  void unlink_name() {}

  // In the forked child: become a fresh ipc_compare running the receiver.
  int exec_receiver(const Case& c, std::uint64_t warm, int ctl) {
    return exec_peer("receiver", c, warm, 0, ctl, id, "");
  }
  int exec_echo(const IoxChannel& back, const Case& c, std::uint64_t warm, std::uint64_t n, int ctl) {
    return exec_peer("echo", c, warm, n, ctl, id, back.id);
  }
  int exec_peer(const char* role, const Case& c, std::uint64_t warm, std::uint64_t n, int ctl, const std::string& a,
                const std::string& b) {
    ::fcntl(ctl, F_SETFD, 0);  // the control pipe survives the exec
    const std::vector<std::string> args = {
        "ipc_compare", "--iox_peer", role,           std::to_string(c.size),  std::to_string(depth),
        std::to_string(warm), std::to_string(n), std::to_string(ctl), std::to_string(g_abort_fd), a, b};
    std::vector<char*> argv;
    for (const auto& s : args) argv.push_back(const_cast<char*>(s.c_str()));
    argv.push_back(nullptr);
    ::execv("/proc/self/exe", argv.data());
    const std::string why = std::string("exec /proc/self/exe: ") + std::strerror(errno);
    bench::send_msg(ctl, Msg::error, 0, why.c_str());
    return 1;
  }
};

class IoxTx {
 public:
  bool open(IoxChannel& ch, std::string*) {
    init_runtime("bench");
    iox::popo::PublisherOptions o;
    o.historyCapacity = 0;
    o.subscriberTooSlowPolicy = iox::popo::ConsumerTooSlowPolicy::WAIT_FOR_CONSUMER;
    pub_.emplace(service(ch.id), o);
    return true;
  }
  std::byte* begin(std::size_t n) {
    if (!connected_) {
      // Discovery is RouDi's job and takes a moment: a record published
      // before the subscriber is connected would be dropped.
      const std::int64_t until = bench::now_ns() + 30'000'000'000;
      if (!spin_until([&] { return pub_->hasSubscribers() || bench::now_ns() > until; }) || !pub_->hasSubscribers()) {
        err_ = "iceoryx: no subscriber connected within 30 s";
        return nullptr;
      }
      connected_ = true;
    }
    void* p = nullptr;
    bool loaned = spin_until([&] {
      auto r = pub_->loan(static_cast<std::uint32_t>(n), 8);
      if (r.has_error()) return false;  // out of chunks for a moment
      p = r.value();
      return true;
    });
    if (!loaned) {
      err_ = "stopped: the peer failed";
      return nullptr;
    }
    chunk_ = p;
    return static_cast<std::byte*>(p);
  }
  bool commit(std::size_t) {
    pub_->publish(chunk_);
    chunk_ = nullptr;
    return true;
  }
  bool flush() { return true; }
  const std::string& err() const { return err_; }

 private:
  std::optional<iox::popo::UntypedPublisher> pub_;
  bool connected_ = false;
  void* chunk_ = nullptr;
  std::string err_;
};

class IoxRx {
 public:
  bool open(IoxChannel& ch, std::string*) {
    init_runtime("bench");
    iox::popo::SubscriberOptions o;
    o.queueCapacity = ch.depth;
    o.historyRequest = 0;
    o.queueFullPolicy = iox::popo::QueueFullPolicy::BLOCK_PRODUCER;
    sub_.emplace(service(ch.id), o);
    return true;
  }
  template <class F>
  bool poll(F&& f) {
    const void* p = nullptr;
    const bool got = spin_until([&] {
      auto r = sub_->take();
      if (r.has_error()) return false;  // NO_CHUNK_AVAILABLE (or too many held: not here)
      p = r.value();
      return true;
    });
    if (!got) {
      err_ = "stopped: the peer failed";
      return false;
    }
    const std::size_t len = iox::mepoo::ChunkHeader::fromUserPayload(p)->userPayloadSize();
    const bool ok = f(static_cast<const std::byte*>(p), len);
    sub_->release(p);
    return ok;
  }
  const std::string& err() const { return err_; }

 private:
  std::optional<iox::popo::UntypedSubscriber> sub_;
  std::string err_;
};

}  // namespace

bool iceoryx_available(std::string* why) {
  if (find_roudi().empty()) {
    *why = "iox-roudi not found in PATH (Debian package iceoryx)";
    return false;
  }
  return true;
}

void run_iceoryx(benchmark::State& st, const Case& c) { run_case<IoxChannel, IoxTx, IoxRx>(st, c); }

// ipc_compare --iox_peer ROLE SIZE DEPTH WARM N CTL_FD STOP_FD ID [BACK_ID]
int iceoryx_peer_main(int argc, char** argv) {
  if (argc < 11) return 2;
  const std::string role = argv[2];
  IoxChannel there, back;
  there.size = back.size = std::stoull(argv[3]);
  there.depth = back.depth = std::stoull(argv[4]);
  const std::uint64_t warm = std::stoull(argv[5]), n = std::stoull(argv[6]);
  const int ctl = std::stoi(argv[7]);
  init_abort_flag(std::stoi(argv[8]));
  ::signal(SIGPIPE, SIG_IGN);
  there.id = argv[9];
  back.id = argv[10];
  init_runtime("peer");
  if (role == "receiver") return throughput_receiver<IoxChannel, IoxRx>(there, there.size, warm, ctl);
  return pingpong_echo<IoxChannel, IoxTx, IoxRx>(there, back, there.size, warm, n, ctl);
}

#else

bool iceoryx_available(std::string* why) {
  *why = "ipc_compare was built without iceoryx (libiceoryx-posh-dev missing when configured)";
  return false;
}

void run_iceoryx(benchmark::State& st, const Case&) { fail(st, "skipped: built without iceoryx"); }

int iceoryx_peer_main(int, char**) { return 2; }

#endif

}  // namespace ipc
