// mpmc_bench: many producers and many consumers on one queue.
//
//   mpmc/<queue>/<threads|procs>/<P>P<C>C/<bytes>
//     queue: ring_mpmc, ring_locked, boost_mq (Boost.Interprocess message_queue)
//     threads: P + C threads of this process; procs: P + C forked processes
//     1P1C, 2P2C, 4P4C; records of 8, 64 and 256 bytes
//
// Producers run on CPU 0 and consumers on CPU 1 (so 2P2C and 4P4C share a
// core per side: on this 2-CPU machine they are oversubscribed by design,
// and the numbers say what contention plus time-slicing costs). Producers
// write records for --seconds (default 0.5); the time runs from the start
// signal until every record is consumed. Every record carries its producer
// and sequence number; each consumer checks that each producer's records
// arrive in increasing order, and the run fails unless the counts and the
// sums of sequence numbers per producer match exactly (nothing lost or
// duplicated).
#include <benchmark/benchmark.h>
#include <sys/mman.h>

#include <boost/date_time/posix_time/posix_time_types.hpp>
#include <boost/interprocess/ipc/message_queue.hpp>
#include <memory>
#include <optional>
#include <thread>

#include "bench_common.hpp"
#include "shmring/shmring.hpp"

namespace bip = boost::interprocess;

namespace {

double g_seconds = 0.5;
constexpr int kMaxSide = 4;

struct alignas(64) Line {
  std::atomic<std::uint64_t> v{0};
};

// Shared by all parties (MAP_SHARED, so forked children see it too).
struct Control {
  std::atomic<int> ready{0};
  std::atomic<int> go{0};
  std::atomic<int> stop{0};
  std::atomic<int> producers_done{0};
  std::atomic<int> failed{0};
  char error[256] = {};
  Line produced[kMaxSide];
  Line consumed[kMaxSide];  // running count per consumer
  std::uint64_t got[kMaxSide][kMaxSide] = {};  // [consumer][producer] count, written at the end
  std::uint64_t sum[kMaxSide][kMaxSide] = {};  // [consumer][producer] sum of sequence numbers

  void fail(const std::string& why) {
    int zero = 0;
    if (failed.compare_exchange_strong(zero, 1)) std::snprintf(error, sizeof error, "%s", why.c_str());
    stop.store(1);
  }
};

enum class Queue { mpmc, locked, boost };

struct Case {
  Queue q;
  bool procs;
  int n;  // producers = consumers = n
  std::size_t size;
};

constexpr int kIdShift = 56;
constexpr std::uint64_t kSeqMask = (std::uint64_t{1} << kIdShift) - 1;

// A producer or consumer handle of any of the three queues.
class Handle {
 public:
  bool open(const Case& c, const std::string& name, bool producer, std::string* err) {
    size_ = c.size;
    buf_.resize(c.size);
    if (c.q == Queue::boost) {
      try {
        bq_.emplace(bip::open_only, name.c_str() + 1);
      } catch (const std::exception& e) {
        *err = std::string("boost open: ") + e.what();
        return false;
      }
      return true;
    }
    if (producer) {
      auto r = shmring::Producer::open(name);
      if (!r) {
        *err = "Producer::open: " + shmring::last_error_message();
        return false;
      }
      p_ = std::move(*r);
    } else {
      auto r = shmring::Consumer::open(name);
      if (!r) {
        *err = "Consumer::open: " + shmring::last_error_message();
        return false;
      }
      c_ = std::move(*r);
    }
    return true;
  }

  bool send(const std::vector<std::byte>& tmpl, std::uint64_t word) {
    std::byte* p;
    if (bq_) {
      p = buf_.data();
    } else {
      auto r = p_.reserve(size_, std::chrono::seconds(30));
      if (!r) return false;
      p = r->data();
    }
    std::memcpy(p, tmpl.data(), size_);
    bench::stamp(p, size_, word);
    if (bq_) {
      bq_->send(p, size_, 0);
      return true;
    }
    return p_.commit(size_) == shmring::Errc::ok;
  }

  // 1: got a record (f called), 0: nothing within 1 ms, -1: error
  template <class F>
  int recv(F&& f) {
    if (bq_) {
      bip::message_queue::size_type n = 0;
      unsigned prio = 0;
      const auto until = boost::posix_time::microsec_clock::universal_time() + boost::posix_time::milliseconds(1);
      if (!bq_->timed_receive(buf_.data(), buf_.size(), n, prio, until)) return 0;
      return f(buf_.data(), static_cast<std::size_t>(n)) ? 1 : -1;
    }
    auto r = c_.peek(std::chrono::milliseconds(1));
    if (!r) {
      // peer_gone: every producer has finished and detached (the caller's
      // count check decides when we are done).
      if (r.error() == shmring::Errc::timed_out || r.error() == shmring::Errc::peer_gone) return 0;
      err_ = shmring::to_string(r.error());
      return -1;
    }
    if (!f(r->data(), r->size())) return -1;
    return c_.release() == shmring::Errc::ok ? 1 : -1;
  }

 private:
  std::size_t size_ = 0;
  std::vector<std::byte> buf_;
  shmring::Producer p_;
  shmring::Consumer c_;
  std::optional<bip::message_queue> bq_;

 public:
  std::string err_;
};

void wait_go(Control* ctl) {
  while (ctl->go.load(std::memory_order_acquire) == 0) ::usleep(50);
}

void producer_body(const Case& c, const std::string& name, Control* ctl, int id) {
  Handle h;
  std::string err;
  if (!bench::pin_to_cpu(0) || !h.open(c, name, true, &err)) {
    ctl->fail(err.empty() ? "pinning failed" : err);
    ctl->ready.fetch_add(1);
    return;
  }
  const std::vector<std::byte> tmpl = bench::make_template(c.size);
  ctl->ready.fetch_add(1);
  wait_go(ctl);
  std::uint64_t seq = 0;
  const std::uint64_t tag = static_cast<std::uint64_t>(id) << kIdShift;
  while (ctl->stop.load(std::memory_order_relaxed) == 0) {
    for (int j = 0; j < 64; ++j) {
      if (!h.send(tmpl, tag | seq)) {
        ctl->fail("producer " + std::to_string(id) + ": send failed");
        break;
      }
      ++seq;
    }
  }
  ctl->produced[id].v.store(seq);
  ctl->producers_done.fetch_add(1);
}

void consumer_body(const Case& c, const std::string& name, Control* ctl, int id) {
  Handle h;
  std::string err;
  if (!bench::pin_to_cpu(1) || !h.open(c, name, false, &err)) {
    ctl->fail(err.empty() ? "pinning failed" : err);
    ctl->ready.fetch_add(1);
    return;
  }
  ctl->ready.fetch_add(1);
  wait_go(ctl);
  std::uint64_t next[kMaxSide] = {}, got[kMaxSide] = {}, sum[kMaxSide] = {}, total = 0;
  std::string why;
  auto on = [&](const std::byte* p, std::size_t len) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    const int from = static_cast<int>(w >> kIdShift);
    const std::uint64_t seq = w & kSeqMask;
    if (len != c.size || from >= c.n || seq < next[from] || !bench::check(p, len, c.size, w)) {
      why = "consumer " + std::to_string(id) + ": bad record from producer " + std::to_string(from) + " seq " +
            std::to_string(seq) + " (expected at least " + std::to_string(next[from]) + ")";
      return false;
    }
    next[from] = seq + 1;
    ++got[from];
    sum[from] += seq;
    return true;
  };
  for (;;) {
    const int r = h.recv(on);
    if (r < 0) {
      ctl->fail(why.empty() ? "consumer " + std::to_string(id) + ": receive failed: " + h.err_ : why);
      break;
    }
    if (r > 0) {
      ctl->consumed[id].v.store(++total, std::memory_order_release);
      continue;
    }
    if (ctl->failed.load()) break;
    if (ctl->producers_done.load(std::memory_order_acquire) == c.n) {
      std::uint64_t prod = 0, cons = 0;
      for (int i = 0; i < c.n; ++i) prod += ctl->produced[i].v.load();
      for (int i = 0; i < c.n; ++i) cons += ctl->consumed[i].v.load(std::memory_order_acquire);
      if (cons >= prod) break;
    }
  }
  for (int i = 0; i < kMaxSide; ++i) {
    ctl->got[id][i] = got[i];
    ctl->sum[id][i] = sum[i];
  }
}

void bm_mpmc(benchmark::State& st, Case c) {
  // Queue with a budget of about 1 MiB, as in ipc_compare.
  const std::string name = bench::unique_name("mpmc");
  bench::NameGuard guard;
  const std::size_t slot = (c.size + 7) & ~std::size_t{7};
  if (c.q == Queue::boost) {
    try {
      bip::message_queue q(bip::create_only, name.c_str() + 1,
                           std::clamp<std::size_t>((1 << 20) / c.size, 4, 65536), c.size);
      guard.arm(bench::ObjKind::shm, name);
    } catch (const std::exception& e) {
      return st.SkipWithError(e.what());
    }
  } else {
    shmring::Config cfg;
    cfg.kind = c.q == Queue::mpmc ? shmring::Kind::mpmc : shmring::Kind::locked;
    cfg.capacity = std::size_t{1} << 20;
    if (c.q == Queue::mpmc) {
      const std::size_t stride = (16 + slot + 63) & ~std::size_t{63};
      std::size_t slots = 1;
      while (slots * stride < (std::size_t{1} << 20)) slots <<= 1;
      cfg.slot_size = slot;
      cfg.capacity = std::max<std::size_t>(4096, slots * slot);
      while (cfg.capacity & (cfg.capacity - 1)) cfg.capacity += cfg.capacity & -cfg.capacity;
    }
    if (shmring::create(name, cfg) != shmring::Errc::ok) return st.SkipWithError(shmring::last_error_message().c_str());
    guard.arm(bench::ObjKind::shm, name);
  }
  void* mem = ::mmap(nullptr, sizeof(Control), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return st.SkipWithError("mmap failed");
  Control* ctl = new (mem) Control();
  const int parties = 2 * c.n;

  std::vector<std::thread> threads;
  std::vector<pid_t> pids;
  for (int i = 0; i < parties; ++i) {
    const bool prod = i < c.n;
    const int id = prod ? i : i - c.n;
    if (c.procs) {
      std::fflush(nullptr);
      const pid_t pid = ::fork();
      if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        try {
          if (prod) {
            producer_body(c, name, ctl, id);
          } else {
            consumer_body(c, name, ctl, id);
          }
        } catch (const std::exception& e) {
          ctl->fail(e.what());
        }
        ::_exit(0);
      }
      if (pid < 0) {
        ctl->fail("fork failed");
        break;
      }
      pids.push_back(pid);
    } else {
      threads.emplace_back([&, prod, id] {
        try {
          if (prod) {
            producer_body(c, name, ctl, id);
          } else {
            consumer_body(c, name, ctl, id);
          }
        } catch (const std::exception& e) {
          ctl->fail(e.what());
        }
      });
    }
  }
  const std::int64_t deadline = bench::now_ns() + 30'000'000'000;
  while (ctl->ready.load() < static_cast<int>(threads.size() + pids.size()) && bench::now_ns() < deadline) ::usleep(100);
  guard.release();  // everybody is attached

  std::int64_t t0 = 0, t1 = 0;
  for (auto _ : st) {
    t0 = bench::now_ns();
    ctl->go.store(1, std::memory_order_release);
    const std::int64_t stop_at = t0 + static_cast<std::int64_t>(g_seconds * 1e9);
    while (bench::now_ns() < stop_at && !ctl->failed.load()) ::usleep(200);
    ctl->stop.store(1);
    // Done when every producer finished and every record was consumed.
    for (;;) {
      if (ctl->failed.load()) break;
      if (ctl->producers_done.load() == c.n) {
        std::uint64_t prod = 0, cons = 0;
        for (int i = 0; i < c.n; ++i) prod += ctl->produced[i].v.load();
        for (int i = 0; i < c.n; ++i) cons += ctl->consumed[i].v.load();
        if (cons >= prod) break;
      }
      if (bench::now_ns() > stop_at + 60'000'000'000) {
        ctl->fail("records still missing 60 s after the producers stopped");
        break;
      }
      ::usleep(20);
    }
    t1 = bench::now_ns();
    st.SetIterationTime(static_cast<double>(t1 - t0) * 1e-9);
  }
  for (auto& t : threads) t.join();
  for (pid_t p : pids) {
    int status = 0;
    ::waitpid(p, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ctl->fail("a child process failed");
  }
  std::string err;
  std::uint64_t total = 0;
  if (!ctl->failed.load()) {
    for (int p = 0; p < c.n; ++p) {
      const std::uint64_t n = ctl->produced[p].v.load();
      std::uint64_t got = 0, sum = 0;
      for (int k = 0; k < c.n; ++k) {
        got += ctl->got[k][p];
        sum += ctl->sum[k][p];
      }
      if (got != n || sum != (n == 0 ? 0 : n * (n - 1) / 2)) {
        err = "producer " + std::to_string(p) + " sent " + std::to_string(n) + " records, " + std::to_string(got) +
              " arrived (or duplicates)";
      }
      total += n;
    }
  } else {
    err = ctl->error;
  }
  ctl->~Control();
  ::munmap(mem, sizeof(Control));
  if (!err.empty()) return st.SkipWithError(err.c_str());
  st.SetItemsProcessed(static_cast<std::int64_t>(total));
  st.SetBytesProcessed(static_cast<std::int64_t>(total * c.size));
  st.counters["oversubscribed"] = c.n > 1 ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string v;
  if (bench::take_flag(&argc, argv, "--seconds", &v)) g_seconds = std::max(0.01, std::stod(v));
  bench::install_cleanup_handlers();
  bench::sweep_stale();
  benchmark::AddCustomContext("cpu_model", bench::cpu_model());
  benchmark::AddCustomContext("pinning", "producers CPU 0, consumers CPU 1");
  for (Queue q : {Queue::mpmc, Queue::locked, Queue::boost}) {
    const char* qn = q == Queue::mpmc ? "ring_mpmc" : q == Queue::locked ? "ring_locked" : "boost_mq";
    for (bool procs : {false, true}) {
      for (int n : {1, 2, 4}) {
        for (std::size_t size : {8, 64, 256}) {
          const std::string name = std::string("mpmc/") + qn + (procs ? "/procs/" : "/threads/") + std::to_string(n) +
                                   "P" + std::to_string(n) + "C/" + std::to_string(size);
          const Case c{q, procs, n, size};
          benchmark::RegisterBenchmark(name.c_str(), [c](benchmark::State& st) { bm_mpmc(st, c); })
              ->Iterations(1)
              ->UseManualTime();
        }
      }
    }
  }
  return bench::run_benchmarks(argc, argv);
}
