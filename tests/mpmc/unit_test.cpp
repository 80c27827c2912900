// Unit-level behaviour of the mpmc kind, through the public API (plus a raw
// view of the header to check counters, tickets and slot words).
//
//   MpmcGeometry.*      slot count = capacity / slot_size rounded down to a
//                       power of two, max_record == slot_size, and exactly that
//                       many records fit; bad configurations are refused with
//                       invalid_argument and leave nothing in /dev/shm
//   MpmcUnit.*          too_big claims nothing; a second reserve before commit
//                       reuses the claim; commit beyond the reservation;
//                       closing a producer with an open claim drops it (the
//                       consumers are not stuck); closing a consumer with an
//                       unreleased peek counts the record as consumed; peek
//                       again returns the same record
//   MpmcPeerGone.*      a consumer gets every committed record before
//                       peer_gone, even when a dead claimer's slot sits in
//                       front of them
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <cstring>
#include <ostream>
#include <string>
#include <vector>

#include "mpmc_common.hpp"
#include "mpmc_test_util.hpp"
#include "record.hpp"
#include "shmring/ring.hpp"
#include "shmring/shmring.h"
#include "support/test_support.hpp"

namespace shmring::mpmc_test {
namespace {

using namespace std::chrono_literals;

bool exists_in_dev_shm(const std::string& ring) {
  struct stat st {};
  return ::stat(test::shm_path(ring).c_str(), &st) == 0;
}

Result<Producer> open_p(const Ring& r) { return Producer::open(r.name); }
Result<Consumer> open_c(const Ring& r) { return Consumer::open(r.name); }

// Sends record (id, seq): len bytes, or (0) the oracle's length for it.
Errc send_rec(Producer& p, std::uint32_t id, std::uint64_t seq, std::size_t len = 0, Timeout t = Timeout::try_once()) {
  if (len == 0) len = live::record_len(id, seq, 24, static_cast<std::uint32_t>(p.max_record()));
  auto r = p.reserve(len, t);
  if (!r) return r.error();
  live::fill_record(id, seq, r->data(), len);
  return p.commit(len);
}

// Takes the next record and checks it is (id, seq), of len bytes (0: the
// oracle's length). Returns "" or what is wrong.
std::string take_rec(Consumer& c, std::uint32_t id, std::uint64_t seq, Timeout t = Timeout::try_once(),
                     std::size_t len = 0) {
  auto r = c.peek(t);
  if (!r) return std::string("peek: ") + shmring::errc_name(r.error());
  live::RecordView v;
  std::string why;
  const auto lo = static_cast<std::uint32_t>(len != 0 ? len : 24);
  const auto hi = static_cast<std::uint32_t>(len != 0 ? len : c.max_record());
  if (!live::check_record(r->data(), r->size(), lo, hi, &v, &why)) return why;
  if (v.id != id || v.seq != seq)
    return "got (" + std::to_string(v.id) + "," + std::to_string(v.seq) + "), expected (" + std::to_string(id) + "," +
           std::to_string(seq) + ")";
  if (Errc e = c.release(); e != Errc::ok) return std::string("release: ") + shmring::errc_name(e);
  return "";
}

// ---- Geometry -------------------------------------------------------------------------------

struct Geo {
  std::size_t capacity, slot_size;
  std::uint64_t slots;
};

void PrintTo(const Geo& g, std::ostream* os) {
  *os << "capacity " << g.capacity << ", slot_size " << g.slot_size << " -> " << g.slots << " slots";
}

class MpmcGeometry : public ::testing::TestWithParam<Geo> {};

TEST_P(MpmcGeometry, SlotsRoundedDownAndExactlyThatManyFit) {
  const Geo& g = GetParam();
  Ring ring(g.capacity, g.slot_size);
  ASSERT_EQ(ring.created, Errc::ok) << last_error_message();
  RingView view(ring.name);
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(view.slot_count(), g.slots);
  EXPECT_EQ(view.slot_size(), g.slot_size);
  EXPECT_EQ(view.header()->id.max_record, g.slot_size);
  auto p = open_p(ring);
  ASSERT_TRUE(p.ok());
  auto c = open_c(ring);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(p->max_record(), g.slot_size);
  EXPECT_EQ(c->max_record(), g.slot_size);
  EXPECT_EQ(p->kind(), Kind::mpmc);
  EXPECT_EQ(c->peek(Timeout::try_once()).error(), Errc::would_block);
  // Full-size records: exactly `slots` fit.
  std::uint64_t fitted = 0;
  while (fitted <= g.slots) {
    auto r = p->reserve(g.slot_size, Timeout::try_once());
    if (!r) {
      EXPECT_EQ(r.error(), Errc::would_block);
      break;
    }
    std::memset(r->data(), static_cast<int>(fitted & 0xff), g.slot_size);
    ASSERT_EQ(p->commit(g.slot_size), Errc::ok);
    ++fitted;
  }
  EXPECT_EQ(fitted, g.slots);
  for (std::uint64_t i = 0; i < fitted; ++i) {
    auto r = c->peek(Timeout::try_once());
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->size(), g.slot_size);
    EXPECT_EQ(std::to_integer<unsigned>((*r)[0]), i & 0xff);
    EXPECT_EQ(std::to_integer<unsigned>((*r)[g.slot_size - 1]), i & 0xff);
    ASSERT_EQ(c->release(), Errc::ok);
  }
  EXPECT_EQ(c->peek(Timeout::try_once()).error(), Errc::would_block);
}

INSTANTIATE_TEST_SUITE_P(Sizes, MpmcGeometry,
                         ::testing::Values(Geo{4096, 8, 512}, Geo{4096, 24, 128},    // 170 -> 128
                                           Geo{4096, 2048, 2}, Geo{8192, 1032, 4},   // 7 -> 4
                                           Geo{16384, 1000, 16}, Geo{65536, 200, 256},  // 327 -> 256
                                           Geo{1 << 20, 65536, 16}),
                         [](const ::testing::TestParamInfo<Geo>& i) {
                           return std::string("cap")
                               .append(std::to_string(i.param.capacity))
                               .append("_slot")
                               .append(std::to_string(i.param.slot_size));
                         });

TEST(MpmcGeometryBad, RefusedWithInvalidArgumentAndNothingLeft) {
  struct Bad {
    std::size_t capacity, slot_size;
    const char* why;
  };
  const Bad bad[] = {
      {4096, 0, "slot_size 0"},
      {4096, 12, "not a multiple of 8"},
      {4096, 4, "below 8"},
      {4096, 2056, "more than capacity / 2"},
      {4096, 4096, "the whole capacity"},
      {std::size_t{1} << 26, (std::size_t{1} << 24) + 8, "more than 16 MiB"},
      {5000, 8, "capacity not a power of two"},
      {2048, 8, "capacity below 4096"},
  };
  for (const Bad& b : bad) {
    const std::string name = test::unique_ring_name("bad");
    test::ShmGuard guard(name);
    Config cfg;
    cfg.kind = Kind::mpmc;
    cfg.capacity = b.capacity;
    cfg.slot_size = b.slot_size;
    EXPECT_EQ(create(name, cfg), Errc::invalid_argument) << b.why;
    EXPECT_FALSE(exists_in_dev_shm(name)) << b.why;
    shmring_config c{};
    c.kind = SHMRING_MPMC;
    c.capacity = b.capacity;
    c.slot_size = b.slot_size;
    EXPECT_EQ(shmring_create(name.c_str(), &c), SHMRING_EINVAL) << b.why;
    EXPECT_FALSE(exists_in_dev_shm(name)) << b.why;
  }
}

// ---- Claims ---------------------------------------------------------------------------------

TEST(MpmcUnit, TooBigClaimsNothing) {
  Ring ring(4096, 256);
  ASSERT_EQ(ring.created, Errc::ok);
  RingView view(ring.name);
  auto p = open_p(ring);
  auto p2 = open_p(ring);
  auto c = open_c(ring);
  ASSERT_TRUE(p.ok() && p2.ok() && c.ok());
  EXPECT_EQ(p->reserve(257, Timeout::try_once()).error(), Errc::too_big);
  EXPECT_EQ(p->reserve(257, std::chrono::milliseconds(50)).error(), Errc::too_big);
  EXPECT_EQ(p->send(std::vector<std::byte>(1000), Timeout::try_once()), Errc::too_big);
  // Nothing claimed: no ticket taken, every slot empty, the consumer sees
  // nothing, and the next record (another producer's) is ticket 0.
  EXPECT_EQ(view.tail(), 0u);
  for (std::uint64_t i = 0; i < view.slot_count(); ++i)
    EXPECT_EQ(detail::word_state(view.slot_word(i)), detail::kSlotEmpty) << "slot " << i;
  EXPECT_EQ(c->peek(Timeout::try_once()).error(), Errc::would_block);
  ASSERT_EQ(send_rec(*p2, 2, 0), Errc::ok);
  EXPECT_EQ(view.tail(), 1u);
  EXPECT_EQ(take_rec(*c, 2, 0), "");
  // The handle that got too_big still works, with the largest record.
  ASSERT_EQ(send_rec(*p, 1, 0, 256), Errc::ok);
  EXPECT_EQ(take_rec(*c, 1, 0, Timeout::try_once(), 256), "");
  EXPECT_EQ(c->peek(Timeout::try_once()).error(), Errc::would_block);
}

TEST(MpmcUnit, SecondReserveBeforeCommitReusesTheClaim) {
  Ring ring(4096, 256);
  ASSERT_EQ(ring.created, Errc::ok);
  RingView view(ring.name);
  auto p = open_p(ring);
  auto c = open_c(ring);
  ASSERT_TRUE(p.ok() && c.ok());
  auto a = p->reserve(10, Timeout::try_once());
  ASSERT_TRUE(a.ok());
  auto b = p->reserve(200, Timeout::try_once());
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(a->data(), b->data()) << "the second reserve took another slot";
  EXPECT_EQ(b->size(), 200u);
  EXPECT_EQ(view.tail(), 1u) << "one claim, one ticket";
  live::fill_record(1, 0, b->data(), 200);
  ASSERT_EQ(p->commit(200), Errc::ok);
  EXPECT_EQ(take_rec(*c, 1, 0, Timeout::try_once(), 200), "");
  EXPECT_EQ(c->peek(Timeout::try_once()).error(), Errc::would_block);
  // A smaller commit than the last reservation is fine; a larger one is not.
  auto d = p->reserve(100, Timeout::try_once());
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(p->commit(101), Errc::invalid_argument);
  live::fill_record(1, 1, d->data(), 60);
  EXPECT_EQ(p->commit(60), Errc::ok);
  EXPECT_EQ(p->commit(60), Errc::invalid_argument) << "commit without a reservation";
  EXPECT_EQ(take_rec(*c, 1, 1, Timeout::try_once(), 60), "");
}

TEST(MpmcUnit, ClosingAProducerWithAnOpenClaimDropsIt) {
  Ring ring(4096, 256);
  ASSERT_EQ(ring.created, Errc::ok);
  RingView view(ring.name);
  auto p1 = open_p(ring);
  auto p2 = open_p(ring);
  auto c = open_c(ring);
  ASSERT_TRUE(p1.ok() && p2.ok() && c.ok());
  auto claim = p1->reserve(100, Timeout::try_once());  // ticket 0
  ASSERT_TRUE(claim.ok());
  live::fill_record(1, 0, claim->data(), 100);
  ASSERT_EQ(send_rec(*p2, 2, 0), Errc::ok);  // ticket 1
  // Ticket 0 is being written by a live producer: the consumer waits.
  EXPECT_EQ(c->peek(Timeout::try_once()).error(), Errc::would_block);
  *p1 = Producer();  // close with the claim open
  const std::int64_t t0 = now_ns();
  EXPECT_EQ(take_rec(*c, 2, 0, std::chrono::seconds(5)), "");
  const double ms = static_cast<double>(now_ns() - t0) / 1e6;
  EXPECT_LT(ms, 500.0) << "the consumer waited for the dropped claim";
  EXPECT_EQ(c->peek(Timeout::try_once()).error(), Errc::would_block) << "the dropped record was delivered";
  EXPECT_EQ(view.abandoned_claims(), 0u);
  EXPECT_EQ(view.fenced_claims(), 0u);
  // The dropped slot is used again.
  for (std::uint64_t s = 1; s <= 2 * view.slot_count(); ++s) {
    ASSERT_EQ(send_rec(*p2, 2, s), Errc::ok);
    ASSERT_EQ(take_rec(*c, 2, s), "");
  }
}

TEST(MpmcUnit, ClosingAConsumerWithAnUnreleasedPeekConsumesTheRecord) {
  // mpmc.cpp (~MpmcConsumer): "A peeked record counts as consumed: its
  // ticket is behind us for good." It is not handed to another consumer.
  Ring ring(4096, 256);
  ASSERT_EQ(ring.created, Errc::ok);
  RingView view(ring.name);
  auto p = open_p(ring);
  auto c1 = open_c(ring);
  auto c2 = open_c(ring);
  ASSERT_TRUE(p.ok() && c1.ok() && c2.ok());
  ASSERT_EQ(send_rec(*p, 1, 0, 50), Errc::ok);
  ASSERT_EQ(send_rec(*p, 1, 1), Errc::ok);
  auto r = c1->peek(Timeout::try_once());
  ASSERT_TRUE(r.ok());
  auto again = c1->peek(Timeout::try_once());  // peeking again: the same record
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->data(), r->data());
  EXPECT_EQ(again->size(), 50u);
  *c1 = Consumer();  // close without release
  EXPECT_EQ(take_rec(*c2, 1, 1), "");
  EXPECT_EQ(c2->peek(Timeout::try_once()).error(), Errc::would_block);
  EXPECT_EQ(view.dropped_reads(), 0u);
  EXPECT_EQ(c2->release(), Errc::invalid_argument) << "release without a peek";
  // Its slot is free again: a whole ring's worth goes through.
  for (std::uint64_t s = 2; s < 2 + 2 * view.slot_count(); ++s) {
    ASSERT_EQ(send_rec(*p, 1, s), Errc::ok);
    ASSERT_EQ(take_rec(*c2, 1, s), "");
  }
}

// ---- peer_gone with a dead claimer in front of committed records ----------------------

// A producer process that claims a slot and dies holding it (SIGKILL, no
// crash point needed), then another that commits records behind it and
// closes. docs/liveness.md: "records committed before the producer died
// are delivered first"; a consumer that treats peer_gone as the end must not
// lose them because a dead claim sits in front.
TEST(MpmcPeerGone, CommittedRecordsBehindADeadClaimAreDeliveredFirst) {
  Ring ring(4096, 256);
  ASSERT_EQ(ring.created, Errc::ok);
  RingView view(ring.name);
  auto c = open_c(ring);  // open before any producer: peer_gone counts once one was seen
  ASSERT_TRUE(c.ok());
  const auto dead = test::run_in_child(
      [&]() -> std::string {
        auto p = Producer::open(ring.name);
        if (!p) return "open failed";
        auto r = p->reserve(100, Timeout::try_once());
        if (!r) return "reserve failed";
        ::raise(SIGKILL);
        return "still alive";
      },
      30s);
  ASSERT_EQ(dead.signal, SIGKILL) << dead.describe();
  ASSERT_EQ(detail::word_state(view.slot_word(0)), detail::kSlotWriting);
  const auto live = test::run_in_child(
      [&]() -> std::string {
        auto p = Producer::open(ring.name);
        if (!p) return "open failed";
        for (std::uint64_t s = 0; s < 5; ++s)
          if (send_rec(*p, 2, s) != Errc::ok) return "send failed";
        return "";
      },
      30s);
  ASSERT_TRUE(live.ok()) << live.describe();
  // No producer is left; five records wait behind the dead claim.
  for (std::uint64_t s = 0; s < 5; ++s) EXPECT_EQ(take_rec(*c, 2, s, std::chrono::seconds(5)), "") << "record " << s;
  EXPECT_EQ(c->peek(std::chrono::seconds(5)).error(), Errc::peer_gone);
  EXPECT_EQ(view.abandoned_claims(), 1u);
}

}  // namespace
}  // namespace shmring::mpmc_test
