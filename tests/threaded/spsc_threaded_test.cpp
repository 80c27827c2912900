// The stress oracle with a producer thread and a consumer thread in one
// process (no fork), so ThreadSanitizer can watch it: `ctest -L threaded`
// under -DSHMRING_SANITIZER=thread.
//
// Two ways of attaching:
//  - cpp / c faces: each thread opens its own handle, as two processes would.
//    Each open maps the object separately, so the shared words sit at two
//    virtual addresses; TSan then checks each handle's own state but cannot
//    relate the two sides' accesses.
//  - endpoint face: internal endpoints sharing ONE mapping, so every shared
//    word and record byte has one address and TSan checks the ring's actual
//    acquire/release pairs (P-R1/C-A1, C-R1/P-A1): a missing release or
//    acquire shows up as a data race on the payload.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "shmring/ring.hpp"
#include "support/stress.hpp"
#include "support/test_support.hpp"

namespace shmring::test {
namespace {

struct ThCase {
  const char* name;
  std::size_t capacity;
  std::uint32_t min_len;
  std::uint32_t max_len;  // 0: max_record
  Face face;
  Mode mode;
  std::uint64_t count;  // at scale 1.0
  std::uint32_t batch = 16;
};

void PrintTo(const ThCase& k, std::ostream* os) { *os << k.name; }

class ThreadedStress : public ::testing::TestWithParam<ThCase> {};

TEST_P(ThreadedStress, NothingLostDuplicatedReorderedOrTorn) {
  const ThCase& k = GetParam();
  StressParams p;
  p.ring = unique_ring_name();
  p.count = scaled(k.count, 5'000);
  p.min_len = k.min_len;
  p.max_len = k.max_len;
  p.face = k.face;
  p.mode = k.mode;
  p.batch = k.batch;
  p.seed = 0x51ed ^ k.capacity;
  p.call_timeout = std::chrono::seconds(30);
  ShmGuard guard(p.ring);
  Config cfg;
  cfg.capacity = k.capacity;
  ASSERT_EQ(create(p.ring, cfg), Errc::ok) << last_error_message();

  StressOutcome prod, cons;
  if (k.face == Face::endpoint) {
    EndpointPair pair;
    ASSERT_EQ(open_endpoint_pair(p.ring, &pair), Errc::ok) << last_error_message();
    std::thread consumer([&] { cons = consume(p, *pair.consumer); });
    std::thread producer([&] { prod = produce(p, *pair.producer); });
    producer.join();
    consumer.join();
  } else {
    std::thread consumer([&] { cons = open_and_consume(p); });
    std::thread producer([&] { prod = open_and_produce(p); });
    producer.join();
    consumer.join();
  }
  EXPECT_EQ(prod.error, "");
  EXPECT_EQ(cons.error, "");
  EXPECT_EQ(prod.records, p.count);
  EXPECT_EQ(cons.records, p.count);
  EXPECT_EQ(prod.bytes, cons.bytes);
}

constexpr std::size_t k4K = 4096;
constexpr std::size_t k1M = std::size_t{1} << 20;

INSTANTIATE_TEST_SUITE_P(
    Spsc, ThreadedStress,
    ::testing::Values(
        ThCase{"endpoint_zero_copy_4KiB_len_1_max", k4K, 1, 0, Face::endpoint, Mode::zero_copy, 300'000},
        ThCase{"endpoint_zero_copy_1MiB_len_1_4096", k1M, 1, 4096, Face::endpoint, Mode::zero_copy, 1'000'000},
        ThCase{"endpoint_batched_4KiB_len_1_max", k4K, 1, 0, Face::endpoint, Mode::batched, 200'000, 3},
        ThCase{"endpoint_batched_64KiB_len_1_256", std::size_t{1} << 16, 1, 256, Face::endpoint, Mode::batched,
               1'000'000, 64},
        ThCase{"endpoint_send_recv_4KiB_len_1_max", k4K, 1, 0, Face::endpoint, Mode::copy, 200'000},
        ThCase{"cpp_zero_copy_4KiB_len_1_max", k4K, 1, 0, Face::cpp, Mode::zero_copy, 200'000},
        ThCase{"cpp_batched_1MiB_len_1_4096", k1M, 1, 4096, Face::cpp, Mode::batched, 500'000, 32},
        ThCase{"cpp_send_recv_1MiB_len_1_4096", k1M, 1, 4096, Face::cpp, Mode::copy, 500'000},
        ThCase{"c_zero_copy_4KiB_len_1_max", k4K, 1, 0, Face::c, Mode::zero_copy, 200'000},
        ThCase{"c_batched_4KiB_len_1_max", k4K, 1, 0, Face::c, Mode::batched, 200'000, 5},
        ThCase{"c_send_recv_64KiB_len_0_64", std::size_t{1} << 16, 0, 64, Face::c, Mode::copy, 500'000}),
    [](const ::testing::TestParamInfo<ThCase>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace shmring::test
