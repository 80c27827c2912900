// A ring whose name is removed while its peers run (rm /dev/shm/*, a tmp
// cleaner, systemd RemoveIPC=yes): the pair keeps working, each handle
// reports it orphaned within the liveness period, and a ring re-created under
// the same name is another ring (its handles are not orphaned, and records do
// not cross between the two).
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>

#include "live_support.hpp"
#include "record.hpp"
#include "variants.hpp"

namespace shmring::live {
namespace {

constexpr std::int64_t kMs = 1'000'000;

// Asks every 5 ms (bounded) until `want`; returns the time it took, -1 when
// it never came within 2 s.
std::int64_t until_orphaned(shmring_t* h, int want) {
  const std::int64_t t0 = now_ns();
  while (now_ns() - t0 < 2000 * kMs) {
    if (shmring_orphaned(h) == want) return now_ns() - t0;
    ::usleep(5000);
  }
  return -1;
}

class Orphan : public ::testing::TestWithParam<KW> {};

TEST_P(Orphan, RemovedNameIsReportedAndTheRingKeepsWorking) {
  const KW v = GetParam();
  auto ring = std::make_unique<TestRing>("orphan", v.kind, v.wait, 4096);
  ASSERT_EQ(ring->create_result(), Errc::ok);
  Handle prod, cons;
  ASSERT_EQ(prod.open(ring->name(), SHMRING_PRODUCER), SHMRING_OK);
  ASSERT_EQ(cons.open(ring->name(), SHMRING_CONSUMER), SHMRING_OK);
  EXPECT_EQ(shmring_orphaned(prod.get()), 0);
  EXPECT_EQ(shmring_orphaned(cons.get()), 0);
  EXPECT_EQ(shmring_orphaned(nullptr), SHMRING_EINVAL);

  // Remove the name from outside the library, as rm would.
  const std::string path = "/dev/shm" + ring->name();
  ASSERT_EQ(::unlink(path.c_str()), 0);

  // The pair keeps moving records (ids and checksums verified).
  std::uint64_t seq = 0;
  auto move_some = [&](shmring_t* p, shmring_t* c, std::uint64_t count) {
    for (std::uint64_t i = 0; i < count; ++i, ++seq) {
      std::byte buf[256];
      const std::size_t n = record_len(1, seq, 24, 200);
      fill_record(1, seq, buf, n);
      ASSERT_EQ(shmring_send(p, buf, n, 1000 * kMs), SHMRING_OK);
      const void* q = nullptr;
      std::size_t m = 0;
      ASSERT_EQ(shmring_peek(c, &q, &m, 1000 * kMs), SHMRING_OK);
      RecordView rv;
      std::string why;
      ASSERT_TRUE(check_record(q, m, 24, 200, &rv, &why)) << why;
      ASSERT_EQ(rv.seq, seq);
      ASSERT_EQ(shmring_release(c), SHMRING_OK);
    }
  };
  move_some(prod.get(), cons.get(), 200);
  // Reported within the liveness period (the check runs at most every half
  // period; 100 ms is the default period, 400 ms margin for a loaded machine).
  const std::int64_t tp = until_orphaned(prod.get(), 1);
  const std::int64_t tc = until_orphaned(cons.get(), 1);
  ASSERT_GE(tp, 0) << "the producer never reported the removed name";
  ASSERT_GE(tc, 0) << "the consumer never reported the removed name";
  EXPECT_LT(tp, 500 * kMs);
  EXPECT_LT(tc, 500 * kMs);
  move_some(prod.get(), cons.get(), 200);

  // A new ring under the same name is a different ring.
  Config cfg;
  cfg.kind = v.kind;
  cfg.wait = v.wait;
  cfg.capacity = 4096;
  ASSERT_EQ(create(ring->name(), cfg), Errc::ok);
  Handle prod2, cons2;
  ASSERT_EQ(prod2.open(ring->name(), SHMRING_PRODUCER), SHMRING_OK)
      << "the old producer's role must not block the new ring: " << shmring_last_error();
  ASSERT_EQ(cons2.open(ring->name(), SHMRING_CONSUMER), SHMRING_OK) << shmring_last_error();
  EXPECT_EQ(shmring_orphaned(prod2.get()), 0);
  EXPECT_EQ(shmring_orphaned(cons2.get()), 0);
  // The old handles stay orphaned: the name leads to another object now.
  ::usleep(60'000);  // past one check period, so the next answer is a fresh check
  EXPECT_EQ(shmring_orphaned(prod.get()), 1);
  EXPECT_EQ(shmring_orphaned(cons.get()), 1);
  // Records do not cross: the old pair and the new pair each see their own.
  const std::uint64_t old_seq = seq;
  seq = 0;
  move_some(prod2.get(), cons2.get(), 50);
  seq = old_seq;
  move_some(prod.get(), cons.get(), 50);
  const void* q = nullptr;
  std::size_t m = 0;
  EXPECT_EQ(shmring_peek(cons2.get(), &q, &m, 0), SHMRING_EWOULDBLOCK);
  EXPECT_EQ(shmring_peek(cons.get(), &q, &m, 0), SHMRING_EWOULDBLOCK);
}

INSTANTIATE_TEST_SUITE_P(Kinds, Orphan,
                         ::testing::Values(KW{Kind::spsc, WaitStrategy::futex}, KW{Kind::locked, WaitStrategy::futex},
                                           KW{Kind::spsc, WaitStrategy::sem}),
                         kw_name);

}  // namespace
}  // namespace shmring::live
