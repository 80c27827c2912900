// The ipc_compare harness: the case description, the record format every
// transport carries, and the two measurements (throughput, ping-pong) written
// once for every transport. A transport family supplies three types:
//
//   Channel  created by the parent before the fork (names, descriptors,
//            segments): bool create(const Case&, std::string*);
//            keep_sender(), keep_receiver() after the fork; unlink_name()
//            once both sides are attached; `depth` (messages a queue holds,
//            0 if not a message queue)
//   Tx       bool open(Channel&, std::string*); std::byte* begin(n): where the
//            next record goes; bool commit(n); bool flush(); err()
//   Rx       bool open(Channel&, std::string*); bool poll(f): waits for at
//            least one record and calls f(ptr, len) for each that arrived
//            (f returns false to stop: a bad record); err()
//
// and instantiates run_case<Channel, Tx, Rx> in its own .cpp file.
#pragma once

#include <sys/mman.h>
#include <sys/resource.h>

#include <optional>

#include "../bench_common.hpp"
#include "shmring/shmring.hpp"

namespace ipc {

using bench::Msg;

constexpr std::size_t KiB = 1024, MiB = 1024 * 1024;
constexpr std::size_t kChunk = 64 * KiB;  // batch of stream writers and batched rings; block of crosscore_limit
constexpr int kPeerTimeoutMs = 120'000;

// Set from our own flags in main() before any case runs.
inline std::uint64_t g_rtt_count = 100'000;
inline int g_watchdog_s = 300;
// --corrupt_seq=N: every sender flips one payload byte of record N after
// building it (the corrupting-sender check; no measurement is valid then).
inline std::uint64_t g_corrupt_seq = UINT64_MAX;

enum class Family {
  ring, pipe, unix_stream, unix_seqpacket, posix_mq, boost_mq,
  boost_lockfree_spsc, boost_lockfree_mpmc, iceoryx,
  cacheline_limit, crosscore_limit, memcpy_limit
};

struct Transport {
  const char* name;
  Family family;
  shmring::Kind kind = shmring::Kind::spsc;
  shmring::WaitStrategy wait = shmring::WaitStrategy::futex;
  bool batched = false;  // ring: publish once per 64 KiB; pipe: 64 KiB write()s
  bool pingpong = true;  // also run as ping-pong
};

enum class Mode { throughput, pingpong };

struct Case {
  const Transport* t;
  Mode mode;
  std::size_t size;
  bool pinned;
  // Records per timed batch, calibrated by the first call and kept, so that
  // every repetition of a case runs the same number of iterations (Google
  // Benchmark requires it).
  mutable std::int64_t batch = 0;
};

// Bytes one direction may hold: 1 MiB (4 MiB for records above 256 KiB), the
// same budget for the ring, the pipe buffer, the socket buffer and the queues.
inline std::size_t buffer_bytes(const Case& c) {
  if (c.mode == Mode::pingpong) return 64 * KiB;
  return c.size > 256 * KiB ? 4 * MiB : 1 * MiB;
}

inline std::size_t pow2_ceil(std::size_t x) {
  std::size_t p = 1;
  while (p < x) p <<= 1;
  return p;
}

inline std::size_t queue_depth(const Case& c, std::size_t limit) {
  return std::clamp<std::size_t>(buffer_bytes(c) / c.size, 4, limit);
}

inline bool sys_fail(const char* what, std::string* err) {
  *err = std::string(what) + ": " + std::strerror(errno);
  return false;
}

// ---- The stop flag: a failed side tells the other to give up ---------------------
//
// One word in a shared page (a memfd) mapped by main() before any fork, so
// every forked peer shares it; a peer that execs a fresh process (iceoryx)
// maps it again from the inherited descriptor. Busy-polling transports look
// at it while they wait, so that a case whose peer rejected a record ends at
// once instead of at the watchdog. Relaxed everywhere: it publishes no data,
// only "stop".

inline std::atomic<std::uint32_t>* g_abort = nullptr;
inline int g_abort_fd = -1;

// fd < 0: create the page; else map the page of an inherited descriptor.
inline void init_abort_flag(int fd = -1) {
  static_assert(std::atomic<std::uint32_t>::is_always_lock_free, "shared between processes");
  if (fd < 0) {
    fd = ::memfd_create("ipc_compare-stop", 0);  // inherited across exec on purpose
    if (fd < 0 || ::ftruncate(fd, 4096) != 0) {
      std::perror("ipc_compare: memfd_create");
      std::exit(1);
    }
  }
  void* m = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (m == MAP_FAILED) {
    std::perror("ipc_compare: mmap");
    std::exit(1);
  }
  g_abort_fd = fd;
  g_abort = static_cast<std::atomic<std::uint32_t>*>(m);  // zero-filled: not stopped
}
inline bool aborted() noexcept { return g_abort->load(std::memory_order_relaxed) != 0; }
inline void set_abort() noexcept { g_abort->store(1, std::memory_order_relaxed); }
inline void clear_abort() noexcept { g_abort->store(0, std::memory_order_relaxed); }

// Busy-waits until pred() holds; false if the case was stopped meanwhile.
template <class Pred>
inline bool spin_until(Pred&& pred) noexcept {
  for (unsigned i = 1;; ++i) {
    if (pred()) return true;
    bench::cpu_relax();
    if ((i & 255) == 0 && aborted()) return false;
  }
}

// ---- Watchdog: a case that hangs ends the process, after cleaning up ----------

inline void on_watchdog(int) {
  static const char msg[] = "ipc_compare: watchdog expired (a case ran longer than --watchdog_s); aborting\n";
  (void)!::write(2, msg, sizeof msg - 1);
  ::raise(SIGTERM);  // the cleanup handler unlinks every armed name
}

class Watchdog {
 public:
  Watchdog() {
    ::signal(SIGALRM, on_watchdog);
    ::alarm(static_cast<unsigned>(g_watchdog_s));
  }
  ~Watchdog() { ::alarm(0); }
};

// ---- Records -------------------------------------------------------------------
//
//   [0, 8)          sequence number
//   [8, size - 8)   payload (a fixed pattern, copied in by the sender)
//   [size - 8, size) checksum: sum64 of [0, size - 8) ^ kSumMangle
//
// An 8-byte record is its sequence number alone. The receiver reads every
// byte: it sums [0, size - 8) and compares with the tail, and checks the
// sequence number, so a lost, duplicated, reordered, torn (head and tail
// from different records) or altered record is rejected. A single flipped
// byte always shows: it changes one word, and so the sum, by a nonzero
// multiple of a power of two below 2^64. The sender copies the pattern (every
// byte written) and computes the tail in O(1) from the pattern's sum and the
// sequence number; the receiver pays the full read.

inline constexpr std::uint64_t kSumMangle = 0x5a5a'1234'8765'a5a5ULL;

// Sum of the 64-bit little-endian words of [p, p + n) modulo 2^64 (a last
// partial word is zero-padded). Four independent lanes, so the loop runs at
// two loads per cycle, well above what crosses between cores.
inline std::uint64_t sum64(const std::byte* p, std::size_t n) noexcept {
  std::uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    std::uint64_t w[4];
    std::memcpy(w, p + i, 32);
    a0 += w[0];
    a1 += w[1];
    a2 += w[2];
    a3 += w[3];
  }
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, 8);
    a0 += w;
  }
  if (i < n) {
    std::uint64_t w = 0;
    std::memcpy(&w, p + i, n - i);
    a1 += w;
  }
  return (a0 + a1) + (a2 + a3);
}

// Builds records of one size: the pattern, its sum, and (under --corrupt_seq)
// the one flipped byte.
class Stamper {
 public:
  explicit Stamper(std::size_t size) : size_(size), tmpl_(bench::make_template(size)) {
    if (size_ >= 16) psum_ = sum64(tmpl_.data() + 8, size_ - 16);
  }
  void write(std::byte* rec, std::uint64_t seq) const noexcept {
    std::memcpy(rec, tmpl_.data(), size_);
    std::memcpy(rec, &seq, 8);
    if (size_ >= 16) {
      const std::uint64_t t = (seq + psum_) ^ kSumMangle;
      std::memcpy(rec + size_ - 8, &t, 8);
    }
    if (seq == g_corrupt_seq) corrupt(rec, size_);
  }
  // One flipped bit in one payload byte (in the sequence number for records
  // without a payload).
  static void corrupt(std::byte* rec, std::size_t size) noexcept {
    const std::size_t at = size >= 24 ? 8 + (size - 16) / 2 : size - 1;
    rec[at] ^= std::byte{0x10};
  }
  const std::byte* pattern() const noexcept { return tmpl_.data(); }

 private:
  std::size_t size_;
  std::vector<std::byte> tmpl_;
  std::uint64_t psum_ = 0;
};

inline bool accept(const std::byte* rec, std::size_t len, std::size_t size, std::uint64_t want) noexcept {
  if (len != size) return false;
  std::uint64_t s;
  std::memcpy(&s, rec, 8);
  if (size >= 16) {
    std::uint64_t t;
    std::memcpy(&t, rec + size - 8, 8);
    if ((sum64(rec, size - 8) ^ kSumMangle) != t) return false;
  }
  return s == want;
}

inline std::string describe_bad(const std::byte* rec, std::size_t len, std::size_t size, std::uint64_t want) {
  char buf[200];
  if (len != size) {
    std::snprintf(buf, sizeof buf, "record %llu: length %zu, expected %zu", static_cast<unsigned long long>(want), len,
                  size);
    return buf;
  }
  std::uint64_t s = 0, t = 0;
  std::memcpy(&s, rec, 8);
  if (size >= 16) std::memcpy(&t, rec + size - 8, 8);
  if (size >= 16 && (sum64(rec, size - 8) ^ kSumMangle) != t) {
    std::snprintf(buf, sizeof buf, "record %llu: payload checksum mismatch (altered or torn record; sequence field %llu)",
                  static_cast<unsigned long long>(want), static_cast<unsigned long long>(s));
  } else {
    std::snprintf(buf, sizeof buf, "record %llu: sequence number %llu%s", static_cast<unsigned long long>(want),
                  static_cast<unsigned long long>(s),
                  s < want ? " (duplicate or reordered)" : " (records lost or sequence altered)");
  }
  return buf;
}

// ---- The two measurements ----------------------------------------------------------

// "peer: <text>" (Peer::wait's account of the child's error message) as the
// receiver's rejection.
inline std::string peer_error(const std::string& err) {
  return err.rfind("peer: ", 0) == 0 ? "receiver rejected: " + err.substr(6) : err;
}

inline void fail(benchmark::State& st, const std::string& why) {
  set_abort();
  st.SkipWithError(why.c_str());
}

// After a failure on the parent's side: stop the peer and prefer its own
// account (the receiver's rejection) to ours (usually only "peer gone").
inline void fail_with_peer(benchmark::State& st, bench::Peer& peer, const std::string& why) {
  set_abort();
  for (int i = 0; i < 4; ++i) {  // skip a pending "warm" or "ready"
    std::string perr;
    Msg m{};
    if (peer.wait(Msg::done, &m, 5000, &perr)) break;
    if (perr.rfind("peer: ", 0) == 0) return fail(st, peer_error(perr));
    if (perr != "unexpected message from peer") break;
  }
  fail(st, why.empty() ? "transport failed" : why);
}

inline std::uint64_t throughput_warmup(const Case& c) {
  // Two buffers' worth (every page of the buffer touched by both sides),
  // between 16 and 100k records.
  return std::clamp<std::uint64_t>(2 * buffer_bytes(c) / c.size, 16, 100'000);
}

// The end of a throughput stream: a record whose sequence number is
// kEndFlag | (records sent before it), stamped like any other.
constexpr std::uint64_t kEndFlag = std::uint64_t{1} << 63;
// Each call of a throughput case moves at least this much time's worth of
// records (estimated from the warm-up), so that no reported run rests on a
// handful of records caught in a scheduling stall.
constexpr double kMinBatchSeconds = 0.1;

inline long voluntary_switches() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return ru.ru_nvcsw;
}

// The receiving side of a throughput case (the child): accepts records in
// order until the end record, reporting "warm" after the warm-up and "done"
// with the count, or "error" with the first rejection.
template <class Channel, class Rx>
int throughput_receiver(Channel& ch, std::size_t size, std::uint64_t warm, int ctl) {
  std::uint64_t expect = 0;
  bool end = false;
  std::string why;
  {
    Rx rx;
    std::string e;
    if (!rx.open(ch, &e)) {
      set_abort();
      bench::send_msg(ctl, Msg::error, 0, e.c_str());
      return 1;
    }
    bench::send_msg(ctl, Msg::ready);
    auto on = [&](const std::byte* p, std::size_t len) {
      if (end || !accept(p, len, size, expect)) {
        if (!end && accept(p, len, size, kEndFlag | expect)) {
          end = true;  // the producer sent exactly `expect` records
          return true;
        }
        why = end ? "a record after the end of the stream" : describe_bad(p, len, size, expect);
        return false;
      }
      if (++expect == warm) bench::send_msg(ctl, Msg::warm, expect);
      return true;
    };
    while (!end) {
      if (!rx.poll(on)) {
        set_abort();
        bench::send_msg(ctl, Msg::error, expect, (why.empty() ? rx.err() : why).c_str());
        return 1;
      }
    }
  }
  bench::send_msg(ctl, Msg::done, expect);
  return 0;
}

// The answering side of a ping-pong case (the child): checks each record and
// sends it back, warm + n times; "done" carries its voluntary context
// switches over the measured round trips.
template <class Channel, class Tx, class Rx>
int pingpong_echo(Channel& there, Channel& back, std::size_t size, std::uint64_t warm, std::uint64_t n, int ctl) {
  const Stamper stamper(size);
  std::uint64_t expect = 0;
  std::string why;
  long sw0 = 0;
  {
    Rx rx;
    Tx tx;
    std::string e;
    if (!rx.open(there, &e) || !tx.open(back, &e)) {
      set_abort();
      bench::send_msg(ctl, Msg::error, 0, e.c_str());
      return 1;
    }
    bench::send_msg(ctl, Msg::ready);
    auto on = [&](const std::byte* p, std::size_t len) {
      if (!accept(p, len, size, expect)) {
        why = describe_bad(p, len, size, expect);
        return false;
      }
      std::byte* q = tx.begin(size);
      if (!q) return false;
      stamper.write(q, expect);
      if (!tx.commit(size) || !tx.flush()) return false;
      if (++expect == warm) sw0 = voluntary_switches();
      return true;
    };
    while (expect < warm + n) {
      if (!rx.poll(on)) {
        set_abort();
        if (why.empty()) why = !rx.err().empty() ? rx.err() : tx.err();
        bench::send_msg(ctl, Msg::error, expect, why.c_str());
        return 1;
      }
    }
  }
  Msg m{};
  m.kind = Msg::done;
  m.value = expect;
  m.t_ns = bench::now_ns();
  m.extra[0] = static_cast<std::uint64_t>(voluntary_switches() - sw0);
  (void)bench::write_all(ctl, &m, sizeof m);
  return 0;
}

template <class Channel, class Tx, class Rx>
void run_throughput(benchmark::State& st, const Case& c) {
  Watchdog dog;
  clear_abort();
  const std::size_t size = c.size;
  std::string err;
  Channel ch;
  if (!ch.create(c, &err)) return fail(st, err);
  const std::uint64_t warm = throughput_warmup(c);
  bench::ScopedPin pin(c.pinned ? 0 : -1);
  if (!pin.ok()) return fail(st, "cannot pin to CPU 0");
  bench::Peer peer;
  const bool started = peer.start(
      c.pinned ? 1 : -1,
      [&](int ctl) -> int {
        ch.keep_receiver();
        if constexpr (requires { ch.exec_receiver(c, warm, ctl); }) {
          return ch.exec_receiver(c, warm, ctl);  // a fresh process (iceoryx)
        } else {
          return throughput_receiver<Channel, Rx>(ch, size, warm, ctl);
        }
      },
      &err);
  if (!started) return fail(st, err);
  ch.keep_sender();
  Tx tx;
  if (!tx.open(ch, &err)) return fail(st, err);
  if (!peer.wait(Msg::ready, nullptr, kPeerTimeoutMs, &err)) return fail(st, err);
  ch.unlink_name();  // both sides are attached: nothing can be left behind now

  const Stamper stamper(size);
  std::uint64_t seq = 0;
  auto produce = [&](std::uint64_t stamp_as) -> bool {
    std::byte* p = tx.begin(size);
    if (!p) return false;
    stamper.write(p, stamp_as);
    return tx.commit(size);
  };
  const std::int64_t w0 = bench::now_ns();
  for (std::uint64_t i = 0; i < warm; ++i) {
    if (!produce(seq++)) return fail_with_peer(st, peer, tx.err());
  }
  if (!tx.flush()) return fail_with_peer(st, peer, tx.err());
  if (!peer.wait(Msg::warm, nullptr, kPeerTimeoutMs, &err)) return fail(st, peer_error(err));
  const double warm_rate =
      static_cast<double>(warm) * 1e9 / static_cast<double>(std::max<std::int64_t>(1, bench::now_ns() - w0));
  if (c.batch == 0) c.batch = static_cast<std::int64_t>(std::clamp(warm_rate * kMinBatchSeconds, 16.0, 1e8));
  const auto batch = static_cast<benchmark::IterationCount>(c.batch);

  Msg done{};
  bool ok = true;
  while (ok && st.KeepRunningBatch(batch)) {
    for (benchmark::IterationCount j = 0; j < batch; ++j) {
      if (!produce(seq++)) {
        ok = false;
        err = tx.err();
        break;
      }
    }
    if (ok && st.iterations() >= st.max_iterations) {
      // The last batch: the clock stops when the receiver has every record.
      if (!produce(kEndFlag | seq) || !tx.flush()) {
        ok = false;
        err = tx.err();
      } else if (!peer.wait(Msg::done, &done, kPeerTimeoutMs, &err)) {
        ok = false;
        return fail(st, peer_error(err));
      }
    }
  }
  if (!ok) return fail_with_peer(st, peer, err);
  peer.reap();
  if (done.value != seq)
    return fail(st, "receiver accepted " + std::to_string(done.value) + " records, sent " + std::to_string(seq));
  if (!peer.exited_ok()) return fail(st, "receiver exited with an error");
  const std::uint64_t n = seq - warm;
  st.SetItemsProcessed(static_cast<std::int64_t>(n));
  st.SetBytesProcessed(static_cast<std::int64_t>(n * size));
  if (ch.depth != 0) st.counters["queue_depth"] = static_cast<double>(ch.depth);
}

inline void report_rtt(benchmark::State& st, std::vector<std::uint64_t>& samples, double peer_sleeps) {
  const bench::Percentiles p = bench::percentiles(samples);
  st.counters["rtt_p50_ns"] = p.p50;
  st.counters["rtt_p90_ns"] = p.p90;
  st.counters["rtt_p99_ns"] = p.p99;
  st.counters["rtt_p999_ns"] = p.p999;
  st.counters["rtt_max_ns"] = p.max;
  st.counters["rtt_mean_ns"] = p.mean;
  st.counters["round_trips"] = static_cast<double>(samples.size());
  if (peer_sleeps >= 0) st.counters["peer_sleeps_per_rt"] = peer_sleeps;
}

template <class Channel, class Tx, class Rx>
void run_pingpong(benchmark::State& st, const Case& c) {
  Watchdog dog;
  clear_abort();
  const std::size_t size = c.size;
  std::string err;
  Channel there, back;  // parent -> child, child -> parent
  if (!there.create(c, &err) || !back.create(c, &err)) return fail(st, err);
  const std::uint64_t n = static_cast<std::uint64_t>(st.max_iterations);
  const std::uint64_t warm = std::min<std::uint64_t>(10'000, std::max<std::uint64_t>(1000, n / 10));
  bench::ScopedPin pin(c.pinned ? 0 : -1);
  if (!pin.ok()) return fail(st, "cannot pin to CPU 0");
  const Stamper stamper(size);
  bench::Peer peer;
  const bool started = peer.start(
      c.pinned ? 1 : -1,
      [&](int ctl) -> int {
        there.keep_receiver();
        back.keep_sender();
        if constexpr (requires { there.exec_echo(back, c, warm, n, ctl); }) {
          return there.exec_echo(back, c, warm, n, ctl);  // a fresh process (iceoryx)
        } else {
          return pingpong_echo<Channel, Tx, Rx>(there, back, size, warm, n, ctl);
        }
      },
      &err);
  if (!started) return fail(st, err);
  there.keep_sender();
  back.keep_receiver();
  std::optional<Tx> tx(std::in_place);
  std::optional<Rx> rx(std::in_place);
  if (!tx->open(there, &err) || !rx->open(back, &err)) return fail(st, err);
  if (!peer.wait(Msg::ready, nullptr, kPeerTimeoutMs, &err)) return fail(st, err);
  there.unlink_name();
  back.unlink_name();

  std::uint64_t seq = 0;
  std::string why;
  auto on = [&](const std::byte* p, std::size_t len) {
    if (!accept(p, len, size, seq)) {
      why = describe_bad(p, len, size, seq);
      return false;
    }
    return true;
  };
  auto round_trip = [&]() -> bool {
    std::byte* p = tx->begin(size);
    if (!p) return false;
    stamper.write(p, seq);
    if (!tx->commit(size) || !tx->flush()) return false;
    if (!rx->poll(on)) return false;
    ++seq;
    return true;
  };
  auto why_failed = [&] { return !why.empty() ? "sender's side rejected: " + why : !tx->err().empty() ? tx->err() : rx->err(); };
  for (std::uint64_t i = 0; i < warm; ++i) {
    if (!round_trip()) return fail_with_peer(st, peer, why_failed());
  }
  std::vector<std::uint64_t> samples(n);
  const bench::Ticks& clk = bench::Ticks::get();
  std::uint64_t i = 0;
  bool ok = true;
  for (auto _ : st) {
    const std::uint64_t t0 = clk.now();
    if (!round_trip()) {
      ok = false;
      break;
    }
    samples[i++] = clk.now() - t0;
  }
  if (!ok) return fail_with_peer(st, peer, why_failed());
  Msg done{};
  if (!peer.wait(Msg::done, &done, kPeerTimeoutMs, &err)) return fail(st, peer_error(err));
  peer.reap();
  if (done.value != warm + n)
    return fail(st, "peer answered " + std::to_string(done.value) + " of " + std::to_string(warm + n) + " messages");
  report_rtt(st, samples, static_cast<double>(done.extra[0]) / static_cast<double>(n));
  st.SetItemsProcessed(static_cast<std::int64_t>(n));
}

template <class Channel, class Tx, class Rx>
void run_case(benchmark::State& st, const Case& c) {
  if (c.mode == Mode::throughput) {
    run_throughput<Channel, Tx, Rx>(st, c);
  } else {
    run_pingpong<Channel, Tx, Rx>(st, c);
  }
}

// One entry point per transport family (ring.cpp, kernel.cpp,
// boost_lockfree.cpp, iceoryx.cpp, limits.cpp).
void run_ring(benchmark::State& st, const Case& c);
void run_kernel(benchmark::State& st, const Case& c);
void run_boost_lockfree(benchmark::State& st, const Case& c);
void run_iceoryx(benchmark::State& st, const Case& c);
void run_limit(benchmark::State& st, const Case& c);
// Record sizes with a Boost.Lockfree element type (8 B .. 64 KiB).
bool boost_lockfree_size(std::size_t size);
// iceoryx: whether the case can run here (RouDi binary present), and why not.
bool iceoryx_available(std::string* why);
// The iceoryx peer process (ipc_compare --iox_peer ...): exec'd by the child.
int iceoryx_peer_main(int argc, char** argv);

}  // namespace ipc
