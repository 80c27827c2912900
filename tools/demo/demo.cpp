// shmring_demo: the headline job until the benchmark suite lands.
//
// One process streams fixed-size records to another (fork; the child opens
// the ring by name) through an spsc ring, and then the same records through a
// pipe, and prints records/s and MB/s for each with the ratio ring/pipe.
//
// Two styles, each run on both transports so that like is compared with like:
//  - per record: the ring publishes every commit and every release; the pipe
//    does one write() per record (what a message-passing application does).
//  - batched: the ring publishes its commits and releases once per --batch
//    bytes of records (Publish::later, then one index store); the pipe packs
//    the same number of bytes into one write().
//
// Honesty rules:
//  - Every record carries its sequence number in its first 8 bytes and a
//    mangled copy in its last 8, and its payload has a known checksum. The
//    receiver checks all three in every record, reading every byte, so nobody
//    is credited for bytes that were not delivered, delivered twice, out of
//    order or torn. The terminator record carries the producer's count, which
//    must equal what the receiver counted.
//  - Both producers write every byte of every record once (the ring into the
//    reserved space, the batched pipe into its batch buffer; the per-record
//    pipe hands its record to write(), which copies it).
//  - The clock starts in the producer after the receiver said it is ready and
//    stops in the receiver when the terminator arrives (CLOCK_MONOTONIC is
//    one clock for both processes).
//  - The pipe gets the help a careful application would give it: a larger
//    pipe buffer and large reads (both printed, both flags).
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "shmring/shmring.hpp"

namespace {

constexpr std::uint64_t kEnd = ~std::uint64_t{0};               // terminator sequence number
constexpr std::uint64_t kTailMangle = 0x5a5a'1234'8765'a5a5ULL;  // tail copy = seq ^ this
constexpr std::size_t kMinRecord = 24;                           // seq, count, tail copy
// A peer that makes no progress for this long is broken: fail, never hang.
const std::chrono::nanoseconds kStallTimeout = std::chrono::seconds(10);

enum class Style { per_record, batched, both };

struct Options {
  std::vector<std::size_t> sizes{64, 4096};
  double seconds = 1.0;        // per case, unless count is set
  std::uint64_t count = 0;     // records per case; 0 = run for `seconds`
  std::size_t capacity = std::size_t{1} << 20;
  Style style = Style::both;
  std::size_t batch = 64 * 1024;                 // bytes per publish / write() when batched
  std::size_t pipe_size = std::size_t{1} << 20;  // F_SETPIPE_SZ; 0 = kernel default
  std::size_t read_chunk = 256 * 1024;           // bytes per read() on the pipe
  bool pin = true;
};

std::int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// ---- The ring's name: unlinked on every exit path -----------------------------

// "/dev/shm/<name>", kept in a static buffer so that a signal handler can
// remove it with async-signal-safe unlink(2).
char g_shm_path[256];
volatile sig_atomic_t g_shm_armed = 0;

void on_fatal_signal(int sig) {
  if (g_shm_armed) ::unlink(g_shm_path);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

// Owns a ring name: unlinks it when asked, on scope exit, and (through the
// handler above) on SIGINT, SIGTERM, SIGHUP and SIGQUIT.
class RingName {
 public:
  explicit RingName(std::string name) : name_(std::move(name)) {
    std::snprintf(g_shm_path, sizeof g_shm_path, "/dev/shm%s", name_.c_str());
  }
  ~RingName() { unlink(); }
  RingName(const RingName&) = delete;
  RingName& operator=(const RingName&) = delete;
  void arm() { g_shm_armed = 1; }
  void unlink() {
    if (g_shm_armed) {
      (void)shmring::unlink(name_);
      g_shm_armed = 0;
    }
  }
  const std::string& str() const { return name_; }

 private:
  std::string name_;
};

// ---- Records -----------------------------------------------------------------
//
//   [0, 8)        sequence number (kEnd for the terminator)
//   [8, 16)       0, or in the terminator: the number of records sent before it
//   [16, size-8)  payload: a fixed pattern with a known checksum
//   [size-8, size) sequence number ^ kTailMangle (a torn record shows here)

void stamp(std::byte* rec, std::size_t size, std::uint64_t seq, std::uint64_t count) {
  const std::uint64_t tail = seq ^ kTailMangle;
  std::memcpy(rec, &seq, 8);
  std::memcpy(rec + 8, &count, 8);
  std::memcpy(rec + size - 8, &tail, 8);
}

std::vector<std::byte> make_template(std::size_t size) {
  std::vector<std::byte> t(size);
  for (std::size_t i = 0; i < size; ++i) t[i] = static_cast<std::byte>((i * 131 + 7) & 0xff);
  return t;
}

// Reads every payload byte (8 at a time; sizes are multiples of 8).
std::uint64_t payload_sum(const std::byte* rec, std::size_t size) {
  std::uint64_t sum = 0;
  for (std::size_t off = 16; off + 8 <= size - 8; off += 8) {
    std::uint64_t w;
    std::memcpy(&w, rec + off, 8);
    sum += w;
  }
  return sum;
}

// Checks one record; returns false with a message when it is not the expected one.
struct Checker {
  std::size_t size;
  std::uint64_t want_sum;
  std::uint64_t expected = 0;  // next sequence number = records accepted so far
  bool done = false;
  char msg[200] = {};

  explicit Checker(std::size_t sz) : size(sz), want_sum(payload_sum(make_template(sz).data(), sz)) {}

  bool check(const std::byte* rec, std::size_t len) {
    if (len != size) {
      std::snprintf(msg, sizeof msg, "record %" PRIu64 ": length %zu, expected %zu", expected, len, size);
      return false;
    }
    std::uint64_t seq = 0, count = 0, tail = 0;
    std::memcpy(&seq, rec, 8);
    std::memcpy(&count, rec + 8, 8);
    std::memcpy(&tail, rec + size - 8, 8);
    if (tail != (seq ^ kTailMangle) || payload_sum(rec, size) != want_sum) {
      std::snprintf(msg, sizeof msg, "record %" PRIu64 ": torn or corrupt (head seq %" PRIu64 ", tail copy %" PRIu64 ")",
                    expected, seq, tail ^ kTailMangle);
      return false;
    }
    if (seq == kEnd) {
      if (count != expected) {
        std::snprintf(msg, sizeof msg, "producer sent %" PRIu64 " records, %" PRIu64 " arrived", count, expected);
        return false;
      }
      done = true;
      return true;
    }
    if (seq != expected || count != 0) {
      std::snprintf(msg, sizeof msg, "expected record %" PRIu64 ", got %" PRIu64 " (%s)", expected, seq,
                    seq < expected ? "duplicate or reordered" : "records lost");
      return false;
    }
    ++expected;
    return true;
  }
};

// ---- Child -> parent messages --------------------------------------------------

struct Message {
  enum Kind : std::uint32_t { ready = 1, result = 2, error = 3 } kind;
  std::uint64_t records;
  std::int64_t end_ns;
  char text[200];
};

bool write_all(int fd, const void* p, std::size_t n) {
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

bool read_all(int fd, void* p, std::size_t n) {
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

void send_msg(int fd, Message::Kind k, std::uint64_t records, std::int64_t end_ns, const char* text) {
  Message m{};
  m.kind = k;
  m.records = records;
  m.end_ns = end_ns;
  std::snprintf(m.text, sizeof m.text, "%s", text ? text : "");
  (void)write_all(fd, &m, sizeof m);
}

// ---- CPU pinning -------------------------------------------------------------

bool g_pinned = false;

bool can_pin() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return false;
  return CPU_ISSET(0, &set) && CPU_ISSET(1, &set);
}

void pin_to(int cpu) {
  if (!g_pinned) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  (void)::sched_setaffinity(0, sizeof set, &set);
}

// ---- One case ----------------------------------------------------------------

struct CaseResult {
  bool ok = false;
  std::uint64_t records = 0;
  double seconds = 0;
  std::string error;
};

// Forks the receiver, waits for its "ready", runs the producer, collects the
// receiver's result. `receiver(fd)` runs in the child and reports on fd
// through send_msg; `producer(&err)` runs in the parent and returns the
// number of records it sent before the terminator (or sets err).
template <class Receiver, class Producer>
CaseResult run_case(Receiver&& receiver, Producer&& producer, int close_in_child, int close_in_parent,
                    RingName* ring) {
  CaseResult res;
  int msg_pipe[2];
  if (::pipe2(msg_pipe, O_CLOEXEC) != 0) {
    res.error = std::string("pipe: ") + std::strerror(errno);
    return res;
  }
  std::fflush(stdout);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    res.error = std::string("fork: ") + std::strerror(errno);
    ::close(msg_pipe[0]);
    ::close(msg_pipe[1]);
    return res;
  }
  if (pid == 0) {
    // Receiver. Dies with the parent, never outlives it.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(3);
    g_shm_armed = 0;  // the parent owns the name
    ::close(msg_pipe[0]);
    if (close_in_child >= 0) ::close(close_in_child);
    pin_to(1);
    receiver(msg_pipe[1]);
    ::_exit(0);
  }
  ::close(msg_pipe[1]);
  if (close_in_parent >= 0) ::close(close_in_parent);
  Message m{};
  const bool got_ready = read_all(msg_pipe[0], &m, sizeof m);
  // Both sides are attached (or the receiver failed): the name is not needed
  // any more, so from here on nothing can be left behind in /dev/shm.
  if (ring != nullptr) ring->unlink();
  if (!got_ready || m.kind != Message::ready) {
    res.error = got_ready ? std::string("receiver: ") + m.text : "receiver died before it was ready";
  } else {
    std::string perr;
    const std::int64_t t0 = now_ns();
    const std::uint64_t sent = producer(&perr);
    if (!perr.empty()) {
      res.error = "producer: " + perr;
      ::kill(pid, SIGKILL);
    } else if (!read_all(msg_pipe[0], &m, sizeof m)) {
      res.error = "receiver died without a result";
    } else if (m.kind != Message::result) {
      res.error = std::string("receiver: ") + m.text;
    } else if (m.records != sent) {
      res.error = "receiver counted " + std::to_string(m.records) + " records, producer sent " +
                  std::to_string(sent);
    } else {
      res.ok = true;
      res.records = m.records;
      res.seconds = static_cast<double>(m.end_ns - t0) / 1e9;
    }
  }
  ::close(msg_pipe[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (res.ok && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
    res.ok = false;
    res.error = "receiver exited abnormally";
  }
  return res;
}

// When a producer stops: after `count` records, or at the deadline (checked
// every 256 records).
struct StopRule {
  std::uint64_t count;
  std::int64_t deadline_ns;
  bool stop(std::uint64_t sent) const {
    if (count != 0) return sent >= count;
    return (sent & 255) == 0 && now_ns() >= deadline_ns;
  }
};

StopRule stop_rule(const Options& o) {
  return StopRule{o.count, now_ns() + static_cast<std::int64_t>(o.seconds * 1e9)};
}

std::string errc_text(shmring::Errc e) {
  std::string s = shmring::to_string(e);
  const std::string& detail = shmring::last_error_message();
  if (!detail.empty() && e != shmring::Errc::timed_out) s += " (" + detail + ")";
  return s;
}

// Records per publish (ring) or per write() (pipe) for a style.
std::uint64_t records_per_batch(const Options& o, std::size_t size, bool batched) {
  return batched ? std::max<std::uint64_t>(1, o.batch / size) : 1;
}

CaseResult run_ring(const Options& o, std::size_t size, bool batched, int index) {
  CaseResult fail;
  RingName name("/shmring-demo-" + std::to_string(::getpid()) + "-" + std::to_string(index));
  shmring::Config cfg;
  cfg.kind = shmring::Kind::spsc;
  cfg.capacity = o.capacity;
  if (shmring::Errc e = shmring::create(name.str(), cfg); e != shmring::Errc::ok) {
    fail.error = "create " + name.str() + ": " + errc_text(e);
    return fail;
  }
  name.arm();
  // The producer attaches before the fork; once the receiver has attached
  // too, the name is unlinked (the mappings stay), so not even a SIGKILL can
  // leave the ring behind. The child never touches this handle.
  auto prod = shmring::Producer::open(name.str());
  if (!prod) {
    fail.error = "open producer: " + errc_text(prod.error());
    return fail;
  }
  if (size > prod->max_record()) {
    fail.error = "record size " + std::to_string(size) + " exceeds the ring's largest record " +
                 std::to_string(prod->max_record()) + " (raise --capacity)";
    return fail;
  }
  const std::uint64_t per = records_per_batch(o, size, batched);

  auto receiver = [&](int out) {
    auto c = shmring::Consumer::open(name.str());
    if (!c) {
      send_msg(out, Message::error, 0, 0, ("open consumer: " + errc_text(c.error())).c_str());
      return;
    }
    send_msg(out, Message::ready, 0, 0, nullptr);
    Checker ck(size);
    while (!ck.done) {
      auto rec = c->peek(kStallTimeout);
      if (!rec) {
        send_msg(out, Message::error, 0, 0, ("peek: " + errc_text(rec.error())).c_str());
        return;
      }
      if (!ck.check(rec->data(), rec->size())) {
        send_msg(out, Message::error, 0, 0, ck.msg);
        return;
      }
      // A waiting peek publishes deferred releases itself, so batching can
      // never leave the producer stuck on space we already consumed.
      const bool now = ck.done || ck.expected % per == 0;
      if (shmring::Errc e = c->release(now ? shmring::Publish::now : shmring::Publish::later);
          e != shmring::Errc::ok) {
        send_msg(out, Message::error, 0, 0, ("release: " + errc_text(e)).c_str());
        return;
      }
    }
    const std::int64_t end = now_ns();
    send_msg(out, Message::result, ck.expected, end, nullptr);
  };

  const auto tmpl = make_template(size);
  auto producer = [&](std::string* err) -> std::uint64_t {
    const StopRule rule = stop_rule(o);
    for (std::uint64_t seq = 0;; ++seq) {
      const bool last = rule.stop(seq);
      auto span = prod->reserve(size, kStallTimeout);
      if (!span) {
        *err = "reserve: " + errc_text(span.error());
        return seq;
      }
      std::byte* rec = span->data();
      std::memcpy(rec, tmpl.data(), size);
      stamp(rec, size, last ? kEnd : seq, last ? seq : 0);
      // A waiting reserve publishes deferred commits itself.
      const bool now = last || (seq + 1) % per == 0;
      if (shmring::Errc e = prod->commit(size, now ? shmring::Publish::now : shmring::Publish::later);
          e != shmring::Errc::ok) {
        *err = "commit: " + errc_text(e);
        return seq;
      }
      if (last) return seq;
    }
  };
  return run_case(receiver, producer, -1, -1, &name);
}

CaseResult run_pipe(const Options& o, std::size_t size, bool batched) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    CaseResult r;
    r.error = std::string("pipe: ") + std::strerror(errno);
    return r;
  }
  if (o.pipe_size != 0) (void)::fcntl(fds[1], F_SETPIPE_SZ, static_cast<int>(o.pipe_size));

  auto receiver = [&](int out) {
    std::vector<std::byte> buf(o.read_chunk + size);
    send_msg(out, Message::ready, 0, 0, nullptr);
    Checker ck(size);
    std::size_t have = 0;
    while (!ck.done) {
      const ssize_t n = ::read(fds[0], buf.data() + have, buf.size() - have);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        send_msg(out, Message::error, 0, 0, n == 0 ? "pipe closed before the terminator" : std::strerror(errno));
        return;
      }
      have += static_cast<std::size_t>(n);
      std::size_t off = 0;
      for (; have - off >= size && !ck.done; off += size) {
        if (!ck.check(buf.data() + off, size)) {
          send_msg(out, Message::error, 0, 0, ck.msg);
          return;
        }
      }
      if (ck.done && off != have) {
        send_msg(out, Message::error, 0, 0, "bytes after the terminator");
        return;
      }
      std::memmove(buf.data(), buf.data() + off, have - off);
      have -= off;
    }
    const std::int64_t end = now_ns();
    send_msg(out, Message::result, ck.expected, end, nullptr);
  };

  auto tmpl = make_template(size);
  const std::uint64_t per = records_per_batch(o, size, batched);
  std::vector<std::byte> batch(per * size);
  auto producer = [&](std::string* err) -> std::uint64_t {
    const StopRule rule = stop_rule(o);
    std::size_t fill = 0;
    for (std::uint64_t seq = 0;; ++seq) {
      const bool last = rule.stop(seq);
      if (batched) {
        std::byte* rec = batch.data() + fill * size;
        std::memcpy(rec, tmpl.data(), size);
        stamp(rec, size, last ? kEnd : seq, last ? seq : 0);
        if (++fill == per || last) {
          if (!write_all(fds[1], batch.data(), fill * size)) {
            *err = std::string("write: ") + std::strerror(errno);
            return seq;
          }
          fill = 0;
        }
      } else {
        stamp(tmpl.data(), size, last ? kEnd : seq, last ? seq : 0);
        if (!write_all(fds[1], tmpl.data(), size)) {
          *err = std::string("write: ") + std::strerror(errno);
          return seq;
        }
      }
      if (last) return seq;
    }
  };
  CaseResult r = run_case(receiver, producer, fds[1], fds[0], nullptr);
  ::close(fds[1]);
  return r;
}

// ---- Command line ------------------------------------------------------------

[[noreturn]] void usage(int code) {
  std::fprintf(code == 0 ? stdout : stderr,
               "usage: shmring_demo [options]\n"
               "  --sizes LIST       record sizes in bytes, comma-separated multiples of 8 (default 64,4096)\n"
               "  --seconds S        run each case for S seconds (default 1)\n"
               "  --count N          send exactly N records per case instead of a duration\n"
               "  --style STYLE      per-record | batched | both (default both)\n"
               "  --batch BYTES      batched style: bytes of records per ring publish / pipe write()\n"
               "                     (default 65536)\n"
               "  --capacity BYTES   ring capacity, a power of two (default 1048576)\n"
               "  --pipe-size BYTES  F_SETPIPE_SZ for the pipe, 0 = kernel default (default 1048576)\n"
               "  --no-pin           do not pin producer and consumer to CPUs 0 and 1\n");
  std::exit(code);
}

std::uint64_t parse_u64(const char* flag, const std::string& s) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (errno != 0 || s.empty() || *end != '\0' || s[0] == '-' || s[0] == '+') {
    std::fprintf(stderr, "shmring_demo: %s: not a number: '%s'\n", flag, s.c_str());
    usage(2);
  }
  return v;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "shmring_demo: %s needs a value\n", argv[i]);
        usage(2);
      }
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      usage(0);
    } else if (a == "--sizes") {
      o.sizes.clear();
      const std::string list = val();
      std::size_t pos = 0;
      for (;;) {
        const std::size_t comma = std::min(list.find(',', pos), list.size());
        const std::uint64_t v = parse_u64("--sizes", list.substr(pos, comma - pos));
        if (v < kMinRecord || v % 8 != 0 || v > (std::uint64_t{1} << 30)) {
          std::fprintf(stderr, "shmring_demo: record size %" PRIu64 ": want a multiple of 8 in [%zu, 2^30]\n", v,
                       kMinRecord);
          usage(2);
        }
        o.sizes.push_back(static_cast<std::size_t>(v));
        if (comma == list.size()) break;
        pos = comma + 1;
      }
    } else if (a == "--seconds") {
      const std::string s = val();
      char* end = nullptr;
      o.seconds = std::strtod(s.c_str(), &end);
      if (s.empty() || *end != '\0' || !(o.seconds > 0) || o.seconds > 3600) {
        std::fprintf(stderr, "shmring_demo: --seconds: want a number in (0, 3600]: '%s'\n", s.c_str());
        usage(2);
      }
    } else if (a == "--count") {
      o.count = parse_u64("--count", val());
      if (o.count == 0) usage(2);
    } else if (a == "--capacity") {
      o.capacity = parse_u64("--capacity", val());
    } else if (a == "--style") {
      const std::string m = val();
      if (m == "per-record") o.style = Style::per_record;
      else if (m == "batched") o.style = Style::batched;
      else if (m == "both") o.style = Style::both;
      else usage(2);
    } else if (a == "--batch") {
      o.batch = parse_u64("--batch", val());
      if (o.batch == 0) usage(2);
    } else if (a == "--pipe-size") {
      o.pipe_size = parse_u64("--pipe-size", val());
      if (o.pipe_size > (std::size_t{1} << 30)) usage(2);
    } else if (a == "--no-pin") {
      o.pin = false;
    } else {
      std::fprintf(stderr, "shmring_demo: unknown argument %s\n", argv[i]);
      usage(2);
    }
  }
  return o;
}

std::string human_size(std::size_t n) {
  if (n >= 1024 && n % 1024 == 0) return std::to_string(n / 1024) + " KiB";
  return std::to_string(n) + " B";
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) ::signal(sig, on_fatal_signal);
  ::signal(SIGPIPE, SIG_IGN);  // a dead pipe reader is an error value, not a death

  g_pinned = o.pin && can_pin();
  pin_to(0);
  int pipe_size = 0;
  {
    int fds[2];
    if (::pipe(fds) == 0) {
      if (o.pipe_size != 0) (void)::fcntl(fds[1], F_SETPIPE_SZ, static_cast<int>(o.pipe_size));
      pipe_size = ::fcntl(fds[1], F_GETPIPE_SZ);
      ::close(fds[0]);
      ::close(fds[1]);
    }
  }

  std::printf("shmring demo: one process streams fixed-size records to another (fork)\n");
  std::printf("  ring: spsc, capacity %zu bytes; producer: reserve, write in place, commit;\n"
              "        receiver: peek in place, check, release\n",
              o.capacity);
  std::printf("  pipe: %d-byte pipe buffer%s; receiver read()s up to %zu bytes at a time and parses\n", pipe_size,
              o.pipe_size != 0 ? " (F_SETPIPE_SZ)" : " (kernel default)", o.read_chunk);
  if (o.style != Style::batched)
    std::printf("  per record: ring publishes every commit and release; pipe does one write() per record\n");
  if (o.style != Style::per_record)
    std::printf("  batched: ring publishes commits and releases once per %zu bytes of records;\n"
                "           pipe writes the same %zu bytes with one write()\n",
                o.batch, o.batch);
  std::printf("  checks: the receiver verifies every record's sequence number (head and tail copy)\n"
              "          and payload checksum, reading every byte, and the final count\n");
  if (o.count != 0)
    std::printf("  each case sends %" PRIu64 " records\n", o.count);
  else
    std::printf("  each case runs %.2f s\n", o.seconds);
  if (g_pinned)
    std::printf("  CPUs: producer pinned to CPU 0, receiver to CPU 1 (sched_setaffinity)\n");
  else
    std::printf("  CPUs: not pinned (%s)\n", o.pin ? "CPUs 0 and 1 are not both available" : "--no-pin");
  std::printf("  MB = 10^6 bytes of records; M = 10^6 records\n\n");

  std::printf("%-7s %-10s %-10s %12s %7s %11s %10s %10s\n", "record", "style", "transport", "records", "time",
              "records/s", "MB/s", "ring/pipe");
  int failures = 0;
  int index = 0;
  std::vector<bool> styles;
  if (o.style != Style::batched) styles.push_back(false);
  if (o.style != Style::per_record) styles.push_back(true);
  for (std::size_t size : o.sizes) {
    for (bool batched : styles) {
      const CaseResult ring = run_ring(o, size, batched, index++);
      const CaseResult pipe = run_pipe(o, size, batched);
      const char* style = batched ? "batched" : "per record";
      const double ring_rate = ring.ok ? static_cast<double>(ring.records) / ring.seconds : 0;
      for (const CaseResult* r : {&ring, &pipe}) {
        const char* transport = r == &ring ? "ring spsc" : "pipe";
        if (!r->ok) {
          ++failures;
          std::printf("%-7s %-10s %-10s FAILED: %s\n", human_size(size).c_str(), style, transport, r->error.c_str());
          continue;
        }
        const double rate = static_cast<double>(r->records) / r->seconds;
        char ratio[32] = "";
        if (r == &pipe && ring.ok) std::snprintf(ratio, sizeof ratio, "%.2fx", ring_rate / rate);
        std::printf("%-7s %-10s %-10s %12" PRIu64 " %5.2f s %9.2f M %10.1f %10s\n", human_size(size).c_str(), style,
                    transport, r->records, r->seconds, rate / 1e6, rate * static_cast<double>(size) / 1e6, ratio);
      }
      std::fflush(stdout);
    }
  }
  if (failures != 0) {
    std::printf("\n%d case(s) FAILED\n", failures);
    return 1;
  }
  return 0;
}
