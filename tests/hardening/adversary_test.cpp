// The adversarial peer (issue 7, item 2; reliability.md part b): a process
// that maps a live ring with plain shm_open + mmap and writes random values
// into its shared fields while an honest producer and an honest consumer,
// each its own forked process, move records through it.
//
// Per case (kind x wait strategy), three phases:
//   warm-up  producer and consumer alone; the consumer checks every record
//            in full (id, seq in order, length, checksum, body): this proves
//            the oracle and the plumbing work before anything is damaged;
//   attack   the adversary runs for kAttackMs, in bursts: it writes random
//            values (fully random, 0, all ones, small and aligned
//            perturbations, a copy of a neighbouring word, one flipped bit)
//            into random targets, then restores the identity block from its
//            snapshot so that an honest side that lost its handle can open
//            the ring again and keep the attack going;
//   stop     the parent tells both sides to finish; each returns its verdict.
// The honest sides reopen after any error that quarantines a handle
// (corrupt, reset) and retry any failed open, so the attack meets fresh
// handles, the open path and the attach table all along.
//
// Targets (docs/format.md): the whole identity block (magic, version, sizes,
// init_state, reset_gen, ...), prod.tail / prod.records, cons.head /
// cons.records, both wait lines (futex word, waiter count), the lock block's
// diagnostic words (recoveries, holders), every attach entry field, the role
// block (owners, attach counters, mpmc statistics), the reserved bytes, and
// the data area: spsc/locked record headers (len, tag) at and around the
// live indices plus random payload bytes; mpmc slot words (lap, owner,
// state) and slot lengths, and payload bytes.
//
// NOT targeted, by design: the bytes of the two pthread_mutex_t (locked
// kind) and of the two sem_t (wait strategy sem). POSIX makes any operation
// on a mutex or semaphore whose bytes somebody else changed undefined, and
// glibc keeps raw pointers in a robust mutex (the robust-list links that
// pthread_mutex_unlock follows and writes through), so a writer of those
// bytes can make a locking process write through an arbitrary pointer. No
// library can validate them; a peer that can write the ring is trusted not
// to forge the lock. (For the same reason the futex and spin strategies of
// every kind are fully covered: their wait words are plain integers.)
//
// What the test checks -- the guarantee under a hostile writer:
//   - no honest process crashes (it must exit 0: a signal, an ASan/UBSan
//     report or an abort fails the case), and none hangs: every call has a
//     20 ms timeout and must return within kCallBoundNs of it; every process
//     has a deadline and is killed (and the case failed) when it passes;
//   - every error code an honest call returns is one documented for that
//     call in that situation: open -> busy, corrupt, version_mismatch,
//     timed_out; reserve/commit/peek/release -> timed_out, peer_gone,
//     corrupt, reset. Anything else (invalid_argument, system_error, ...)
//     fails the case;
//   - every record the ring hands out (reserve's buffer, peek's record) lies
//     inside the data area of the handle's own mapping, and its length is at
//     most the ring's max_record: a hostile length or index never becomes a
//     read or write outside the object.
// What it does NOT check, because no ring without cryptographic
// authentication can promise it: that records delivered during the attack
// are intact (the adversary writes into payloads in flight, and a forged
// index can make a consumer hand out stale bytes that pass every structural
// check), nor exactly-once or order during the attack. The test counts
// such records ("damaged") and prints the count; it checks intactness only
// in the warm-up phase.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "endpoint.hpp"  // internal: the handle's own mapping, to check bounds
#include "layout.hpp"
#include "record.hpp"    // tests/liveness: the record oracle
#include "segment.hpp"
#include "support/test_support.hpp"

namespace shmring::test {
namespace {

using namespace std::chrono_literals;
using detail::Header;

constexpr std::int64_t kCallTimeoutNs = 20'000'000;       // every honest call
constexpr std::int64_t kCallBoundNs = 5'000'000'000;      // ... must return within this past it
constexpr std::int64_t kAttackMs = 1500;
constexpr std::uint64_t kWarmRecords = 300;
constexpr int kCodes = 16;  // -Errc values 0..15

// Shared between the parent and its children (an anonymous MAP_SHARED page
// made before fork).
struct Control {
  std::atomic<int> phase;  // 0 warm-up, 1 attack, 2 stop
  std::atomic<std::uint64_t> warm_ok;
  std::atomic<std::uint64_t> attack_ok;
  std::atomic<std::uint64_t> attack_damaged;
  std::atomic<std::uint64_t> sent;
  std::atomic<std::uint64_t> opens;
  std::atomic<std::uint64_t> writes;
  std::atomic<std::uint64_t> codes[2][kCodes];  // [producer, consumer][-code]
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free && std::atomic<int>::is_always_lock_free);

struct CaseParam {
  Kind kind;
  WaitStrategy wait;
};

std::string case_name(const testing::TestParamInfo<CaseParam>& i) {
  return std::string(to_string(i.param.kind)) + "_" + to_string(i.param.wait);
}

class SharedControl {
 public:
  SharedControl() {
    void* p = ::mmap(nullptr, sizeof(Control), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED) c_ = new (p) Control{};
  }
  ~SharedControl() {
    if (c_ != nullptr) ::munmap(c_, sizeof(Control));
  }
  SharedControl(const SharedControl&) = delete;
  SharedControl& operator=(const SharedControl&) = delete;
  Control* operator->() const noexcept { return c_; }
  bool ok() const noexcept { return c_ != nullptr; }

 private:
  Control* c_ = nullptr;
};

bool open_code_allowed(Errc e) {
  return e == Errc::busy || e == Errc::corrupt || e == Errc::version_mismatch || e == Errc::timed_out;
}
bool op_code_allowed(Errc e) {
  return e == Errc::timed_out || e == Errc::peer_gone || e == Errc::corrupt || e == Errc::reset;
}

std::string describe(const char* op, Errc e) {
  return std::string(op) + " returned " + errc_name(e) + " (" + std::to_string(static_cast<int>(e)) +
         "): " + last_error_message();
}

// Facts the parent learns before forking.
struct RingFacts {
  std::string name;
  std::uint64_t data_bytes = 0;  // size of the data area
  std::uint64_t max_record = 0;
  std::uint32_t max_len = 0;     // largest record the producer sends
};

// One honest side. Returns "" or what went wrong.
class Honest {
 public:
  Honest(const RingFacts& f, Control* c, Role role) : f_(f), c_(c), role_(role) {}

  std::string run() {
    while (c_->phase.load(std::memory_order_acquire) != 2) {
      if (!ep_) {
        if (std::string err = open(); !err.empty()) return err;
        if (!ep_) {
          ::sched_yield();
          continue;
        }
      }
      std::string err = role_ == Role::producer ? produce_one() : consume_one();
      if (!err.empty()) return err;
    }
    ep_.reset();
    return {};
  }

 private:
  bool attacking() const { return c_->phase.load(std::memory_order_acquire) >= 1; }
  void count(Errc e) { c_->codes[role_ == Role::producer ? 0 : 1][-static_cast<int>(e) % kCodes]++; }

  std::string open() {
    OpenOptions o;
    o.init_timeout = 20ms;
    const std::int64_t t0 = now_ns();
    const Errc e = detail::open_endpoint(f_.name, role_, o, &ep_);
    if (now_ns() - t0 > 20'000'000 + kCallBoundNs) return "open took " + std::to_string(now_ns() - t0) + " ns";
    count(e);
    c_->opens++;
    if (e == Errc::ok) {
      data_ = ep_->segment().data;
      ++incarnation_;
      seq_ = 0;
      return {};
    }
    ep_.reset();
    if (!attacking()) return describe("open (before the attack)", e);
    if (!open_code_allowed(e)) return describe("open", e);
    return {};
  }

  // An error from an operation: documented? Then drop the handle if it is
  // quarantined, and go on.
  std::string after_error(const char* op, Errc e, std::int64_t t0) {
    count(e);
    if (now_ns() - t0 > kCallTimeoutNs + kCallBoundNs)
      return std::string(op) + " took " + std::to_string(now_ns() - t0) + " ns with a 20 ms timeout";
    if (!op_code_allowed(e)) return describe(op, e);
    if (!attacking() && e != Errc::timed_out) return describe(op, e) + " before the attack";
    if (e == Errc::corrupt || e == Errc::reset || e == Errc::peer_gone) ep_.reset();
    return {};
  }

  bool inside(const std::byte* p, std::size_t n) const {
    return p >= data_ && n <= f_.data_bytes && static_cast<std::uint64_t>(p - data_) <= f_.data_bytes - n;
  }

  std::string produce_one() {
    const std::uint32_t id = incarnation_;
    const std::uint32_t len = live::record_len(id, seq_, 24, f_.max_len);
    std::byte* p = nullptr;
    std::int64_t t0 = now_ns();
    Errc e = ep_->reserve(len, &p, kCallTimeoutNs);
    if (e != Errc::ok) return after_error("reserve", e, t0);
    if (!inside(p, len)) return "reserve handed out a buffer outside the data area";
    live::fill_record(id, seq_, p, len);
    t0 = now_ns();
    e = ep_->commit(len, true);
    if (e != Errc::ok) return after_error("commit", e, t0);
    count(e);
    ++seq_;
    c_->sent++;
    return {};
  }

  std::string consume_one() {
    const std::byte* p = nullptr;
    std::size_t n = 0;
    std::int64_t t0 = now_ns();
    const bool attack = attacking();
    Errc e = ep_->peek(&p, &n, kCallTimeoutNs);
    if (e != Errc::ok) return after_error("peek", e, t0);
    if (n > f_.max_record) return "peek returned " + std::to_string(n) + " bytes, max_record " + std::to_string(f_.max_record);
    if (!inside(p, n)) return "peek returned a record outside the data area";
    live::RecordView v;
    std::string why;
    const bool intact = live::check_record(p, n, 24, f_.max_len, &v, &why);
    // The attack may have begun while this record was being checked (the
    // phase was read before the peek): only a record checked entirely
    // before the adversary's first write is held to the warm-up rules. The
    // adversary is forked only after the parent's seq_cst store of phase 1,
    // so a phase still 0 here, after the fence, means no adversary write
    // preceded the check. The fence pairs with that store.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (!attack && c_->phase.load(std::memory_order_seq_cst) == 0) {
      if (!intact) return "warm-up record damaged: " + why;
      if (v.id != expect_id_ || v.seq != expect_seq_)
        return "warm-up record (" + std::to_string(v.id) + "," + std::to_string(v.seq) + ") where (" +
               std::to_string(expect_id_) + "," + std::to_string(expect_seq_) + ") was due";
      ++expect_seq_;
      c_->warm_ok++;
    } else {
      (intact ? c_->attack_ok : c_->attack_damaged)++;
    }
    t0 = now_ns();
    e = ep_->release(true);
    if (e != Errc::ok) return after_error("release", e, t0);
    count(e);
    return {};
  }

  const RingFacts& f_;
  Control* c_;
  Role role_;
  std::unique_ptr<detail::Endpoint> ep_;
  const std::byte* data_ = nullptr;
  std::uint32_t incarnation_ = 0;
  std::uint64_t seq_ = 0;
  std::uint32_t expect_id_ = 1;
  std::uint64_t expect_seq_ = 0;
};

// A region of the object the adversary may write: [off, off + len).
struct Region {
  std::size_t off;
  std::size_t len;
};

// The adversary: plain shm_open + mmap, no library code on the object.
std::string adversary(const std::string& name, Kind kind, WaitStrategy wait, Control* c, std::uint64_t seed) {
  const int fd = ::shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) return "adversary: shm_open failed";
  struct stat st {};
  if (::fstat(fd, &st) != 0) return "adversary: fstat failed";
  const auto size = static_cast<std::size_t>(st.st_size);
  void* m = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) return "adversary: mmap failed";
  auto* base = static_cast<unsigned char*>(m);
  auto* h = static_cast<Header*>(m);

  // Header regions: everything but the mutexes (locked) and semaphores (sem).
  std::vector<Region> header;
  auto add = [&](std::size_t off, std::size_t len) { header.push_back({off, len}); };
  add(0, 128);                                            // identity block
  add(offsetof(Header, prod), 16);                        // tail, records
  add(offsetof(Header, cons), 16);                        // head, records
  add(offsetof(Header, data_wait), 8);                    // futex word, waiters
  add(offsetof(Header, space_wait), 8);
  if (wait != WaitStrategy::sem) add(offsetof(Header, sems), 64);
  if (kind != Kind::locked) add(offsetof(Header, lock), 128);
  add(offsetof(Header, lock) + offsetof(detail::LockBlock, recoveries), 24);
  add(offsetof(Header, attach), sizeof(detail::AttachEntry) * detail::kAttachEntries);
  add(offsetof(Header, roles), 56);
  add(offsetof(Header, reserved), 64);
  // The hot words get extra weight: they are where the algorithms look.
  const Region hot[] = {{offsetof(Header, prod), 8}, {offsetof(Header, cons), 8},
                        {offsetof(Header, data_wait), 8}, {offsetof(Header, space_wait), 8},
                        {offsetof(Header, attach), 64 * 4}, {offsetof(Header, roles), 16}};

  std::vector<unsigned char> identity(base, base + 128);
  const std::uint64_t cap = h->id.capacity;
  const std::uint64_t slots = h->id.slot_count;
  const std::uint64_t stride = kind == Kind::mpmc ? detail::mpmc_stride(h->id.slot_size) : 0;
  const std::size_t data_bytes = size - detail::kHeaderSize;
  const unsigned lap_shift = kind == Kind::mpmc ? static_cast<unsigned>(__builtin_ctzll(slots)) : 3;

  std::mt19937_64 rng(seed);
  auto below = [&](std::uint64_t n) { return n == 0 ? 0 : rng() % n; };
  auto load64 = [&](std::size_t off) {
    std::uint64_t v;
    std::memcpy(&v, base + off, 8);
    return v;
  };
  // A value for an 8-byte word whose current value is `cur`.
  auto value_for = [&](std::uint64_t cur) -> std::uint64_t {
    switch (below(9)) {
      case 0: return rng();
      case 1: return 0;
      case 2: return ~std::uint64_t{0};
      case 3: return cur + 8 * (below(17)) - 64;               // near, aligned (indices)
      case 4: return cur + below(2) * cap - below(2) * cap;    // a lap away
      case 5: return cur ^ (std::uint64_t{1} << below(64));   // one bit
      case 6: return cur + 1;
      case 7: return cur - (below(std::uint64_t{1} << 40) << lap_shift);  // mpmc: a ticket laps away
      default: return cur - below(4096);
    }
  };
  // Writes `len` (1..8) bytes of a value at off, as the hardware would from
  // another core (atomic_ref for naturally aligned words).
  auto poke = [&](std::size_t off, std::size_t len) {
    if (off + len > size) return;
    std::uint64_t cur = 0;
    std::memcpy(&cur, base + off, len);
    const std::uint64_t v = value_for(cur);
    if (len == 8 && off % 8 == 0) {
      detail::atom(*reinterpret_cast<std::uint64_t*>(base + off)).store(v, std::memory_order_relaxed);
    } else if (len == 4 && off % 4 == 0) {
      detail::atom(*reinterpret_cast<std::uint32_t*>(base + off))
          .store(static_cast<std::uint32_t>(v), std::memory_order_relaxed);
    } else {
      for (std::size_t i = 0; i < len; ++i)
        detail::atom(base[off + i]).store(static_cast<unsigned char>(v >> (8 * i)), std::memory_order_relaxed);
    }
    c->writes.fetch_add(1, std::memory_order_relaxed);
  };
  auto poke_in = [&](const Region& r) {
    const std::size_t len = below(3) == 0 ? 4 : 8;
    if (r.len < len) return poke(r.off, r.len);
    const std::size_t off = r.off + (below(r.len - len + 1) & ~(len - 1));
    poke(off, len);
  };
  auto poke_data = [&]() {
    const std::size_t d = detail::kHeaderSize;
    if (kind == Kind::mpmc) {
      const std::size_t s = below(slots) * stride;
      switch (below(4)) {
        case 0: case 1: return poke(d + s, 8);                                 // slot word
        case 2: return poke(d + s + 8, 4);                                     // len
        default: return poke(d + s + 16 + (below(stride - 16) & ~std::size_t{7}), 8);  // payload
      }
    }
    // A record header near a live index, or anywhere.
    const std::uint64_t idx = below(2) == 0 ? load64(offsetof(Header, prod)) : load64(offsetof(Header, cons));
    std::size_t off = below(3) == 0 ? (below(data_bytes) & ~std::size_t{7})
                                    : ((idx + 8 * below(64) - 256) & (cap - 1) & ~std::uint64_t{7});
    poke(d + off + (below(2) == 0 ? 0 : 4), 4);
  };

  const std::int64_t end = now_ns() + kAttackMs * 1'000'000;
  while (now_ns() < end) {
    // One burst: a few writes, a pause of random length (a busy loop: the
    // honest processes run on the other core), then the identity block
    // restored so that a fresh open can succeed again.
    const int writes = 1 + static_cast<int>(below(6));
    for (int i = 0; i < writes; ++i) {
      const auto what = below(10);
      if (what < 4) poke_in(hot[below(std::size(hot))]);
      else if (what < 7) poke_data();
      else poke_in(header[below(header.size())]);
    }
    const std::int64_t pause_until = now_ns() + static_cast<std::int64_t>(below(2'000'000));
    while (now_ns() < pause_until) ::sched_yield();
    if (below(2) == 0) {
      // Keep reset_gen (bumping it is a legitimate reset) and init_state as
      // the library may have left them; restore the rest.
      const std::uint32_t gen = detail::atom(h->id.reset_gen).load(std::memory_order_relaxed);
      for (std::size_t i = 0; i < 128; ++i) detail::atom(base[i]).store(identity[i], std::memory_order_relaxed);
      detail::atom(h->id.reset_gen).store(gen, std::memory_order_relaxed);
    }
  }
  ::munmap(m, size);
  return {};
}

class Adversary : public testing::TestWithParam<CaseParam> {};

TEST_P(Adversary, HonestSidesGetValidRecordsOrDocumentedErrors) {
  const CaseParam cp = GetParam();
  ShmGuard ring(unique_ring_name("adv"));
  Config cfg;
  cfg.kind = cp.kind;
  cfg.wait = cp.wait;
  cfg.capacity = 4096;  // small: wraps, skip records and full rings all the time
  cfg.slot_size = cp.kind == Kind::mpmc ? 256 : 0;
  ASSERT_EQ(create(ring.name(), cfg), Errc::ok) << last_error_message();
  RingFacts f;
  f.name = ring.name();
  {
    detail::OpenedSegment seg;
    ASSERT_EQ(detail::open_segment(ring.name(), 1s, &seg), Errc::ok) << last_error_message();
    f.data_bytes = seg.geo.total_size - detail::kHeaderSize;
    f.max_record = seg.geo.max_record;
  }
  f.max_len = static_cast<std::uint32_t>(std::min<std::uint64_t>(f.max_record, 700));
  SharedControl c;
  ASSERT_TRUE(c.ok());

  const auto deadline = std::chrono::seconds(30);
  Child consumer([&] { return Honest(f, c.operator->(), Role::consumer).run(); }, deadline);
  Child producer([&] { return Honest(f, c.operator->(), Role::producer).run(); }, deadline);
  // Warm-up: bounded poll of the consumer's verified count (no sleeping).
  const std::int64_t warm_deadline = now_ns() + 20'000'000'000;
  while (c->warm_ok.load() < kWarmRecords && now_ns() < warm_deadline) ::sched_yield();
  const bool warmed = c->warm_ok.load() >= kWarmRecords;
  if (warmed) {
    c->phase.store(1, std::memory_order_seq_cst);  // pairs with the honest consumer's fence + seq_cst re-check
    const std::uint64_t seed = static_cast<std::uint64_t>(now_ns());
    std::printf("  adversary seed %" PRIu64 "\n", seed);
    const ChildResult a =
        run_in_child([&] { return adversary(ring.name(), cp.kind, cp.wait, c.operator->(), seed); }, deadline);
    EXPECT_TRUE(a.ok()) << "adversary: " << a.describe();
  }
  c->phase.store(2, std::memory_order_release);
  const ChildResult pr = producer.wait();
  const ChildResult cr = consumer.wait();
  EXPECT_TRUE(warmed) << "warm-up: only " << c->warm_ok.load() << " records verified";
  EXPECT_TRUE(pr.ok()) << "honest producer: " << pr.describe();
  EXPECT_TRUE(cr.ok()) << "honest consumer: " << cr.describe();

  std::string codes[2];
  for (int r = 0; r < 2; ++r)
    for (int i = 1; i < kCodes; ++i)
      if (const auto n = c->codes[r][i].load(); n != 0)
        codes[r] += std::string(" ") + errc_name(static_cast<Errc>(-i)) + "=" + std::to_string(n);
  std::printf("  %" PRIu64 " writes; %" PRIu64 " records sent, %" PRIu64 " verified in warm-up, %" PRIu64
              " intact + %" PRIu64 " damaged during the attack; %" PRIu64 " opens\n  producer errors:%s\n"
              "  consumer errors:%s\n",
              c->writes.load(), c->sent.load(), c->warm_ok.load(), c->attack_ok.load(), c->attack_damaged.load(),
              c->opens.load(), codes[0].c_str(), codes[1].c_str());
  EXPECT_GT(c->writes.load(), 100u) << "the adversary hardly ran";
}

INSTANTIATE_TEST_SUITE_P(Kinds, Adversary,
                         testing::Values(CaseParam{Kind::spsc, WaitStrategy::futex},
                                         CaseParam{Kind::spsc, WaitStrategy::spin},
                                         CaseParam{Kind::spsc, WaitStrategy::sem},
                                         CaseParam{Kind::mpmc, WaitStrategy::futex},
                                         CaseParam{Kind::mpmc, WaitStrategy::spin},
                                         CaseParam{Kind::mpmc, WaitStrategy::sem},
                                         CaseParam{Kind::locked, WaitStrategy::futex},
                                         CaseParam{Kind::locked, WaitStrategy::spin},
                                         CaseParam{Kind::locked, WaitStrategy::sem}),
                         case_name);

}  // namespace
}  // namespace shmring::test
