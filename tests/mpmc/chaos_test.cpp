// Random stops and kills on a tiny ring, so that processes are frozen (and
// killed) at arbitrary instructions inside the algorithm, holding stale
// views of the tickets and slot words -- the kind of interleaving behind the
// stale-consumer bug that MpmcRace replays exactly.
//
//   MpmcChaos.StopsAndKillsKeepAtMostOnceAndOrder
//     4 slots, liveness period 10 ms (stall bound 100 ms). Three producers
//     (they go on after a commit refused with ERESET, reporting it) and three
//     consumers (each record logged synchronously before its release; they
//     go on after a release refused with ERESET, reporting it), each
//     busy for 100 us while it holds a slot, stream while the test,
//     paced by the ring's progress, repeatedly SIGSTOPs a random process and
//     resumes it, or SIGKILLs one and starts a replacement. At the end:
//       - no record delivered twice, none torn (every byte checked), each
//         consumer sees each producer's records in increasing order;
//       - the records missing are accounted for: at most one per killed
//         consumer (dropped_reads), none from a live producer otherwise;
//         commits refused with ERESET <= fenced_claims; releases refused
//         with ERESET <= fenced_reads; abandoned_claims <= producers killed;
//       - the ring still moves records after all that.
#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "mpmc_common.hpp"
#include "mpmc_test_util.hpp"
#include "shmring/shmring.h"

namespace shmring::mpmc_test {
namespace {

using namespace std::chrono_literals;

struct Participant {
  std::unique_ptr<Proc> proc;
  bool producer = false;
  std::uint32_t id = 0;  // producers: record stream id
  std::string log;       // consumers
  bool killed = false;
};

TEST(MpmcChaos, StopsAndKillsKeepAtMostOnceAndOrder) {
  Ring ring(4096, 1024);  // 4 slots
  ASSERT_EQ(ring.created, Errc::ok) << last_error_message();
  RingView view(ring.name);
  ASSERT_TRUE(view.ok());
  // Before anybody opens the ring: a short liveness period, so stalled
  // claims are fenced after 100 ms and dead peers are seen within 5 ms.
  detail::atom(view.header()->id.liveness_ms).store(10, std::memory_order_release);
  TempDir dir;
  ASSERT_TRUE(dir.ok());

  std::uint32_t next_id = 1;
  int next_log = 0;
  std::vector<Participant> ps;
  auto spawn = [&](bool producer) {
    Participant p;
    p.producer = producer;
    if (producer) {
      p.id = next_id++;
      p.proc = peer({"produce", ring.name, "--id", std::to_string(p.id), "--until-stop", "--tolerate-reset",
                     "--hold-us", "100", "--timeout-ms", "60000"});
    } else {
      p.log = dir.path(numbered("c", next_log++, ".log"));
      p.proc = peer({"consume", ring.name, "--face", "ep", "--log", p.log, "--sync", "--log-first",
                     "--tolerate-revoke", "--hold-us", "100", "--timeout-ms", "60000"});
    }
    auto opened = p.proc->expect("opened", 10s);
    ps.push_back(std::move(p));
    return opened.value_or("") == "opened 0";
  };
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(spawn(false)) << ps.back().proc->history_text();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(spawn(true)) << ps.back().proc->history_text();

  const unsigned seed = static_cast<unsigned>(now_ns());
  std::mt19937 rng(seed);
  const int steps = static_cast<int>(test::scaled(120, 20));
  int stops = 0, kills_p = 0, kills_c = 0, stalls = 0;
  for (int step = 0; step < steps; ++step) {
    // Pace by progress: a few records move between two actions (bounded:
    // with a consumer just killed holding a slot, producers take a moment).
    const std::uint64_t h0 = view.head();
    if (!poll_until([&] { return view.head() - h0 >= 1 + rng() % 12; }, 2s)) ++stalls;
    std::vector<std::size_t> alive;
    for (std::size_t i = 0; i < ps.size(); ++i)
      if (!ps[i].killed) alive.push_back(i);
    Participant& v = ps[alive[rng() % alive.size()]];
    const unsigned action = rng() % 10;
    if (action < 8) {
      // Freeze it wherever it is, let the others run (a bounded look at the
      // ring's progress), then resume it.
      v.proc->signal(SIGSTOP);
      ++stops;
      const std::uint64_t h1 = view.head();
      const auto hold = std::chrono::milliseconds(rng() % 3 == 0 ? 150 : 1 + rng() % 20);
      (void)poll_until([&] { return view.head() - h1 >= 1000; }, hold);
      v.proc->signal(SIGCONT);
    } else {
      v.proc->signal(SIGKILL);
      const Proc::Exit e = v.proc->wait(10s);
      ASSERT_EQ(e.sig, SIGKILL) << e.describe() << " " << v.proc->history_text();
      v.killed = true;
      (v.producer ? kills_p : kills_c)++;
      const bool producer = v.producer;
      ASSERT_TRUE(spawn(producer)) << ps.back().proc->history_text();
    }
  }
  std::printf("  seed %u: %d steps, %d stops, %d producers and %d consumers killed, %d slow steps; counters: "
              "fenced %llu, abandoned %llu, dropped %llu\n",
              seed, steps, stops, kills_p, kills_c, stalls,
              static_cast<unsigned long long>(view.fenced_claims()),
              static_cast<unsigned long long>(view.abandoned_claims()),
              static_cast<unsigned long long>(view.dropped_reads()));
  std::fflush(stdout);
  // Still moving.
  ASSERT_TRUE(poll_until([&, h = view.head()] { return view.head() - h >= 64; }, 10s))
      << "the ring stopped moving; head " << view.head() << " tail " << view.tail() << " (seed " << seed << ")";

  // The end: producers stop, consumers drain to peer_gone.
  std::map<std::uint32_t, std::uint64_t> last_seq;      // per producer id: seqs 0..last were used
  std::map<std::uint32_t, std::set<std::uint64_t>> resets;
  std::uint64_t reset_count = 0;
  for (auto& p : ps) {
    if (!p.producer) continue;
    if (!p.killed) {
      p.proc->send_byte();
      auto done = p.proc->expect("done", 60s);
      ASSERT_TRUE(done.has_value()) << p.proc->history_text();
      EXPECT_EQ(word_int(*done, 1), 0) << *done;
      last_seq[p.id] = static_cast<std::uint64_t>(word_int(*done, 2) + word_int(*done, 3));
      const Proc::Exit e = p.proc->wait(30s);
      EXPECT_TRUE(e.exited && e.code == 0) << e.describe() << " " << p.proc->history_text();
    } else {
      p.proc->drain(5s);
    }
    for (const auto& l : p.proc->history())
      if (l.rfind("reset ", 0) == 0) {
        resets[p.id].insert(static_cast<std::uint64_t>(word_int(l, 1)));
        ++reset_count;
      }
  }
  std::vector<std::string> logs;
  std::uint64_t revoked_count = 0;
  for (auto& p : ps) {
    if (p.producer) continue;
    logs.push_back(p.log);
    if (!p.killed) {
      auto done = p.proc->expect("done", 60s);
      ASSERT_TRUE(done.has_value()) << p.proc->history_text();
      EXPECT_EQ(word_int(*done, 1), SHMRING_EPEERGONE) << p.proc->history_text();
      const Proc::Exit e = p.proc->wait(30s);
      EXPECT_TRUE(e.exited && e.code == 0) << e.describe() << " " << p.proc->history_text();
    } else {
      p.proc->drain(5s);
    }
    for (const auto& l : p.proc->history())
      if (l.rfind("revoked ", 0) == 0) ++revoked_count;
  }

  const Union u = merge_logs(logs);
  EXPECT_EQ(u.order_error, "") << "seed " << seed;
  std::uint64_t dups = 0;
  std::map<std::uint32_t, std::uint64_t> max_seen;
  for (const auto& [key, times] : u.times) {
    if (times > 1) ++dups;
    auto& m = max_seen[key.first];
    m = std::max(m, key.second);
  }
  EXPECT_EQ(dups, 0u) << "records delivered twice (seed " << seed << ")";
  // Missing records: below a surviving producer's end or below the last
  // delivered record of a killed one, neither delivered nor refused (reset).
  std::uint64_t missing = 0;
  std::string which;
  for (const auto& p : ps) {
    if (!p.producer) continue;
    std::uint64_t end = 0;  // seqs [0, end) must be accounted for
    if (!p.killed) end = last_seq[p.id];
    else if (max_seen.count(p.id)) end = max_seen[p.id] + 1;
    for (std::uint64_t s = 0; s < end; ++s) {
      if (u.times.count({p.id, s}) || resets[p.id].count(s)) continue;
      if (missing++ < 8) which.append("(").append(std::to_string(p.id)).append(",").append(std::to_string(s)).append(") ");
    }
    // A delivered record never carries a seq its producer had refused.
    for (std::uint64_t s : resets[p.id]) EXPECT_EQ(u.times.count({p.id, s}), 0u) << "revoked record delivered";
  }
  EXPECT_LE(missing, view.dropped_reads()) << "records lost beyond those held by killed consumers: " << which
                                           << "(seed " << seed << ")";
  EXPECT_LE(view.dropped_reads(), static_cast<std::uint64_t>(kills_c));
  EXPECT_LE(view.abandoned_claims(), static_cast<std::uint64_t>(kills_p));
  EXPECT_LE(reset_count, view.fenced_claims());
  EXPECT_LE(revoked_count, view.fenced_reads());
  std::printf("  %zu records delivered, %llu missing (dropped with killed consumers), %llu commits and %llu releases "
              "refused after a fence (fenced_reads %llu)\n",
              u.all.size(), static_cast<unsigned long long>(missing), static_cast<unsigned long long>(reset_count),
              static_cast<unsigned long long>(revoked_count),
              static_cast<unsigned long long>(view.fenced_reads()));
}

}  // namespace
}  // namespace shmring::mpmc_test
