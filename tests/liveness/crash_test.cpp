// kill -9 inside the library at every named crash point (SHMRING_CRASH_AT in
// a shmring_peer child's environment), for spsc and locked, with every wait
// strategy. For each point: the survivors unblock (peer gone, or carry on
// with a new peer), nothing committed is lost or duplicated, nothing torn is
// delivered (every record's length, checksum and body are verified).
//
//   ProducerCrash.*   the producer dies at its K-th pass of a point; the consumer
//                     (this process) gets exactly the records committed and
//                     published before, then EPEERGONE; a replacement producer
//                     continues the stream. locked: a second producer runs
//                     concurrently and must get through the dead holder's mutex
//                     (EOWNERDEAD repair, lock.recoveries == 1).
//   ConsumerCrash.*   the consumer dies at its K-th pass; the producer (this
//                     process) blocked on the full ring gets EPEERGONE; the
//                     replacement consumer starts at the first record not
//                     released (the in-flight one again: at-least-once for it)
//                     and nothing else is duplicated or lost.
//   RepairCrash.*     locked: the repairer dies inside the owner-died repair
//                     (locked.repair, before pthread_mutex_consistent); a third
//                     process gets EOWNERDEAD again and recovers.
#include <gtest/gtest.h>

#include <signal.h>

#include <cinttypes>
#include <map>

#include "live_support.hpp"
#include "record.hpp"
#include "variants.hpp"

namespace shmring::live {
namespace {

constexpr std::int64_t kMs = 1'000'000;
constexpr std::uint32_t kMin = 24, kMax = 200;

void skip_without_hooks() {
#if !defined(SHMRING_TEST_HOOKS)
  GTEST_SKIP() << "crash points are compiled out (configure with -DSHMRING_TEST_HOOKS=ON)";
#endif
}

// Records received by this process, per producer id.
struct Received {
  std::map<std::uint32_t, std::uint64_t> next;   // next expected seq
  std::map<std::uint32_t, std::uint64_t> count;  // received
  std::string error;
};

// Peeks until an error (returned); verifies each record and that each
// producer's records arrive in order, starting at `start[id]` (default 0).
int drain_into(shmring_t* c, Received* r, std::int64_t timeout_ns = 2'000 * kMs) {
  for (;;) {
    const void* p = nullptr;
    std::size_t n = 0;
    const int rc = shmring_peek(c, &p, &n, timeout_ns);
    if (rc != SHMRING_OK) return rc;
    RecordView v;
    std::string why;
    if (!check_record(p, n, kMin, kMax, &v, &why)) {
      r->error = why;
      return rc;
    }
    const std::uint64_t want = r->next.count(v.id) ? r->next[v.id] : 0;
    if (v.seq != want) {
      r->error = "producer " + std::to_string(v.id) + ": seq " + std::to_string(v.seq) + " where " +
                 std::to_string(want) + " was due";
      return rc;
    }
    r->next[v.id] = v.seq + 1;
    ++r->count[v.id];
    if (shmring_release(c) != SHMRING_OK) {
      r->error = "release failed";
      return rc;
    }
  }
}

int count_lines(const std::vector<std::string>& h, const std::string& prefix) {
  int n = 0;
  for (const auto& l : h) n += l.rfind(prefix, 0) == 0;
  return n;
}

struct CrashCase {
  const char* point;
  Kind kind;
  WaitStrategy wait;
  int k;           // crash at the k-th pass
  int delivered;   // producer side: records of the dying producer that must arrive
                   // consumer side: seq the replacement consumer starts at
  bool holds_lock; // locked: the process dies holding a robust mutex
};

void PrintTo(const CrashCase& c, std::ostream* os) {
  *os << c.point << ":" << c.k << " " << to_string(c.kind) << "/" << to_string(c.wait);
}

std::string case_name(const ::testing::TestParamInfo<CrashCase>& i) {
  std::string s = i.param.point;
  for (char& c : s)
    if (c == '.') c = '_';
  return s + "_" + to_string(i.param.wait) + "_k" + std::to_string(i.param.k);
}

// For each point and K, the expected outcome, reasoned from where the point
// sits (lib/spsc.cpp, lib/locked.cpp):
//  spsc.reserve               before the K-th record exists            -> K-1 delivered
//  spsc.commit.before_header  K-th payload written, header not         -> K-1
//  spsc.commit.before_publish K-th header written, tail not stored     -> K-1
//  spsc.commit.after_publish  tail stored (K-th visible), no wake-up   -> K
//  locked.reserve             holding prod mutex, space claimed        -> K-1, recovery
//  locked.commit.before_publish holding, header written, tail not      -> K-1, recovery
//  locked.commit.after_publish  holding, tail stored, not unlocked     -> K,   recovery
std::vector<CrashCase> producer_cases() {
  std::vector<CrashCase> v;
  for (WaitStrategy w : {WaitStrategy::futex, WaitStrategy::spin, WaitStrategy::sem}) {
    for (int k : {1, 40}) {
      v.push_back({"spsc.reserve", Kind::spsc, w, k, k - 1, false});
      v.push_back({"spsc.commit.before_header", Kind::spsc, w, k, k - 1, false});
      v.push_back({"spsc.commit.before_publish", Kind::spsc, w, k, k - 1, false});
      v.push_back({"spsc.commit.after_publish", Kind::spsc, w, k, k, false});
      v.push_back({"locked.reserve", Kind::locked, w, k, k - 1, true});
      v.push_back({"locked.commit.before_publish", Kind::locked, w, k, k - 1, true});
      v.push_back({"locked.commit.after_publish", Kind::locked, w, k, k, true});
    }
  }
  return v;
}

class ProducerCrash : public ::testing::TestWithParam<CrashCase> {};

TEST_P(ProducerCrash, SurvivorsSeeEveryCommittedRecordThenPeerGone) {
  skip_without_hooks();
  const CrashCase c = GetParam();
  // 64 KiB: the ring never fills before the K-th record, so the K-th pass
  // of a commit point is the K-th commit (locked.commit.after_publish sits
  // in flush(), which a producer also passes when it finds the ring full);
  // (Wrap-around under crashes is covered by ProducerCrashSmallRing.)
  TestRing ring("crash_p", c.kind, c.wait, 1 << 16);
  ASSERT_EQ(ring.create_result(), Errc::ok) << last_error_message();
  RawHeader raw(ring.name());
  ASSERT_TRUE(raw.ok());
  Handle cons;
  ASSERT_EQ(cons.open(ring.name(), SHMRING_CONSUMER), SHMRING_OK);
  const std::string min = std::to_string(kMin), max = std::to_string(kMax);
  // locked: a second, healthy producer runs at the same time as the victim
  // and must get through the mutex the victim dies holding. It attaches
  // first and stays attached (--hold) until the victim is dead and it has
  // sent everything, so the consumer never sees "no producer left" early.
  // 300 records of the two producers together stay below the ring's
  // capacity, so the victim never finds the ring full (see above).
  std::unique_ptr<Peer> other;
  const int other_count = 300;
  std::string l;
  if (c.kind == Kind::locked) {
    other = std::make_unique<Peer>(args({"produce", ring.name(), "--id", "2", "--count", std::to_string(other_count),
                                         "--min", min, "--max", max, "--timeout-ms", "5000", "--hold"}));
    LIVE_EXPECT_LINE(*other, "opened", 5000, l);
    ASSERT_EQ(l, "opened 0");
  }
  // The victim: producer 1, dies at the k-th pass of the point.
  Peer victim(args({"produce", ring.name(), "--id", "1", "--count", "1000", "--min", min, "--max", max, "--report",
                    "--timeout-ms", "5000"}),
              std::string(c.point) + ":" + std::to_string(c.k));
  Received got;
  int rc = SHMRING_OK;
  if (c.kind == Kind::spsc) {
    // spsc: this consumer drains while the victim runs and is blocked on
    // the empty ring when it dies.
    rc = drain_into(cons.get(), &got);
  }
  const Exit ve = victim.wait();
  ASSERT_EQ(ve.signal, SIGKILL) << "the crash point did not fire: " << ve.describe();
  if (other) {
    LIVE_EXPECT_LINE(*other, "done", 5000, l);
    EXPECT_EQ(field(l, 1), SHMRING_OK) << "the second producer must get through the dead holder's mutex: " << l;
    other->close_stdin();
    EXPECT_TRUE(other->wait().exited);
    rc = drain_into(cons.get(), &got);
    EXPECT_EQ(got.count[2], static_cast<std::uint64_t>(other_count));
  }
  ASSERT_TRUE(got.error.empty()) << got.error;
  EXPECT_EQ(rc, SHMRING_EPEERGONE) << errname(rc);
  const auto& h = victim.drain(std::chrono::milliseconds(1000));
  // "sent" lines: commits that returned; the K-th never did.
  EXPECT_EQ(count_lines(h, "sent"), c.k - 1);
  EXPECT_EQ(got.count[1], static_cast<std::uint64_t>(c.delivered))
      << "records of the dead producer delivered (committed and published before the crash)";
  // A replacement producer continues the victim's stream.
  const int more = 25;
  Peer repl(args({"produce", ring.name(), "--id", "1", "--start", std::to_string(c.delivered), "--count",
                  std::to_string(more), "--min", min, "--max", max, "--timeout-ms", "5000"}));
  // Attached before we wait: otherwise "a producer was seen, none is alive"
  // would rightly end the wait before it arrives.
  LIVE_EXPECT_LINE(repl, "opened", 5000, l);
  ASSERT_EQ(l, "opened 0");
  rc = drain_into(cons.get(), &got);
  ASSERT_TRUE(got.error.empty()) << got.error;
  EXPECT_EQ(rc, SHMRING_EPEERGONE) << errname(rc);
  EXPECT_EQ(got.count[1], static_cast<std::uint64_t>(c.delivered + more));
  const Exit re = repl.wait();
  EXPECT_TRUE(re.exited && re.code == 0) << re.describe();
  EXPECT_EQ(raw.recoveries(), c.holds_lock ? 1u : 0u) << "owner-died repairs recorded in the header";
  EXPECT_EQ(raw.head(), raw.tail());
}

INSTANTIATE_TEST_SUITE_P(Points, ProducerCrash, ::testing::ValuesIn(producer_cases()), case_name);

// Consumer side, the seq the replacement consumer starts at after a death at
// the K-th pass (seqs are 0-based, so the K-th record is seq K-1):
//  spsc.peek                   K-th record found, not released         -> K-1 (again)
//  spsc.release.before_publish K-th released locally, head not stored -> K-1 (again)
//  locked.peek                 holding cons mutex, K-th found          -> K-1 (again), recovery
//  locked.release.before_publish holding, head not stored              -> K-1 (again), recovery
//  locked.release.after_publish  holding, head stored, not unlocked    -> K,           recovery
std::vector<CrashCase> consumer_cases() {
  std::vector<CrashCase> v;
  for (WaitStrategy w : {WaitStrategy::futex, WaitStrategy::spin, WaitStrategy::sem}) {
    for (int k : {1, 40}) {
      v.push_back({"spsc.peek", Kind::spsc, w, k, k - 1, false});
      v.push_back({"spsc.release.before_publish", Kind::spsc, w, k, k - 1, false});
      v.push_back({"locked.peek", Kind::locked, w, k, k - 1, true});
      v.push_back({"locked.release.before_publish", Kind::locked, w, k, k - 1, true});
      v.push_back({"locked.release.after_publish", Kind::locked, w, k, k, true});
    }
  }
  return v;
}

class ConsumerCrash : public ::testing::TestWithParam<CrashCase> {};

TEST_P(ConsumerCrash, ReplacementGetsTheInFlightRecordAndNothingElseTwice) {
  skip_without_hooks();
  const CrashCase c = GetParam();
  // 64 KiB, filled before the victim starts: the victim never finds the ring
  // empty before its K-th pass (locked.release.after_publish sits in
  // flush(), which a consumer also passes when it finds the ring empty), so
  // the K-th pass is the K-th release.
  TestRing ring("crash_c", c.kind, c.wait, 1 << 16);
  ASSERT_EQ(ring.create_result(), Errc::ok) << last_error_message();
  RawHeader raw(ring.name());
  ASSERT_TRUE(raw.ok());
  Handle prod;
  ASSERT_EQ(prod.open(ring.name(), SHMRING_PRODUCER), SHMRING_OK);
  const std::string min = std::to_string(kMin), max = std::to_string(kMax);
  const std::uint64_t total = 1000;  // about twice what the ring holds
  std::uint64_t seq = 0;
  int rc = SHMRING_OK;
  for (;; ++seq) {  // fill (try mode: no consumer yet)
    const std::uint32_t len = record_len(1, seq, kMin, kMax);
    void* buf = nullptr;
    rc = shmring_reserve(prod.get(), len, &buf, 0);
    if (rc != SHMRING_OK) break;
    fill_record(1, seq, buf, len);
    ASSERT_EQ(shmring_commit(prod.get(), len), SHMRING_OK);
  }
  ASSERT_EQ(rc, SHMRING_EWOULDBLOCK);
  ASSERT_GT(seq, 100u);
  Peer victim(args({"consume", ring.name(), "--min", min, "--max", max, "--report", "--timeout-ms", "5000"}),
              std::string(c.point) + ":" + std::to_string(c.k));
  std::string l;
  LIVE_EXPECT_LINE(victim, "opened", 5000, l);
  ASSERT_EQ(l, "opened 0");
  // Keep sending: we block on the full ring when the consumer dies, and
  // must get EPEERGONE.
  for (; seq < total; ++seq) {
    const std::uint32_t len = record_len(1, seq, kMin, kMax);
    void* buf = nullptr;
    rc = shmring_reserve(prod.get(), len, &buf, 5'000 * kMs);
    if (rc != SHMRING_OK) break;
    fill_record(1, seq, buf, len);
    ASSERT_EQ(shmring_commit(prod.get(), len), SHMRING_OK);
  }
  EXPECT_EQ(rc, SHMRING_EPEERGONE) << "the blocked producer must learn that the consumer died: " << errname(rc);
  const Exit ve = victim.wait();
  ASSERT_EQ(ve.signal, SIGKILL) << "the crash point did not fire: " << ve.describe();
  const auto& h = victim.drain(std::chrono::milliseconds(1000));
  // The victim finished (peeked and released, "got") the records before its K-th pass.
  const int finished = count_lines(h, "got");
  EXPECT_EQ(finished, c.k - 1);
  // The replacement consumer must start exactly at c.delivered, in order.
  Peer repl(args({"consume", ring.name(), "--start", std::to_string(c.delivered), "--min", min, "--max", max,
                  "--timeout-ms", "5000"}));
  LIVE_EXPECT_LINE(repl, "opened", 5000, l);
  ASSERT_EQ(l, "opened 0") << "the dead consumer's role must be taken over";
  for (; seq < total; ++seq) {
    const std::uint32_t len = record_len(1, seq, kMin, kMax);
    void* buf = nullptr;
    rc = shmring_reserve(prod.get(), len, &buf, 5'000 * kMs);
    ASSERT_EQ(rc, SHMRING_OK) << "seq " << seq << ": " << errname(rc);
    fill_record(1, seq, buf, len);
    ASSERT_EQ(shmring_commit(prod.get(), len), SHMRING_OK);
  }
  prod.reset();  // clean close: the consumer drains, then EPEERGONE
  LIVE_EXPECT_LINE(repl, "done", 10'000, l);
  EXPECT_EQ(field(l, 1), SHMRING_EPEERGONE) << l << " " << ::testing::PrintToString(repl.history());
  EXPECT_EQ(static_cast<std::uint64_t>(field(l, 2)), total - c.delivered) << l;
  const Exit re = repl.wait();
  EXPECT_TRUE(re.exited && re.code == 0) << re.describe() << " " << ::testing::PrintToString(repl.history());
  // The victim peeked the in-flight record (seq k-1) unless it died inside
  // that very peek; with the replacement starting at c.delivered, at most
  // that one record is delivered twice (k-1 == c.delivered) and none is lost.
  EXPECT_GE(c.delivered, c.k - 1);
  EXPECT_LE(c.delivered, c.k);
  EXPECT_EQ(raw.recoveries(), c.holds_lock ? 1u : 0u) << "owner-died repairs recorded in the header";
}

INSTANTIATE_TEST_SUITE_P(Points, ConsumerCrash, ::testing::ValuesIn(consumer_cases()), case_name);

// ---- The same on a 4 KiB ring: records wrap (skip records) around the crashes --------

bool after_publish(const char* point) { return std::string(point).find("after_publish") != std::string::npos; }

std::vector<CrashCase> small_ring_cases(bool producer) {
  std::vector<CrashCase> v;
  for (const CrashCase& c : producer ? producer_cases() : consumer_cases()) {
    if (c.wait != WaitStrategy::futex || c.k != 40) continue;
    CrashCase s = c;
    s.k = 150;  // a 4 KiB ring wraps about four times before that
    s.delivered = c.delivered - c.k + s.k;
    v.push_back(s);
  }
  return v;
}

class ProducerCrashSmallRing : public ::testing::TestWithParam<CrashCase> {};

// On a small ring the producer also finds the ring full; a locked producer
// then passes locked.commit.after_publish in a flush that publishes nothing,
// so for that point the victim dies either right after publishing its last
// commit (sent + 1 delivered) or while waiting for space (sent delivered).
TEST_P(ProducerCrashSmallRing, SurvivorsSeeEveryCommittedRecordThenPeerGone) {
  skip_without_hooks();
  const CrashCase c = GetParam();
  TestRing ring("crash_ps", c.kind, c.wait, 4096);
  ASSERT_EQ(ring.create_result(), Errc::ok) << last_error_message();
  RawHeader raw(ring.name());
  Handle cons;
  ASSERT_EQ(cons.open(ring.name(), SHMRING_CONSUMER), SHMRING_OK);
  const std::string min = std::to_string(kMin), max = std::to_string(kMax);
  Peer victim(args({"produce", ring.name(), "--id", "1", "--count", "1000", "--min", min, "--max", max, "--report",
                    "--timeout-ms", "5000"}),
              std::string(c.point) + ":" + std::to_string(c.k));
  Received got;
  int rc = drain_into(cons.get(), &got);
  ASSERT_TRUE(got.error.empty()) << got.error;
  EXPECT_EQ(rc, SHMRING_EPEERGONE) << errname(rc);
  ASSERT_EQ(victim.wait().signal, SIGKILL);
  const int sent = count_lines(victim.drain(std::chrono::milliseconds(1000)), "sent");
  const auto delivered = static_cast<int>(got.count[1]);
  if (c.kind == Kind::locked && after_publish(c.point)) {
    EXPECT_TRUE(delivered == sent || delivered == sent + 1) << "sent " << sent << ", delivered " << delivered;
  } else {
    EXPECT_EQ(sent, c.k - 1);
    EXPECT_EQ(delivered, c.delivered);
  }
  Peer repl(args({"produce", ring.name(), "--id", "1", "--start", std::to_string(delivered), "--count", "100",
                  "--min", min, "--max", max, "--timeout-ms", "5000"}));
  std::string l;
  LIVE_EXPECT_LINE(repl, "opened", 5000, l);
  ASSERT_EQ(l, "opened 0");
  rc = drain_into(cons.get(), &got);
  ASSERT_TRUE(got.error.empty()) << got.error;
  EXPECT_EQ(rc, SHMRING_EPEERGONE) << errname(rc);
  EXPECT_EQ(got.count[1], static_cast<std::uint64_t>(delivered + 100));
  EXPECT_TRUE(repl.wait().exited);
  EXPECT_EQ(raw.recoveries(), c.holds_lock ? 1u : 0u);
}

INSTANTIATE_TEST_SUITE_P(Points, ProducerCrashSmallRing, ::testing::ValuesIn(small_ring_cases(true)), case_name);

class ConsumerCrashSmallRing : public ::testing::TestWithParam<CrashCase> {};

// The consumer side on a 4 KiB ring, the producer (this process) sending
// while the victim reads: the victim also finds the ring empty, and a locked
// one then passes locked.release.after_publish in a flush that hands back
// nothing, so for that point the replacement starts at the victim's last
// finished record + 1 or + 0. For every other point it starts exactly at the
// in-flight record (seq K-1).
TEST_P(ConsumerCrashSmallRing, ReplacementStartsAtTheFirstUnreleasedRecord) {
  skip_without_hooks();
  const CrashCase c = GetParam();
  TestRing ring("crash_cs", c.kind, c.wait, 4096);
  ASSERT_EQ(ring.create_result(), Errc::ok) << last_error_message();
  RawHeader raw(ring.name());
  Handle prod;
  ASSERT_EQ(prod.open(ring.name(), SHMRING_PRODUCER), SHMRING_OK);
  const std::string min = std::to_string(kMin), max = std::to_string(kMax);
  Peer victim(args({"consume", ring.name(), "--min", min, "--max", max, "--report", "--timeout-ms", "5000"}),
              std::string(c.point) + ":" + std::to_string(c.k));
  std::string l;
  LIVE_EXPECT_LINE(victim, "opened", 5000, l);
  const std::uint64_t total = 400;
  std::uint64_t seq = 0;
  int rc = SHMRING_OK;
  auto send_from = [&](std::uint64_t from) {
    for (seq = from; seq < total; ++seq) {
      const std::uint32_t len = record_len(1, seq, kMin, kMax);
      void* buf = nullptr;
      rc = shmring_reserve(prod.get(), len, &buf, 5'000 * kMs);
      if (rc != SHMRING_OK) return;
      fill_record(1, seq, buf, len);
      rc = shmring_commit(prod.get(), len);
      if (rc != SHMRING_OK) return;
    }
  };
  send_from(0);
  EXPECT_EQ(rc, SHMRING_EPEERGONE) << errname(rc);
  ASSERT_EQ(victim.wait().signal, SIGKILL);
  const int finished = count_lines(victim.drain(std::chrono::milliseconds(1000)), "got");
  Peer repl(args({"consume", ring.name(), "--first-any", "--min", min, "--max", max, "--timeout-ms", "5000"}));
  LIVE_EXPECT_LINE(repl, "opened", 5000, l);
  ASSERT_EQ(l, "opened 0");
  send_from(seq);
  ASSERT_EQ(rc, SHMRING_OK) << errname(rc);
  prod.reset();
  LIVE_EXPECT_LINE(repl, "first", 5000, l);
  const std::int64_t first = field(l, 2);
  if (c.kind == Kind::locked && after_publish(c.point)) {
    EXPECT_TRUE(first == finished || first == finished + 1) << "finished " << finished << ", first " << first;
  } else {
    EXPECT_EQ(finished, c.k - 1);
    EXPECT_EQ(first, c.delivered);
  }
  LIVE_EXPECT_LINE(repl, "done", 10'000, l);
  EXPECT_EQ(field(l, 1), SHMRING_EPEERGONE) << l;
  EXPECT_EQ(field(l, 2), static_cast<std::int64_t>(total) - first) << "nothing lost after the first record";
  const Exit re = repl.wait();
  EXPECT_TRUE(re.exited && re.code == 0) << re.describe() << ::testing::PrintToString(repl.history());
  EXPECT_EQ(raw.recoveries(), c.holds_lock ? 1u : 0u);
}

INSTANTIATE_TEST_SUITE_P(Points, ConsumerCrashSmallRing, ::testing::ValuesIn(small_ring_cases(false)), case_name);

// ---- The repairer dies -----------------------------------------------------------------

class RepairCrash : public ::testing::TestWithParam<KW> {};

TEST_P(RepairCrash, ProducerSideThirdProcessRecovers) {
  skip_without_hooks();
  TestRing ring("repair_p", Kind::locked, GetParam().wait, 4096);
  ASSERT_EQ(ring.create_result(), Errc::ok);
  RawHeader raw(ring.name());
  Handle cons;
  ASSERT_EQ(cons.open(ring.name(), SHMRING_CONSUMER), SHMRING_OK);
  const std::string min = std::to_string(kMin), max = std::to_string(kMax);
  {
    // Dies holding the producer mutex in its 5th reserve (4 records committed).
    Peer p1(args({"produce", ring.name(), "--count", "100", "--min", min, "--max", max, "--report"}),
            "locked.reserve:5");
    ASSERT_EQ(p1.wait().signal, SIGKILL);
  }
  {
    // Gets EOWNERDEAD and dies inside the repair, before pthread_mutex_consistent.
    Peer p2(args({"produce", ring.name(), "--start", "4", "--count", "10", "--min", min, "--max", max, "--report"}),
            "locked.repair:1");
    const Exit e = p2.wait();
    ASSERT_EQ(e.signal, SIGKILL) << "the repair crash point did not fire: " << e.describe();
    EXPECT_EQ(count_lines(p2.drain(std::chrono::milliseconds(500)), "sent"), 0);
  }
  EXPECT_EQ(raw.recoveries(), 0u);
  Peer p3(args({"produce", ring.name(), "--start", "4", "--count", "10", "--min", min, "--max", max}));
  std::string l;
  LIVE_EXPECT_LINE(p3, "done", 5000, l);
  EXPECT_EQ(field(l, 1), SHMRING_OK) << "the third producer must get EOWNERDEAD again and recover: " << l;
  EXPECT_TRUE(p3.wait().exited);
  EXPECT_EQ(raw.recoveries(), 1u);
  Received got;
  const int rc = drain_into(cons.get(), &got);
  ASSERT_TRUE(got.error.empty()) << got.error;
  EXPECT_EQ(rc, SHMRING_EPEERGONE);
  EXPECT_EQ(got.count[1], 14u);
}

TEST_P(RepairCrash, ConsumerSideThirdProcessRecovers) {
  skip_without_hooks();
  TestRing ring("repair_c", Kind::locked, GetParam().wait, 4096);
  ASSERT_EQ(ring.create_result(), Errc::ok);
  RawHeader raw(ring.name());
  Handle prod;
  ASSERT_EQ(prod.open(ring.name(), SHMRING_PRODUCER), SHMRING_OK);
  for (std::uint64_t seq = 0; seq < 20; ++seq) {
    const std::uint32_t len = record_len(1, seq, kMin, kMax);
    void* buf = nullptr;
    ASSERT_EQ(shmring_reserve(prod.get(), len, &buf, 0), SHMRING_OK);
    fill_record(1, seq, buf, len);
    ASSERT_EQ(shmring_commit(prod.get(), len), SHMRING_OK);
  }
  const std::string min = std::to_string(kMin), max = std::to_string(kMax);
  {
    // Dies holding the consumer mutex, having peeked its 3rd record (seq 2).
    Peer c1(args({"consume", ring.name(), "--min", min, "--max", max, "--report"}), "locked.peek:3");
    ASSERT_EQ(c1.wait().signal, SIGKILL);
  }
  {
    Peer c2(args({"consume", ring.name(), "--start", "2", "--min", min, "--max", max, "--report"}),
            "locked.repair:1");
    const Exit e = c2.wait();
    ASSERT_EQ(e.signal, SIGKILL) << "the repair crash point did not fire: " << e.describe();
    EXPECT_EQ(count_lines(c2.drain(std::chrono::milliseconds(500)), "got"), 0);
  }
  EXPECT_EQ(raw.recoveries(), 0u);
  Peer c3(args({"consume", ring.name(), "--start", "2", "--min", min, "--max", max, "--timeout-ms", "5000"}));
  std::string l;
  LIVE_EXPECT_LINE(c3, "opened", 5000, l);
  ASSERT_EQ(l, "opened 0");
  prod.reset();
  LIVE_EXPECT_LINE(c3, "done", 5000, l);
  EXPECT_EQ(field(l, 1), SHMRING_EPEERGONE) << l;
  EXPECT_EQ(field(l, 2), 18) << "seq 2..19: the in-flight record again, nothing lost";
  const Exit e3 = c3.wait();
  EXPECT_TRUE(e3.exited && e3.code == 0) << e3.describe() << ::testing::PrintToString(c3.history());
  EXPECT_EQ(raw.recoveries(), 1u);
}

INSTANTIATE_TEST_SUITE_P(Locked, RepairCrash,
                         ::testing::Values(KW{Kind::locked, WaitStrategy::futex}, KW{Kind::locked, WaitStrategy::sem}),
                         kw_name);

}  // namespace
}  // namespace shmring::live
