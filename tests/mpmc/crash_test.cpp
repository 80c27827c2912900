// kill -9 inside the mpmc ring at every crash point (SHMRING_CRASH_AT in the
// environment of a re-executed mpmc_peer), with the survivors continuing.
//
//   MpmcProducerCrash.SurvivorsContinue/{claim_before_advance, claim,
//       commit_before_publish}
//     Two producers stream records; a third (id 9) dies at its K-th pass of
//     the point, holding a claimed, unpublished slot. Two consumers (internal
//     endpoint face: they log each record's ticket and delivery time) must
//     get past the dead slot within the documented bound: the stall -- from
//     the kill (the dying producer's last trace line, written just before the
//     fatal call) to the first delivery of a ticket after the dead one -- is
//     measured, printed and asserted < 500 ms. The dead producer's records
//     before the crash arrive exactly once, the abandoned one never (no torn
//     data: every byte is checked), exactly one ticket is skipped, and
//     abandoned_claims == 1.
//
//   MpmcConsumerCrash.ProducersFreeTheSlot/{peek, release_before_publish}
//     Two producers stream; three consumers, one of which dies at its K-th
//     pass while holding a record (READING). Once the ring wraps to that slot
//     a producer frees it (dropped_reads == 1) and the flow goes on: every
//     record is delivered exactly once except exactly the one the dead
//     consumer held (at-most-once for in-flight reads), nothing duplicated.
#include <gtest/gtest.h>

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "mpmc_common.hpp"
#include "mpmc_test_util.hpp"
#include "shmring/ring.hpp"
#include "shmring/shmring.h"
#include "support/test_support.hpp"

namespace shmring::mpmc_test {
namespace {

using namespace std::chrono_literals;

// ---- Producer killed mid-claim -------------------------------------------------------------

struct ProducerPoint {
  const char* point;
  const char* label;
};

void PrintTo(const ProducerPoint& p, std::ostream* os) { *os << p.point; }

class MpmcProducerCrash : public ::testing::TestWithParam<ProducerPoint> {};

TEST_P(MpmcProducerCrash, SurvivorsContinue) {
  skip_without_hooks();
  if (IsSkipped()) return;
  const ProducerPoint& k = GetParam();
  Ring ring(1 << 14, 256);  // 64 slots
  ASSERT_EQ(ring.created, Errc::ok) << last_error_message();
  RingView view(ring.name);
  ASSERT_TRUE(view.ok());
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  constexpr std::uint32_t kDeadId = 9;
  constexpr std::uint64_t kPass = 200;  // dies at its 200th pass: records 0..198 were committed

  std::vector<std::unique_ptr<Proc>> cons;
  std::vector<std::string> logs;
  for (int c = 0; c < 2; ++c) {
    logs.push_back(dir.path(numbered("c", c, ".log")));
    cons.push_back(peer({"consume", ring.name, "--face", "ep", "--log", logs.back()}));
    ASSERT_TRUE(cons.back()->expect("opened", 10s).value_or("") == "opened 0") << cons.back()->history_text();
  }
  std::vector<std::unique_ptr<Proc>> prods;
  for (std::uint32_t id : {1u, 2u}) {
    prods.push_back(peer({"produce", ring.name, "--id", std::to_string(id), "--until-stop"}));
    ASSERT_TRUE(prods.back()->expect("opened", 10s).value_or("") == "opened 0") << prods.back()->history_text();
  }
  auto dying = peer({"produce", ring.name, "--id", std::to_string(kDeadId), "--count", "100000", "--trace"},
                    std::string(k.point) + ":" + std::to_string(kPass));
  ASSERT_TRUE(dying->started());

  // The kill: the process ends by SIGKILL at the crash point. Its last trace
  // line was written just before the call that died.
  const Proc::Exit ex = dying->wait(60s);
  ASSERT_EQ(ex.sig, SIGKILL) << ex.describe() << " " << dying->history_text();
  dying->drain(5s);
  ASSERT_FALSE(dying->history().empty());
  const std::string last = dying->history().back();
  const bool claim_point = std::string(k.point) != "mpmc.commit.before_publish";
  ASSERT_EQ(word_at(last, 0), claim_point ? "claiming" : "committing") << last;
  ASSERT_EQ(word_int(last, 1), static_cast<std::int64_t>(kPass - 1)) << last;
  const std::int64_t t_kill = word_int(last, 2);

  // The consumers get past the dead claim (abandoned_claims), and records
  // keep flowing for two more ring lengths.
  ASSERT_TRUE(poll_until([&] { return view.abandoned_claims() >= 1; }, 10s))
      << "the dead claim was never skipped; head " << view.head() << " tail " << view.tail();
  ASSERT_TRUE(let_flow(view, 2, 20s)) << "records stopped flowing; head " << view.head() << " tail " << view.tail();

  std::map<std::uint32_t, std::uint64_t> sent;
  for (std::size_t i = 0; i < prods.size(); ++i) {
    prods[i]->send_byte();
    auto done = prods[i]->expect("done", 30s);
    ASSERT_TRUE(done.has_value()) << prods[i]->history_text();
    EXPECT_EQ(word_int(*done, 1), 0) << *done << " " << prods[i]->history_text();
    sent[static_cast<std::uint32_t>(i + 1)] = static_cast<std::uint64_t>(word_int(*done, 2));
    const Proc::Exit e = prods[i]->wait(30s);
    EXPECT_TRUE(e.exited && e.code == 0) << e.describe();
  }
  for (auto& c : cons) {
    auto done = c->expect("done", 60s);
    ASSERT_TRUE(done.has_value()) << c->history_text();
    EXPECT_EQ(word_int(*done, 1), SHMRING_EPEERGONE) << c->history_text();
    const Proc::Exit e = c->wait(30s);
    EXPECT_TRUE(e.exited && e.code == 0) << e.describe() << " " << c->history_text();
  }

  const Union u = merge_logs(logs);
  EXPECT_EQ(u.order_error, "");
  for (const auto& [id, n] : sent) EXPECT_EQ(check_stream(u, id, n), "");
  // The dead producer: 0..kPass-2 exactly once, kPass-1 (claimed, maybe
  // written, never published) never.
  EXPECT_EQ(check_stream(u, kDeadId, kPass, {kPass - 1}), "");
  const auto gaps = missing_tickets(u.all);
  ASSERT_EQ(gaps.size(), 1u) << "tickets skipped: " << ::testing::PrintToString(gaps);
  const std::uint64_t t_dead = gaps[0];
  EXPECT_EQ(view.abandoned_claims(), 1u);
  EXPECT_EQ(view.dropped_reads(), 0u);
  EXPECT_EQ(view.fenced_claims(), 0u);

  // The stall: from the kill to the first record delivered past the dead
  // ticket (necessarily another producer's).
  std::int64_t next = INT64_MAX, before = 0;
  for (const LogEntry& e : u.all) {
    if (e.ticket > t_dead) next = std::min(next, e.ts);
    else before = std::max(before, e.ts);
  }
  ASSERT_NE(next, INT64_MAX) << "nothing was delivered after the dead ticket";
  const double stall_ms = static_cast<double>(next - t_kill) / 1e6;
  const double gap_ms = static_cast<double>(next - std::max(before, t_kill)) / 1e6;
  std::printf("[ measured ] %s: stall after the kill %.2f ms (last delivery before the dead ticket to the first "
              "after: %.2f ms); dead ticket %llu\n",
              k.point, stall_ms, gap_ms, static_cast<unsigned long long>(t_dead));
  RecordProperty("stall_ms", std::to_string(stall_ms));
  EXPECT_LT(stall_ms, 500.0) << "consumers were stuck behind the dead claim longer than the documented bound";
}

INSTANTIATE_TEST_SUITE_P(Points, MpmcProducerCrash,
                         ::testing::Values(ProducerPoint{"mpmc.claim.before_advance", "claim_before_advance"},
                                           ProducerPoint{"mpmc.claim", "claim"},
                                           ProducerPoint{"mpmc.commit.before_publish", "commit_before_publish"}),
                         [](const ::testing::TestParamInfo<ProducerPoint>& i) { return std::string(i.param.label); });

// ---- Consumer killed holding a record ---------------------------------------------------------

class MpmcConsumerCrash : public ::testing::TestWithParam<ProducerPoint> {};

TEST_P(MpmcConsumerCrash, ProducersFreeTheSlot) {
  skip_without_hooks();
  if (IsSkipped()) return;
  const ProducerPoint& k = GetParam();
  Ring ring(1 << 14, 256);  // 64 slots
  ASSERT_EQ(ring.created, Errc::ok) << last_error_message();
  RingView view(ring.name);
  ASSERT_TRUE(view.ok());
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  constexpr std::uint64_t kPass = 300;

  std::vector<std::unique_ptr<Proc>> cons;
  std::vector<std::string> logs;
  for (int c = 0; c < 2; ++c) {
    logs.push_back(dir.path(numbered("c", c, ".log")));
    cons.push_back(peer({"consume", ring.name, "--face", "ep", "--log", logs.back()}));
    ASSERT_TRUE(cons.back()->expect("opened", 10s).value_or("") == "opened 0") << cons.back()->history_text();
  }
  // The one that dies logs each record once it is released (synchronously).
  logs.push_back(dir.path("dying.log"));
  auto dying = peer({"consume", ring.name, "--face", "ep", "--log", logs.back(), "--sync", "--trace"},
                    std::string(k.point) + ":" + std::to_string(kPass));
  ASSERT_TRUE(dying->expect("opened", 10s).value_or("") == "opened 0") << dying->history_text();
  std::vector<std::unique_ptr<Proc>> prods;
  for (std::uint32_t id : {1u, 2u}) {
    prods.push_back(peer({"produce", ring.name, "--id", std::to_string(id), "--until-stop"}));
    ASSERT_TRUE(prods.back()->expect("opened", 10s).value_or("") == "opened 0") << prods.back()->history_text();
  }

  const Proc::Exit ex = dying->wait(60s);
  ASSERT_EQ(ex.sig, SIGKILL) << ex.describe() << " " << dying->history_text();
  const std::int64_t t_death = dying->ended_at_ns();
  dying->drain(5s);
  // Its trace: "peeked ID SEQ TICKET" for each record it took, before the release.
  std::vector<std::string> peeked;
  for (const auto& l : dying->history())
    if (l.rfind("peeked ", 0) == 0) peeked.push_back(l);
  const bool at_release = std::string(k.point) == "mpmc.release.before_publish";
  ASSERT_EQ(peeked.size(), at_release ? kPass : kPass - 1) << dying->history_text();

  // Once the producers wrap around to its slot, they free it.
  ASSERT_TRUE(poll_until([&] { return view.dropped_reads() >= 1; }, 10s))
      << "the dead reader's slot was never freed; head " << view.head() << " tail " << view.tail();
  const double free_ms = static_cast<double>(now_ns() - t_death) / 1e6;
  ASSERT_TRUE(let_flow(view, 2, 20s)) << "records stopped flowing; head " << view.head() << " tail " << view.tail();

  std::map<std::uint32_t, std::uint64_t> sent;
  for (std::size_t i = 0; i < prods.size(); ++i) {
    prods[i]->send_byte();
    auto done = prods[i]->expect("done", 30s);
    ASSERT_TRUE(done.has_value()) << prods[i]->history_text();
    EXPECT_EQ(word_int(*done, 1), 0) << *done << " " << prods[i]->history_text();
    sent[static_cast<std::uint32_t>(i + 1)] = static_cast<std::uint64_t>(word_int(*done, 2));
    const Proc::Exit e = prods[i]->wait(30s);
    EXPECT_TRUE(e.exited && e.code == 0) << e.describe();
  }
  for (auto& c : cons) {
    auto done = c->expect("done", 60s);
    ASSERT_TRUE(done.has_value()) << c->history_text();
    EXPECT_EQ(word_int(*done, 1), SHMRING_EPEERGONE) << c->history_text();
    const Proc::Exit e = c->wait(30s);
    EXPECT_TRUE(e.exited && e.code == 0) << e.describe() << " " << c->history_text();
  }

  const Union u = merge_logs(logs);
  EXPECT_EQ(u.order_error, "");
  // Exactly one record is missing over both producers, none is duplicated.
  std::vector<std::pair<std::uint32_t, std::uint64_t>> lost;
  std::uint64_t dups = 0;
  for (const auto& [id, n] : sent) {
    for (std::uint64_t s = 0; s < n; ++s) {
      auto it = u.times.find({id, s});
      if (it == u.times.end()) lost.emplace_back(id, s);
      else if (it->second > 1) ++dups;
    }
  }
  EXPECT_EQ(dups, 0u);
  std::uint64_t delivered = 0;
  for (const auto& [key, times] : u.times) delivered += static_cast<std::uint64_t>(times);
  EXPECT_EQ(delivered, u.all.size());
  ASSERT_EQ(lost.size(), 1u) << "records lost: " << ::testing::PrintToString(lost);
  // At release.before_publish the dead consumer had already seen (and traced)
  // the record it held: it must be exactly the lost one.
  if (at_release) {
    EXPECT_EQ(word_int(peeked.back(), 1), lost[0].first) << peeked.back();
    EXPECT_EQ(word_int(peeked.back(), 2), static_cast<std::int64_t>(lost[0].second)) << peeked.back();
  }
  const auto gaps = missing_tickets(u.all);
  EXPECT_EQ(gaps.size(), 1u) << "tickets skipped: " << ::testing::PrintToString(gaps);
  EXPECT_EQ(view.dropped_reads(), 1u);
  EXPECT_EQ(view.abandoned_claims(), 0u);
  EXPECT_EQ(view.fenced_claims(), 0u);
  std::printf("[ measured ] %s: lost record (%u, %llu); slot freed by a producer %.2f ms after the death was seen\n",
              k.point, lost[0].first, static_cast<unsigned long long>(lost[0].second), free_ms);
}

INSTANTIATE_TEST_SUITE_P(Points, MpmcConsumerCrash,
                         ::testing::Values(ProducerPoint{"mpmc.peek", "peek"},
                                           ProducerPoint{"mpmc.release.before_publish", "release_before_publish"}),
                         [](const ::testing::TestParamInfo<ProducerPoint>& i) { return std::string(i.param.label); });

}  // namespace
}  // namespace shmring::mpmc_test
