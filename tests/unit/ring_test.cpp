// Single-threaded semantics of the spsc ring through the C++ handles: empty
// and full, the largest record, a record too big, batches, recv too small,
// reservations, handles.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <vector>

#include "support/ring_fixture.hpp"
#include "support/shm_raw.hpp"

namespace shmring::test {
namespace {

using namespace std::chrono_literals;

class RingTest : public RingFixture {};

TEST_F(RingTest, EmptyRingWouldBlockOnTry) {
  make_ring(4096);
  auto r = cons_.peek(Timeout::try_once());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), Errc::would_block);
  std::byte buf[64];
  auto n = cons_.recv(buf, Timeout::try_once());
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.error(), Errc::would_block);
}

TEST_F(RingTest, EmptyRingTimesOutNoEarlierThanItsTimeout) {
  make_ring(4096);
  const auto t0 = now_ns();
  auto r = cons_.peek(20ms);
  const auto waited = now_ns() - t0;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), Errc::timed_out);
  EXPECT_GE(waited, 20'000'000);
  std::byte buf[64];
  auto n = cons_.recv(buf, 5ms);
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.error(), Errc::timed_out);
}

TEST_F(RingTest, FullRingHoldsExactlyCapacityAndThenBlocks) {
  make_ring(4096);
  // 8-byte payloads have a 16-byte footprint: 256 fill 4096 bytes exactly.
  std::uint64_t pushed = 0;
  while (push_record(prod_, pushed, 8) == Errc::ok) ++pushed;
  EXPECT_EQ(pushed, 256u);
  auto r = prod_.reserve(8, Timeout::try_once());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), Errc::would_block);
  const auto t0 = now_ns();
  r = prod_.reserve(8, 20ms);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), Errc::timed_out);
  EXPECT_GE(now_ns() - t0, 20'000'000);
  const std::byte one[1] = {};
  EXPECT_EQ(prod_.send(one, Timeout::try_once()), Errc::would_block);
  // One release makes room for exactly one more.
  EXPECT_EQ(pop_record(cons_, 0, 8), "");
  EXPECT_EQ(push_record(prod_, pushed, 8), Errc::ok);
  ++pushed;
  EXPECT_EQ(push_record(prod_, pushed, 8), Errc::would_block);
  for (std::uint64_t s = 1; s < pushed; ++s) ASSERT_EQ(pop_record(cons_, s, 8), "") << s;
  EXPECT_EQ(cons_.peek(Timeout::try_once()).error(), Errc::would_block);
}

TEST_F(RingTest, FullRingOfLargestRecords) {
  make_ring(4096);
  const std::size_t max = prod_.max_record();
  // A record of max_record has a footprint of capacity/2: two fit.
  ASSERT_EQ(push_record(prod_, 0, max), Errc::ok);
  ASSERT_EQ(push_record(prod_, 1, max), Errc::ok);
  EXPECT_EQ(push_record(prod_, 2, max), Errc::would_block);
  EXPECT_EQ(push_record(prod_, 2, 0), Errc::would_block);
  EXPECT_EQ(pop_record(cons_, 0, max), "");
  EXPECT_EQ(push_record(prod_, 2, max), Errc::ok);
  EXPECT_EQ(pop_record(cons_, 1, max), "");
  EXPECT_EQ(pop_record(cons_, 2, max), "");
}

class LargestRecordTest : public RingFixture, public ::testing::WithParamInterface<std::size_t> {};

TEST_P(LargestRecordTest, MaxRecordIsReportedAndFitsAtEveryLap) {
  const std::size_t cap = GetParam();
  make_ring(cap);
  const std::size_t max = prod_.max_record();
  EXPECT_EQ(cons_.max_record(), max);
  EXPECT_GE(max, cap / 2 - 64);
  EXPECT_LT(max, cap);
  // Records of exactly max_record, over several laps (every placement the
  // ring has for them), each checked; then one byte more is refused.
  for (std::uint64_t s = 0; s < 7; ++s) {
    ASSERT_EQ(push_record(prod_, s, max), Errc::ok) << s;
    ASSERT_EQ(pop_record(cons_, s, max), "") << s;
  }
  // Mixed with a small record first, so the largest one must wrap.
  ASSERT_EQ(push_record(prod_, 100, 24), Errc::ok);
  ASSERT_EQ(push_record(prod_, 101, max), Errc::ok);
  ASSERT_EQ(pop_record(cons_, 100, 24), "");
  ASSERT_EQ(pop_record(cons_, 101, max), "");
  auto r = prod_.reserve(max + 1, Timeout::try_once());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), Errc::too_big);
}

INSTANTIATE_TEST_SUITE_P(Capacities, LargestRecordTest,
                         ::testing::Values(std::size_t{4096}, std::size_t{8192}, std::size_t{65536},
                                           std::size_t{1} << 20, std::size_t{1} << 24));

TEST_F(RingTest, RecordTooBigWritesNothing) {
  make_ring(4096);
  RawMap raw(name_);
  ASSERT_TRUE(raw.ok());
  const std::size_t max = prod_.max_record();
  for (std::size_t n : {max + 1, max + 8, std::size_t{4096}, std::size_t{1} << 32, SIZE_MAX}) {
    auto r = prod_.reserve(n, Timeout::try_once());
    ASSERT_FALSE(r.ok()) << n;
    EXPECT_EQ(r.error(), Errc::too_big) << n;
    // Waiting does not change the answer.
    r = prod_.reserve(n, 1ms);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), Errc::too_big) << n;
  }
  std::vector<std::byte> big(max + 1);
  EXPECT_EQ(prod_.send(big, Timeout::try_once()), Errc::too_big);
  EXPECT_EQ(prod_.commit(max + 1), Errc::invalid_argument);  // no reservation survived
  EXPECT_EQ(prod_.flush(), Errc::ok);
  EXPECT_EQ(raw.tail(), 0u);
  EXPECT_EQ(cons_.peek(Timeout::try_once()).error(), Errc::would_block);
  // The ring still works.
  ASSERT_EQ(push_record(prod_, 1, max), Errc::ok);
  EXPECT_EQ(pop_record(cons_, 1, max), "");
}

TEST_F(RingTest, DeferredCommitsAreInvisibleUntilFlush) {
  make_ring(4096);
  RawMap raw(name_);
  ASSERT_TRUE(raw.ok());
  for (std::uint64_t s = 0; s < 10; ++s) ASSERT_EQ(push_record(prod_, s, 30, Timeout::try_once(), Publish::later), Errc::ok);
  EXPECT_EQ(cons_.peek(Timeout::try_once()).error(), Errc::would_block);
  EXPECT_EQ(raw.tail(), 0u);
  ASSERT_EQ(prod_.flush(), Errc::ok);
  EXPECT_EQ(raw.tail(), 10 * detail::record_footprint(30));
  for (std::uint64_t s = 0; s < 10; ++s) ASSERT_EQ(pop_record(cons_, s, 30), "") << s;
  EXPECT_EQ(cons_.peek(Timeout::try_once()).error(), Errc::would_block);
}

TEST_F(RingTest, CommitNowPublishesEarlierDeferredCommits) {
  make_ring(4096);
  for (std::uint64_t s = 0; s < 3; ++s) ASSERT_EQ(push_record(prod_, s, 17, Timeout::try_once(), Publish::later), Errc::ok);
  EXPECT_EQ(cons_.peek(Timeout::try_once()).error(), Errc::would_block);
  ASSERT_EQ(push_record(prod_, 3, 17), Errc::ok);
  for (std::uint64_t s = 0; s < 4; ++s) ASSERT_EQ(pop_record(cons_, s, 17), "") << s;
}

TEST_F(RingTest, DeferredReleasesReturnSpaceOnlyAtFlush) {
  make_ring(4096);
  RawMap raw(name_);
  ASSERT_TRUE(raw.ok());
  std::uint64_t n = 0;
  while (push_record(prod_, n, 8) == Errc::ok) ++n;
  ASSERT_EQ(n, 256u);
  for (std::uint64_t s = 0; s < n; ++s) ASSERT_EQ(pop_record(cons_, s, 8, Timeout::try_once(), Publish::later), "") << s;
  // The consumer has moved past everything ...
  EXPECT_EQ(cons_.peek(Timeout::try_once()).error(), Errc::would_block);
  // ... but the producer gets no space back yet.
  EXPECT_EQ(raw.head(), 0u);
  EXPECT_EQ(push_record(prod_, n, 8), Errc::would_block);
  ASSERT_EQ(cons_.flush(), Errc::ok);
  EXPECT_EQ(raw.head(), 4096u);
  EXPECT_EQ(push_record(prod_, n, 8), Errc::ok);
  EXPECT_EQ(pop_record(cons_, n, 8), "");
}

TEST_F(RingTest, ReleaseNowPublishesEarlierDeferredReleases) {
  make_ring(4096);
  RawMap raw(name_);
  ASSERT_TRUE(raw.ok());
  for (std::uint64_t s = 0; s < 4; ++s) ASSERT_EQ(push_record(prod_, s, 8), Errc::ok);
  for (std::uint64_t s = 0; s < 3; ++s) ASSERT_EQ(pop_record(cons_, s, 8, Timeout::try_once(), Publish::later), "");
  EXPECT_EQ(raw.head(), 0u);
  ASSERT_EQ(pop_record(cons_, 3, 8), "");
  EXPECT_EQ(raw.head(), 64u);
}

// A producer about to wait for room publishes its staged records first, or
// the consumer it waits for could never see them.
TEST_F(RingTest, StagedRecordsBecomeVisibleWhenTheProducerMustWait) {
  make_ring(4096);
  std::uint64_t n = 0;
  Errc e;
  while ((e = push_record(prod_, n, 8, 1ms, Publish::later)) == Errc::ok) ++n;
  EXPECT_EQ(e, Errc::timed_out);
  EXPECT_EQ(n, 256u);
  for (std::uint64_t s = 0; s < n; ++s) ASSERT_EQ(pop_record(cons_, s, 8), "") << s;
}

// Likewise a consumer about to wait hands back its deferred releases.
TEST_F(RingTest, DeferredReleasesAreHandedBackWhenTheConsumerMustWait) {
  make_ring(4096);
  std::uint64_t n = 0;
  while (push_record(prod_, n, 8) == Errc::ok) ++n;
  for (std::uint64_t s = 0; s < n; ++s) ASSERT_EQ(pop_record(cons_, s, 8, Timeout::try_once(), Publish::later), "");
  EXPECT_EQ(cons_.peek(1ms).error(), Errc::timed_out);
  EXPECT_EQ(push_record(prod_, n, 8), Errc::ok);
}

TEST_F(RingTest, FlushWithNothingPendingIsHarmless) {
  make_ring(4096);
  EXPECT_EQ(prod_.flush(), Errc::ok);
  EXPECT_EQ(cons_.flush(), Errc::ok);
  EXPECT_EQ(cons_.peek(Timeout::try_once()).error(), Errc::would_block);
}

TEST_F(RingTest, RecvTooSmallLeavesTheRecordInTheRing) {
  make_ring(4096);
  ASSERT_EQ(push_record(prod_, 5, 100), Errc::ok);
  std::vector<std::byte> small(99), exact(100);
  auto r = cons_.recv(small, Timeout::try_once());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), Errc::too_big);
  auto again = cons_.recv(std::span<std::byte>(), 1ms);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error(), Errc::too_big);
  auto pk = cons_.peek(Timeout::try_once());
  ASSERT_TRUE(pk.ok());
  EXPECT_EQ(pk->size(), 100u);  // peek tells its size
  r = cons_.recv(exact, Timeout::try_once());
  ASSERT_TRUE(r.ok()) << errc_name(r.error());
  EXPECT_EQ(*r, 100u);
  std::string why;
  EXPECT_TRUE(check_record(kFixtureSeed, 5, 100, exact.data(), *r, &why)) << why;
  EXPECT_EQ(cons_.peek(Timeout::try_once()).error(), Errc::would_block);
}

TEST_F(RingTest, UncommittedReservationIsInvisible) {
  make_ring(4096);
  auto r = prod_.reserve(100, Timeout::try_once());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->size(), 100u);
  fill_record(kFixtureSeed, 0, r->data(), 40);
  EXPECT_EQ(cons_.peek(Timeout::try_once()).error(), Errc::would_block);
  EXPECT_EQ(prod_.commit(101), Errc::invalid_argument);
  ASSERT_EQ(prod_.commit(40), Errc::ok);  // a shorter record than reserved
  EXPECT_EQ(prod_.commit(40), Errc::invalid_argument);  // no second commit without reserve
  EXPECT_EQ(pop_record(cons_, 0, 40), "");
  EXPECT_EQ(cons_.release(), Errc::invalid_argument);  // nothing peeked
}

TEST_F(RingTest, SecondReserveReplacesTheFirst) {
  make_ring(4096);
  ASSERT_TRUE(prod_.reserve(500, Timeout::try_once()).ok());
  ASSERT_EQ(push_record(prod_, 9, 10), Errc::ok);
  EXPECT_EQ(pop_record(cons_, 9, 10), "");
  EXPECT_EQ(cons_.peek(Timeout::try_once()).error(), Errc::would_block);
}

TEST_F(RingTest, ZeroLengthRecords) {
  make_ring(4096);
  ASSERT_EQ(prod_.send(std::span<const std::byte>(), Timeout::try_once()), Errc::ok);
  ASSERT_EQ(push_record(prod_, 1, 0), Errc::ok);
  auto pk = cons_.peek(Timeout::try_once());
  ASSERT_TRUE(pk.ok());
  EXPECT_EQ(pk->size(), 0u);
  ASSERT_EQ(cons_.release(), Errc::ok);
  auto r = cons_.recv(std::span<std::byte>(), Timeout::try_once());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 0u);
  EXPECT_EQ(cons_.peek(Timeout::try_once()).error(), Errc::would_block);
}

TEST_F(RingTest, PeekTwiceReturnsTheSameRecord) {
  make_ring(4096);
  ASSERT_EQ(push_record(prod_, 0, 50), Errc::ok);
  ASSERT_EQ(push_record(prod_, 1, 60), Errc::ok);
  auto a = cons_.peek(Timeout::try_once());
  auto b = cons_.peek(Timeout::try_once());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->data(), b->data());
  EXPECT_EQ(a->size(), 50u);
  EXPECT_EQ(pop_record(cons_, 0, 50), "");
  EXPECT_EQ(pop_record(cons_, 1, 60), "");
}

TEST_F(RingTest, RecordsOutliveTheHandlesThatWroteThem) {
  make_ring(4096);
  for (std::uint64_t s = 0; s < 5; ++s) ASSERT_EQ(push_record(prod_, s, 33), Errc::ok);
  ASSERT_EQ(push_record(prod_, 5, 33, Timeout::try_once(), Publish::later), Errc::ok);  // closing flushes
  ASSERT_EQ(pop_record(cons_, 0, 33), "");
  ASSERT_EQ(pop_record(cons_, 1, 33, Timeout::try_once(), Publish::later), "");  // closing flushes
  close_sides();
  open_sides();
  for (std::uint64_t s = 2; s < 6; ++s) ASSERT_EQ(pop_record(cons_, s, 33), "") << s;
  EXPECT_EQ(cons_.peek(Timeout::try_once()).error(), Errc::would_block);
  ASSERT_EQ(push_record(prod_, 6, 33), Errc::ok);
  EXPECT_EQ(pop_record(cons_, 6, 33), "");
}

TEST_F(RingTest, UnlinkedRingKeepsWorkingForOpenHandles) {
  make_ring(4096);
  ASSERT_EQ(unlink(name_), Errc::ok);
  EXPECT_EQ(Consumer::open(name_).error(), Errc::not_found);
  ASSERT_EQ(push_record(prod_, 0, 77), Errc::ok);
  EXPECT_EQ(pop_record(cons_, 0, 77), "");
}

TEST(RingHandles, DefaultAndMovedFromHandlesRefuseWork) {
  Producer p;
  Consumer c;
  EXPECT_FALSE(p.valid());
  EXPECT_FALSE(c.valid());
  EXPECT_EQ(p.max_record(), 0u);
  EXPECT_EQ(c.max_record(), 0u);
  EXPECT_EQ(p.reserve(1, Timeout::try_once()).error(), Errc::invalid_argument);
  EXPECT_EQ(p.commit(0), Errc::invalid_argument);
  EXPECT_EQ(p.flush(), Errc::invalid_argument);
  EXPECT_EQ(p.send(std::span<const std::byte>(), Timeout::try_once()), Errc::invalid_argument);
  EXPECT_EQ(c.peek(Timeout::try_once()).error(), Errc::invalid_argument);
  EXPECT_EQ(c.release(), Errc::invalid_argument);
  EXPECT_EQ(c.flush(), Errc::invalid_argument);
  EXPECT_EQ(c.recv(std::span<std::byte>(), Timeout::try_once()).error(), Errc::invalid_argument);
  EXPECT_EQ(p.name(), "");

  const auto name = unique_ring_name();
  ShmGuard guard(name);
  Config cfg;
  cfg.capacity = 4096;
  ASSERT_EQ(create(name, cfg), Errc::ok);
  auto opened = Producer::open(name);
  ASSERT_TRUE(opened.ok());
  Producer a = std::move(*opened);
  EXPECT_TRUE(a.valid());
  EXPECT_EQ(a.name(), name);
  EXPECT_EQ(a.kind(), Kind::spsc);
  Producer b = std::move(a);
  EXPECT_TRUE(b.valid());
  EXPECT_FALSE(a.valid());  // NOLINT(bugprone-use-after-move): the moved-from state is the point
  EXPECT_EQ(a.reserve(1, Timeout::try_once()).error(), Errc::invalid_argument);
  EXPECT_TRUE(b.reserve(1, Timeout::try_once()).ok());
}

TEST(RingTimeouts, TimeoutConventions) {
  EXPECT_EQ(Timeout::try_once().ns(), 0);
  EXPECT_LT(Timeout::forever().ns(), 0);
  EXPECT_EQ(Timeout::from_ns(-5).ns(), -1);
  EXPECT_EQ(Timeout::from_ns(7).ns(), 7);
  EXPECT_EQ(Timeout(std::chrono::milliseconds(3)).ns(), 3'000'000);
  EXPECT_EQ(Timeout(std::chrono::nanoseconds(-3)).ns(), 0);  // a negative duration means "try"
}

}  // namespace
}  // namespace shmring::test
