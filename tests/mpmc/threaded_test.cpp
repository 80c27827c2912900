// The mpmc ring in one process, 2 producer threads x 2 consumer threads, for
// ThreadSanitizer (label `threaded`). Every endpoint reads and writes the
// shared words and payloads through ONE mapping, so TSan relates the
// threads' accesses (two mappings of one object would be unrelated address
// ranges to it): each endpoint opens its own segment, then is pointed at
// the shared one before it attaches.
//
//   MpmcThreaded.ExactlyOnceInOrder/{futex,spin,sem}
//     records (producer id, seq, length, checksum), lengths random up to the
//     slot size; each consumer thread checks every byte and that each
//     producer's seqs only increase, and the union over both consumers holds
//     every record exactly once.
//   MpmcThreadedWrap.AcrossTheTicketWrap
//     the same, with the tickets starting at 2^64 - 3n - 5.
//   MpmcThreadedFence.StalledClaimerRevokedThenReset
//     liveness period 10 ms: a producer thread claims a slot and stalls past
//     the stall bound (100 ms) while the others stream; the consumers revoke
//     the claim and carry on for several laps past the quarantined slot; the
//     stalled thread then writes over its slot (late writes) and commits:
//     reset, and its record is never delivered; its later records and the
//     others' arrive exactly once. TSan checks the payload hand-overs around
//     the quarantine.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <ostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "endpoint.hpp"  // internal: endpoints on a shared mapping
#include "mpmc_common.hpp"
#include "record.hpp"
#include "shmring/ring.hpp"
#include "support/test_support.hpp"

namespace shmring::mpmc_test {
namespace {

constexpr std::int64_t kCallTimeout = 30'000'000'000;  // ns, every blocking call

// One mapping shared by every endpoint of the test.
struct Shared {
  detail::OpenedSegment anchor;
  std::vector<std::unique_ptr<detail::Endpoint>> eps;
  ~Shared() { eps.clear(); }  // before the anchor's mapping goes

  Errc open(const std::string& ring) { return detail::open_segment(ring, std::chrono::seconds(1), &anchor); }
  detail::Endpoint* add(const std::string& ring, Role role) {
    detail::OpenedSegment seg;
    if (detail::open_segment(ring, std::chrono::seconds(1), &seg) != Errc::ok) return nullptr;
    seg.hdr = anchor.hdr;
    seg.data = anchor.data;
    detail::Attachment att;
    if (att.attach(seg.hdr, seg.name, role, false) != Errc::ok) return nullptr;
    Errc err = Errc::ok;
    auto ep = detail::make_mpmc_endpoint(std::move(seg), std::move(att), role, &err);
    if (!ep || err != Errc::ok) return nullptr;
    eps.push_back(std::move(ep));
    return eps.back().get();
  }
};

struct Seen {
  std::string error;
  Bitmaps bits;
  std::uint64_t got = 0;
};

std::string run_producer(detail::Endpoint* ep, std::uint32_t id, std::uint64_t count) {
  const auto max_len = static_cast<std::uint32_t>(ep->max_record());
  for (std::uint64_t seq = 0; seq < count; ++seq) {
    const std::uint32_t len = live::record_len(id, seq, 24, max_len);
    std::byte* p = nullptr;
    if (Errc e = ep->reserve(len, &p, kCallTimeout); e != Errc::ok)
      return "producer " + std::to_string(id) + " reserve of seq " + std::to_string(seq) + ": " + shmring::errc_name(e);
    live::fill_record(id, seq, p, len);
    if (Errc e = ep->commit(len, true); e != Errc::ok)
      return "producer " + std::to_string(id) + " commit of seq " + std::to_string(seq) + ": " + shmring::errc_name(e);
  }
  return "";
}

// Takes records until every record was taken (`left` reaches 0), or the
// producers are done and the ring stays empty for a while (a lost record:
// the caller's exactly-once check says which), or the deadline passes.
void run_consumer(detail::Endpoint* ep, std::atomic<std::int64_t>* left, const std::atomic<int>* producers_done,
                  Seen* out) {
  const auto max_len = static_cast<std::uint32_t>(ep->max_record());
  const std::int64_t deadline = now_ns() + 200'000'000'000;
  std::map<std::uint32_t, std::uint64_t> next;
  int idle = 0;
  while (left->load(std::memory_order_relaxed) > 0) {
    if (now_ns() > deadline) {
      out->error = "deadline passed with records missing";
      return;
    }
    const std::byte* p = nullptr;
    std::size_t n = 0;
    // Short waits, so a consumer notices that the other one took the last record.
    const Errc e = ep->peek(&p, &n, 20'000'000);
    if (e == Errc::timed_out) {
      if (producers_done->load(std::memory_order_acquire) == 2 && ++idle >= 50) return;  // 1 s empty
      continue;
    }
    idle = 0;
    if (e != Errc::ok) {
      out->error = std::string("peek: ") + shmring::errc_name(e);
      return;
    }
    live::RecordView v;
    std::string why;
    if (!live::check_record(p, n, 24, max_len, &v, &why)) {
      out->error = "bad record: " + why;
      return;
    }
    auto it = next.find(v.id);
    if (it != next.end() && v.seq < it->second) {
      out->error = "producer " + std::to_string(v.id) + ": seq " + std::to_string(v.seq) + " after " +
                   std::to_string(it->second - 1);
      return;
    }
    next[v.id] = v.seq + 1;
    if (Errc r = ep->release(true); r != Errc::ok) {
      out->error = std::string("release: ") + shmring::errc_name(r);
      return;
    }
    set_bit(out->bits[v.id], v.seq);
    ++out->got;
    left->fetch_sub(1, std::memory_order_relaxed);
  }
}

void run_case(WaitStrategy wait, std::size_t capacity, std::size_t slot_size, std::uint64_t per_producer,
              std::optional<std::uint64_t> first_ticket) {
  const std::string ring = test::unique_ring_name();
  test::ShmGuard guard(ring);
  Config cfg;
  cfg.kind = Kind::mpmc;
  cfg.wait = wait;
  cfg.capacity = capacity;
  cfg.slot_size = slot_size;
  ASSERT_EQ(create(ring, cfg), Errc::ok) << last_error_message();
  if (first_ticket) {
    RingView view(ring);
    ASSERT_TRUE(view.start_tickets_at(*first_ticket));
  }
  Shared sh;
  ASSERT_EQ(sh.open(ring), Errc::ok);
  detail::Endpoint* prod[2];
  detail::Endpoint* cons[2];
  for (auto*& p : prod) ASSERT_NE(p = sh.add(ring, Role::producer), nullptr) << last_error_message();
  for (auto*& c : cons) ASSERT_NE(c = sh.add(ring, Role::consumer), nullptr) << last_error_message();

  std::atomic<std::int64_t> left{static_cast<std::int64_t>(2 * per_producer)};
  std::atomic<int> producers_done{0};
  std::string perr[2];
  Seen seen[2];
  const std::int64_t t0 = now_ns();
  {
    std::vector<std::thread> threads;
    for (int i = 0; i < 2; ++i)
      threads.emplace_back([&, i] { run_consumer(cons[i], &left, &producers_done, &seen[i]); });
    for (int i = 0; i < 2; ++i)
      threads.emplace_back([&, i] {
        perr[i] = run_producer(prod[i], static_cast<std::uint32_t>(i + 1), per_producer);
        producers_done.fetch_add(1, std::memory_order_release);
      });
    for (auto& t : threads) t.join();
  }
  const double secs = static_cast<double>(now_ns() - t0) / 1e9;
  for (int i = 0; i < 2; ++i) EXPECT_EQ(perr[i], "");
  for (int i = 0; i < 2; ++i) EXPECT_EQ(seen[i].error, "") << "consumer " << i;
  EXPECT_EQ(check_exactly_once({seen[0].bits, seen[1].bits}, {{1, per_producer}, {2, per_producer}}), "");
  std::printf("  %s: %llu + %llu records in %.2f s\n", to_string(wait), static_cast<unsigned long long>(seen[0].got),
              static_cast<unsigned long long>(seen[1].got), secs);
  // Nothing left behind.
  const std::byte* p = nullptr;
  std::size_t n = 0;
  EXPECT_EQ(cons[0]->peek(&p, &n, 0), Errc::would_block);
}

struct Wait {
  WaitStrategy w;
};
void PrintTo(const Wait& w, std::ostream* os) { *os << to_string(w.w); }

class MpmcThreaded : public ::testing::TestWithParam<Wait> {};

TEST_P(MpmcThreaded, ExactlyOnceInOrder) {
  run_case(GetParam().w, 1 << 12, 128, test::scaled(200'000, 20'000), std::nullopt);
}

INSTANTIATE_TEST_SUITE_P(Waits, MpmcThreaded,
                         ::testing::Values(Wait{WaitStrategy::futex}, Wait{WaitStrategy::spin}, Wait{WaitStrategy::sem}),
                         [](const ::testing::TestParamInfo<Wait>& i) { return std::string(to_string(i.param.w)); });

TEST(MpmcThreadedWrap, AcrossTheTicketWrap) {
  const std::uint64_t n = 8;  // 4096 / 512
  run_case(WaitStrategy::futex, 4096, 512, test::scaled(100'000, 20'000), 0 - 3 * n - 5);
}

TEST(MpmcThreadedFence, StalledClaimerRevokedThenReset) {
  const std::string ring = test::unique_ring_name();
  test::ShmGuard guard(ring);
  Config cfg;
  cfg.kind = Kind::mpmc;
  cfg.capacity = 4096;
  cfg.slot_size = 256;  // 16 slots
  ASSERT_EQ(create(ring, cfg), Errc::ok) << last_error_message();
  RingView view(ring);
  ASSERT_TRUE(view.ok());
  detail::atom(view.header()->id.liveness_ms).store(10, std::memory_order_release);  // before anybody opens
  const std::uint64_t n = view.slot_count();
  Shared sh;
  ASSERT_EQ(sh.open(ring), Errc::ok);
  detail::Endpoint* prod[2];
  detail::Endpoint* cons[2];
  for (auto*& p : prod) ASSERT_NE(p = sh.add(ring, Role::producer), nullptr) << last_error_message();
  for (auto*& c : cons) ASSERT_NE(c = sh.add(ring, Role::consumer), nullptr) << last_error_message();
  const std::uint64_t per = test::scaled(50'000, 5'000);

  // The stalled claim: record (1, 0), claimed before anybody else writes.
  const std::uint32_t len0 = live::record_len(1, 0, 24, 256);
  std::byte* claim = nullptr;
  ASSERT_EQ(prod[0]->reserve(len0, &claim, 0), Errc::ok);
  live::fill_record(1, 0, claim, len0);

  std::atomic<std::int64_t> left{static_cast<std::int64_t>(2 * per)};
  std::atomic<int> producers_done{0};
  std::string perr[2];
  Errc late_commit = Errc::ok;
  Seen seen[2];
  {
    std::vector<std::thread> threads;
    for (int i = 0; i < 2; ++i)
      threads.emplace_back([&, i] { run_consumer(cons[i], &left, &producers_done, &seen[i]); });
    threads.emplace_back([&] {
      perr[1] = run_producer(prod[1], 2, per);
      producers_done.fetch_add(1, std::memory_order_release);
    });
    threads.emplace_back([&] {
      // Stalled until the claim is revoked and the consumers have passed
      // the quarantined slot a few more times.
      if (!poll_until([&] { return view.fenced_claims() >= 1; }, std::chrono::seconds(20))) {
        perr[0] = "the stalled claim was never revoked";
      } else {
        const std::uint64_t h = view.head();
        (void)poll_until([&] { return view.head() - h >= 3 * n || producers_done.load() > 0; }, std::chrono::seconds(20));
        std::memset(claim, 0x5a, 256);  // late writes into the quarantined slot
        late_commit = prod[0]->commit(len0, true);
        perr[0] = run_producer(prod[0], 3, per);  // its later records, under another stream id
      }
      producers_done.fetch_add(1, std::memory_order_release);
    });
    for (auto& t : threads) t.join();
  }
  EXPECT_EQ(late_commit, Errc::reset);
  for (int i = 0; i < 2; ++i) EXPECT_EQ(perr[i], "");
  for (int i = 0; i < 2; ++i) EXPECT_EQ(seen[i].error, "") << "consumer " << i;
  // Stream 1 (the revoked record) must not appear at all.
  EXPECT_EQ(check_exactly_once({seen[0].bits, seen[1].bits}, {{2, per}, {3, per}}), "");
  EXPECT_EQ(view.fenced_claims(), 1u);
  const std::byte* p = nullptr;
  std::size_t len = 0;
  EXPECT_EQ(cons[0]->peek(&p, &len, 0), Errc::would_block);
}

}  // namespace
}  // namespace shmring::mpmc_test
