// The wake/sleep protocol in one process, producer thread + consumer thread,
// for ThreadSanitizer (label `threaded`). Both sides are internal endpoints
// reading and writing the shared words through ONE mapping, so TSan relates
// the two sides' accesses (two mappings of one object would be two unrelated
// address ranges to it).
//
//   ThreadedWake.SleepAndWakeBothDirections
//     a 4 KiB ring, records of 24..512 bytes: the producer blocks on the full
//     ring (space_wait) as often as the consumer on the empty one
//     (data_wait); every 8th record the producer first waits until the
//     consumer announced that it sleeps, so the sleep path runs for certain.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "endpoint.hpp"  // internal: endpoints on a shared mapping
#include "live_support.hpp"
#include "record.hpp"
#include "variants.hpp"

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define LIVE_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define LIVE_TSAN 1
#endif

#if defined(LIVE_TSAN)
// The locked kind locks with pthread_mutex_clocklock (CLOCK_MONOTONIC),
// which ThreadSanitizer before LLVM 15 does not intercept: it then sees
// only the unlock and reports "unlock of an unlocked mutex". Each mutex is
// used by one thread here (one producer, one consumer), and the data is
// published through the ring's atomic indices, so nothing is lost by
// suppressing that one report kind in the lock wrapper.
extern "C" const char* __tsan_default_suppressions() { return "mutex:*RobustLock::unlock*\n"; }
#endif

namespace shmring::live {
namespace {

constexpr std::int64_t kMs = 1'000'000;

struct Pair {
  std::unique_ptr<detail::Endpoint> prod, cons;
  ~Pair() {
    cons.reset();  // reads through the producer's mapping
    prod.reset();
  }
};

Errc open_pair(const std::string& name, Kind kind, Pair* out) {
  detail::OpenedSegment pseg, cseg;
  if (Errc e = detail::open_segment(name, std::chrono::seconds(1), &pseg); e != Errc::ok) return e;
  if (Errc e = detail::open_segment(name, std::chrono::seconds(1), &cseg); e != Errc::ok) return e;
  const bool exclusive = kind == Kind::spsc;
  detail::Attachment patt;
  if (Errc e = patt.attach(pseg.hdr, pseg.name, Role::producer, exclusive); e != Errc::ok) return e;
  Errc err = Errc::ok;
  out->prod = kind == Kind::spsc ? detail::make_spsc_endpoint(std::move(pseg), std::move(patt), Role::producer, &err)
                                 : detail::make_locked_endpoint(std::move(pseg), std::move(patt), Role::producer, &err);
  if (!out->prod) return err;
  // The consumer keeps its own mapping alive but works through the producer's.
  cseg.hdr = out->prod->segment().hdr;
  cseg.data = out->prod->segment().data;
  detail::Attachment catt;
  if (Errc e = catt.attach(cseg.hdr, cseg.name, Role::consumer, exclusive); e != Errc::ok) return e;
  out->cons = kind == Kind::spsc ? detail::make_spsc_endpoint(std::move(cseg), std::move(catt), Role::consumer, &err)
                                 : detail::make_locked_endpoint(std::move(cseg), std::move(catt), Role::consumer, &err);
  return out->cons ? Errc::ok : err;
}

class ThreadedWake : public ::testing::TestWithParam<KW> {};

TEST_P(ThreadedWake, SleepAndWakeBothDirections) {
  const KW v = GetParam();
  TestRing ring("thr", v.kind, v.wait, 4096);
  ASSERT_EQ(ring.create_result(), Errc::ok) << last_error_message();
  // A lost wake-up must not be rescued by the liveness cut of each sleep
  // (50 ms by default): with 20 s it runs into the 2 s watchdog.
  ASSERT_TRUE(RawHeader(ring.name()).set_liveness_ms(20'000));
  Pair pair;
  ASSERT_EQ(open_pair(ring.name(), v.kind, &pair), Errc::ok) << last_error_message();
  detail::Header* h = pair.prod->segment().hdr;
  const std::uint64_t count = under_sanitizer() ? scaled(40'000, 2'000) : scaled(10'000, 2'000);
  constexpr std::uint32_t kMin = 24, kMax = 512;
  std::atomic<bool> stop{false};
  std::string prod_error, cons_error;
  std::uint64_t received = 0;

  std::thread consumer([&] {
    for (std::uint64_t i = 0; i < count; ++i) {
      const std::byte* p = nullptr;
      std::size_t n = 0;
      const Errc e = pair.cons->peek(&p, &n, 2'000 * kMs);  // watchdog: 2 s
      if (e != Errc::ok) {
        cons_error = "record " + std::to_string(i) + ": peek " + to_string(e);
        break;
      }
      RecordView rv;
      std::string why;
      if (!check_record(p, n, kMin, kMax, &rv, &why) || rv.seq != i) {
        cons_error = why.empty() ? "seq " + std::to_string(rv.seq) + " where " + std::to_string(i) + " was due" : why;
        break;
      }
      if (Errc r = pair.cons->release(true); r != Errc::ok) {
        cons_error = std::string("release ") + to_string(r);
        break;
      }
      ++received;
    }
    stop.store(true);
  });

  std::thread producer([&] {
    for (std::uint64_t seq = 0; seq < count && !stop.load(); ++seq) {
      if (seq % 8 == 0) {
        // Wait until the consumer took everything and announced a sleep.
        const std::int64_t deadline = now_ns() + 2'000 * kMs;
        while (!(RawHeader::load(h->cons.head) == RawHeader::load(h->prod.tail) &&
                 RawHeader::load(h->data_wait.waiters) != 0)) {
          if (stop.load()) return;
          if (now_ns() > deadline) {
            prod_error = "the consumer never went to sleep before record " + std::to_string(seq);
            return;
          }
          std::this_thread::yield();
        }
      }
      const std::uint32_t len = record_len(1, seq, kMin, kMax);
      std::byte* buf = nullptr;
      const Errc e = pair.prod->reserve(len, &buf, 2'000 * kMs);  // watchdog: 2 s
      if (e != Errc::ok) {
        prod_error = "record " + std::to_string(seq) + ": reserve " + to_string(e);
        return;
      }
      fill_record(1, seq, buf, len);
      if (Errc c = pair.prod->commit(len, true); c != Errc::ok) {
        prod_error = std::string("commit ") + to_string(c);
        return;
      }
    }
  });
  producer.join();
  consumer.join();
  EXPECT_TRUE(prod_error.empty()) << prod_error;
  EXPECT_TRUE(cons_error.empty()) << cons_error;
  EXPECT_EQ(received, count);
}

INSTANTIATE_TEST_SUITE_P(Sleeping, ThreadedWake,
                         ::testing::Values(KW{Kind::spsc, WaitStrategy::futex}, KW{Kind::spsc, WaitStrategy::sem},
                                           KW{Kind::locked, WaitStrategy::futex}, KW{Kind::locked, WaitStrategy::sem}),
                         kw_name);

}  // namespace
}  // namespace shmring::live
