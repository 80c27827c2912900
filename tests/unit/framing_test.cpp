// Record framing and wrap-around in a 4096-byte ring, at every starting
// offset (every 8-byte position of the data area), and free-running indices
// across the 2^64 wrap. The expected placements follow the format: a record
// is {len, "REC1"} + payload, footprint align8(8 + len); one that does not
// fit before the end goes to offset 0 behind a skip record
// {bytes to the end - 8, "SKIP"}.
#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <cstring>
#include <vector>

#include "layout.hpp"
#include "support/ring_fixture.hpp"
#include "support/shm_raw.hpp"

namespace shmring::test {
namespace {

using detail::kRecordTag;
using detail::kSkipTag;
using detail::record_footprint;
using detail::RecordHeader;

constexpr std::uint64_t kCap = 4096;

RecordHeader header_at(const RawMap& raw, std::uint64_t off) {
  RecordHeader h{};
  std::memcpy(&h, raw.data() + off, sizeof h);
  return h;
}

// Lengths worth trying at a write offset with `room` bytes before the end.
std::vector<std::size_t> lengths_for(std::uint64_t room, std::size_t max) {
  std::vector<std::size_t> v = {0, 1, 7, 8, 9, 16, 23, 24, 25, 100, 1000, max - 1, max};
  for (std::int64_t d : {-24, -16, -9, -8, -7, -1, 0, 1}) {
    const std::int64_t l = static_cast<std::int64_t>(room) + d;
    if (l >= 0) v.push_back(static_cast<std::size_t>(l));
  }
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  v.erase(std::remove_if(v.begin(), v.end(), [&](std::size_t l) { return l > max; }), v.end());
  return v;
}

class FramingTest : public RingFixture {};

// Plants head = tail = k*8 (through the header, with no handle open), opens
// both sides, writes one record of each interesting length and checks where
// and how it lands, then reads it back.
TEST_F(FramingTest, EveryStartingOffsetAndLength) {
  make_ring(kCap);
  RawMap raw(name_);
  ASSERT_TRUE(raw.ok());
  const std::size_t max = prod_.max_record();
  std::uint64_t seq = 0, checked = 0;
  for (std::uint64_t k = 0; k < kCap / 8; ++k) {
    // A different lap per offset, so indices are not all below capacity.
    const std::uint64_t start = (k % 5) * kCap + k * 8;
    const std::uint64_t off = start % kCap;
    const std::uint64_t room = kCap - off;
    for (std::size_t len : lengths_for(room, max)) {
      close_sides();
      raw.set_indices(start, start);
      open_sides();
      ASSERT_EQ(push_record(prod_, seq, len), Errc::ok) << "offset " << off << " len " << len;
      const std::uint64_t f = record_footprint(len);
      const bool wraps = f > room;
      const std::uint64_t rec_off = wraps ? 0 : off;
      const std::uint64_t want_tail = start + (wraps ? room + f : f);
      ASSERT_EQ(raw.tail(), want_tail) << "offset " << off << " len " << len;
      if (wraps) {
        const auto skip = header_at(raw, off);
        EXPECT_EQ(skip.tag, kSkipTag) << "offset " << off << " len " << len;
        EXPECT_EQ(skip.len, room - 8) << "offset " << off << " len " << len;
      }
      const auto h = header_at(raw, rec_off);
      EXPECT_EQ(h.tag, kRecordTag) << "offset " << off << " len " << len;
      EXPECT_EQ(h.len, len) << "offset " << off << " len " << len;
      std::string why;
      EXPECT_TRUE(check_record(kFixtureSeed, seq, len, raw.data() + rec_off + 8, len, &why)) << why;
      ASSERT_EQ(pop_record(cons_, seq, len), "") << "offset " << off << " len " << len;
      EXPECT_EQ(raw.head(), want_tail);
      EXPECT_EQ(cons_.peek(Timeout::try_once()).error(), Errc::would_block);
      ++seq;
      ++checked;
    }
  }
  EXPECT_GT(checked, 512u * 15);
}

// The same offsets reached by real traffic on open handles: zero-length
// records (8 bytes each) step the write position to each offset, then a
// burst of records of mixed lengths goes through, all checked.
TEST_F(FramingTest, EveryOffsetReachedByTraffic) {
  make_ring(kCap);
  RawMap raw(name_);
  ASSERT_TRUE(raw.ok());
  const std::size_t max = prod_.max_record();
  const std::size_t burst[] = {max, 1, 1020, 9, max - 8, 0, 333, 4, 64};
  std::deque<std::pair<std::uint64_t, std::size_t>> in_flight;  // seq, len
  std::uint64_t seq = 0;
  auto drain = [&] {
    while (!in_flight.empty()) {
      const auto [s, len] = in_flight.front();
      ASSERT_EQ(pop_record(cons_, s, len), "") << "seq " << s << " len " << len;
      in_flight.pop_front();
    }
  };
  auto push = [&](std::size_t len) {
    Errc e = push_record(prod_, seq, len);
    if (e == Errc::would_block) {
      drain();
      e = push_record(prod_, seq, len);
    }
    ASSERT_EQ(e, Errc::ok) << "seq " << seq << " len " << len;
    in_flight.emplace_back(seq++, len);
  };
  for (std::uint64_t k = 0; k < kCap / 8; ++k) {
    // Zero-length records (footprint 8) step the write offset to k*8.
    while (raw.tail() % kCap != k * 8) {
      push(0);
      if (::testing::Test::HasFatalFailure()) return;
    }
    for (std::size_t len : burst) {
      push(len);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
  drain();
  EXPECT_EQ(cons_.peek(Timeout::try_once()).error(), Errc::would_block);
  EXPECT_GT(seq, 512u * 9);
}

// A reference model of the ring's space accounting: where the next record
// goes and whether it fits. The producer's try-reserve must agree with it on
// every call, and the consumer must see every record in order.
struct RingModel {
  std::uint64_t head, tail;
  bool fits(std::size_t len) const {
    const std::uint64_t f = record_footprint(len);
    const std::uint64_t room = kCap - (tail % kCap);
    const std::uint64_t need = f <= room ? f : room + f;
    return tail + need - head <= kCap;
  }
  void push(std::size_t len) {
    const std::uint64_t f = record_footprint(len);
    const std::uint64_t room = kCap - (tail % kCap);
    tail += f <= room ? f : room + f;
  }
};

class ModelTest : public RingFixture, public ::testing::WithParamInterface<std::uint64_t> {};

TEST_P(ModelTest, RandomTrafficAgreesWithTheModel) {
  const std::uint64_t start = GetParam();
  make_ring(kCap);
  RawMap raw(name_);
  ASSERT_TRUE(raw.ok());
  close_sides();
  raw.set_indices(start, start);
  open_sides();
  const std::size_t max = prod_.max_record();
  RingModel model{start, start};
  struct Rec {
    std::uint64_t seq;
    std::size_t len;
    std::uint64_t end;  // the model's tail after it
  };
  std::vector<Rec> in_flight;
  std::size_t front = 0;
  Prng rng(start ^ 0xabc);
  std::uint64_t seq = 0, popped = 0, refused = 0;
  const std::uint64_t ops = scaled(200'000, 20'000);
  for (std::uint64_t i = 0; i < ops; ++i) {
    if (rng.next() % 2 == 0) {
      // Short records mostly, long ones sometimes, the largest now and then.
      const std::uint64_t pick = rng.next() % 10;
      const std::size_t len = pick < 6 ? rng.between(0, 64) : pick < 9 ? rng.between(65, max) : max;
      const bool want = model.fits(len);
      const Errc e = push_record(prod_, seq, len);
      ASSERT_EQ(e, want ? Errc::ok : Errc::would_block)
          << "op " << i << " len " << len << " model head " << model.head << " tail " << model.tail;
      if (e == Errc::ok) {
        model.push(len);
        in_flight.push_back({seq++, len, model.tail});
        ASSERT_EQ(raw.tail(), model.tail);
      } else {
        ++refused;
      }
    } else if (front < in_flight.size()) {
      const Rec r = in_flight[front++];
      ASSERT_EQ(pop_record(cons_, r.seq, r.len), "") << "op " << i;
      ++popped;
      // A release hands back everything up to the end of that record.
      model.head = r.end;
      ASSERT_EQ(raw.head(), model.head) << "op " << i;
    } else {
      ASSERT_EQ(cons_.peek(Timeout::try_once()).error(), Errc::would_block) << "op " << i;
    }
  }
  EXPECT_GT(popped, ops / 4);
  EXPECT_GT(refused, 0u);  // the ring was full at times
  // The indices moved well past where they started (across 2^64 when planted near it).
  EXPECT_GT(model.tail - start, 100 * kCap);
}

INSTANTIATE_TEST_SUITE_P(Starts, ModelTest,
                         ::testing::Values(std::uint64_t{0},
                                           std::uint64_t{0} - kCap * 3,  // 2^64 - 12288
                                           std::uint64_t{0} - 8,         // 8 bytes before 2^64
                                           (std::uint64_t{1} << 63) - 4096 + 40,
                                           std::uint64_t{0xffffffff} - 0xfff + 8));  // the 2^32 wrap

// Full and empty detection at the 2^64 wrap: start 16 bytes before it and
// fill the ring exactly.
TEST_F(FramingTest, FullAndEmptyAcrossTheIndexWrap) {
  make_ring(kCap);
  RawMap raw(name_);
  ASSERT_TRUE(raw.ok());
  close_sides();
  const std::uint64_t start = std::uint64_t{0} - 16;
  raw.set_indices(start, start);
  open_sides();
  std::uint64_t n = 0;
  while (push_record(prod_, n, 8) == Errc::ok) ++n;
  EXPECT_EQ(n, 256u);
  EXPECT_EQ(raw.tail(), start + kCap);  // wrapped: 4080
  EXPECT_EQ(raw.tail(), 4080u);
  for (std::uint64_t s = 0; s < n; ++s) ASSERT_EQ(pop_record(cons_, s, 8), "") << s;
  EXPECT_EQ(cons_.peek(Timeout::try_once()).error(), Errc::would_block);
  EXPECT_EQ(raw.head(), 4080u);
}

// The brief's case: head = tail = 2^64 - 3*4096, then many records of every
// size across the wrap, in the stress oracle's format.
TEST_F(FramingTest, ManyRecordsAcrossTheIndexWrap) {
  make_ring(kCap);
  RawMap raw(name_);
  ASSERT_TRUE(raw.ok());
  close_sides();
  const std::uint64_t start = std::uint64_t{0} - kCap * 3;
  raw.set_indices(start, start);
  open_sides();
  const std::size_t max = prod_.max_record();
  const std::uint64_t count = scaled(100'000, 10'000);
  std::uint64_t produced = 0, consumed = 0;
  while (consumed < count) {
    while (produced < count) {
      const std::size_t len = record_length(7, produced, 1, static_cast<std::uint32_t>(max));
      const Errc e = push_record(prod_, produced, len);
      if (e == Errc::would_block) break;
      ASSERT_EQ(e, Errc::ok);
      ++produced;
    }
    // Drain about half so the ring stays partly full.
    const std::uint64_t target = consumed + std::max<std::uint64_t>(1, (produced - consumed) / 2);
    while (consumed < target) {
      const std::size_t len = record_length(7, consumed, 1, static_cast<std::uint32_t>(max));
      ASSERT_EQ(pop_record(cons_, consumed, len), "") << consumed;
      ++consumed;
    }
  }
  EXPECT_EQ(cons_.peek(Timeout::try_once()).error(), Errc::would_block);
  EXPECT_LT(raw.tail(), start);  // crossed 2^64
  EXPECT_EQ(raw.head(), raw.tail());
}

}  // namespace
}  // namespace shmring::test
