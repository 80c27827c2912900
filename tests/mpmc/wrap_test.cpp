// Ticket and lap wrap-around. Before anybody attaches, the test hook starts
// both ticket counters at T0 and lays out the slot words for tickets
// T0..T0+n-1 (detail::init_mpmc_slots), for two places:
//
//   u64   T0 = 2^64 - 3n - 5: the 64-bit tickets wrap to 0 after 3n+5 records
//   lap40 T0 = 2^40 * n - 3n - 5: the 40-bit lap field of the slot words
//         (ticket >> log2 n, modulo 2^40) wraps to 0 while the tickets do not
//
//   MpmcWrap.EmptyAndFullAcrossTheWrap/{u64,lap40}
//     one process, try-mode calls: peek on the empty ring is would_block;
//     exactly slot_count records fit, the next reserve is would_block; they
//     come back in order, then would_block again -- five rounds, across the
//     wrap.
//   MpmcWrap.ProcessesAcrossTheWrap/{u64,lap40}
//     3 producer x 2 consumer processes move records across the wrap, with
//     the usual checks (exactly once over the union, per-producer order per
//     consumer, every byte).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "mpmc_common.hpp"
#include "mpmc_test_util.hpp"
#include "record.hpp"
#include "shmring/ring.hpp"
#include "support/test_support.hpp"

namespace shmring::mpmc_test {
namespace {

using namespace std::chrono_literals;

struct WrapCase {
  const char* name;
  bool lap40;  // else the 64-bit wrap
};

void PrintTo(const WrapCase& c, std::ostream* os) { *os << c.name; }

std::uint64_t start_ticket(const WrapCase& c, std::uint64_t n) {
  if (!c.lap40) return 0 - 3 * n - 5;  // 2^64 - 3n - 5
  return (std::uint64_t{1} << 40) * n - 3 * n - 5;
}

class MpmcWrap : public ::testing::TestWithParam<WrapCase> {};

TEST_P(MpmcWrap, EmptyAndFullAcrossTheWrap) {
  const WrapCase& k = GetParam();
  Ring ring(4096, 512);  // 8 slots
  ASSERT_EQ(ring.created, Errc::ok) << last_error_message();
  RingView view(ring.name);
  ASSERT_TRUE(view.ok());
  const std::uint64_t n = view.slot_count();
  ASSERT_EQ(n, 8u);
  const std::uint64_t t0 = start_ticket(k, n);
  ASSERT_TRUE(view.start_tickets_at(t0));
  const unsigned shift = static_cast<unsigned>(__builtin_ctzll(n));
  std::printf("  T0 = %llu (lap field %llu), wrap after %llu tickets\n", static_cast<unsigned long long>(t0),
              static_cast<unsigned long long>((t0 >> shift) & detail::kLapMask),
              static_cast<unsigned long long>(3 * n + 5));

  auto p = Producer::open(ring.name);
  ASSERT_TRUE(p.ok()) << last_error_message();
  auto c = Consumer::open(ring.name);
  ASSERT_TRUE(c.ok()) << last_error_message();
  EXPECT_EQ(c->peek(Timeout::try_once()).error(), Errc::would_block);

  std::uint64_t seq = 0, next = 0;
  for (int round = 0; round < 5; ++round) {
    // Fill: exactly n records fit.
    std::uint64_t fitted = 0;
    for (;;) {
      const std::uint32_t len = live::record_len(1, seq, 24, 512);
      auto r = p->reserve(len, Timeout::try_once());
      if (!r) {
        EXPECT_EQ(r.error(), Errc::would_block);
        break;
      }
      live::fill_record(1, seq, r->data(), len);
      ASSERT_EQ(p->commit(len), Errc::ok);
      ++seq;
      ASSERT_LE(++fitted, n) << "more records than slots fit in round " << round;
    }
    EXPECT_EQ(fitted, n) << "round " << round;
    EXPECT_EQ(p->reserve(24, Timeout::try_once()).error(), Errc::would_block);
    // Drain: in order, then empty.
    for (std::uint64_t i = 0; i < fitted; ++i) {
      auto r = c->peek(Timeout::try_once());
      ASSERT_TRUE(r.ok()) << "round " << round << " record " << i << ": " << shmring::errc_name(r.error());
      live::RecordView v;
      std::string why;
      ASSERT_TRUE(live::check_record(r->data(), r->size(), 24, 512, &v, &why)) << why;
      EXPECT_EQ(v.id, 1u);
      EXPECT_EQ(v.seq, next);
      ++next;
      ASSERT_EQ(c->release(), Errc::ok);
    }
    EXPECT_EQ(c->peek(Timeout::try_once()).error(), Errc::would_block) << "round " << round;
  }
  EXPECT_EQ(next, 5 * n);
  EXPECT_EQ(view.tail(), t0 + 5 * n);
  EXPECT_EQ(view.head(), t0 + 5 * n);
  if (!k.lap40) EXPECT_LT(view.tail(), t0) << "the 64-bit tickets did not wrap";
  else EXPECT_LT((view.tail() >> shift) & detail::kLapMask, (t0 >> shift) & detail::kLapMask) << "the lap field did not wrap";
}

TEST_P(MpmcWrap, ProcessesAcrossTheWrap) {
  const WrapCase& k = GetParam();
  Ring ring(4096, 512);  // 8 slots: many laps, and every producer meets every slot
  ASSERT_EQ(ring.created, Errc::ok) << last_error_message();
  RingView view(ring.name);
  ASSERT_TRUE(view.ok());
  const std::uint64_t n = view.slot_count();
  const std::uint64_t t0 = start_ticket(k, n);
  ASSERT_TRUE(view.start_tickets_at(t0));
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  const std::uint64_t per = test::scaled(40'000, 2'000);

  int rc = 0;
  auto anchor = open_producer(Face::cpp, ring.name, &rc);
  ASSERT_TRUE(anchor) << rc;
  constexpr auto kDeadline = std::chrono::seconds(200);
  std::vector<std::unique_ptr<test::Child>> cons, prods;
  for (int i = 0; i < 2; ++i) {
    ConsumeOpts o;
    o.ring = ring.name;
    o.face = Face::cpp;
    o.bitmap_path = dir.path(numbered("c", i, ".bits"));
    cons.push_back(std::make_unique<test::Child>([o] { return consume(o).error; }, kDeadline));
  }
  for (int i = 0; i < 3; ++i) {
    ProduceOpts o;
    o.ring = ring.name;
    o.face = Face::cpp;
    o.id = static_cast<std::uint32_t>(i + 1);
    o.count = per;
    prods.push_back(std::make_unique<test::Child>([o] { return produce(o).error; }, kDeadline));
  }
  for (auto& pr : prods) {
    const auto r = pr->wait();
    EXPECT_TRUE(r.ok()) << "producer: " << r.describe();
  }
  anchor.reset();
  std::vector<Bitmaps> seen;
  for (int i = 0; i < 2; ++i) {
    const auto r = cons[i]->wait();
    EXPECT_TRUE(r.ok()) << "consumer " << i << ": " << r.describe();
    auto b = read_bitmaps(dir.path(numbered("c", i, ".bits")));
    ASSERT_TRUE(b.has_value());
    seen.push_back(std::move(*b));
  }
  EXPECT_EQ(check_exactly_once(seen, {{1, per}, {2, per}, {3, per}}), "");
  EXPECT_EQ(view.tail(), t0 + 3 * per);
  EXPECT_EQ(view.head(), t0 + 3 * per);
  EXPECT_EQ(view.abandoned_claims() + view.fenced_claims() + view.dropped_reads(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Places, MpmcWrap,
                         ::testing::Values(WrapCase{"u64", false}, WrapCase{"lap40", true}),
                         [](const ::testing::TestParamInfo<WrapCase>& i) { return std::string(i.param.name); });

}  // namespace
}  // namespace shmring::mpmc_test
