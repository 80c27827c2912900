// ipc_compare: shmring against every transport a user would pick instead of
// it, each case with a forked peer process (names and counters fixed by
// shared/design.md, "Benchmarks"; method in docs/benchmarks.md).
//
//   throughput/<transport>/<bytes>   the parent streams records to the child;
//                                    items_per_second, bytes_per_second
//   pingpong/<transport>/<bytes>     the parent sends, the child answers;
//                                    rtt_p50_ns, rtt_p99_ns, rtt_p999_ns
//   pingpong/cacheline_limit/8, throughput/crosscore_limit/<bytes>,
//   throughput/memcpy_limit/<bytes>  the limits (ipc/limits.cpp)
//
// Pinned by default (parent = producer/sender on CPU 0, child = consumer on
// CPU 1); ".../unpinned" variants leave placement to the scheduler.
//
// Honesty rules (every transport alike; ipc/harness.hpp):
//  - The sender writes every byte of every record: sequence number, payload,
//    checksum.
//  - The receiver reads every byte of every record: it checks the payload
//    checksum and the sequence number; a lost, duplicated, reordered, torn or
//    altered record fails the case.
//  - Items are counted from the receiver's report: the child tells the parent
//    how many records it accepted, and the case fails unless that is exactly
//    what was sent. The timed region ends when the child has received the
//    last record.
//
// The transports live in ipc/ring.cpp (shmring), ipc/kernel.cpp (pipes,
// sockets, message queues), ipc/boost_lockfree.cpp and ipc/iceoryx.cpp.
//
// Flags of our own (removed before Google Benchmark parses the rest):
//   --rtt_count=N      round trips per ping-pong case (default 100000)
//   --unpinned=some|all|none   which unpinned variants exist (default some:
//                      throughput at 64 B and 64 KiB, ping-pong at 8 B)
//   --watchdog_s=N     abort (after cleaning up) when one case runs longer
//   --corrupt_seq=N    every sender flips one payload byte of its record N:
//                      every case must then fail (tests/bench_corrupt_test)
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <memory>

#include "ipc/harness.hpp"

using namespace ipc;

namespace {

const Transport kTransports[] = {
    {"ring_spsc", Family::ring, shmring::Kind::spsc, shmring::WaitStrategy::futex},
    {"ring_spsc_spin", Family::ring, shmring::Kind::spsc, shmring::WaitStrategy::spin},
    {"ring_spsc_batched", Family::ring, shmring::Kind::spsc, shmring::WaitStrategy::futex, true, false},
    {"ring_spsc_batched_spin", Family::ring, shmring::Kind::spsc, shmring::WaitStrategy::spin, true, false},
    {"ring_mpmc", Family::ring, shmring::Kind::mpmc, shmring::WaitStrategy::futex},
    {"ring_mpmc_spin", Family::ring, shmring::Kind::mpmc, shmring::WaitStrategy::spin},
    {"ring_locked", Family::ring, shmring::Kind::locked, shmring::WaitStrategy::futex},
    {"ring_locked_spin", Family::ring, shmring::Kind::locked, shmring::WaitStrategy::spin},
    {"pipe", Family::pipe},
    {"pipe_batched", Family::pipe, shmring::Kind::spsc, shmring::WaitStrategy::futex, true, false},
    {"unix_stream", Family::unix_stream},
    {"unix_seqpacket", Family::unix_seqpacket},
    {"posix_mq", Family::posix_mq},
    {"boost_mq", Family::boost_mq},
    {"boost_lockfree_spsc", Family::boost_lockfree_spsc},
    {"boost_lockfree_mpmc", Family::boost_lockfree_mpmc},
    {"iceoryx", Family::iceoryx},
};

const Transport kCacheline{"cacheline_limit", Family::cacheline_limit};
const Transport kCrosscore{"crosscore_limit", Family::crosscore_limit};
const Transport kMemcpy{"memcpy_limit", Family::memcpy_limit};

void run_any(benchmark::State& st, const Case& c) {
  switch (c.t->family) {
    case Family::ring: return run_ring(st, c);
    case Family::pipe:
    case Family::unix_stream:
    case Family::unix_seqpacket:
    case Family::posix_mq:
    case Family::boost_mq: return run_kernel(st, c);
    case Family::boost_lockfree_spsc:
    case Family::boost_lockfree_mpmc: return run_boost_lockfree(st, c);
    case Family::iceoryx: return run_iceoryx(st, c);
    case Family::cacheline_limit:
    case Family::crosscore_limit:
    case Family::memcpy_limit: return run_limit(st, c);
  }
}

std::size_t mq_msg_max() {
  long v = 10;
  if (FILE* f = std::fopen("/proc/sys/fs/mqueue/msg_max", "r")) {
    if (std::fscanf(f, "%ld", &v) != 1) v = 10;
    std::fclose(f);
  }
  return static_cast<std::size_t>(v);
}
std::size_t mq_msgsize_max() {
  long v = 8192;
  if (FILE* f = std::fopen("/proc/sys/fs/mqueue/msgsize_max", "r")) {
    if (std::fscanf(f, "%ld", &v) != 1) v = 8192;
    std::fclose(f);
  }
  return static_cast<std::size_t>(v);
}

// RLIMIT_MSGQUEUE: bytes all POSIX queues of this user may hold (the kernel
// also counts ~100 bytes of bookkeeping per message).
std::size_t mq_bytes_limit() {
  rlimit rl{};
  ::getrlimit(RLIMIT_MSGQUEUE, &rl);
  return rl.rlim_cur == RLIM_INFINITY ? SIZE_MAX : static_cast<std::size_t>(rl.rlim_cur);
}

// Raises the POSIX mq limits as far as we are allowed (root): the queue gets
// the same 1 MiB budget as the ring. Values stay raised (harmless).
void raise_mq_limits() {
  auto raise = [](const char* path, long want) {
    long cur = 0;
    if (FILE* f = std::fopen(path, "r")) {
      if (std::fscanf(f, "%ld", &cur) != 1) cur = 0;
      std::fclose(f);
    }
    if (cur >= want) return;
    if (FILE* f = std::fopen(path, "w")) {
      std::fprintf(f, "%ld\n", want);
      std::fclose(f);
    }
  };
  raise("/proc/sys/fs/mqueue/msg_max", 65536);
  raise("/proc/sys/fs/mqueue/msgsize_max", 1 << 20);
  rlimit rl{RLIM_INFINITY, RLIM_INFINITY};
  if (::setrlimit(RLIMIT_MSGQUEUE, &rl) != 0) {
    ::getrlimit(RLIMIT_MSGQUEUE, &rl);
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_MSGQUEUE, &rl);
  }
}

std::vector<std::unique_ptr<Case>> g_cases;

void add(const Case& c, const std::string& unpinned_mode) {
  const bool representative = (c.mode == Mode::throughput && (c.size == 64 || c.size == 65536)) ||
                              (c.mode == Mode::pingpong && c.size == 8);
  for (bool pinned : {true, false}) {
    if (!pinned && (unpinned_mode == "none" || (unpinned_mode == "some" && !representative))) continue;
    auto cc = std::make_unique<Case>(c);
    cc->pinned = pinned;
    std::string name = std::string(c.mode == Mode::throughput ? "throughput/" : "pingpong/") + c.t->name + "/" +
                       std::to_string(c.size) + (pinned ? "" : "/unpinned");
    const Case* cp = cc.get();
    g_cases.push_back(std::move(cc));
    auto* b = benchmark::RegisterBenchmark(name.c_str(), [cp](benchmark::State& st) { run_any(st, *cp); });
    b->UseRealTime();
    if (c.mode == Mode::pingpong) b->Iterations(static_cast<benchmark::IterationCount>(g_rtt_count));
  }
}

// A case that cannot run here is still listed, and reports why.
void register_skip(const std::string& name, const std::string& why) {
  static std::vector<std::unique_ptr<std::string>> reasons;
  reasons.push_back(std::make_unique<std::string>(why));
  const std::string* r = reasons.back().get();
  benchmark::RegisterBenchmark(name.c_str(), [r](benchmark::State& st) {
    for (auto _ : st) break;
    st.SkipWithError(r->c_str());
  })->Iterations(1);
}

void register_all(const std::string& unpinned) {
  const std::size_t tp_sizes[] = {8, 64, 512, 4 * KiB, 64 * KiB, 1 * MiB};
  const std::size_t pp_sizes[] = {8, 64, 512, 4 * KiB};
  const std::size_t mq_max = mq_msgsize_max();
  std::string iox_why;
  const bool iox = iceoryx_available(&iox_why);

  // Reference cases first, so a report reads top-down.
  for (bool pinned : {true, false}) {
    if (!pinned && unpinned == "none") continue;
    auto cc = std::make_unique<Case>(Case{&kCacheline, Mode::pingpong, 8, pinned});
    const Case* cp = cc.get();
    g_cases.push_back(std::move(cc));
    benchmark::RegisterBenchmark(pinned ? "pingpong/cacheline_limit/8" : "pingpong/cacheline_limit/8/unpinned",
                                 [cp](benchmark::State& st) { run_any(st, *cp); })
        ->UseRealTime()
        ->Iterations(static_cast<benchmark::IterationCount>(g_rtt_count));
  }
  for (const Transport* t : {&kCrosscore, &kMemcpy}) {
    for (std::size_t s : tp_sizes) {
      auto cc = std::make_unique<Case>(Case{t, Mode::throughput, s, true});
      const Case* cp = cc.get();
      g_cases.push_back(std::move(cc));
      auto* b = benchmark::RegisterBenchmark(("throughput/" + std::string(t->name) + "/" + std::to_string(s)).c_str(),
                                             [cp](benchmark::State& st) { run_any(st, *cp); });
      if (t == &kCrosscore) b->UseRealTime();
    }
  }
  auto skip = [&](const Transport& t, std::size_t s, bool pp) -> bool {
    // Kernel limits: msgsize_max, and RLIMIT_MSGQUEUE must hold 4 messages.
    if (t.family == Family::posix_mq && (s > mq_max || 4 * (s + 128) > mq_bytes_limit())) return true;
    if (t.family == Family::unix_seqpacket && s > 64 * KiB) return true;  // one skb per message
    if ((t.family == Family::boost_lockfree_spsc || t.family == Family::boost_lockfree_mpmc) &&
        !boost_lockfree_size(s))
      return true;
    (void)pp;
    return false;
  };
  for (int m = 0; m < 2; ++m) {
    const Mode mode = m == 0 ? Mode::throughput : Mode::pingpong;
    for (const Transport& t : kTransports) {
      if (mode == Mode::pingpong && !t.pingpong) continue;
      for (std::size_t s : mode == Mode::throughput ? std::vector<std::size_t>(std::begin(tp_sizes), std::end(tp_sizes))
                                                     : std::vector<std::size_t>(std::begin(pp_sizes), std::end(pp_sizes))) {
        if (skip(t, s, mode == Mode::pingpong)) continue;
        if (t.family == Family::iceoryx && !iox) {
          register_skip(std::string(mode == Mode::throughput ? "throughput/" : "pingpong/") + t.name + "/" +
                            std::to_string(s),
                        "skipped: " + iox_why);
          continue;
        }
        add(Case{&t, mode, s, true}, unpinned);
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--iox_peer") == 0) return iceoryx_peer_main(argc, argv);
  std::string v;
  if (bench::take_flag(&argc, argv, "--rtt_count", &v)) g_rtt_count = std::max<std::uint64_t>(1, std::stoull(v));
  std::string unpinned = "some";
  if (bench::take_flag(&argc, argv, "--unpinned", &v)) unpinned = v;
  if (bench::take_flag(&argc, argv, "--watchdog_s", &v)) g_watchdog_s = std::max(1, std::stoi(v));
  if (bench::take_flag(&argc, argv, "--corrupt_seq", &v)) g_corrupt_seq = std::stoull(v);
  init_abort_flag();
  bench::install_cleanup_handlers();
  bench::sweep_stale();
  raise_mq_limits();
  (void)bench::Ticks::get();  // calibrate before any case

  benchmark::AddCustomContext("cpu_model", bench::cpu_model());
  benchmark::AddCustomContext("pinning", "producer/sender CPU 0, consumer/receiver CPU 1 (\"/unpinned\": none)");
  benchmark::AddCustomContext("rtt_clock", bench::Ticks::get().source());
  benchmark::AddCustomContext("rtt_count", std::to_string(g_rtt_count));
  benchmark::AddCustomContext("mq_limits", "msg_max " + std::to_string(mq_msg_max()) + ", msgsize_max " +
                                               std::to_string(mq_msgsize_max()) + ", RLIMIT_MSGQUEUE " +
                                               std::to_string(mq_bytes_limit()));
  register_all(unpinned);
  const int rc = bench::run_benchmarks(argc, argv);
  bench::sweep_stale();
  return rc;
}
