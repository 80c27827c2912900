// The foundation issue's integrity test through every wait strategy and both
// variable-length kinds: a forked producer process writes records with a
// sequence number, a checksum and random lengths; a consumer process checks
// each one (order, length, checksum, body) and that nothing follows the last
// (it ends with EPEERGONE once the producer has exited). At least 1M records
// at scale 1.
//   IntegrityTest.OneProducerOneConsumer     every kind x strategy, 1M records
//   IntegrityTest.Batched                    deferred commits / releases (batches of 16)
//   LockedIntegrity.TwoProducersTwoConsumers locked, 2 x 2 processes: exactly-once across
//                                            consumers, per-producer order in each
#include <gtest/gtest.h>

#include <cinttypes>
#include <cstdio>

#include "live_support.hpp"
#include "variants.hpp"

namespace shmring::live {
namespace {

class IntegrityTest : public ::testing::TestWithParam<KW> {
 protected:
  void run(std::uint64_t count, const std::string& batch) {
    const KW v = GetParam();
    TestRing ring("integrity", v.kind, v.wait, 1 << 16);
    ASSERT_EQ(ring.create_result(), Errc::ok) << last_error_message();
    const std::string n = std::to_string(count);
    Peer cons(args({"consume", ring.name(), "--min", "24", "--max", "1024", "--batch", batch, "--deadline-s", "140"}));
    std::string l;
    LIVE_EXPECT_LINE(cons, "opened", 5000, l);
    ASSERT_EQ(l, "opened 0");
    const std::int64_t t0 = now_ns();
    Peer prod(args({"produce", ring.name(), "--count", n, "--min", "24", "--max", "1024", "--batch", batch,
                    "--deadline-s", "140"}));
    LIVE_EXPECT_LINE(prod, "done", 130'000, l);
    EXPECT_EQ(field(l, 1), SHMRING_OK) << l;
    EXPECT_EQ(field(l, 2), static_cast<std::int64_t>(count)) << l;
    LIVE_EXPECT_LINE(cons, "done", 10'000, l);
    const std::int64_t dt = now_ns() - t0;
    EXPECT_EQ(field(l, 1), SHMRING_EPEERGONE) << l << " " << ::testing::PrintToString(cons.history());
    EXPECT_EQ(field(l, 2), static_cast<std::int64_t>(count)) << l;
    const Exit pe = prod.wait(), ce = cons.wait();
    EXPECT_TRUE(pe.exited && pe.code == 0) << pe.describe();
    EXPECT_TRUE(ce.exited && ce.code == 0) << ce.describe() << " " << ::testing::PrintToString(cons.history());
    LIVE_MEASURE("integrity", "%s/%s batch %s: %" PRIu64 " records (24..1024 B) checked in %.2f s",
                 to_string(v.kind), to_string(v.wait), batch.c_str(), count, static_cast<double>(dt) / 1e9);
  }
};

// 1M records through every strategy of spsc and through locked/futex; the
// locked kind with spin and sem gets 250k (its per-record mutex makes it
// several times slower, and the suite must stay within about 2 minutes).
TEST_P(IntegrityTest, OneProducerOneConsumer) {
  const KW v = GetParam();
  const bool full = v.kind == Kind::spsc || v.wait == WaitStrategy::futex;
  run(scaled(full ? 1'000'000 : 250'000, 10'000), "1");
}

TEST_P(IntegrityTest, Batched) { run(scaled(100'000, 10'000), "16"); }

INSTANTIATE_TEST_SUITE_P(All, IntegrityTest, all_kinds_and_waits(), kw_name);

class LockedIntegrity : public ::testing::TestWithParam<KW> {};

TEST_P(LockedIntegrity, TwoProducersTwoConsumers) {
  const KW v = GetParam();
  // 1M records in all with futex; 250k with spin and sem.
  const std::uint64_t per_producer = scaled(v.wait == WaitStrategy::futex ? 500'000 : 125'000, 5'000);
  TestRing ring("lk2x2", Kind::locked, v.wait, 1 << 16);
  ASSERT_EQ(ring.create_result(), Errc::ok) << last_error_message();
  TempDir tmp;
  std::vector<std::unique_ptr<Peer>> cons, prods;
  for (int c = 0; c < 2; ++c) {
    cons.push_back(std::make_unique<Peer>(args({"consume", ring.name(), "--min", "24", "--max", "512", "--gaps-ok",
                                                "--seqs-file", tmp.path(std::to_string(c) + ".seqs"), "--deadline-s",
                                                "140"})));
    std::string l;
    LIVE_EXPECT_LINE(*cons.back(), "opened", 5000, l);
    ASSERT_EQ(l, "opened 0");
  }
  const std::int64_t t0 = now_ns();
  for (int p = 1; p <= 2; ++p) {
    prods.push_back(std::make_unique<Peer>(args({"produce", ring.name(), "--id", std::to_string(p), "--count",
                                                 std::to_string(per_producer), "--min", "24", "--max", "512",
                                                 "--deadline-s", "140", "--hold"})));
  }
  // Both stay attached (--hold) until both are done, so the consumers never
  // see "no producer left" before the second one arrives.
  for (auto& p : prods) {
    std::string l;
    LIVE_EXPECT_LINE(*p, "done", 130'000, l);
    EXPECT_EQ(field(l, 1), SHMRING_OK) << l;
    EXPECT_EQ(static_cast<std::uint64_t>(field(l, 2)), per_producer) << l;
  }
  for (auto& p : prods) {
    p->close_stdin();
    EXPECT_TRUE(p->wait().exited);
  }
  std::uint64_t total = 0;
  std::vector<std::uint64_t> per_consumer;
  for (auto& c : cons) {
    std::string l;
    LIVE_EXPECT_LINE(*c, "done", 10'000, l);
    EXPECT_EQ(field(l, 1), SHMRING_EPEERGONE) << l << " " << ::testing::PrintToString(c->history());
    per_consumer.push_back(static_cast<std::uint64_t>(field(l, 2)));
    total += per_consumer.back();
    const Exit e = c->wait();
    EXPECT_TRUE(e.exited && e.code == 0) << e.describe() << " " << ::testing::PrintToString(c->history());
  }
  const std::int64_t dt = now_ns() - t0;
  EXPECT_EQ(total, 2 * per_producer);
  // Exactly once across consumers: every (producer, seq) in exactly one file.
  std::vector<std::vector<std::uint8_t>> seen(3, std::vector<std::uint8_t>(per_producer, 0));
  std::uint64_t dups = 0, strangers = 0;
  for (int c = 0; c < 2; ++c) {
    FILE* f = std::fopen(tmp.path(std::to_string(c) + ".seqs").c_str(), "rb");
    ASSERT_NE(f, nullptr);
    std::uint64_t pair[2];
    while (std::fread(pair, sizeof pair, 1, f) == 1) {
      if (pair[0] < 1 || pair[0] > 2 || pair[1] >= per_producer) {
        ++strangers;
        continue;
      }
      if (seen[pair[0]][pair[1]]++ != 0) ++dups;
    }
    std::fclose(f);
  }
  std::uint64_t missing = 0;
  for (int p = 1; p <= 2; ++p)
    for (std::uint8_t s : seen[p]) missing += s == 0;
  EXPECT_EQ(dups, 0u);
  EXPECT_EQ(missing, 0u);
  EXPECT_EQ(strangers, 0u);
  LIVE_MEASURE("integrity_2x2", "locked/%s 2 producers x 2 consumers: %" PRIu64 " records (%" PRIu64 " + %" PRIu64
               " per consumer) exactly once, in order per producer, in %.2f s",
               to_string(v.wait), 2 * per_producer, per_consumer[0], per_consumer[1], static_cast<double>(dt) / 1e9);
}

INSTANTIATE_TEST_SUITE_P(Locked, LockedIntegrity,
                         ::testing::Values(KW{Kind::locked, WaitStrategy::futex}, KW{Kind::locked, WaitStrategy::spin},
                                           KW{Kind::locked, WaitStrategy::sem}),
                         kw_name);

}  // namespace
}  // namespace shmring::live
