// shmring_peer: a producer / consumer program that the liveness tests spawn
// (fork + execve) so that each side lives in its own process, possibly armed
// with SHMRING_CRASH_AT (read by the library at start-up). Drives the ring
// through the C API.
//
//   shmring_peer MODE RING [options]
//
// Modes
//   produce   send --count records (id --id, seq from --start) and report
//   consume   receive and verify records until --count (0: until an error)
//   latency   consumer: --count times "ready I", peek, report the wake-up
//             latency from the sender's timestamp in the record
//   pong      ping-pong responder: consume RING, answer on --ring2
//   idle      one blocked call (--role consumer: peek an empty ring;
//             producer: fill the ring, then reserve) with its CPU time
//   hold      open --role and keep it until stdin reaches EOF
//   sleep     no ring: a live process that waits for stdin EOF
//   reset     shmtool reset without --force; prints "reset RC"
//
// Options
//   --id N --start S --count N --min L --max L   record stream (record.hpp)
//   --timeout-ms T   every blocking call (-1 forever, 0 try once); 10000
//   --batch B        produce: commit_deferred B-1 records, then commit;
//                    consume: release_deferred + flush every B records
//   --report         a line per record ("sent ID SEQ", "peek ID SEQ",
//                    "got ID SEQ"); each line is flushed before the next
//                    library call, so a crash leaves an exact trace
//   --hold           after the work, keep the handle open until stdin EOF
//   --wait-sleeper   produce / pong: before each send, wait (busy-polling
//                    the header, 2 s at most) until the receiver announced
//                    that it sleeps, so every record takes the sleep path
//   --gaps-ok        consume: per producer, seq must only increase
//   --first-any      consume: a producer's first record may have any seq
//                    >= --start (reported as "first ID SEQ"), then no gaps
//   --seqs-file P    consume: append (id, seq) as two uint64 per record
//   --ring2 NAME     pong: the ring to answer on
//   --role R         idle / hold: producer or consumer
//   --deadline-s N   alarm(): the process dies after N s whatever happens
//   --fork-child     hold: after opening, fork() a child that never touches
//                    the handle ("child PID"), lives until stdin EOF
//   --exec-sleep     hold: after opening, execv() this program in sleep
//                    mode (same pid, the handle left behind by the exec)
//
// Report lines go to fd 3 (the test's pipe): "opened RC", per-record lines,
// "done RC COUNT WAKES T_NS" (produce), "done RC COUNT T_NS" (consume),
// "bad WHY" (a record failed verification; exit status 1).
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#include "admin.hpp"  // internal: detail::reset_ring (what shmtool reset calls)
#include "raw_header.hpp"
#include "record.hpp"
#include "shmring/shmring.h"
#include "wait.hpp"  // internal: detail::wake_syscalls()

namespace {

using shmring::live::now_ns;

struct Opts {
  std::string mode, ring, ring2, role = "consumer", seqs_file;
  std::uint32_t id = 1;
  std::uint64_t start = 0, count = 0;
  std::uint32_t min_len = 24, max_len = 256;
  std::int64_t timeout_ms = 10000;
  std::uint64_t batch = 1;
  bool report = false, hold = false, wait_sleeper = false, gaps_ok = false, first_any = false;
  bool fork_child = false, exec_sleep = false;
  unsigned deadline_s = 60;
};

FILE* g_out = nullptr;

void say(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void say(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(g_out, fmt, ap);
  va_end(ap);
  std::fputc('\n', g_out);
  std::fflush(g_out);
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr, "shmring_peer: %s\n", why);
  std::exit(2);
}

Opts parse(int argc, char** argv) {
  if (argc < 2) usage("missing mode");
  Opts o;
  o.mode = argv[1];
  int i = 2;
  if (o.mode != "sleep") {
    if (argc < 3) usage("missing ring name");
    o.ring = argv[2];
    i = 3;
  }
  for (; i < argc; ++i) {
    const std::string a = argv[i];
    auto val = [&]() -> const char* {
      if (i + 1 >= argc) usage(("missing value for " + a).c_str());
      return argv[++i];
    };
    if (a == "--id") o.id = static_cast<std::uint32_t>(std::strtoul(val(), nullptr, 10));
    else if (a == "--start") o.start = std::strtoull(val(), nullptr, 10);
    else if (a == "--count") o.count = std::strtoull(val(), nullptr, 10);
    else if (a == "--min") o.min_len = static_cast<std::uint32_t>(std::strtoul(val(), nullptr, 10));
    else if (a == "--max") o.max_len = static_cast<std::uint32_t>(std::strtoul(val(), nullptr, 10));
    else if (a == "--timeout-ms") o.timeout_ms = std::strtoll(val(), nullptr, 10);
    else if (a == "--batch") o.batch = std::strtoull(val(), nullptr, 10);
    else if (a == "--ring2") o.ring2 = val();
    else if (a == "--role") o.role = val();
    else if (a == "--seqs-file") o.seqs_file = val();
    else if (a == "--deadline-s") o.deadline_s = static_cast<unsigned>(std::strtoul(val(), nullptr, 10));
    else if (a == "--report") o.report = true;
    else if (a == "--hold") o.hold = true;
    else if (a == "--wait-sleeper") o.wait_sleeper = true;
    else if (a == "--gaps-ok") o.gaps_ok = true;
    else if (a == "--first-any") o.first_any = true;
    else if (a == "--fork-child") o.fork_child = true;
    else if (a == "--exec-sleep") o.exec_sleep = true;
    else usage(("unknown option " + a).c_str());
  }
  if (o.batch == 0) o.batch = 1;
  return o;
}

std::int64_t timeout_ns(const Opts& o) { return o.timeout_ms < 0 ? -1 : o.timeout_ms * 1'000'000; }

void wait_stdin_eof() {
  char buf[64];
  for (;;) {
    const ssize_t n = ::read(0, buf, sizeof buf);
    if (n == 0) return;
    if (n < 0 && errno != EINTR) return;
  }
}

std::int64_t cpu_ns() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return (std::int64_t{ru.ru_utime.tv_sec} + ru.ru_stime.tv_sec) * 1'000'000'000 +
         (std::int64_t{ru.ru_utime.tv_usec} + ru.ru_stime.tv_usec) * 1000;
}

int open_role(const Opts& o, const std::string& ring, shmring_role role, shmring_t** r) {
  const int rc = shmring_open(ring.c_str(), role, r);
  say("opened %d", rc);
  if (rc != SHMRING_OK) std::fprintf(stderr, "shmring_peer: open: %s\n", shmring_last_error());
  (void)o;
  return rc;
}

int produce(const Opts& o) {
  shmring_t* r = nullptr;
  if (int rc = open_role(o, o.ring, SHMRING_PRODUCER, &r); rc != SHMRING_OK) return 3;
  shmring::live::RawHeader raw(o.ring);
  const std::int64_t t = timeout_ns(o);
  int rc = SHMRING_OK;
  std::uint64_t sent = 0;
  for (; sent < o.count; ++sent) {
    const std::uint64_t seq = o.start + sent;
    const std::uint32_t len = shmring::live::record_len(o.id, seq, o.min_len, o.max_len);
    // The consumer must have taken everything sent so far (so its waiter
    // count is back from the previous sleep), and then announce a new one.
    if (o.wait_sleeper &&
        (!raw.poll_until([&] { return raw.head() == raw.tail(); }, 2'000'000'000) ||
         !raw.wait_data_sleeper(2'000'000'000))) {
      say("bad no sleeper announced before record %" PRIu64, seq);
      return 1;
    }
    void* buf = nullptr;
    rc = shmring_reserve(r, len, &buf, t);
    if (rc != SHMRING_OK) break;
    shmring::live::fill_record(o.id, seq, buf, len);
    const bool last_of_batch = (sent + 1) % o.batch == 0 || sent + 1 == o.count;
    rc = last_of_batch ? shmring_commit(r, len) : shmring_commit_deferred(r, len);
    if (rc != SHMRING_OK) break;
    if (o.report) say("sent %u %" PRIu64, o.id, seq);
  }
  say("done %d %" PRIu64 " %" PRIu64 " %" PRId64, rc, sent, shmring::detail::wake_syscalls(), now_ns());
  if (o.hold) wait_stdin_eof();
  shmring_close(r);
  return 0;
}

int consume(const Opts& o) {
  shmring_t* r = nullptr;
  if (int rc = open_role(o, o.ring, SHMRING_CONSUMER, &r); rc != SHMRING_OK) return 3;
  FILE* seqs = nullptr;
  if (!o.seqs_file.empty()) {
    seqs = std::fopen(o.seqs_file.c_str(), "wb");
    if (seqs == nullptr) {
      say("bad cannot open %s", o.seqs_file.c_str());
      return 1;
    }
  }
  std::map<std::uint32_t, std::uint64_t> next;  // per producer: lowest acceptable next seq
  const std::int64_t t = timeout_ns(o);
  int rc = SHMRING_OK;
  std::uint64_t got = 0;
  int status = 0;
  while (o.count == 0 || got < o.count) {
    const void* p = nullptr;
    std::size_t n = 0;
    rc = shmring_peek(r, &p, &n, t);
    if (rc != SHMRING_OK) break;
    shmring::live::RecordView v;
    std::string why;
    if (!shmring::live::check_record(p, n, o.min_len, o.max_len, &v, &why)) {
      say("bad %s", why.c_str());
      status = 1;
      break;
    }
    auto it = next.find(v.id);
    const std::uint64_t want = it == next.end() ? o.start : it->second;
    const bool first = it == next.end();
    if (first) say("first %u %" PRIu64, v.id, v.seq);
    if (o.gaps_ok || (first && o.first_any) ? v.seq < want : v.seq != want) {
      say("bad producer %u: seq %" PRIu64 " where %s%" PRIu64 " was due", v.id, v.seq, o.gaps_ok ? ">= " : "",
          want);
      status = 1;
      break;
    }
    next[v.id] = v.seq + 1;
    if (o.report) say("peek %u %" PRIu64, v.id, v.seq);
    if (o.batch > 1) {
      rc = shmring_release_deferred(r);
      if (rc == SHMRING_OK && (got + 1) % o.batch == 0) rc = shmring_flush(r);
    } else {
      rc = shmring_release(r);
    }
    if (rc != SHMRING_OK) break;
    if (o.report) say("got %u %" PRIu64, v.id, v.seq);
    if (seqs != nullptr) {
      const std::uint64_t pair[2] = {v.id, v.seq};
      std::fwrite(pair, sizeof pair, 1, seqs);
    }
    ++got;
  }
  if (o.batch > 1) shmring_flush(r);
  if (seqs != nullptr) std::fclose(seqs);
  say("done %d %" PRIu64 " %" PRId64, rc, got, now_ns());
  if (o.hold) wait_stdin_eof();
  shmring_close(r);
  return status;
}

int latency(const Opts& o) {
  shmring_t* r = nullptr;
  if (int rc = open_role(o, o.ring, SHMRING_CONSUMER, &r); rc != SHMRING_OK) return 3;
  const std::int64_t t = timeout_ns(o);
  int rc = SHMRING_OK;
  std::uint64_t i = 0;
  for (; i < o.count; ++i) {
    say("ready %" PRIu64, i);
    const void* p = nullptr;
    std::size_t n = 0;
    rc = shmring_peek(r, &p, &n, t);
    const std::int64_t woke = now_ns();
    if (rc != SHMRING_OK) break;
    std::int64_t sent = 0;
    if (n != sizeof sent) {
      say("bad latency record of %zu bytes", n);
      return 1;
    }
    std::memcpy(&sent, p, sizeof sent);
    rc = shmring_release(r);
    if (rc != SHMRING_OK) break;
    say("lat %" PRId64, woke - sent);
  }
  say("done %d %" PRIu64 " %" PRId64, rc, i, now_ns());
  shmring_close(r);
  return 0;
}

int pong(const Opts& o) {
  shmring_t* in = nullptr;
  shmring_t* out = nullptr;
  if (int rc = open_role(o, o.ring, SHMRING_CONSUMER, &in); rc != SHMRING_OK) return 3;
  if (int rc = open_role(o, o.ring2, SHMRING_PRODUCER, &out); rc != SHMRING_OK) return 3;
  shmring::live::RawHeader raw_out(o.ring2);
  const std::int64_t t = timeout_ns(o);
  int rc = SHMRING_OK;
  std::uint64_t i = 0;
  for (; i < o.count; ++i) {
    std::uint64_t v = 0;
    std::size_t n = 0;
    rc = shmring_recv(in, &v, sizeof v, &n, t);
    if (rc != SHMRING_OK) break;
    if (n != sizeof v || v != i) {
      say("bad ping %" PRIu64 " carries %" PRIu64 " (%zu bytes)", i, v, n);
      return 1;
    }
    if (o.wait_sleeper && !raw_out.wait_data_sleeper(t < 0 ? 2'000'000'000 : t)) {
      say("bad the pinger never went to sleep before pong %" PRIu64, i);
      return 1;
    }
    rc = shmring_send(out, &v, sizeof v, t);
    if (rc != SHMRING_OK) break;
  }
  say("done %d %" PRIu64 " %" PRId64, rc, i, now_ns());
  shmring_close(out);
  shmring_close(in);
  return 0;
}

int idle(const Opts& o) {
  const bool prod = o.role == "producer";
  shmring_t* r = nullptr;
  if (int rc = open_role(o, o.ring, prod ? SHMRING_PRODUCER : SHMRING_CONSUMER, &r); rc != SHMRING_OK) return 3;
  if (prod) {
    // Fill the ring with try-mode sends.
    for (std::uint64_t seq = 0;; ++seq) {
      const std::uint32_t len = shmring::live::record_len(o.id, seq, o.min_len, o.max_len);
      void* buf = nullptr;
      const int rc = shmring_reserve(r, len, &buf, 0);
      if (rc == SHMRING_EWOULDBLOCK) break;
      if (rc != SHMRING_OK) {
        say("bad fill: %d", rc);
        return 1;
      }
      shmring::live::fill_record(o.id, seq, buf, len);
      shmring_commit(r, len);
    }
    say("full");
  }
  const std::int64_t c0 = cpu_ns(), t0 = now_ns();
  int rc;
  if (prod) {
    void* buf = nullptr;
    rc = shmring_reserve(r, o.max_len, &buf, timeout_ns(o));
  } else {
    const void* p = nullptr;
    std::size_t n = 0;
    rc = shmring_peek(r, &p, &n, timeout_ns(o));
  }
  const std::int64_t c1 = cpu_ns(), t1 = now_ns();
  say("idle %d %" PRId64 " %" PRId64, rc, c1 - c0, t1 - t0);
  shmring_close(r);
  return 0;
}

int hold(const Opts& o) {
  shmring_t* r = nullptr;
  const int rc = open_role(o, o.ring, o.role == "producer" ? SHMRING_PRODUCER : SHMRING_CONSUMER, &r);
  if (o.fork_child) {
    std::fflush(g_out);
    const pid_t child = ::fork();
    if (child == 0) {
      // Never touches the handle; lives as long as the test keeps stdin open.
      say("child %d", static_cast<int>(::getpid()));
      wait_stdin_eof();
      ::_exit(0);
    }
  }
  if (o.exec_sleep) {
    say("exec");
    char self[] = "/proc/self/exe";
    char arg0[] = "shmring_peer";
    char arg1[] = "sleep";
    char* argv[] = {arg0, arg1, nullptr};
    ::execv(self, argv);
    say("exec failed %d", errno);
    return 1;
  }
  wait_stdin_eof();
  shmring_close(r);
  say("closed %d", rc);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  g_out = ::fdopen(3, "w");
  if (g_out == nullptr) g_out = std::fopen("/dev/null", "w");
  const Opts o = parse(argc, argv);
  ::alarm(o.deadline_s);
  if (o.mode == "produce") return produce(o);
  if (o.mode == "consume") return consume(o);
  if (o.mode == "latency") return latency(o);
  if (o.mode == "pong") return pong(o);
  if (o.mode == "idle") return idle(o);
  if (o.mode == "hold") return hold(o);
  if (o.mode == "reset") {
    // A polite reset (no --force): refused with busy while a live peer is attached.
    std::string detail;
    say("reset %d", static_cast<int>(shmring::detail::reset_ring(o.ring, false, &detail)));
    return 0;
  }
  if (o.mode == "sleep") {
    say("ready");
    wait_stdin_eof();
    return 0;
  }
  usage("unknown mode");
}
