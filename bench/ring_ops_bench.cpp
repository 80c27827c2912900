// ring_ops_bench: the ring operations in one thread, to keep regressions in
// the library's own code visible (no second core, no cache-line transfer).
//
//   <kind>/reserve_commit/<bytes>/batch:<b>   time of reserve + commit only
//   <kind>/peek_release/<bytes>/batch:<b>     time of peek + release only
//       Each iteration produces k records then consumes them (the ring is
//       never full or empty when it matters); only the named half is timed
//       (manual time, rdtscp). batch:b commits (releases) with
//       Publish::later and publishes every b-th record, and once at the end.
//       Kinds: spsc (futex), spsc_spin, mpmc, locked.
//   spsc/send_recv/<bytes>        send (copy in) + recv (copy out), per record
//   spsc/one_in_flight/<bytes>    reserve, commit, peek, release, one record at a time
//   padding/divides/<bytes>       record footprint divides the capacity: no skip records
//   padding/skips/<bytes>         footprint does not divide it: one skip record per lap
//       (counters skips_per_lap and wasted_bytes_per_lap are measured from
//       the addresses reserve() returns)
//
// Not measured here: the cached-index hit rate (how often the producer
// reloads the consumer's index). The library keeps no counter of it, and a
// hardware watchpoint (perf_event_open, PERF_TYPE_BREAKPOINT) counts nothing
// in this virtual machine; docs/benchmarks.md says what would measure it.
#include <benchmark/benchmark.h>
#include <sys/syscall.h>

#include <memory>

#include "bench_common.hpp"
#include "shmring/shmring.hpp"

namespace {

using shmring::Publish;

struct Setup {
  shmring::Kind kind;
  shmring::WaitStrategy wait;
  std::size_t capacity;
  std::size_t slot_size;  // mpmc
};

// One ring with both handles in this thread; the name is gone once both are open.
struct Ring {
  bench::NameGuard guard;
  shmring::Producer p;
  shmring::Consumer c;
  std::string err;

  bool open(const Setup& s) {
    const std::string name = bench::unique_name("ops");
    shmring::Config cfg;
    cfg.kind = s.kind;
    cfg.wait = s.wait;
    cfg.capacity = s.capacity;
    cfg.slot_size = s.slot_size;
    if (shmring::create(name, cfg) != shmring::Errc::ok) {
      err = "create: " + shmring::last_error_message();
      return false;
    }
    guard.arm(bench::ObjKind::shm, name);
    auto p_ = shmring::Producer::open(name);
    auto c_ = shmring::Consumer::open(name);
    guard.release();
    if (!p_ || !c_) {
      err = "open: " + shmring::last_error_message();
      return false;
    }
    p = std::move(*p_);
    c = std::move(*c_);
    return true;
  }
};

Setup setup_for(const std::string& kind, std::size_t size) {
  Setup s{shmring::Kind::spsc, shmring::WaitStrategy::futex, std::size_t{1} << 20, 0};
  if (kind == "spsc_spin") s.wait = shmring::WaitStrategy::spin;
  if (kind == "locked") s.kind = shmring::Kind::locked;
  if (kind == "mpmc") {
    s.kind = shmring::Kind::mpmc;
    s.slot_size = std::max<std::size_t>(8, (size + 7) & ~std::size_t{7});
    std::size_t cap = 4096;
    while (cap < 256 * s.slot_size) cap <<= 1;  // 256 slots
    s.capacity = cap;
  }
  return s;
}

constexpr int kBlock = 64;  // records per produce/consume block

// Which half of a block is timed.
enum class Half { produce, consume };

void bm_ops(benchmark::State& st, std::string kind, Half half, std::size_t size, int batch) {
  Ring r;
  if (!r.open(setup_for(kind, size))) return st.SkipWithError(r.err.c_str());
  bench::ScopedPin pin(0);
  const bench::Ticks& clk = bench::Ticks::get();
  std::uint64_t seq = 0, expect = 0;
  std::uint64_t ticks = 0;
  auto produce = [&]() -> bool {
    for (int j = 0; j < kBlock; ++j) {
      auto w = r.p.reserve(size, shmring::Timeout::try_once());
      if (!w) return false;
      std::memcpy(w->data(), &seq, 8);
      ++seq;
      if (r.p.commit(size, (j + 1) % batch == 0 ? Publish::now : Publish::later) != shmring::Errc::ok) return false;
    }
    return r.p.flush() == shmring::Errc::ok;
  };
  auto consume = [&]() -> bool {
    for (int j = 0; j < kBlock; ++j) {
      auto rec = r.c.peek(shmring::Timeout::try_once());
      if (!rec || rec->size() != size) return false;
      std::uint64_t s;
      std::memcpy(&s, rec->data(), 8);
      if (s != expect++) return false;
      if (r.c.release((j + 1) % batch == 0 ? Publish::now : Publish::later) != shmring::Errc::ok) return false;
    }
    return r.c.flush() == shmring::Errc::ok;
  };
  for (auto _ : st) {
    bool ok;
    if (half == Half::produce) {
      const std::uint64_t t0 = clk.now();
      ok = produce();
      ticks = clk.now() - t0;
      ok = ok && consume();
    } else {
      ok = produce();
      const std::uint64_t t0 = clk.now();
      ok = ok && consume();
      ticks = clk.now() - t0;
    }
    if (!ok) {
      st.SkipWithError("ring operation failed or returned a wrong record");
      break;
    }
    st.SetIterationTime(static_cast<double>(ticks) * clk.ns_per_tick() * 1e-9);
  }
  st.SetItemsProcessed(st.iterations() * kBlock);
  st.counters["ns_per_record"] = benchmark::Counter(static_cast<double>(st.iterations() * kBlock),
                                                    benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void bm_send_recv(benchmark::State& st, std::size_t size) {
  Ring r;
  if (!r.open(setup_for("spsc", size))) return st.SkipWithError(r.err.c_str());
  bench::ScopedPin pin(0);
  std::vector<std::byte> in = bench::make_template(size), out(size);
  std::uint64_t seq = 0;
  for (auto _ : st) {
    for (int j = 0; j < kBlock; ++j) {
      std::memcpy(in.data(), &seq, 8);
      ++seq;
      if (r.p.send(in, shmring::Timeout::try_once()) != shmring::Errc::ok) return st.SkipWithError("send failed");
    }
    for (int j = 0; j < kBlock; ++j) {
      auto n = r.c.recv(out, shmring::Timeout::try_once());
      if (!n || *n != size) return st.SkipWithError("recv failed");
    }
  }
  st.SetItemsProcessed(st.iterations() * kBlock);
  st.SetBytesProcessed(st.iterations() * kBlock * static_cast<std::int64_t>(size));
}

void bm_one_in_flight(benchmark::State& st, std::size_t size) {
  Ring r;
  if (!r.open(setup_for("spsc", size))) return st.SkipWithError(r.err.c_str());
  bench::ScopedPin pin(0);
  std::uint64_t seq = 0;
  for (auto _ : st) {
    auto w = r.p.reserve(size, shmring::Timeout::try_once());
    if (!w) return st.SkipWithError("reserve failed");
    std::memcpy(w->data(), &seq, 8);
    (void)r.p.commit(size);
    auto rec = r.c.peek(shmring::Timeout::try_once());
    if (!rec) return st.SkipWithError("peek failed");
    benchmark::DoNotOptimize(rec->data());
    (void)r.c.release();
    ++seq;
  }
  st.SetItemsProcessed(st.iterations());
}

// Streams records through a 64 KiB spsc ring in blocks of at most half the
// ring and measures, from the addresses reserve() hands out, where the ring
// wrapped and how many bytes the skip record before each wrap covered.
void bm_padding(benchmark::State& st, std::size_t size) {
  constexpr std::size_t kCap = 64 * 1024;
  Setup s{shmring::Kind::spsc, shmring::WaitStrategy::futex, kCap, 0};
  Ring r;
  if (!r.open(s)) return st.SkipWithError(r.err.c_str());
  bench::ScopedPin pin(0);
  const std::size_t footprint = 8 + ((size + 7) & ~std::size_t{7});
  const int block = static_cast<int>(std::min<std::size_t>(64, kCap / 2 / footprint));
  const std::vector<std::byte> tmpl = bench::make_template(size);
  const std::byte* base = nullptr;  // data area start = first record's payload - 8
  std::size_t prev_off = 0;
  std::uint64_t laps = 0, skips = 0, wasted = 0, records = 0;
  for (auto _ : st) {
    for (int j = 0; j < block; ++j) {
      auto w = r.p.reserve(size, shmring::Timeout::try_once());
      if (!w) return st.SkipWithError("reserve failed");
      std::memcpy(w->data(), tmpl.data(), size);
      const std::byte* rec = w->data() - 8;
      if (!base) base = rec;
      const std::size_t off = static_cast<std::size_t>(rec - base);
      if (records > 0 && off <= prev_off) {
        ++laps;
        const std::size_t end = prev_off + footprint;
        if (end != kCap) {
          ++skips;
          wasted += kCap - end;
        }
      }
      prev_off = off;
      ++records;
      (void)r.p.commit(size, Publish::later);
    }
    (void)r.p.flush();
    for (int j = 0; j < block; ++j) {
      auto rec = r.c.peek(shmring::Timeout::try_once());
      if (!rec || rec->size() != size) return st.SkipWithError("peek failed");
      benchmark::DoNotOptimize(rec->data());
      (void)r.c.release(Publish::later);
    }
    (void)r.c.flush();
  }
  st.SetItemsProcessed(static_cast<std::int64_t>(records));
  st.SetBytesProcessed(static_cast<std::int64_t>(records * size));
  st.counters["footprint"] = static_cast<double>(footprint);
  st.counters["skips_per_lap"] = laps ? static_cast<double>(skips) / static_cast<double>(laps) : 0.0;
  st.counters["wasted_bytes_per_lap"] = laps ? static_cast<double>(wasted) / static_cast<double>(laps) : 0.0;
}

// What the library's slow paths are made of, on this machine: one system
// call, and one clock read (vDSO).
void bm_getpid(benchmark::State& st) {
  for (auto _ : st) benchmark::DoNotOptimize(::syscall(SYS_getpid));
}
void bm_clock(benchmark::State& st) {
  for (auto _ : st) benchmark::DoNotOptimize(bench::now_ns());
}

void register_all() {
  benchmark::RegisterBenchmark("reference/getpid_syscall", bm_getpid);
  benchmark::RegisterBenchmark("reference/clock_gettime", bm_clock);
  const std::size_t sizes[] = {8, 64, 512, 4096};
  for (const char* kind : {"spsc", "spsc_spin", "mpmc", "locked"}) {
    const bool batches = std::string(kind) != "mpmc";  // mpmc publishes every slot on its own
    for (Half h : {Half::produce, Half::consume}) {
      for (std::size_t s : sizes) {
        for (int b : {1, 8, 64}) {
          if (b != 1 && (!batches || s != 64)) continue;
          const std::string name = std::string(kind) + (h == Half::produce ? "/reserve_commit/" : "/peek_release/") +
                                   std::to_string(s) + "/batch:" + std::to_string(b);
          benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& st) { bm_ops(st, kind, h, s, b); })
              ->UseManualTime();
        }
      }
    }
  }
  for (std::size_t s : sizes) {
    benchmark::RegisterBenchmark(("spsc/send_recv/" + std::to_string(s)).c_str(),
                                 [=](benchmark::State& st) { bm_send_recv(st, s); });
    benchmark::RegisterBenchmark(("spsc/one_in_flight/" + std::to_string(s)).c_str(),
                                 [=](benchmark::State& st) { bm_one_in_flight(st, s); });
  }
  // Footprint = 8-byte header + payload rounded to 8. The "divides" sizes
  // have a power-of-two footprint; the "skips" sizes are 8 bytes larger.
  for (std::size_t s : {56, 120, 1016, 4088}) {
    benchmark::RegisterBenchmark(("padding/divides/" + std::to_string(s)).c_str(),
                                 [=](benchmark::State& st) { bm_padding(st, s); });
    benchmark::RegisterBenchmark(("padding/skips/" + std::to_string(s + 8)).c_str(),
                                 [=](benchmark::State& st) { bm_padding(st, s + 8); });
  }
}

}  // namespace

int main(int argc, char** argv) {
  bench::install_cleanup_handlers();
  bench::sweep_stale();
  (void)bench::Ticks::get();
  benchmark::AddCustomContext("cpu_model", bench::cpu_model());
  benchmark::AddCustomContext("pinning", "one thread on CPU 0");
  register_all();
  return bench::run_benchmarks(argc, argv);
}
