// shmtool and the library on a ring's life cycle: robust mutexes driven into
// each glibc state by real processes, how a peer left (closed or died), and
// push/pop detaching cleanly on signals and a closed stdout. Every test runs
// the real binary (run.hpp) on objects under the test prefix, removed by
// ShmGuard even when a test fails.
#include <fcntl.h>
#include <poll.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <set>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "json.hpp"
#include "layout.hpp"
#include "run.hpp"
#include "shmring/ring.hpp"
#include "shmring/shmring.h"
#include "support/shm_raw.hpp"
#include "support/test_support.hpp"

namespace {

using namespace shmtool_test;
using shmring::Errc;
using shmring::Timeout;
using shmring::test::ShmGuard;
using shmring::test::unique_ring_name;
namespace sd = shmring::detail;

shmring::Config cfg_of(shmring::Kind k, shmring::WaitStrategy w = shmring::WaitStrategy::futex) {
  shmring::Config c;
  c.kind = k;
  c.capacity = 4096;
  c.slot_size = k == shmring::Kind::mpmc ? 64 : 0;
  c.wait = w;
  return c;
}

// One byte through a pipe: the parent and a child take turns without sleeps.
struct Pipe {
  int fd[2] = {-1, -1};
  Pipe() { EXPECT_EQ(::pipe2(fd, O_CLOEXEC), 0); }
  ~Pipe() {
    for (int f : fd)
      if (f >= 0) ::close(f);
  }
  bool put(char c) const { return ::write(fd[1], &c, 1) == 1; }
  // Waits for one byte (the watchdog of the test binary bounds a hang).
  char get() const {
    char c = 0;
    for (;;) {
      const ssize_t n = ::read(fd[0], &c, 1);
      if (n == 1) return c;
      if (n < 0 && errno == EINTR) continue;
      return 0;
    }
  }
};

struct LockReport {
  int inspect_code = -1;
  int verify_code = -1;
  std::string condition, text;
  bool owner_died = false, not_recoverable = false, repairing = false;
};

LockReport inspect_producer_lock(const std::string& name) {
  LockReport r;
  const ToolRun j = run_tool({"inspect", name, "--json"});
  r.inspect_code = j.code;
  const Json doc = parse_json(j.out);
  const Json& lock = doc["ring"]["locks"]["producer"];
  r.condition = lock.has("condition") ? lock["condition"].str : "(absent)";
  r.owner_died = lock["owner_died"].b;
  r.not_recoverable = lock["not_recoverable"].b;
  r.repairing = lock.has("repair_in_progress") && lock["repair_in_progress"].b;
  r.text = run_tool({"inspect", name}).out;
  r.verify_code = run_tool({"verify", name}).code;
  return r;
}

// ---- Defect: robust-mutex owner values ------------------------------------------------

// Real mutexes in each of glibc's states: a holder that died (owner died), a
// locker that got EOWNERDEAD and is paused before pthread_mutex_consistent
// (repair in progress: __owner == INT_MAX), and one that unlocked without
// making it consistent (not recoverable: __owner == INT_MAX - 1).
TEST(ShmtoolMutexStates, RealMutexesInEachState) {
  const std::string name = unique_ring_name();
  ShmGuard guard(name);
  ASSERT_EQ(shmring::create(name, cfg_of(shmring::Kind::locked)), Errc::ok);

  const LockReport fresh = inspect_producer_lock(name);
  EXPECT_EQ(fresh.condition, "free");
  EXPECT_EQ(fresh.verify_code, 0);

  // 1. The holder dies holding it.
  {
    shmring::test::Child holder(
        [&]() -> std::string {
          shmring::test::RawMap raw(name);
          if (!raw.ok()) return "map failed";
          auto* m = reinterpret_cast<pthread_mutex_t*>(raw.header()->lock.prod_mutex);
          if (::pthread_mutex_lock(m) != 0) return "lock failed";
          ::_exit(0);  // dies holding it: the kernel marks it owner-died
        },
        std::chrono::seconds(20));
    ASSERT_TRUE(holder.wait().ok());
  }
  const LockReport died = inspect_producer_lock(name);
  EXPECT_EQ(died.inspect_code, 0) << died.text;
  EXPECT_EQ(died.condition, "owner_died");
  EXPECT_TRUE(died.owner_died);
  EXPECT_FALSE(died.not_recoverable);
  EXPECT_FALSE(died.repairing);
  EXPECT_NE(died.text.find("owner died; the next locker repairs it"), std::string::npos) << died.text;
  EXPECT_EQ(died.text.find("not recoverable"), std::string::npos) << died.text;
  EXPECT_EQ(died.verify_code, 0) << "an owner-died mutex is repaired by the next locker";

  // 2. and 3. The next locker gets EOWNERDEAD and pauses (repair in
  // progress); then it unlocks without pthread_mutex_consistent.
  Pipe to_parent, to_child;
  shmring::test::Child repairer(
      [&]() -> std::string {
        shmring::test::RawMap raw(name);
        if (!raw.ok()) return "map failed";
        auto* m = reinterpret_cast<pthread_mutex_t*>(raw.header()->lock.prod_mutex);
        const int rc = ::pthread_mutex_lock(m);
        if (rc != EOWNERDEAD) return "lock gave " + std::to_string(rc) + ", not EOWNERDEAD";
        to_parent.put('r');
        if (to_child.get() != 'u') return "no go-ahead";
        if (::pthread_mutex_unlock(m) != 0) return "unlock failed";
        to_parent.put('u');
        if (to_child.get() != 'x') return "no exit order";
        return "";
      },
      std::chrono::seconds(60));
  ASSERT_EQ(to_parent.get(), 'r');
  const LockReport repairing = inspect_producer_lock(name);
  EXPECT_EQ(repairing.inspect_code, 0) << repairing.text;
  EXPECT_EQ(repairing.condition, "repairing");
  EXPECT_TRUE(repairing.repairing);
  EXPECT_FALSE(repairing.not_recoverable);
  EXPECT_NE(repairing.text.find("repair in progress"), std::string::npos) << repairing.text;
  EXPECT_EQ(repairing.text.find("not recoverable"), std::string::npos) << repairing.text;
  EXPECT_EQ(repairing.verify_code, 0) << "a repair in progress is not damage";

  ASSERT_TRUE(to_child.put('u'));
  ASSERT_EQ(to_parent.get(), 'u');
  const LockReport lost = inspect_producer_lock(name);
  EXPECT_EQ(lost.inspect_code, 4) << lost.text;
  EXPECT_EQ(lost.condition, "not_recoverable");
  EXPECT_TRUE(lost.not_recoverable);
  EXPECT_FALSE(lost.repairing);
  EXPECT_NE(lost.text.find("not recoverable"), std::string::npos) << lost.text;
  EXPECT_EQ(lost.text.find("repair in progress"), std::string::npos) << lost.text;
  EXPECT_EQ(lost.verify_code, 4) << "a not-recoverable mutex wedges the ring";
  ASSERT_TRUE(to_child.put('x'));
  const auto res = repairer.wait();
  EXPECT_TRUE(res.ok()) << res.describe();
}


// ---- Defect: a clean end and a crash look the same ------------------------------------

const shmring::Kind kKinds[] = {shmring::Kind::spsc, shmring::Kind::mpmc, shmring::Kind::locked};

// Record i carries its sequence number and a checksum of it.
std::string record_of(std::uint64_t i) {
  return "seq=" + std::to_string(i) + " sum=" + std::to_string((i * 2654435761u) ^ 0x5a5a5a5a);
}

bool attach_entry_of(const sd::Header* h, pid_t pid, std::uint32_t role) {
  for (const sd::AttachEntry& e : h->attach) {
    const std::uint64_t w = sd::atom(const_cast<std::uint64_t&>(e.state)).load(std::memory_order_acquire);
    if (w != 0 && sd::attach_word_pid(w) == pid && (role == 0 || sd::attach_word_role(w) == role)) return true;
  }
  return false;
}

// Waits (bounded) until cond() holds; polling a condition, never a bare sleep.
template <class F>
bool wait_until(F&& cond, int ms = 10000) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (!cond()) {
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// A producer process that sends n records, reports 's', then waits for 'c'
// (close cleanly) or to be killed by the parent with SIGKILL.
struct ProducerChild {
  Pipe to_parent, to_child;
  std::unique_ptr<shmring::test::Child> child;
  ProducerChild(const std::string& name, std::uint64_t n) {
    child = std::make_unique<shmring::test::Child>(
        [&, name, n]() -> std::string {
          auto p = shmring::Producer::open(name);
          if (!p) return "open failed";
          for (std::uint64_t i = 0; i < n; ++i) {
            const std::string r = record_of(i);
            if (p->send(std::as_bytes(std::span(r.data(), r.size())), std::chrono::seconds(20)) != Errc::ok)
              return "send " + std::to_string(i) + " failed";
          }
          to_parent.put('s');
          if (to_child.get() != 'c') return "no close order";
          return "";  // p closes here: a clean detach
        },
        std::chrono::seconds(60));
  }
};

// The consumer (C API) drains everything, then gets peer_gone; the departure
// says closed for a producer that closed, died for one killed with SIGKILL.
// A producer killed before the consumer opened does not count.
TEST(Departure, ClosedVersusKilledProducerEachKind) {
  for (const shmring::Kind kind : kKinds) {
    for (const bool killed : {false, true}) {
      SCOPED_TRACE(std::string(shmring::to_string(kind)) + (killed ? " killed" : " closed"));
      const std::string name = unique_ring_name();
      ShmGuard guard(name);
      ASSERT_EQ(shmring::create(name, cfg_of(kind)), Errc::ok);
      {  // an earlier producer, dead before the consumer opens
        ProducerChild early(name, 1);
        ASSERT_EQ(early.to_parent.get(), 's');
        ::kill(early.child->pid(), SIGKILL);
        early.child->wait();
      }
      shmring_t* c = nullptr;
      ASSERT_EQ(shmring_open(name.c_str(), SHMRING_CONSUMER, &c), SHMRING_OK);
      char buf[256];
      size_t len = 0;
      ASSERT_EQ(shmring_recv(c, buf, sizeof buf, &len, 0), SHMRING_OK);  // the early producer's record
      EXPECT_EQ(std::string(buf, len), record_of(0));
      EXPECT_EQ(shmring_peer_departure(c), SHMRING_DEPARTURE_NONE) << "a death before open is not counted";

      const std::uint64_t n = 300;  // more than a 4 KiB ring holds: the producer waits for us
      ProducerChild prod(name, n);
      std::uint64_t next = 0;
      int rc = SHMRING_OK;
      bool told = false;
      for (;;) {
        rc = shmring_recv(c, buf, sizeof buf, &len, 20'000'000'000);
        if (rc != SHMRING_OK) break;
        ASSERT_EQ(std::string(buf, len), record_of(next)) << "lost, duplicated or torn";
        ++next;
        if (next == n) {
          ASSERT_EQ(prod.to_parent.get(), 's');
          EXPECT_EQ(shmring_peer_departure(c), SHMRING_DEPARTURE_NONE) << "the producer is still attached";
          if (killed) {
            ASSERT_EQ(::kill(prod.child->pid(), SIGKILL), 0);
          } else {
            ASSERT_TRUE(prod.to_child.put('c'));
          }
          told = true;
        }
      }
      ASSERT_TRUE(told);
      EXPECT_EQ(rc, SHMRING_EPEERGONE);
      EXPECT_EQ(next, n);
      EXPECT_EQ(shmring_peer_departure(c), killed ? SHMRING_DEPARTURE_DIED : SHMRING_DEPARTURE_CLOSED);
      EXPECT_EQ(shmring_peer_departure(c), killed ? SHMRING_DEPARTURE_DIED : SHMRING_DEPARTURE_CLOSED)
          << "asking again gives the same answer";
      const auto res = prod.child->wait();
      if (killed) {
        EXPECT_EQ(res.signal, SIGKILL) << res.describe();
      } else {
        EXPECT_TRUE(res.ok()) << res.describe();
      }
      shmring_close(c);
    }
  }
  EXPECT_EQ(shmring_peer_departure(nullptr), SHMRING_EINVAL);
}

// The producer's side (C++ API): on a full ring, the consumer closed or died.
TEST(Departure, ClosedVersusKilledConsumerEachKind) {
  for (const shmring::Kind kind : kKinds) {
    for (const bool killed : {false, true}) {
      SCOPED_TRACE(std::string(shmring::to_string(kind)) + (killed ? " killed" : " closed"));
      const std::string name = unique_ring_name();
      ShmGuard guard(name);
      ASSERT_EQ(shmring::create(name, cfg_of(kind)), Errc::ok);
      auto p = shmring::Producer::open(name);
      ASSERT_TRUE(p.ok());
      Pipe to_parent, to_child;
      shmring::test::Child cons(
          [&]() -> std::string {
            auto c = shmring::Consumer::open(name);
            if (!c) return "open failed";
            to_parent.put('o');
            if (to_child.get() != 'c') return "no close order";
            return "";
          },
          std::chrono::seconds(60));
      ASSERT_EQ(to_parent.get(), 'o');
      EXPECT_EQ(p->peer_departure(), shmring::Departure::none);
      const std::string r = record_of(1);
      Errc e = Errc::ok;
      while ((e = p->send(std::as_bytes(std::span(r.data(), r.size())), Timeout::try_once())) == Errc::ok) {
      }
      ASSERT_EQ(e, Errc::would_block) << "the ring is full";
      if (killed) {
        ASSERT_EQ(::kill(cons.pid(), SIGKILL), 0);
      } else {
        ASSERT_TRUE(to_child.put('c'));
      }
      cons.wait();
      EXPECT_EQ(p->send(std::as_bytes(std::span(r.data(), r.size())), std::chrono::seconds(10)), Errc::peer_gone);
      EXPECT_EQ(p->peer_departure(), killed ? shmring::Departure::died : shmring::Departure::closed);
    }
  }
}

// shmtool pop ends with 0 when the producer closed, 8 when it was killed,
// after printing every record exactly once.
TEST(Departure, ShmtoolPopExit0WhenClosed8WhenKilled) {
  for (const shmring::Kind kind : kKinds) {
    for (const bool killed : {false, true}) {
      SCOPED_TRACE(std::string(shmring::to_string(kind)) + (killed ? " killed" : " closed"));
      const std::string name = unique_ring_name();
      ShmGuard guard(name);
      ASSERT_EQ(shmring::create(name, cfg_of(kind)), Errc::ok);
      const std::uint64_t n = 200;
      ToolRun pop;
      std::thread popper([&] { pop = run_tool({"pop", name}, RunOptions().deadline_ms(30000)); });
      {
        ProducerChild prod(name, n);
        shmring::test::RawMap raw(name);
        ASSERT_TRUE(raw.ok());
        // Every record sent, and taken by pop (which therefore saw the producer).
        EXPECT_EQ(prod.to_parent.get(), 's');
        EXPECT_TRUE(wait_until([&] { return raw.head() == raw.tail(); })) << "pop did not drain the ring";
        if (killed) {
          ::kill(prod.child->pid(), SIGKILL);
        } else {
          prod.to_child.put('c');
        }
        prod.child->wait();
      }
      popper.join();
      EXPECT_EQ(pop.code, killed ? 8 : 0) << pop.describe();
      std::string expect;
      for (std::uint64_t i = 0; i < n; ++i) expect += record_of(i) + "\n";
      EXPECT_EQ(pop.out, expect);
      if (killed) {
        EXPECT_EQ(pop.stderr_lines(), 1) << pop.describe();
        EXPECT_NE(pop.err.find("died"), std::string::npos) << pop.describe();
      } else {
        EXPECT_TRUE(pop.err.empty()) << pop.describe();
      }
    }
  }
}

// inspect/verify --stale-is-error: a stale ring (every attached peer dead)
// exits 8; a ready one 0; without the option a stale ring is still 0.
TEST(Departure, StaleIsErrorForCron) {
  const std::string name = unique_ring_name();
  ShmGuard guard(name);
  ASSERT_EQ(shmring::create(name, cfg_of(shmring::Kind::spsc)), Errc::ok);
  for (const char* cmd : {"inspect", "verify"}) {
    const ToolRun r = run_tool({cmd, name, "--stale-is-error"});
    EXPECT_EQ(r.code, 0) << r.describe();
  }
  {
    ProducerChild dead(name, 1);
    ASSERT_EQ(dead.to_parent.get(), 's');
    ::kill(dead.child->pid(), SIGKILL);
    dead.child->wait();
  }
  for (const char* cmd : {"inspect", "verify"}) {
    SCOPED_TRACE(cmd);
    const ToolRun plain = run_tool({cmd, name});
    EXPECT_EQ(plain.code, 0) << plain.describe();
    const ToolRun r = run_tool({cmd, name, "--stale-is-error"});
    EXPECT_EQ(r.code, 8) << r.describe();
    EXPECT_EQ(r.stderr_lines(), 1) << r.describe();
    EXPECT_NE(r.err.find("stale"), std::string::npos) << r.describe();
    EXPECT_NE(r.err.find(name), std::string::npos) << r.describe();
  }
  const ToolRun j = run_tool({"inspect", name, "--json", "--stale-is-error"});
  EXPECT_EQ(j.code, 8);
  EXPECT_EQ(parse_json(j.out)["ring"]["status"].str, "stale");
}


// ---- Defect: push and pop detach cleanly on signals and a closed stdout ------------------

// The real binary as a child process, with pipes for stdin and stdout (the
// test drives them), default signal dispositions, killed and reaped by the
// destructor if a test fails first.
struct Spawned {
  pid_t pid = -1;
  int in = -1;   // write end: the child's stdin
  int out = -1;  // read end: the child's stdout
  int status = -1;
  bool reaped = false;
  Spawned(const std::vector<std::string>& args) {
    int i[2], o[2];
    if (::pipe2(i, O_CLOEXEC) != 0 || ::pipe2(o, O_CLOEXEC) != 0) return;
    std::vector<std::string> argv_s{tool_path()};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    pid = ::fork();
    if (pid == 0) {
      ::dup2(i[0], 0);
      ::dup2(o[1], 1);
      for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) ::signal(sig, SIG_DFL);
      sigset_t none;
      ::sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      std::vector<char*> argv;
      for (auto& a : argv_s) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(i[0]);
    ::close(o[1]);
    in = i[1];
    out = o[0];
  }
  ~Spawned() {
    if (pid > 0 && !reaped) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    close_in();
    close_out();
  }
  void close_in() {
    if (in >= 0) ::close(in);
    in = -1;
  }
  void close_out() {
    if (out >= 0) ::close(out);
    out = -1;
  }
  // Reads stdout until `lines` more newlines (or EOF / the deadline) and
  // appends what it read to *acc. Returns the number of newlines seen.
  int read_lines(std::string* acc, int lines, int ms = 10000) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    int seen = 0;
    char c;
    while (seen < lines && std::chrono::steady_clock::now() < until) {
      pollfd p{out, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const ssize_t n = ::read(out, &c, 1);  // byte by byte: never read past the lines asked for
      if (n <= 0) break;
      acc->push_back(c);
      seen += c == '\n';
    }
    return seen;
  }
  // Everything left on stdout until EOF.
  void read_rest(std::string* acc) {
    while (read_lines(acc, 1 << 30, 15000) > 0) {
    }
  }
  // The exit status once it ends (bounded), or -1.
  int wait_exit(int ms = 10000) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    int st = 0;
    while (std::chrono::steady_clock::now() < until) {
      const pid_t r = ::waitpid(pid, &st, WNOHANG);
      if (r == pid) {
        reaped = true;
        status = st;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 1000 + WTERMSIG(st);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return -1;
  }
};

bool entry_asleep(const sd::Header* h, pid_t pid, std::uint64_t bit) {
  for (const sd::AttachEntry& e : h->attach) {
    const std::uint64_t w = sd::atom(const_cast<std::uint64_t&>(e.state)).load(std::memory_order_acquire);
    if (w != 0 && sd::attach_word_pid(w) == pid &&
        (sd::atom(const_cast<std::uint64_t&>(e.sleeping)).load(std::memory_order_relaxed) & bit) != 0)
      return true;
  }
  return false;
}

std::uint64_t closed_count(const sd::Header* h, shmring::Role r) {
  return sd::atom(const_cast<std::uint64_t&>(h->departures.closed[static_cast<int>(r) - 1]))
      .load(std::memory_order_acquire);
}

// Records left in the ring, drained by a fresh consumer.
std::vector<std::string> drain(const std::string& name) {
  std::vector<std::string> v;
  auto c = shmring::Consumer::open(name);
  EXPECT_TRUE(c.ok());
  if (!c) return v;
  std::byte buf[512];
  for (;;) {
    auto n = c->recv(buf, Timeout::try_once());
    if (!n) break;
    v.emplace_back(reinterpret_cast<const char*>(buf), *n);
  }
  return v;
}

// Streams record_of(0), record_of(1), ... into the ring from a thread
// (waiting at most 10 ms per send, so that stop() is prompt) until stop(),
// which returns how many records were sent.
class Feeder {
 public:
  explicit Feeder(shmring::Producer& p)
      : thread_([this, &p] {
          while (!stop_.load()) {
            const std::string r = record_of(sent_);
            const Errc e = p.send(std::as_bytes(std::span(r.data(), r.size())), std::chrono::milliseconds(10));
            if (e == Errc::ok) ++sent_;
            else if (e != Errc::timed_out) break;
          }
        }) {}
  ~Feeder() { stop(); }
  Feeder(const Feeder&) = delete;
  Feeder& operator=(const Feeder&) = delete;
  std::uint64_t stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
    return sent_;
  }

 private:
  std::atomic<bool> stop_{false};
  std::uint64_t sent_ = 0;
  std::thread thread_;  // declared last: starts after the fields it uses
};

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> v;
  std::size_t b = 0;
  for (std::size_t e; (e = s.find('\n', b)) != std::string::npos; b = e + 1) v.push_back(s.substr(b, e - b));
  return v;
}

const int kStopSignals[] = {SIGINT, SIGTERM, SIGHUP};

// The clean-detach checks after a stopped push/pop: no attach entry left for
// it, its role's clean-close counter moved by one, inspect says ready.
void expect_clean_detach(const std::string& name, const sd::Header* h, pid_t pid, shmring::Role role,
                         std::uint64_t closed_before) {
  EXPECT_FALSE(attach_entry_of(h, pid, 0)) << "a stale attach entry was left behind";
  EXPECT_EQ(closed_count(h, role), closed_before + 1) << "not counted as a clean close";
  const ToolRun r = run_tool({"inspect", name, "--json"});
  const Json j = parse_json(r.out);
  EXPECT_EQ(j["ring"]["status"].str, "ready") << r.out;
  EXPECT_EQ(j["ring"]["peers"]["dead"].u64(), 0u) << r.out;
  EXPECT_EQ(run_tool({"verify", name, "--stale-is-error"}).code, 0);
}

TEST(StopCleanly, PopWaitingOnAnEmptyRing) {
  for (const shmring::Kind kind : kKinds) {
    for (const int sig : kStopSignals) {
      SCOPED_TRACE(std::string(shmring::to_string(kind)) + " " + ::strsignal(sig));
      const std::string name = unique_ring_name();
      ShmGuard guard(name);
      ASSERT_EQ(shmring::create(name, cfg_of(kind)), Errc::ok);
      shmring::test::RawMap raw(name);
      ASSERT_TRUE(raw.ok());
      const std::uint64_t closed0 = closed_count(raw.header(), shmring::Role::consumer);
      Spawned pop({"pop", name});
      ASSERT_GT(pop.pid, 0);
      ASSERT_TRUE(wait_until([&] { return entry_asleep(raw.header(), pop.pid, 1); })) << "pop never slept";
      ASSERT_EQ(::kill(pop.pid, sig), 0);
      EXPECT_EQ(pop.wait_exit(), 128 + sig);
      expect_clean_detach(name, raw.header(), pop.pid, shmring::Role::consumer, closed0);
    }
  }
}

// A producer (a thread here) streams numbered records; pop prints them; a
// stop signal arrives mid-stream. Every record is then either printed by
// pop or still in the ring, in order, none twice, none missing.
TEST(StopCleanly, PopWhileStreaming) {
  for (const shmring::Kind kind : kKinds) {
    for (const int sig : kStopSignals) {
      SCOPED_TRACE(std::string(shmring::to_string(kind)) + " " + ::strsignal(sig));
      const std::string name = unique_ring_name();
      ShmGuard guard(name);
      ASSERT_EQ(shmring::create(name, cfg_of(kind)), Errc::ok);
      shmring::test::RawMap raw(name);
      ASSERT_TRUE(raw.ok());
      const std::uint64_t closed0 = closed_count(raw.header(), shmring::Role::consumer);
      auto prod = shmring::Producer::open(name);
      ASSERT_TRUE(prod.ok());
      Feeder feeder(*prod);
      Spawned pop({"pop", name});
      std::string printed;
      EXPECT_EQ(pop.read_lines(&printed, 50), 50);
      ::kill(pop.pid, sig);
      pop.read_rest(&printed);
      EXPECT_EQ(pop.wait_exit(), 128 + sig);
      const std::uint64_t sent = feeder.stop();
      prod = shmring::Producer();  // close
      std::vector<std::string> all = split_lines(printed);
      EXPECT_GE(all.size(), 50u);
      EXPECT_EQ(printed.back(), '\n') << "a record printed in part";
      const std::vector<std::string> rest = drain(name);
      all.insert(all.end(), rest.begin(), rest.end());
      ASSERT_EQ(all.size(), sent) << "records lost or duplicated (" << rest.size() << " left in the ring)";
      for (std::uint64_t i = 0; i < sent; ++i) ASSERT_EQ(all[i], record_of(i)) << "at " << i;
      EXPECT_FALSE(attach_entry_of(raw.header(), pop.pid, 0)) << "a stale attach entry was left behind";
      EXPECT_EQ(closed_count(raw.header(), shmring::Role::consumer), closed0 + 2) << "pop and the drainer";
    }
  }
}

// A closed stdout (the reader went away, as `| head` does): pop detaches and
// exits 0, while streaming and while waiting. The record being written when
// the pipe broke stays in an spsc or locked ring.
TEST(StopCleanly, PopOnAClosedStdout) {
  for (const shmring::Kind kind : kKinds) {
    SCOPED_TRACE(shmring::to_string(kind));
    const std::string name = unique_ring_name();
    ShmGuard guard(name);
    ASSERT_EQ(shmring::create(name, cfg_of(kind)), Errc::ok);
    shmring::test::RawMap raw(name);
    ASSERT_TRUE(raw.ok());
    std::uint64_t closed0 = closed_count(raw.header(), shmring::Role::consumer);
    {  // waiting on an empty ring
      Spawned pop({"pop", name});
      ASSERT_TRUE(wait_until([&] { return entry_asleep(raw.header(), pop.pid, 1); })) << "pop never slept";
      pop.close_out();
      EXPECT_EQ(pop.wait_exit(), 0);
      expect_clean_detach(name, raw.header(), pop.pid, shmring::Role::consumer, closed0);
      closed0 = closed_count(raw.header(), shmring::Role::consumer);
    }
    // streaming: a feeder keeps the ring full
    auto prod = shmring::Producer::open(name);
    ASSERT_TRUE(prod.ok());
    Feeder feeder(*prod);
    Spawned pop({"pop", name});
    std::string printed;
    EXPECT_EQ(pop.read_lines(&printed, 20), 20);
    pop.close_out();
    EXPECT_EQ(pop.wait_exit(), 0);
    const std::uint64_t sent = feeder.stop();
    prod = shmring::Producer();
    const std::vector<std::string> rest = drain(name);
    // What pop wrote into the pipe after our 20 lines died with the pipe;
    // the rest of the stream is in the ring, contiguous to the end.
    ASSERT_FALSE(rest.empty());
    std::uint64_t first = 0;
    ASSERT_EQ(std::sscanf(rest.front().c_str(), "seq=%lu", &first), 1);
    EXPECT_GE(first, 20u);
    ASSERT_EQ(first + rest.size(), sent);
    for (std::size_t i = 0; i < rest.size(); ++i) ASSERT_EQ(rest[i], record_of(first + i));
    EXPECT_FALSE(attach_entry_of(raw.header(), pop.pid, 0)) << "a stale attach entry was left behind";
    EXPECT_EQ(closed_count(raw.header(), shmring::Role::consumer), closed0 + 2) << "pop and the drainer";
  }
}

// push stopped while waiting for stdin, and while waiting on a full ring.
TEST(StopCleanly, PushWaitingOnStdinOrAFullRing) {
  for (const shmring::Kind kind : kKinds) {
    for (const int sig : kStopSignals) {
      SCOPED_TRACE(std::string(shmring::to_string(kind)) + " " + ::strsignal(sig));
      const std::string name = unique_ring_name();
      ShmGuard guard(name);
      ASSERT_EQ(shmring::create(name, cfg_of(kind)), Errc::ok);
      shmring::test::RawMap raw(name);
      ASSERT_TRUE(raw.ok());
      {  // waiting on stdin, after three lines
        const std::uint64_t closed0 = closed_count(raw.header(), shmring::Role::producer);
        auto c = shmring::Consumer::open(name);
        ASSERT_TRUE(c.ok());
        Spawned push({"push", name});
        const std::string three = record_of(0) + "\n" + record_of(1) + "\n" + record_of(2) + "\n";
        ASSERT_EQ(::write(push.in, three.data(), three.size()), static_cast<ssize_t>(three.size()));
        std::byte buf[256];
        for (std::uint64_t i = 0; i < 3; ++i) {
          auto n = c->recv(buf, std::chrono::seconds(10));
          ASSERT_TRUE(n.ok());
          EXPECT_EQ(std::string(reinterpret_cast<const char*>(buf), *n), record_of(i));
        }
        ASSERT_EQ(::kill(push.pid, sig), 0);
        EXPECT_EQ(push.wait_exit(), 128 + sig);
        EXPECT_FALSE(attach_entry_of(raw.header(), push.pid, 0)) << "a stale attach entry was left behind";
        EXPECT_EQ(closed_count(raw.header(), shmring::Role::producer), closed0 + 1);
      }
      {  // waiting on a full ring
        const std::uint64_t closed0 = closed_count(raw.header(), shmring::Role::producer);
        auto c = shmring::Consumer::open(name);  // present, but not reading
        ASSERT_TRUE(c.ok());
        Spawned push({"push", name});
        std::string lines;
        for (std::uint64_t i = 0; i < 1000; ++i) lines += record_of(i) + "\n";
        ::fcntl(push.in, F_SETFL, O_NONBLOCK);
        const ssize_t w = ::write(push.in, lines.data(), lines.size());
        ASSERT_GT(w, 0);
        ASSERT_TRUE(wait_until([&] { return entry_asleep(raw.header(), push.pid, 2); })) << "push never waited";
        ASSERT_EQ(::kill(push.pid, sig), 0);
        EXPECT_EQ(push.wait_exit(), 128 + sig);
        EXPECT_FALSE(attach_entry_of(raw.header(), push.pid, 0)) << "a stale attach entry was left behind";
        EXPECT_EQ(closed_count(raw.header(), shmring::Role::producer), closed0 + 1);
        c = shmring::Consumer();
        const std::vector<std::string> got = drain(name);
        ASSERT_FALSE(got.empty());
        for (std::size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], record_of(i)) << "torn or out of order";
      }
    }
  }
}

// shmtool push on a full ring: exit 1 when its consumer closed, 8 when it
// died (the consumer leaves while push waits for space).
TEST(Departure, ShmtoolPushExit1WhenClosed8WhenKilled) {
  for (const shmring::Kind kind : kKinds) {
    for (const bool killed : {false, true}) {
      SCOPED_TRACE(std::string(shmring::to_string(kind)) + (killed ? " killed" : " closed"));
      const std::string name = unique_ring_name();
      ShmGuard guard(name);
      ASSERT_EQ(shmring::create(name, cfg_of(kind)), Errc::ok);
      shmring::test::RawMap raw(name);
      ASSERT_TRUE(raw.ok());
      Pipe to_parent, to_child;
      shmring::test::Child cons(
          [&]() -> std::string {
            auto c = shmring::Consumer::open(name);
            if (!c) return "open failed";
            to_parent.put('o');
            if (to_child.get() != 'c') return "no close order";
            return "";
          },
          std::chrono::seconds(60));
      ASSERT_EQ(to_parent.get(), 'o');
      Spawned push({"push", name});
      std::string lines;
      for (std::uint64_t i = 0; i < 1000; ++i) lines += record_of(i) + "\n";
      ::fcntl(push.in, F_SETFL, O_NONBLOCK);
      ASSERT_GT(::write(push.in, lines.data(), lines.size()), 0);
      ASSERT_TRUE(wait_until([&] { return entry_asleep(raw.header(), push.pid, 2); })) << "push never waited";
      if (killed) {
        ASSERT_EQ(::kill(cons.pid(), SIGKILL), 0);
      } else {
        ASSERT_TRUE(to_child.put('c'));
      }
      cons.wait();
      EXPECT_EQ(push.wait_exit(), killed ? 8 : 1);
    }
  }
}

}  // namespace
