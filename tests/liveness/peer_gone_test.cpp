// Peer death, the peer-gone rule, exclusive roles and reused pids, from
// separate processes, through the C API:
//   PeerGoneTest.KilledProducerUnblocksConsumer   every committed record, then EPEERGONE < 500 ms
//   PeerGoneTest.KilledConsumerUnblocksProducer   a producer blocked on a full ring: EPEERGONE < 500 ms
//   PeerGoneTest.ConsumerBeforeAnyProducerWaits   ETIMEDOUT (not EPEERGONE), then a late producer is
//                                                 heard; its clean close: drain, then EPEERGONE
//   PeerGoneTest.ReplacementProducerIsHeard       after a death, a replacement continues (drained
//                                                 and undrained ring)
//   LockedPeers.OneOfTwoProducersDies             locked: "the peer" is any producer
//   ExclusiveRoles.*                              spsc: EBUSY for a second live producer / consumer
//                                                 (same and other process), dead owner replaced
//   ReusedPid.*                                   an entry whose pid is alive but whose start time
//                                                 differs reads as dead
#include <gtest/gtest.h>

#include <cinttypes>
#include <optional>

#include "live_support.hpp"
#include "record.hpp"
#include "variants.hpp"

namespace shmring::live {
namespace {

constexpr std::int64_t kMs = 1'000'000;

// Receives records (id 1, seq from `first`, lengths 24..200) until an error;
// returns how many arrived in order, and the error in *rc. Fails the test on
// a bad record.
std::uint64_t drain(shmring_t* c, std::uint64_t first, int* rc, std::int64_t timeout_ns = 2'000 * kMs,
                    std::uint32_t min_len = 24, std::uint32_t max_len = 200) {
  std::uint64_t got = 0;
  for (;;) {
    const void* p = nullptr;
    std::size_t n = 0;
    *rc = shmring_peek(c, &p, &n, timeout_ns);
    if (*rc != SHMRING_OK) return got;
    RecordView v;
    std::string why;
    if (!check_record(p, n, min_len, max_len, &v, &why)) {
      ADD_FAILURE() << why;
      return got;
    }
    if (v.seq != first + got) {
      ADD_FAILURE() << "seq " << v.seq << " where " << first + got << " was due";
      return got;
    }
    if (shmring_release(c) != SHMRING_OK) {
      ADD_FAILURE() << "release failed";
      return got;
    }
    ++got;
  }
}

class PeerGoneTest : public ::testing::TestWithParam<KW> {};

TEST_P(PeerGoneTest, KilledProducerUnblocksConsumer) {
  const KW v = GetParam();
  TestRing ring("pg_prod", v.kind, v.wait, 4096);
  ASSERT_EQ(ring.create_result(), Errc::ok) << last_error_message();
  RawHeader raw(ring.name());
  ASSERT_TRUE(raw.ok());
  std::vector<std::int64_t> lat;
  // The consumer blocks forever (its process dies at its deadline if the
  // library never returns).
  Peer cons(args({"consume", ring.name(), "--min", "24", "--max", "200", "--timeout-ms", "-1", "--deadline-s", "30"}));
  std::string l;
  LIVE_EXPECT_LINE(cons, "opened", 5000, l);
  ASSERT_EQ(l, "opened 0");
  const int k = 37;  // wraps the 4 KiB ring more than once
  Peer prod(args({"produce", ring.name(), "--count", std::to_string(k), "--min", "24", "--max", "200", "--hold"}));
  LIVE_EXPECT_LINE(prod, "done", 5000, l);
  ASSERT_EQ(field(l, 1), SHMRING_OK) << l;
  ASSERT_EQ(field(l, 2), k);
  // The consumer took everything and is blocked again.
  ASSERT_TRUE(RawHeader::poll_until([&] { return raw.head() == raw.tail(); }, 2'000 * kMs));
  if (v.wait != WaitStrategy::spin) {
    ASSERT_TRUE(raw.wait_data_sleeper(2'000 * kMs));
  }
  const std::int64_t t_kill = now_ns();
  prod.kill9();
  LIVE_EXPECT_LINE(cons, "done", 5000, l);
  EXPECT_EQ(field(l, 1), SHMRING_EPEERGONE) << l;
  EXPECT_EQ(field(l, 2), k) << "records committed before the death must all arrive first";
  const std::int64_t dt = field(l, 3) - t_kill;
  EXPECT_LT(dt, 500 * kMs);
  const Exit ex = cons.wait();
  EXPECT_TRUE(ex.exited && ex.code == 0) << ex.describe() << " " << ::testing::PrintToString(cons.history());
  LIVE_MEASURE("peer_gone_producer", "%s/%s: killed producer -> blocked consumer EPEERGONE after %.1f ms",
               to_string(v.kind), to_string(v.wait), to_ms(dt));
}

TEST_P(PeerGoneTest, KilledConsumerUnblocksProducer) {
  const KW v = GetParam();
  TestRing ring("pg_cons", v.kind, v.wait, 4096);
  ASSERT_EQ(ring.create_result(), Errc::ok) << last_error_message();
  RawHeader raw(ring.name());
  ASSERT_TRUE(raw.ok());
  Peer cons(args({"hold", ring.name(), "--role", "consumer"}));
  std::string l;
  LIVE_EXPECT_LINE(cons, "opened", 5000, l);
  ASSERT_EQ(l, "opened 0");
  // 56-byte records: 64-byte footprint, 64 of them fill the ring.
  Peer prod(args({"produce", ring.name(), "--count", "1000", "--min", "56", "--max", "56", "--timeout-ms", "-1",
                  "--deadline-s", "30"}));
  ASSERT_TRUE(RawHeader::poll_until([&] { return raw.tail() - raw.head() == 4096; }, 5'000 * kMs))
      << "the ring never filled";
  if (v.wait != WaitStrategy::spin) {
    ASSERT_TRUE(raw.wait_space_sleeper(2'000 * kMs));
  }
  const std::int64_t t_kill = now_ns();
  cons.kill9();
  LIVE_EXPECT_LINE(prod, "done", 5000, l);
  EXPECT_EQ(field(l, 1), SHMRING_EPEERGONE) << l;
  EXPECT_EQ(field(l, 2), 64);
  const std::int64_t dt = field(l, 4) - t_kill;
  EXPECT_LT(dt, 500 * kMs);
  EXPECT_TRUE(prod.wait().exited);
  LIVE_MEASURE("peer_gone_consumer", "%s/%s: killed consumer -> producer blocked on a full ring EPEERGONE after %.1f ms",
               to_string(v.kind), to_string(v.wait), to_ms(dt));
}

TEST_P(PeerGoneTest, ConsumerBeforeAnyProducerWaits) {
  const KW v = GetParam();
  TestRing ring("pg_early", v.kind, v.wait, 4096);
  ASSERT_EQ(ring.create_result(), Errc::ok) << last_error_message();
  Handle cons;
  ASSERT_EQ(cons.open(ring.name(), SHMRING_CONSUMER), SHMRING_OK);
  // No producer has ever attached: wait (and time out), never peer_gone.
  const void* p = nullptr;
  std::size_t n = 0;
  const std::int64_t t0 = now_ns();
  EXPECT_EQ(shmring_peek(cons.get(), &p, &n, 150 * kMs), SHMRING_ETIMEDOUT);
  EXPECT_GE(now_ns() - t0, 150 * kMs);
  // A producer arrives, sends and closes cleanly: everything, then EPEERGONE.
  Peer prod(args({"produce", ring.name(), "--count", "50", "--min", "24", "--max", "200"}));
  int rc = 0;
  EXPECT_EQ(drain(cons.get(), 0, &rc), 50u);
  EXPECT_EQ(rc, SHMRING_EPEERGONE) << errname(rc);
  const Exit ex = prod.wait();
  EXPECT_TRUE(ex.exited && ex.code == 0) << ex.describe();
  // And it stays gone (FIFO semantics: a closed writer). Not with a try-mode
  // call: that applies the rule rate-limited (docs/liveness.md) and may say
  // EWOULDBLOCK within half a liveness period of the last check.
  EXPECT_EQ(shmring_peek(cons.get(), &p, &n, 100 * kMs), SHMRING_EPEERGONE);
}

TEST_P(PeerGoneTest, ReplacementProducerIsHeard) {
  const KW v = GetParam();
  for (const bool drained_first : {true, false}) {
    SCOPED_TRACE(drained_first ? "consumer drained before the replacement" : "replacement before draining");
    TestRing ring("pg_repl", v.kind, v.wait, 4096);
    ASSERT_EQ(ring.create_result(), Errc::ok) << last_error_message();
    Handle cons;
    ASSERT_EQ(cons.open(ring.name(), SHMRING_CONSUMER), SHMRING_OK);
    {
      Peer p1(args({"produce", ring.name(), "--count", "10", "--min", "24", "--max", "200", "--hold"}));
      std::string l;
      LIVE_EXPECT_LINE(p1, "done", 5000, l);
      ASSERT_EQ(l.rfind("done 0 10 ", 0), 0u) << l;
      p1.kill9();
      p1.wait();
    }
    int rc = 0;
    std::uint64_t got = 0;
    if (drained_first) {
      got = drain(cons.get(), 0, &rc);
      EXPECT_EQ(got, 10u);
      EXPECT_EQ(rc, SHMRING_EPEERGONE) << errname(rc);
    }
    // The replacement continues the same stream after the last committed record.
    Peer p2(args({"produce", ring.name(), "--start", "10", "--count", "10", "--min", "24", "--max", "200"}));
    std::string l;
    LIVE_EXPECT_LINE(p2, "opened", 5000, l);
    ASSERT_EQ(l, "opened 0") << "the dead producer's role must be taken over";
    got += drain(cons.get(), got, &rc);
    EXPECT_EQ(got, 20u);
    EXPECT_EQ(rc, SHMRING_EPEERGONE) << errname(rc);
    EXPECT_TRUE(p2.wait().exited);
  }
}

INSTANTIATE_TEST_SUITE_P(All, PeerGoneTest, all_kinds_and_waits(), kw_name);

// ---- locked: the peer is any producer ---------------------------------------------------

TEST(LockedPeers, OneOfTwoProducersDies) {
  TestRing ring("lk_two", Kind::locked, WaitStrategy::futex, 4096);
  ASSERT_EQ(ring.create_result(), Errc::ok);
  Handle cons;
  ASSERT_EQ(cons.open(ring.name(), SHMRING_CONSUMER), SHMRING_OK);
  Peer p1(args({"hold", ring.name(), "--role", "producer"}));
  Peer p2(args({"hold", ring.name(), "--role", "producer"}));
  std::string l;
  LIVE_EXPECT_LINE(p1, "opened", 5000, l);
  ASSERT_EQ(l, "opened 0");
  LIVE_EXPECT_LINE(p2, "opened", 5000, l);
  ASSERT_EQ(l, "opened 0") << "a locked ring takes any number of producers";
  p1.kill9();
  p1.wait();
  const void* p = nullptr;
  std::size_t n = 0;
  EXPECT_EQ(shmring_peek(cons.get(), &p, &n, 300 * kMs), SHMRING_ETIMEDOUT) << "one producer is still alive";
  p2.close_stdin();
  EXPECT_TRUE(p2.wait().exited);
  EXPECT_EQ(shmring_peek(cons.get(), &p, &n, 2'000 * kMs), SHMRING_EPEERGONE);
}

// ---- Exclusive roles (spsc) ----------------------------------------------------------------

class ExclusiveRoles : public ::testing::TestWithParam<KW> {};

TEST_P(ExclusiveRoles, SameProcess) {
  TestRing ring("ex_same", Kind::spsc, GetParam().wait, 4096);
  ASSERT_EQ(ring.create_result(), Errc::ok);
  for (shmring_role role : {SHMRING_PRODUCER, SHMRING_CONSUMER}) {
    Handle a, b;
    ASSERT_EQ(a.open(ring.name(), role), SHMRING_OK);
    EXPECT_EQ(b.open(ring.name(), role), SHMRING_EBUSY);
    EXPECT_NE(std::string(shmring_last_error()).find(std::to_string(::getpid())), std::string::npos)
        << "the message should name the holder: " << shmring_last_error();
    a.reset();  // a clean close frees the role
    EXPECT_EQ(b.open(ring.name(), role), SHMRING_OK);
  }
}

TEST_P(ExclusiveRoles, OtherProcess) {
  TestRing ring("ex_other", Kind::spsc, GetParam().wait, 4096);
  ASSERT_EQ(ring.create_result(), Errc::ok);
  for (const char* role : {"producer", "consumer"}) {
    SCOPED_TRACE(role);
    const shmring_role r = std::string(role) == "producer" ? SHMRING_PRODUCER : SHMRING_CONSUMER;
    Peer holder(args({"hold", ring.name(), "--role", role}));
    std::string l;
    LIVE_EXPECT_LINE(holder, "opened", 5000, l);
    ASSERT_EQ(l, "opened 0");
    Handle mine;
    EXPECT_EQ(mine.open(ring.name(), r), SHMRING_EBUSY);
    // ... and the other way round: we hold it, another process is refused.
    holder.close_stdin();
    ASSERT_TRUE(holder.wait().exited);
    ASSERT_EQ(mine.open(ring.name(), r), SHMRING_OK);
    Peer second(args({"hold", ring.name(), "--role", role}));
    LIVE_EXPECT_LINE(second, "opened", 5000, l);
    EXPECT_EQ(field(l, 1), SHMRING_EBUSY) << l;
    second.close_stdin();
    second.wait();
  }
}

TEST_P(ExclusiveRoles, DeadOwnerIsReplaced) {
  TestRing ring("ex_dead", Kind::spsc, GetParam().wait, 4096);
  ASSERT_EQ(ring.create_result(), Errc::ok);
  for (const char* role : {"producer", "consumer"}) {
    SCOPED_TRACE(role);
    const shmring_role r = std::string(role) == "producer" ? SHMRING_PRODUCER : SHMRING_CONSUMER;
    Peer holder(args({"hold", ring.name(), "--role", role}));
    std::string l;
    LIVE_EXPECT_LINE(holder, "opened", 5000, l);
    ASSERT_EQ(l, "opened 0");
    Handle mine;
    ASSERT_EQ(mine.open(ring.name(), r), SHMRING_EBUSY);
    holder.kill9();
    holder.wait();
    EXPECT_EQ(mine.open(ring.name(), r), SHMRING_OK) << shmring_last_error();
  }
}

INSTANTIATE_TEST_SUITE_P(Spsc, ExclusiveRoles, spsc_waits(), kw_name);

// ---- Reused pids ----------------------------------------------------------------------------

// Plants (or rewrites) attach entry `idx` as attached by `pid` in `role` with
// the given start time; for spsc also makes it the role's owner.
void plant_entry(detail::Header* h, std::uint32_t idx, pid_t pid, Role role, std::uint64_t start_time,
                 bool owner) {
  using detail::atom;
  auto& e = h->attach[idx];
  const auto r = static_cast<std::uint32_t>(role);
  atom(e.state).store(detail::attach_word(pid, r, detail::kPhaseClaiming), std::memory_order_seq_cst);
  atom(e.pid).store(pid, std::memory_order_relaxed);
  atom(e.role).store(r, std::memory_order_relaxed);
  atom(e.start_time).store(start_time, std::memory_order_relaxed);
  atom(e.state).store(detail::attach_word(pid, r, detail::kPhaseAttached), std::memory_order_seq_cst);
  if (owner) atom(h->roles.owner[r - 1]).store(detail::owner_word(pid, idx), std::memory_order_seq_cst);
}

// The entry of a role's (dead) process, or -1.
int find_entry(detail::Header* h, pid_t pid, Role role) {
  for (std::uint32_t i = 0; i < detail::kAttachEntries; ++i) {
    const std::uint64_t w = RawHeader::load(h->attach[i].state);
    if (w != 0 && detail::attach_word_pid(w) == pid && detail::attach_word_role(w) == static_cast<std::uint32_t>(role))
      return static_cast<int>(i);
  }
  return -1;
}

class ReusedPid : public ::testing::TestWithParam<KW> {};

// An entry names a live process (a sleeping child, with its real pid and
// any start time) but nobody holds the entry's lock: the process that
// attached is gone and its pid was reused. A new producer must be able to
// take the role. Control: while a real producer is attached (it holds its
// entry's lock) the role is refused (EBUSY), so the test can fail.
TEST_P(ReusedPid, PlantedOwnerWithLivePidButNoLockReadsDead) {
  const KW v = GetParam();
  Peer sleeper(args({"sleep"}));
  std::string l;
  LIVE_EXPECT_LINE(sleeper, "ready", 5000, l);
  for (const bool control : {true, false}) {
    SCOPED_TRACE(control ? "control: a real, live producer" : "reused pid: a live pid without the lock");
    TestRing ring("reuse_own", v.kind, v.wait, 4096);
    ASSERT_EQ(ring.create_result(), Errc::ok);
    RawHeader raw(ring.name());
    ASSERT_TRUE(raw.ok());
    std::optional<Peer> holder;
    if (control) {
      holder.emplace(args({"produce", ring.name(), "--count", "1", "--min", "24", "--max", "24", "--hold"}));
      LIVE_EXPECT_LINE(*holder, "done", 5000, l);
      ASSERT_EQ(field(l, 1), SHMRING_OK);
    } else {
      plant_entry(raw.get(), 7, sleeper.pid(), Role::producer, 12345, v.kind == Kind::spsc);
    }
    Handle prod;
    const int rc = prod.open(ring.name(), SHMRING_PRODUCER);
    if (v.kind == Kind::spsc && control) {
      EXPECT_EQ(rc, SHMRING_EBUSY) << errname(rc);
    } else {
      EXPECT_EQ(rc, SHMRING_OK) << errname(rc) << " " << shmring_last_error();
    }
    if (holder) {
      holder->kill9();
      holder->wait();
    }
  }
  sleeper.close_stdin();
  sleeper.wait();
}

// A consumer saw a producer attach; the producer dies and its pid is reused
// by a live process (we rewrite the dead entry's pid to a sleeping child's).
// The consumer must get EPEERGONE: a plain kill(pid, 0) check would see a
// live process and wait forever. Control: while the producer lives the
// consumer keeps waiting (ETIMEDOUT).
TEST_P(ReusedPid, ConsumerSeesReusedPidAsGone) {
  const KW v = GetParam();
  Peer sleeper(args({"sleep"}));
  std::string l;
  LIVE_EXPECT_LINE(sleeper, "ready", 5000, l);
  for (const bool control : {true, false}) {
    SCOPED_TRACE(control ? "control: the producer lives" : "reused pid");
    TestRing ring("reuse_peer", v.kind, v.wait, 4096);
    ASSERT_EQ(ring.create_result(), Errc::ok);
    RawHeader raw(ring.name());
    ASSERT_TRUE(raw.ok());
    Handle cons;
    ASSERT_EQ(cons.open(ring.name(), SHMRING_CONSUMER), SHMRING_OK);
    Peer prod(args({"produce", ring.name(), "--count", "3", "--min", "24", "--max", "200", "--hold"}));
    LIVE_EXPECT_LINE(prod, "done", 5000, l);
    ASSERT_EQ(field(l, 1), SHMRING_OK);
    const pid_t dead = prod.pid();
    const int idx = find_entry(raw.get(), dead, Role::producer);
    ASSERT_GE(idx, 0);
    if (!control) {
      prod.kill9();
      prod.wait();
      plant_entry(raw.get(), static_cast<std::uint32_t>(idx), sleeper.pid(), Role::producer, 12345,
                  v.kind == Kind::spsc);
    }
    int rc = 0;
    EXPECT_EQ(drain(cons.get(), 0, &rc, 400 * kMs), 3u);
    if (control) {
      EXPECT_EQ(rc, SHMRING_ETIMEDOUT) << errname(rc) << ": the live producer must count as alive";
      prod.kill9();
      prod.wait();
    } else {
      EXPECT_EQ(rc, SHMRING_EPEERGONE) << errname(rc) << ": a reused pid must not count as the producer";
    }
  }
  sleeper.close_stdin();
  sleeper.wait();
}

INSTANTIATE_TEST_SUITE_P(Kinds, ReusedPid,
                         ::testing::Values(KW{Kind::spsc, WaitStrategy::futex}, KW{Kind::locked, WaitStrategy::futex}),
                         kw_name);

}  // namespace
}  // namespace shmring::live
