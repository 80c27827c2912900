// ipc_compare: the reference cases, measured in the same run as the
// transports.
//
//   pingpong/cacheline_limit/8        two processes bounce one 64-bit word in
//                                     a MAP_SHARED page: one cache-line
//                                     transfer each way and nothing else, the
//                                     floor of any cross-process round trip
//   throughput/crosscore_limit/<B>    one process writes blocks (64 KiB, or
//                                     one record when larger) into a shared
//                                     region, the other reads every byte of
//                                     each (the same sum64 the receivers
//                                     use); one flag per block hands it over
//                                     and back, no framing: the most any
//                                     transport can move between the two
//                                     cores, in records of B bytes
//   throughput/memcpy_limit/<B>       one core copying records of B bytes
//                                     into a 1 MiB buffer: a single-core
//                                     copy, nothing crosses cores
#include "harness.hpp"

namespace ipc {
namespace {

void run_cacheline(benchmark::State& st, const Case& c) {
  Watchdog dog;
  clear_abort();
  void* mem = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return fail(st, "mmap failed");
  auto* word = new (mem) std::atomic<std::uint64_t>(0);
  static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "shared between processes");
  const std::uint64_t n = static_cast<std::uint64_t>(st.max_iterations);
  const std::uint64_t warm = std::min<std::uint64_t>(10'000, std::max<std::uint64_t>(1000, n / 10));
  bench::ScopedPin pin(c.pinned ? 0 : -1);
  std::string err;
  bench::Peer peer;
  const bool started = peer.start(
      c.pinned ? 1 : -1,
      [&](int ctl) -> int {
        bench::send_msg(ctl, Msg::ready);
        for (std::uint64_t v = 1; v < 2 * (warm + n); v += 2) {
          // CL-A1: acquire, pairs with CL-R0 (the parent's odd value).
          if (!spin_until([&] { return word->load(std::memory_order_acquire) == v; })) return 1;
          // CL-R1: release, pairs with CL-A0 in the parent.
          word->store(v + 1, std::memory_order_release);
        }
        bench::send_msg(ctl, Msg::done, warm + n);
        return 0;
      },
      &err);
  auto cleanup = [&] { ::munmap(mem, 4096); };
  if (!started) {
    cleanup();
    return fail(st, err);
  }
  if (!peer.wait(Msg::ready, nullptr, kPeerTimeoutMs, &err)) {
    cleanup();
    return fail(st, err);
  }
  std::uint64_t v = 1;
  auto bounce = [&] {
    word->store(v, std::memory_order_release);  // CL-R0: pairs with CL-A1
    // CL-A0: acquire, pairs with CL-R1.
    return spin_until([&] { return word->load(std::memory_order_acquire) == v + 1; });
  };
  for (std::uint64_t i = 0; i < warm; ++i, v += 2) {
    if (!bounce()) break;
  }
  std::vector<std::uint64_t> samples(n);
  const bench::Ticks& clk = bench::Ticks::get();
  std::uint64_t i = 0;
  for (auto _ : st) {
    const std::uint64_t t0 = clk.now();
    bounce();
    samples[i++] = clk.now() - t0;
    v += 2;
  }
  Msg done{};
  const bool ok = peer.wait(Msg::done, &done, kPeerTimeoutMs, &err);
  peer.reap();
  cleanup();
  if (!ok) return fail(st, err);
  report_rtt(st, samples, -1);
  st.SetItemsProcessed(static_cast<std::int64_t>(n));
}

// Busy-waits like spin_until, but gives the CPU away (sched_yield) once the
// wait has lasted ~65k polls (tens of microseconds, far longer than a block
// takes to fill on a quiet machine): when the peer is not running (a loaded
// machine), spinning only delays it.
template <class Pred>
bool spin_then_yield(Pred&& pred) {
  for (unsigned i = 1;; ++i) {
    if (pred()) return true;
    bench::cpu_relax();
    if ((i & 255) == 0) {
      if (aborted()) return false;
      if (i >= 65536) ::sched_yield();
    }
  }
}

// The crosscore region: `blocks` flags, each on its own cache line, then the
// blocks. flag[i] == 0: block i is free (the writer may fill it); k + 1: it
// holds block number k; kEndFlag | (k + 1): block k, the last one.
struct CrossRegion {
  static constexpr std::size_t kLine = 64;
  static_assert(sizeof(std::atomic<std::uint64_t>) <= kLine && std::atomic<std::uint64_t>::is_always_lock_free,
                "one lock-free flag per cache line, shared between processes");
  std::size_t block = 0, blocks = 0, bytes = 0;
  void* mem = MAP_FAILED;

  bool create(const Case& c) {
    block = std::max(c.size, kChunk);
    blocks = std::max<std::size_t>(4, buffer_bytes(c) / block);
    bytes = blocks * kLine + blocks * block;
    mem = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return false;
    for (std::size_t i = 0; i < blocks; ++i) new (flag_addr(i)) std::atomic<std::uint64_t>(0);
    return true;
  }
  ~CrossRegion() {
    if (mem != MAP_FAILED) ::munmap(mem, bytes);
  }
  void* flag_addr(std::size_t i) const { return static_cast<char*>(mem) + i * kLine; }
  std::atomic<std::uint64_t>& flag(std::size_t i) const {
    return *static_cast<std::atomic<std::uint64_t>*>(flag_addr(i));
  }
  std::byte* data(std::size_t i) const { return static_cast<std::byte*>(mem) + blocks * kLine + i * block; }
};

void run_crosscore(benchmark::State& st, const Case& c) {
  Watchdog dog;
  clear_abort();
  CrossRegion r;
  if (!r.create(c)) return fail(st, "mmap failed");
  const std::uint64_t warm = std::max<std::uint64_t>(16, 2 * r.blocks);
  const std::vector<std::byte> tmpl = bench::make_template(r.block);
  const std::uint64_t tsum = sum64(tmpl.data(), r.block);
  bench::ScopedPin pin(c.pinned ? 0 : -1);
  if (!pin.ok()) return fail(st, "cannot pin to CPU 0");
  std::string err;
  bench::Peer peer;
  const bool started = peer.start(
      c.pinned ? 1 : -1,
      [&](int ctl) -> int {
        bench::send_msg(ctl, Msg::ready);
        for (std::uint64_t k = 0;; ++k) {
          const std::size_t i = k % r.blocks;
          std::uint64_t f = 0;
          // XC-A1: acquire, pairs with XC-R1 (the block's bytes are written).
          if (!spin_then_yield([&] { return ((f = r.flag(i).load(std::memory_order_acquire)) & ~kEndFlag) != 0; }))
            return 1;
          if ((f & ~kEndFlag) != k + 1) {
            set_abort();
            bench::send_msg(ctl, Msg::error, k, "block handed over out of order");
            return 1;
          }
          if (sum64(r.data(i), r.block) != tsum) {
            set_abort();
            const std::string why = "block " + std::to_string(k) + ": checksum mismatch";
            bench::send_msg(ctl, Msg::error, k, why.c_str());
            return 1;
          }
          // XC-R0: release, pairs with XC-A0 (our reads are done before the
          // writer refills the block).
          r.flag(i).store(0, std::memory_order_release);
          if (k + 1 == warm) bench::send_msg(ctl, Msg::warm, k + 1);
          if (f & kEndFlag) {
            bench::send_msg(ctl, Msg::done, k + 1);
            return 0;
          }
        }
      },
      &err);
  if (!started) return fail(st, err);
  if (!peer.wait(Msg::ready, nullptr, kPeerTimeoutMs, &err)) return fail(st, err);

  std::uint64_t k = 0;
  auto put = [&](bool last) -> bool {
    const std::size_t i = k % r.blocks;
    // XC-A0: acquire, pairs with XC-R0.
    if (!spin_then_yield([&] { return r.flag(i).load(std::memory_order_acquire) == 0; })) return false;
    std::memcpy(r.data(i), tmpl.data(), r.block);
    if (k == g_corrupt_seq) Stamper::corrupt(r.data(i), r.block);
    ++k;
    // XC-R1: release, pairs with XC-A1.
    r.flag(i).store(k | (last ? kEndFlag : 0), std::memory_order_release);
    return true;
  };
  const std::int64_t w0 = bench::now_ns();
  for (std::uint64_t j = 0; j < warm; ++j) {
    if (!put(false)) return fail_with_peer(st, peer, "stopped");
  }
  if (!peer.wait(Msg::warm, nullptr, kPeerTimeoutMs, &err)) return fail(st, peer_error(err));
  const double rate = static_cast<double>(warm) * 1e9 / static_cast<double>(std::max<std::int64_t>(1, bench::now_ns() - w0));
  if (c.batch == 0) c.batch = static_cast<std::int64_t>(std::clamp(rate * kMinBatchSeconds, 4.0, 1e8));
  const auto batch = static_cast<benchmark::IterationCount>(c.batch);
  Msg done{};
  while (st.KeepRunningBatch(batch)) {
    const bool last_batch = st.iterations() >= st.max_iterations;
    for (benchmark::IterationCount j = 0; j < batch; ++j) {
      if (!put(last_batch && j + 1 == batch)) return fail_with_peer(st, peer, "stopped");
    }
    if (last_batch && !peer.wait(Msg::done, &done, kPeerTimeoutMs, &err)) {
      return fail(st, peer_error(err));
    }
  }
  peer.reap();
  if (done.value != k) return fail(st, "reader accepted " + std::to_string(done.value) + " blocks of " + std::to_string(k));
  const std::uint64_t n = k - warm;
  const std::uint64_t records = n * (r.block / c.size);
  st.SetItemsProcessed(static_cast<std::int64_t>(records));
  st.SetBytesProcessed(static_cast<std::int64_t>(records * c.size));
  st.counters["block_bytes"] = static_cast<double>(r.block);
}

void run_memcpy(benchmark::State& st, const Case& c) {
  bench::ScopedPin pin(c.pinned ? 0 : -1);
  const std::size_t size = c.size;
  const std::size_t region = std::max<std::size_t>(buffer_bytes(c), 2 * size);
  std::vector<std::byte> dst(region);
  const std::vector<std::byte> src = bench::make_template(size);
  std::memset(dst.data(), 1, dst.size());
  std::size_t off = 0;
  for (auto _ : st) {
    if (off + size > region) off = 0;
    std::memcpy(dst.data() + off, src.data(), size);
    benchmark::DoNotOptimize(dst.data() + off);
    benchmark::ClobberMemory();
    off += (size + 7) & ~std::size_t{7};
  }
  st.SetItemsProcessed(st.iterations());
  st.SetBytesProcessed(st.iterations() * static_cast<std::int64_t>(size));
}

}  // namespace

void run_limit(benchmark::State& st, const Case& c) {
  switch (c.t->family) {
    case Family::cacheline_limit: return run_cacheline(st, c);
    case Family::crosscore_limit: return run_crosscore(st, c);
    case Family::memcpy_limit: return run_memcpy(st, c);
    default: fail(st, "not a limit");
  }
}

}  // namespace ipc
