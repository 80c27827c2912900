// shmring_soak: the crash soak (issue 7, item 3; docs/soak.md).
//
//   shmring_soak --seconds S [--round-seconds R] [--seed X] [--quiet]
//
// For S seconds, in rounds of R seconds (default 10), each round on a fresh
// ring of the next (kind, wait strategy) -- spsc, mpmc, locked, each with
// futex, then sem, then spin -- producers and consumers run as forked
// processes while this program SIGKILLs a random one of them at a random
// moment (every 2-40 ms) and starts a replacement at once. Then producers
// are stopped, consumers drain the ring until peer_gone, and the round's
// deliveries are checked against the exactly-once oracle below. Exit status
// 0 when every round passed, 1 on the first violation (the message names
// the round, the seed and what is wrong), 2 on a usage error.
//
// Processes per ring: spsc 1 producer + 1 consumer; mpmc and locked 2 + 2.
//
// Records (tests/liveness/record.hpp): producer id, sequence number, length
// and checksum in a 24-byte frame, then a body that is a pure function of
// (id, seq). A consumer checks every byte of every record before it logs
// it: a torn or foreign record ends it with exit status 1 (a failure).
//
// Producer identity: every producer process (incarnation) gets a fresh id
// and starts at seq 0. A restarted producer does not resume its
// predecessor's sequence; the oracle treats each incarnation as its own
// stream. After each commit that returned ok it stores seq + 1 in its
// `committed` counter (shared memory): a kill between the commit and that
// store leaves the counter one short, never ahead.
//
// Consumers log (id, seq) of each record with write(2) to their own file
// after verifying it and before releasing it, so the log survives a kill.
//
// The oracle (docs/design.md "delivery per kind", docs/liveness.md,
// docs/mpmc.md), per round:
//   all kinds  - no torn record (checked by the consumers, every byte);
//              - per consumer incarnation and producer, seqs strictly
//                increase (in order, no duplicate within one consumer);
//              - nothing delivered that its producer did not send: for
//                producer i, every delivered seq < committed_i + 1 if it
//                was killed, < committed_i if it stopped cleanly;
//              - no loss: every seq < committed_i was delivered (mpmc: see
//                below), and a record committed by a killed producer whose
//                counter store was cut off (seq == committed_i) may or may
//                not exist, nothing else.
//   spsc, locked (a record held by a consumer that dies is delivered again)
//              - a record is delivered exactly once, except that a killed
//                consumer's last logged record (peeked, maybe not released)
//                may be delivered once more, to another consumer
//                incarnation; each killed consumer accounts for at most one
//                such duplicate. The count of those is printed
//                ("redelivered").
//   mpmc       (a record held by a consumer that dies is dropped and
//                counted in dropped_reads; a claim revoked from a stalled
//                producer returns ERESET and the producer sends that seq
//                again)
//              - no record is delivered twice;
//              - the records missing are at most the round's dropped_reads,
//                and dropped_reads is at most the number of consumers
//                killed.
// Every library call has a timeout (100 ms); the only errors a soak process
// accepts are timed_out and peer_gone (and reset from an mpmc commit);
// anything else, e.g. corrupt or busy on open (a killed role owner must be
// reclaimable at once), ends it with status 1. A round whose head does not
// move for 20 s fails ("stuck"); every child also carries an alarm().
//
// Rings are named /shmt_<pid>_soak<N> and unlinked at the end of each round,
// on SIGINT/SIGTERM/SIGHUP, and at exit; children die with this program
// (PR_SET_PDEATHSIG).
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <atomic>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "layout.hpp"
#include "record.hpp"
#include "shmring/ring.hpp"
#include "shmring/shmring.h"

namespace {

using shmring::Kind;
using shmring::WaitStrategy;

constexpr std::int64_t kCallTimeoutNs = 100'000'000;
constexpr std::uint32_t kMinLen = 24;
constexpr std::uint32_t kMaxLen = 200;
constexpr std::size_t kMaxIncarnations = 1 << 16;
constexpr unsigned kChildAlarmS = 600;
// How long a process may take to end after SIGKILL, or after it was told to
// stop (its calls time out after 100 ms; a loaded machine adds its share).
constexpr std::int64_t kReapBoundNs = 30'000'000'000;

std::int64_t now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

void nap_ms(std::int64_t ms) {
  // The random moment of the next kill: scheduling, not synchronisation
  // (nothing waits for anything through it).
  timespec ts{static_cast<time_t>(ms / 1000), static_cast<long>(ms % 1000) * 1'000'000};
  while (::nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

// Shared with the children (anonymous MAP_SHARED, made before any fork).
struct Shared {
  std::atomic<int> stop_producers;
  std::atomic<int> drain;
  std::atomic<std::uint64_t> delivered;
  std::atomic<std::uint64_t> resets;
  std::atomic<int> injected;  // --inject: the fault was faked (once per round)
  std::atomic<std::uint64_t> committed[kMaxIncarnations];  // per producer id: seqs 0..n-1 committed
  std::atomic<int> producer_open[kMaxIncarnations];      // per producer id: its open returned ok
  std::atomic<int> consumer_open[kMaxIncarnations];      // per consumer log number
};

Shared* g_shared = nullptr;
// --inject: once per round, after 5000 deliveries, a consumer fakes one
// delivery fault in its log, so that a run proves the oracle catches it
// (ctest hardening.soak_detects_*: the run must fail).
enum class Inject { none, dup, loss, order };
Inject g_inject = Inject::none;
char g_ring[128] = {};  // the current ring, for the signal handlers

void unlink_ring() {
  if (g_ring[0] != '\0') shmring_unlink(g_ring);
}

void on_fatal(int sig) {
  unlink_ring();
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

// printf into a std::string (gcc 12 warns falsely, -Wrestrict, on chains of
// "literal" + std::string).
std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* f, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

struct LogEntry {
  std::uint32_t id;
  std::uint32_t len;
  std::uint64_t seq;
};

[[noreturn]] void child_fail(const char* role, const char* what, int rc) {
  std::fprintf(stderr, "soak %s %d: %s: %s (%d) %s\n", role, static_cast<int>(::getpid()), what,
               shmring_strerror(rc), rc, shmring_last_error());
  ::_exit(1);
}

[[noreturn]] void run_producer(const char* ring, std::uint32_t id, Kind kind) {
  shmring_t* r = nullptr;
  if (int rc = shmring_open(ring, SHMRING_PRODUCER, &r); rc != SHMRING_OK) child_fail("producer", "open", rc);
  g_shared->producer_open[id].store(1, std::memory_order_release);
  std::uint64_t seq = 0;
  while (g_shared->stop_producers.load(std::memory_order_acquire) == 0) {
    const std::uint32_t len = shmring::live::record_len(id, seq, kMinLen, kMaxLen);
    void* buf = nullptr;
    int rc = shmring_reserve(r, len, &buf, kCallTimeoutNs);
    if (rc == SHMRING_ETIMEDOUT || rc == SHMRING_EPEERGONE) continue;
    if (rc != SHMRING_OK) child_fail("producer", "reserve", rc);
    shmring::live::fill_record(id, seq, buf, len);
    rc = shmring_commit(r, len);
    if (rc == SHMRING_ERESET && kind == Kind::mpmc) {
      // The claim was revoked while we stalled (docs/mpmc.md): that record
      // is never delivered; send the same seq again.
      g_shared->resets.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    if (rc != SHMRING_OK) child_fail("producer", "commit", rc);
    ++seq;
    g_shared->committed[id].store(seq, std::memory_order_release);
  }
  shmring_close(r);
  ::_exit(0);
}

[[noreturn]] void run_consumer(const char* ring, std::uint32_t log_no, const char* log_path) {
  const int fd = ::open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::fprintf(stderr, "soak consumer: cannot open %s\n", log_path);
    ::_exit(1);
  }
  shmring_t* r = nullptr;
  if (int rc = shmring_open(ring, SHMRING_CONSUMER, &r); rc != SHMRING_OK) child_fail("consumer", "open", rc);
  g_shared->consumer_open[log_no].store(1, std::memory_order_release);
  for (;;) {
    const void* p = nullptr;
    std::size_t n = 0;
    int rc = shmring_peek(r, &p, &n, kCallTimeoutNs);
    if (rc == SHMRING_ETIMEDOUT) continue;
    if (rc == SHMRING_EPEERGONE) {
      if (g_shared->drain.load(std::memory_order_acquire) != 0) break;
      continue;  // a producer was killed; its replacement is on the way
    }
    if (rc != SHMRING_OK) child_fail("consumer", "peek", rc);
    shmring::live::RecordView v;
    std::string why;
    if (!shmring::live::check_record(p, n, kMinLen, kMaxLen, &v, &why)) {
      std::fprintf(stderr, "soak consumer %d: torn or foreign record: %s\n", static_cast<int>(::getpid()),
                   why.c_str());
      ::_exit(1);
    }
    LogEntry e{v.id, static_cast<std::uint32_t>(n), v.seq};
    if (g_inject != Inject::none && g_shared->delivered.load(std::memory_order_relaxed) >= 5000 &&
        g_shared->injected.exchange(1) == 0) {
      if (g_inject == Inject::dup && ::write(fd, &e, sizeof e) < 0) ::_exit(1);  // logged twice
      if (g_inject == Inject::loss) e.seq = ~std::uint64_t{0};                   // seq never delivered
      if (g_inject == Inject::order) e.seq = 0;                                  // an old seq again
    }
    if (g_inject == Inject::loss && e.seq == ~std::uint64_t{0}) {
      // not logged at all: the record looks lost
    } else if (::write(fd, &e, sizeof e) != static_cast<ssize_t>(sizeof e)) {
      std::fprintf(stderr, "soak consumer: log write failed\n");
      ::_exit(1);
    }
    rc = shmring_release(r);
    if (rc != SHMRING_OK) child_fail("consumer", "release", rc);
    g_shared->delivered.fetch_add(1, std::memory_order_relaxed);
  }
  shmring_close(r);
  ::close(fd);
  ::_exit(0);
}

struct Proc {
  pid_t pid = -1;
  bool producer = false;
  std::uint32_t id = 0;  // producer id / consumer log number
  bool killed = false;
  bool done = false;
};

struct Options {
  std::int64_t seconds = 60;
  std::int64_t round_seconds = 10;
  std::uint64_t seed = 0;
  bool quiet = false;
  std::string kinds = "spsc,mpmc,locked";
  std::string inject;  // self-test of the oracle: "dup", "loss" or "order"
};

class Round {
 public:
  Round(int number, Kind kind, WaitStrategy wait, std::int64_t seconds, std::uint64_t seed, const std::string& dir)
      : number_(number), kind_(kind), wait_(wait), seconds_(seconds), rng_(seed), seed_(seed), dir_(dir) {}

  // "" when the round passed, else what went wrong.
  std::string run(std::string* summary);

 private:
  std::string spawn(bool producer);
  std::string reap(Proc& p, bool expect_kill);
  std::string check(std::uint64_t dropped);
  std::string log_path(std::uint32_t n) const { return dir_ + "/c" + std::to_string(n) + ".log"; }

  int number_;
  Kind kind_;
  WaitStrategy wait_;
  std::int64_t seconds_;
  std::mt19937_64 rng_;
  std::uint64_t seed_;
  std::string dir_;
  std::string ring_;
  std::vector<Proc> procs_;
  std::uint32_t next_id_ = 1;
  std::uint32_t next_log_ = 0;
  int kills_p_ = 0, kills_c_ = 0;
  std::uint64_t redelivered_ = 0, missing_ = 0, records_ = 0;
};

std::string Round::spawn(bool producer) {
  Proc p;
  p.producer = producer;
  if (producer) {
    if (next_id_ >= kMaxIncarnations) return "too many producer incarnations in one round";
    p.id = next_id_++;
    g_shared->committed[p.id].store(0, std::memory_order_relaxed);
    g_shared->producer_open[p.id].store(0, std::memory_order_relaxed);
  } else {
    if (next_log_ >= kMaxIncarnations) return "too many consumer incarnations in one round";
    p.id = next_log_++;
    g_shared->consumer_open[p.id].store(0, std::memory_order_relaxed);
  }
  const std::string log = log_path(p.id);
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return "fork failed";
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGTERM, SIG_DFL);
    ::signal(SIGHUP, SIG_DFL);
    ::alarm(kChildAlarmS);
    if (producer) run_producer(ring_.c_str(), p.id, kind_);
    run_consumer(ring_.c_str(), p.id, log.c_str());
  }
  p.pid = pid;
  procs_.push_back(p);
  return {};
}

// What /proc says a process is doing (for a hang report).
std::string proc_state(pid_t pid) {
  std::string out;
  for (const char* f : {"wchan", "syscall"}) {
    char path[64], buf[200] = {};
    std::snprintf(path, sizeof path, "/proc/%d/%s", static_cast<int>(pid), f);
    if (FILE* fp = std::fopen(path, "r")) {
      const std::size_t n = std::fread(buf, 1, sizeof buf - 1, fp);
      std::fclose(fp);
      buf[n] = '\0';
      if (n > 0 && buf[n - 1] == '\n') buf[n - 1] = '\0';
      out += fmt(" %s=%s", f, buf);
    }
  }
  return out;
}

std::string Round::reap(Proc& p, bool expect_kill) {
  // Bounded: a process that does not end within kReapBoundNs is reported
  // as hung (with what /proc says it is doing) and killed.
  int st = 0;
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, p.pid, 0));
  const std::int64_t deadline = now_ns() + kReapBoundNs;
  std::string hung;
  for (;;) {
    const pid_t got = ::waitpid(p.pid, &st, WNOHANG);
    if (got == p.pid) break;
    if (got < 0 && errno != EINTR) break;
    const std::int64_t left = deadline - now_ns();
    if (left <= 0 && hung.empty()) {
      hung = fmt("%s %d (%s %u) did not end within %d s:%s", p.producer ? "producer" : "consumer",
                 static_cast<int>(p.pid), p.producer ? "id" : "log", p.id,
                 static_cast<int>(kReapBoundNs / 1'000'000'000), proc_state(p.pid).c_str());
      ::kill(p.pid, SIGKILL);
      continue;
    }
    if (pidfd >= 0) {
      pollfd pf{pidfd, POLLIN, 0};
      ::poll(&pf, 1, static_cast<int>(std::max<std::int64_t>(left, 1000000) / 1'000'000));
    } else {
      while (::waitpid(p.pid, &st, 0) < 0 && errno == EINTR) {
      }
      break;
    }
  }
  if (pidfd >= 0) ::close(pidfd);
  p.done = true;
  if (!hung.empty()) return hung;
  const bool sigkill = WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
  const bool clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
  if (expect_kill ? (sigkill || clean) : clean) return {};
  char buf[160];
  std::snprintf(buf, sizeof buf, "%s %d (%s %u) ended with %s %d", p.producer ? "producer" : "consumer",
                static_cast<int>(p.pid), p.producer ? "id" : "log", p.id,
                WIFSIGNALED(st) ? "signal" : "exit status", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
  return buf;
}

std::string Round::run(std::string* summary) {
  char name[96];
  std::snprintf(name, sizeof name, "/shmt_%d_soak%d", static_cast<int>(::getpid()), number_);
  ring_ = name;
  std::snprintf(g_ring, sizeof g_ring, "%s", name);
  shmring::Config cfg;
  cfg.kind = kind_;
  cfg.wait = wait_;
  cfg.capacity = 8192;
  cfg.slot_size = kind_ == Kind::mpmc ? 256 : 0;
  if (shmring::create(ring_, cfg) != shmring::Errc::ok) return "create: " + shmring::last_error_message();
  g_shared->stop_producers.store(0);
  g_shared->drain.store(0);
  g_shared->delivered.store(0);
  g_shared->resets.store(0);
  g_shared->injected.store(0);
  // Raw view of the header: the round's progress and the mpmc counters.
  const int fd = ::shm_open(ring_.c_str(), O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) return "shm_open failed";
  void* m = ::mmap(nullptr, shmring::detail::kHeaderSize, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) return "mmap failed";
  std::unique_ptr<void, void (*)(void*)> unmap(m, [](void* q) { ::munmap(q, shmring::detail::kHeaderSize); });
  auto* hdr = static_cast<shmring::detail::Header*>(m);
  auto dropped_reads = [&] {
    return shmring::detail::atom(hdr->roles.dropped_reads).load(std::memory_order_relaxed);
  };

  const int n_prod = kind_ == Kind::spsc ? 1 : 2;
  const int n_cons = kind_ == Kind::spsc ? 1 : 2;
  std::string err;
  for (int i = 0; i < n_cons && err.empty(); ++i) err = spawn(false);
  for (int i = 0; i < n_prod && err.empty(); ++i) err = spawn(true);

  const std::int64_t end = now_ns() + seconds_ * 1'000'000'000;
  std::uint64_t last_delivered = 0;
  std::int64_t last_progress = now_ns();
  while (err.empty() && now_ns() < end) {
    nap_ms(2 + static_cast<std::int64_t>(rng_() % 39));
    // Anything that ended on its own is a failure.
    for (auto& p : procs_) {
      if (p.done) continue;
      int st = 0;
      if (::waitpid(p.pid, &st, WNOHANG) == p.pid) {
        p.done = true;
        char buf[128];
        std::snprintf(buf, sizeof buf, "%s %d ended on its own (status 0x%x)", p.producer ? "producer" : "consumer",
                      static_cast<int>(p.pid), static_cast<unsigned>(st));
        err = buf;
      }
    }
    if (!err.empty()) break;
    const std::uint64_t d = g_shared->delivered.load();
    if (d != last_delivered) {
      last_delivered = d;
      last_progress = now_ns();
    } else if (now_ns() - last_progress > 20'000'000'000) {
      err = "stuck: no record delivered for 20 s";
      break;
    }
    std::vector<std::size_t> live;
    for (std::size_t i = 0; i < procs_.size(); ++i)
      if (!procs_[i].done) live.push_back(i);
    Proc& victim = procs_[live[rng_() % live.size()]];
    ::kill(victim.pid, SIGKILL);
    victim.killed = true;
    err = reap(victim, true);
    if (!err.empty()) break;
    (victim.producer ? kills_p_ : kills_c_)++;
    err = spawn(victim.producer);
  }
  // Before the producers stop, every process of the last lineup must have
  // opened: a consumer that opened after the last producer left would wait
  // for a producer forever (docs/liveness.md: it never saw one), not drain
  // to peer_gone. Bounded polling; a process that cannot open fails the round.
  const std::int64_t open_deadline = now_ns() + kReapBoundNs;
  for (bool all = false; err.empty() && !all;) {
    all = true;
    for (const auto& p : procs_)
      if (!p.done && (p.producer ? g_shared->producer_open : g_shared->consumer_open)[p.id].load() == 0) all = false;
    if (all) break;
    if (now_ns() > open_deadline) err = "a process did not open the ring within 30 s";
    else nap_ms(1);
  }
  // Stop the producers, then let the consumers drain to peer_gone.
  g_shared->stop_producers.store(1, std::memory_order_release);
  for (auto& p : procs_)
    if (p.producer && !p.done) {
      const std::string e = reap(p, false);
      if (err.empty()) err = e;
    }
  g_shared->drain.store(1, std::memory_order_release);
  for (auto& p : procs_)
    if (!p.producer && !p.done) {
      const std::string e = reap(p, false);
      if (err.empty()) err = e;
    }
  if (err.empty()) err = check(dropped_reads());
  shmring_unlink(ring_.c_str());
  g_ring[0] = '\0';
  for (std::uint32_t i = 0; i < next_log_; ++i) ::unlink(log_path(i).c_str());

  char buf[320];
  std::snprintf(buf, sizeof buf,
                "round %d %s/%s: %" PRIu64 " records, %d producers and %d consumers killed, %" PRIu64
                " redelivered, %" PRIu64 " dropped (dropped_reads %" PRIu64 "), %" PRIu64 " revoked claims resent",
                number_, shmring::to_string(kind_), shmring::to_string(wait_), records_, kills_p_, kills_c_,
                redelivered_, missing_, dropped_reads(), g_shared->resets.load());
  *summary = buf;
  if (!err.empty()) {
    char s[64];
    std::snprintf(s, sizeof s, " (round seed %" PRIu64 ")", seed_);
    err += s;
  }
  return err;
}

std::string Round::check(std::uint64_t dropped) {
  // (id, seq) -> how many times delivered
  std::map<std::pair<std::uint32_t, std::uint64_t>, int> times;
  // The last record logged by each killed consumer (it may come again).
  std::map<std::pair<std::uint32_t, std::uint64_t>, int> may_repeat;
  std::map<std::uint32_t, const Proc*> producers;
  for (const auto& p : procs_)
    if (p.producer) producers[p.id] = &p;
  std::string err;
  auto problem = [&](const std::string& s) {
    if (err.size() < 1500) err += (err.empty() ? "" : "; ") + s;
  };
  for (const auto& p : procs_) {
    if (p.producer) continue;
    FILE* f = std::fopen(log_path(p.id).c_str(), "rb");
    if (f == nullptr) {
      if (p.killed) continue;  // killed before it made its log: it took nothing
      problem(fmt("no log %s", log_path(p.id).c_str()));
      continue;
    }
    std::map<std::uint32_t, std::uint64_t> next;  // per producer: lowest acceptable seq
    LogEntry e{}, last{};
    bool any = false;
    while (std::fread(&e, sizeof e, 1, f) == 1) {
      any = true;
      last = e;
      ++records_;
      ++times[{e.id, e.seq}];
      auto it = producers.find(e.id);
      if (it == producers.end()) {
        problem(fmt("record from unknown producer %u", e.id));
        continue;
      }
      const std::uint64_t committed = g_shared->committed[e.id].load();
      if (e.seq >= committed + (it->second->killed ? 1 : 0))
        problem(fmt("(%u,%" PRIu64 ") delivered, its producer committed only %" PRIu64, e.id, e.seq, committed));
      auto n = next.find(e.id);
      if (n != next.end() && e.seq < n->second)
        problem(fmt("consumer log %u: (%u,%" PRIu64 ") after seq %" PRIu64 " (out of order or duplicate)", p.id, e.id,
                    e.seq, n->second - 1));
      next[e.id] = e.seq + 1;
    }
    std::fclose(f);
    if (p.killed && any) ++may_repeat[{last.id, last.seq}];
  }
  const bool redeliver = kind_ != Kind::mpmc;
  for (const auto& [key, n] : times) {
    if (n == 1) continue;
    const int allowed = redeliver ? may_repeat[key] : 0;
    if (n - 1 > allowed)
      problem(fmt("(%u,%" PRIu64 ") delivered %d times", key.first, key.second, n));
    else
      redelivered_ += static_cast<std::uint64_t>(n - 1);
  }
  // No loss.
  std::string which;
  for (const auto& [id, p] : producers) {
    const std::uint64_t committed = g_shared->committed[id].load();
    for (std::uint64_t s = 0; s < committed; ++s) {
      if (times.count({id, s}) != 0) continue;
      if (missing_++ < 8) which += fmt(" (%u,%" PRIu64 ")", id, s);
    }
  }
  if (redeliver && missing_ != 0) problem(fmt("%" PRIu64 " committed records never delivered:%s", missing_, which.c_str()));
  if (!redeliver) {
    if (missing_ > dropped)
      problem(fmt("%" PRIu64 " committed records never delivered, but dropped_reads is %" PRIu64 ":%s", missing_,
                  dropped, which.c_str()));
    if (dropped > static_cast<std::uint64_t>(kills_c_))
      problem(fmt("dropped_reads %" PRIu64 " exceeds the consumers killed (%d)", dropped, kills_c_));
  }
  return err;
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "shmring_soak: %s\nusage: shmring_soak --seconds S [--round-seconds R] [--seed X] [--quiet]\n", why);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  o.seed = static_cast<std::uint64_t>(now_ns());
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto val = [&]() -> const char* {
      if (i + 1 >= argc) usage(("missing value for " + a).c_str());
      return argv[++i];
    };
    if (a == "--seconds") o.seconds = std::strtoll(val(), nullptr, 10);
    else if (a == "--minutes") o.seconds = 60 * std::strtoll(val(), nullptr, 10);
    else if (a == "--round-seconds") o.round_seconds = std::strtoll(val(), nullptr, 10);
    else if (a == "--seed") o.seed = std::strtoull(val(), nullptr, 10);
    else if (a == "--quiet") o.quiet = true;
    else if (a == "--kinds") o.kinds = val();
    else if (a == "--inject") o.inject = val();
    else usage(("unknown option " + a).c_str());
  }
  if (o.seconds <= 0 || o.round_seconds <= 0) usage("durations must be positive");
  if (o.inject == "dup") g_inject = Inject::dup;
  else if (o.inject == "loss") g_inject = Inject::loss;
  else if (o.inject == "order") g_inject = Inject::order;
  else if (!o.inject.empty()) usage("--inject takes dup, loss or order");

  void* m = ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) {
    std::perror("mmap");
    return 1;
  }
  g_shared = new (m) Shared{};
  char dir_tmpl[] = "/tmp/shmring-soak.XXXXXX";
  if (::mkdtemp(dir_tmpl) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  const std::string dir = dir_tmpl;
  ::signal(SIGINT, on_fatal);
  ::signal(SIGTERM, on_fatal);
  ::signal(SIGHUP, on_fatal);
  ::signal(SIGPIPE, SIG_IGN);

  std::vector<Kind> kinds;
  for (const auto& [word, k] : {std::pair{"spsc", Kind::spsc}, std::pair{"mpmc", Kind::mpmc},
                                std::pair{"locked", Kind::locked}})
    if (o.kinds.find(word) != std::string::npos) kinds.push_back(k);
  if (kinds.empty()) usage("--kinds names none of spsc, mpmc, locked");
  const WaitStrategy waits[] = {WaitStrategy::futex, WaitStrategy::sem, WaitStrategy::spin};
  std::printf("shmring_soak: %" PRId64 " s in rounds of %" PRId64 " s, seed %" PRIu64 "\n", o.seconds,
              o.round_seconds, o.seed);
  std::fflush(stdout);
  const std::int64_t t0 = now_ns();
  const std::int64_t end = t0 + o.seconds * 1'000'000'000;
  std::mt19937_64 seeds(o.seed);
  int status = 0, rounds = 0;
  for (int r = 0; now_ns() < end; ++r) {
    const std::int64_t left_s = (end - now_ns()) / 1'000'000'000;
    const std::int64_t len = std::max<std::int64_t>(1, std::min(o.round_seconds, left_s));
    const auto nk = static_cast<int>(kinds.size());
    Round round(r, kinds[static_cast<std::size_t>(r % nk)], waits[(r / nk) % 3], len, seeds(), dir);
    std::string summary;
    const std::string err = round.run(&summary);
    ++rounds;
    if (!o.quiet || !err.empty()) std::printf("%s\n", summary.c_str());
    if (!err.empty()) {
      std::printf("FAIL %s\n", err.c_str());
      status = 1;
      break;
    }
    std::fflush(stdout);
  }
  ::rmdir(dir.c_str());
  std::printf("shmring_soak: %s, %d rounds in %.1f s (seed %" PRIu64 ")\n", status == 0 ? "PASS" : "FAIL", rounds,
              static_cast<double>(now_ns() - t0) / 1e9, o.seed);
  return status;
}
