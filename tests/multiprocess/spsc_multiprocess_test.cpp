// A forked producer and a forked consumer, separate processes that each
// open the ring by name, moving millions of oracle records (sequence number,
// length and checksum in each): nothing may be lost, duplicated, reordered
// or torn. Every blocking call inside has a timeout and every child a
// deadline, so a bug fails the test instead of hanging it.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "shmring/ring.hpp"
#include "support/stress.hpp"
#include "support/test_support.hpp"

namespace shmring::test {
namespace {

using namespace std::chrono_literals;

// Below the test's watchdog (880 s) and ctest's TIMEOUT (900 s), so the
// children are killed and reported before anything kills the test. Generous:
// the 10-million-record 4 KiB run takes ~25 s on an idle machine but several
// minutes when other jobs share the two CPUs.
constexpr auto kChildDeadline = std::chrono::seconds(840);

struct MpCase {
  const char* name;
  std::size_t capacity;
  std::uint32_t min_len;
  std::uint32_t max_len;  // 0: the ring's max_record
  Face face;
  Mode mode;
  std::uint64_t count;  // at scale 1.0
  std::uint32_t batch = 16;
};

void PrintTo(const MpCase& k, std::ostream* os) { *os << k.name; }

std::string report(const char* who, const StressOutcome& o) {
  if (!o.error.empty()) return o.error;
  const double s = static_cast<double>(o.elapsed_ns) / 1e9;
  std::printf("  %s: %llu records, %.1f MiB in %.2f s (%.2f M records/s, %.0f MiB/s)\n", who,
              static_cast<unsigned long long>(o.records), static_cast<double>(o.bytes) / (1 << 20), s,
              static_cast<double>(o.records) / s / 1e6, static_cast<double>(o.bytes) / (1 << 20) / s);
  std::fflush(stdout);
  return "";
}

// Creates the ring, forks the consumer and the producer, waits for both.
void run_pair(const StressParams& params, std::size_t capacity) {
  ShmGuard guard(params.ring);
  Config cfg;
  cfg.capacity = capacity;
  ASSERT_EQ(create(params.ring, cfg), Errc::ok) << last_error_message();
  std::printf("  %s: %llu records, lengths %u..%s, ring %zu bytes\n", params.ring.c_str(),
              static_cast<unsigned long long>(params.count), params.min_len,
              params.max_len ? std::to_string(params.max_len).c_str() : "max_record", capacity);
  Child consumer([&] { return report("consumer", open_and_consume(params)); }, kChildDeadline);
  Child producer([&] { return report("producer", open_and_produce(params)); }, kChildDeadline);
  ASSERT_GT(consumer.pid(), 0);
  ASSERT_GT(producer.pid(), 0);
  const ChildResult c = consumer.wait();
  const ChildResult p = producer.wait();
  EXPECT_TRUE(p.ok()) << "producer: " << p.describe();
  EXPECT_TRUE(c.ok()) << "consumer: " << c.describe();
}

class MultiprocessStress : public ::testing::TestWithParam<MpCase> {};

TEST_P(MultiprocessStress, NothingLostDuplicatedReorderedOrTorn) {
  const MpCase& k = GetParam();
  StressParams p;
  p.ring = unique_ring_name();
  p.count = scaled(k.count, 20'000);
  p.min_len = k.min_len;
  p.max_len = k.max_len;
  p.face = k.face;
  p.mode = k.mode;
  p.batch = k.batch;
  p.seed = 0x9e3779b9ULL ^ k.capacity ^ (static_cast<std::uint64_t>(k.mode) << 40);
  run_pair(p, k.capacity);
}

constexpr std::size_t k4K = 4096;
constexpr std::size_t k16M = std::size_t{16} << 20;

INSTANTIATE_TEST_SUITE_P(
    Spsc, MultiprocessStress,
    ::testing::Values(
        // The headline run: 10 million records at scale 1.
        MpCase{"cpp_zero_copy_16MiB_len_1_4096", k16M, 1, 4096, Face::cpp, Mode::zero_copy, 10'000'000},
        // Lengths up to max_record through a 4 KiB ring: two or three records
        // fit, so every record is a hand-off and the wrap-around is constant.
        // 10 million as the issue asks: every hand-off waits for the peer to
        // be scheduled, so on this 2-vCPU machine a record costs ~2.5 us when
        // the machine is otherwise idle (CI), ~25 s in all; under heavy
        // load (70 us a record) lower SHMRING_STRESS_SCALE.
        MpCase{"cpp_zero_copy_4KiB_len_1_max", k4K, 1, 0, Face::cpp, Mode::zero_copy, 10'000'000},
        // The same through the C API, through send/recv, and batched.
        MpCase{"c_zero_copy_16MiB_len_1_4096", k16M, 1, 4096, Face::c, Mode::zero_copy, 1'000'000},
        MpCase{"c_zero_copy_4KiB_len_1_max", k4K, 1, 0, Face::c, Mode::zero_copy, 300'000},
        MpCase{"cpp_send_recv_16MiB_len_1_4096", k16M, 1, 4096, Face::cpp, Mode::copy, 1'000'000},
        MpCase{"c_send_recv_4KiB_len_1_max", k4K, 1, 0, Face::c, Mode::copy, 300'000},
        MpCase{"cpp_batched_16MiB_len_1_4096", k16M, 1, 4096, Face::cpp, Mode::batched, 1'000'000, 32},
        MpCase{"cpp_batched_4KiB_len_1_max", k4K, 1, 0, Face::cpp, Mode::batched, 300'000, 3},
        MpCase{"c_batched_64KiB_len_1_64", std::size_t{1} << 16, 1, 64, Face::c, Mode::batched, 1'000'000, 100},
        // Tiny records: the per-record overhead dominates.
        MpCase{"cpp_zero_copy_64KiB_len_0_16", std::size_t{1} << 16, 0, 16, Face::cpp, Mode::zero_copy, 1'000'000}),
    [](const ::testing::TestParamInfo<MpCase>& info) { return std::string(info.param.name); });

// A producer process that finished and exited before the consumer process
// started: its committed records wait in the ring and all arrive.
TEST(Multiprocess, RecordsOutliveTheProducerProcess) {
  StressParams p;
  p.ring = unique_ring_name();
  p.count = 3000;  // about 6 MB: fits in the 16 MiB ring without a consumer
  p.min_len = 1;
  p.max_len = 4096;
  ShmGuard guard(p.ring);
  Config cfg;
  cfg.capacity = k16M;
  ASSERT_EQ(create(p.ring, cfg), Errc::ok);
  p.call_timeout = 1ms;  // the producer must never have to wait
  const ChildResult prod = run_in_child([&] { return open_and_produce(p).error; }, 60s);
  ASSERT_TRUE(prod.ok()) << prod.describe();
  p.call_timeout = 1ms;  // everything is already there
  const ChildResult cons = run_in_child([&] { return open_and_consume(p).error; }, 60s);
  EXPECT_TRUE(cons.ok()) << cons.describe();
}

}  // namespace
}  // namespace shmring::test
