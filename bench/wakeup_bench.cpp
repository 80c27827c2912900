// wakeup_bench: what it costs to wake a blocked peer, per wait strategy,
// against a pipe. The parent (CPU 0) sends an 8-byte message through an spsc
// ring (or a pipe); the child (CPU 1) is blocked in peek (or read) and
// answers at once through a second ring (pipe); the parent waits for the
// answer the same way.
//
//   wakeup/<futex|sem|spin|pipe>/continuous   the next message goes out as
//       soon as the answer is in: the futex/sem busy phase (50 us) catches
//       every message, nobody sleeps
//   wakeup/<...>/gap_20us, gap_200us           the parent waits (busy, on
//       the clock) that long after each answer before it sends again; 200 us
//       is longer than the busy phase, so a futex/sem receiver is asleep
//       when the message comes and has to be woken by the kernel
//
// Counters: rtt_p50/p99/p999_ns (parent, per round trip), wake_p50/p99/p999_ns
// (one way: send time in the message, CLOCK_MONOTONIC read by the child when
// peek/read returned), peer_sleeps_per_rt (the child's voluntary context
// switches per round trip: ~0 when it never slept, ~1 when every message
// woke it).
//
// Flags: --count=N (round trips of continuous cases, default 100000),
//        --gap_count=N (round trips of gap cases, default 10000).
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <memory>

#include "bench_common.hpp"
#include "shmring/shmring.hpp"

namespace {

using bench::Msg;

std::uint64_t g_count = 100'000;
std::uint64_t g_gap_count = 10'000;
const shmring::Timeout kTimeout = std::chrono::seconds(60);

struct Wire {
  std::uint64_t seq;
  std::int64_t sent_ns;
};

long voluntary_switches() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return ru.ru_nvcsw;
}

// One direction: a ring (by name) or a pipe.
struct Link {
  bool ring = true;
  std::string name;
  bench::NameGuard guard;
  int fds[2] = {-1, -1};
  shmring::Producer p;
  shmring::Consumer c;

  ~Link() {
    for (int fd : fds)
      if (fd >= 0) ::close(fd);
  }
  bool create(const char* strategy, std::string* err) {
    ring = std::string(strategy) != "pipe";
    if (!ring) {
      if (::pipe2(fds, O_CLOEXEC) != 0) {
        *err = "pipe2 failed";
        return false;
      }
      return true;
    }
    name = bench::unique_name("wake");
    shmring::Config cfg;
    cfg.capacity = 64 * 1024;
    cfg.wait = std::string(strategy) == "spin"  ? shmring::WaitStrategy::spin
               : std::string(strategy) == "sem" ? shmring::WaitStrategy::sem
                                                : shmring::WaitStrategy::futex;
    if (shmring::create(name, cfg) != shmring::Errc::ok) {
      *err = "create: " + shmring::last_error_message();
      return false;
    }
    guard.arm(bench::ObjKind::shm, name);
    return true;
  }
  bool open_sender(std::string* err) {
    if (!ring) {
      ::close(fds[0]);
      fds[0] = -1;
      return true;
    }
    auto r = shmring::Producer::open(name);
    if (!r) {
      *err = "Producer::open: " + shmring::last_error_message();
      return false;
    }
    p = std::move(*r);
    return true;
  }
  bool open_receiver(std::string* err) {
    if (!ring) {
      ::close(fds[1]);
      fds[1] = -1;
      return true;
    }
    auto r = shmring::Consumer::open(name);
    if (!r) {
      *err = "Consumer::open: " + shmring::last_error_message();
      return false;
    }
    c = std::move(*r);
    return true;
  }
  bool send(const Wire& w) {
    if (!ring) return bench::write_all(fds[1], &w, sizeof w);
    return p.send(std::as_bytes(std::span(&w, 1)), kTimeout) == shmring::Errc::ok;
  }
  bool recv(Wire* w) {
    if (!ring) return bench::read_all(fds[0], w, sizeof *w);
    auto n = c.recv(std::as_writable_bytes(std::span(w, 1)), kTimeout);
    return n && *n == sizeof *w;
  }
};

void bm_wakeup(benchmark::State& st, const char* strategy, std::int64_t gap_ns) {
  std::string err;
  Link there, back;
  if (!there.create(strategy, &err) || !back.create(strategy, &err)) return st.SkipWithError(err.c_str());
  const std::uint64_t n = static_cast<std::uint64_t>(st.max_iterations);
  const std::uint64_t warm = std::min<std::uint64_t>(1000, n);
  bench::ScopedPin pin(0);
  bench::Peer peer;
  const bool started = peer.start(
      1,
      [&](int ctl) -> int {
        std::vector<std::int64_t> wake;
        wake.reserve(n);
        long sw0 = 0;
        {
          std::string e;
          if (!there.open_receiver(&e) || !back.open_sender(&e)) {
            bench::send_msg(ctl, Msg::error, 0, e.c_str());
            return 1;
          }
          bench::send_msg(ctl, Msg::ready);
          for (std::uint64_t i = 0; i < warm + n; ++i) {
            Wire w{};
            if (!there.recv(&w)) {
              bench::send_msg(ctl, Msg::error, i, "receive failed");
              return 1;
            }
            const std::int64_t t = bench::now_ns();
            if (w.seq != i) {
              bench::send_msg(ctl, Msg::error, i, "wrong sequence number");
              return 1;
            }
            if (!back.send(w)) {
              bench::send_msg(ctl, Msg::error, i, "send failed");
              return 1;
            }
            if (i + 1 == warm) sw0 = voluntary_switches();
            if (i >= warm) wake.push_back(t - w.sent_ns);
          }
        }
        // One-way latencies in ns (nearest rank).
        std::sort(wake.begin(), wake.end());
        auto at = [&](double q) {
          const std::size_t i = static_cast<std::size_t>(q * static_cast<double>(wake.size()));
          return static_cast<std::uint64_t>(std::max<std::int64_t>(0, wake[std::min(i, wake.size() - 1)]));
        };
        Msg m{};
        m.kind = Msg::done;
        m.value = warm + n;
        m.extra[0] = static_cast<std::uint64_t>(voluntary_switches() - sw0);
        m.extra[1] = at(0.5);
        m.extra[2] = at(0.99);
        m.extra[3] = at(0.999);
        (void)bench::write_all(ctl, &m, sizeof m);
        return 0;
      },
      &err);
  if (!started) return st.SkipWithError(err.c_str());
  if (!there.open_sender(&err) || !back.open_receiver(&err)) return st.SkipWithError(err.c_str());
  if (!peer.wait(Msg::ready, nullptr, 60'000, &err)) return st.SkipWithError(err.c_str());
  there.guard.release();
  back.guard.release();

  std::uint64_t seq = 0;
  auto round_trip = [&]() -> bool {
    Wire w{seq, bench::now_ns()};
    if (!there.send(w)) return false;
    Wire r{};
    if (!back.recv(&r) || r.seq != seq) return false;
    ++seq;
    return true;
  };
  auto pause = [&] {
    if (gap_ns <= 0) return;
    const std::int64_t until = bench::now_ns() + gap_ns;
    while (bench::now_ns() < until) bench::cpu_relax();
  };
  for (std::uint64_t i = 0; i < warm; ++i) {
    pause();
    if (!round_trip()) return st.SkipWithError("round trip failed during warm-up");
  }
  std::vector<std::uint64_t> samples;
  samples.reserve(n);
  const bench::Ticks& clk = bench::Ticks::get();
  bool ok = true;
  for (auto _ : st) {
    pause();  // part of the measured time; the percentiles exclude it
    const std::uint64_t t0 = clk.now();
    if (!round_trip()) {
      ok = false;
      break;
    }
    samples.push_back(clk.now() - t0);
  }
  if (!ok) return st.SkipWithError("round trip failed");
  Msg done{};
  if (!peer.wait(Msg::done, &done, 60'000, &err)) return st.SkipWithError(err.c_str());
  const bench::Percentiles p = bench::percentiles(samples);
  st.counters["rtt_p50_ns"] = p.p50;
  st.counters["rtt_p99_ns"] = p.p99;
  st.counters["rtt_p999_ns"] = p.p999;
  st.counters["rtt_mean_ns"] = p.mean;
  st.counters["wake_p50_ns"] = static_cast<double>(done.extra[1]);
  st.counters["wake_p99_ns"] = static_cast<double>(done.extra[2]);
  st.counters["wake_p999_ns"] = static_cast<double>(done.extra[3]);
  st.counters["peer_sleeps_per_rt"] = static_cast<double>(done.extra[0]) / static_cast<double>(n);
  st.counters["gap_ns"] = static_cast<double>(gap_ns);
}

}  // namespace

int main(int argc, char** argv) {
  std::string v;
  if (bench::take_flag(&argc, argv, "--count", &v)) g_count = std::max<std::uint64_t>(1, std::stoull(v));
  if (bench::take_flag(&argc, argv, "--gap_count", &v)) g_gap_count = std::max<std::uint64_t>(1, std::stoull(v));
  bench::install_cleanup_handlers();
  bench::sweep_stale();
  (void)bench::Ticks::get();
  benchmark::AddCustomContext("cpu_model", bench::cpu_model());
  benchmark::AddCustomContext("pinning", "sender CPU 0, blocked receiver CPU 1");
  for (const char* s : {"futex", "sem", "spin", "pipe"}) {
    struct Pattern {
      const char* name;
      std::int64_t gap_ns;
      std::uint64_t count;
    };
    for (const Pattern& pat : {Pattern{"continuous", 0, g_count}, Pattern{"gap_20us", 20'000, g_gap_count},
                               Pattern{"gap_200us", 200'000, g_gap_count}}) {
      const std::string name = std::string("wakeup/") + s + "/" + pat.name;
      const std::int64_t gap = pat.gap_ns;
      benchmark::RegisterBenchmark(name.c_str(), [s, gap](benchmark::State& st) { bm_wakeup(st, s, gap); })
          ->Iterations(static_cast<benchmark::IterationCount>(pat.count))
          ->UseRealTime();
    }
  }
  return bench::run_benchmarks(argc, argv);
}
