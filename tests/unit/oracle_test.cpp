// The stress tests are only as good as their oracle: show that the payload
// checker rejects a lost, duplicated, reordered, resized or torn record, and
// that the fork helper reports failures, crashes and hangs.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "support/payload.hpp"
#include "support/test_support.hpp"

namespace shmring::test {
namespace {

constexpr std::uint64_t kSeed = 42;

std::vector<unsigned char> make(std::uint64_t seq, std::size_t len) {
  std::vector<unsigned char> v(len);
  fill_record(kSeed, seq, v.data(), len);
  return v;
}

TEST(Oracle, AcceptsEveryGoodLength) {
  std::string why;
  for (std::size_t len = 0; len <= 300; ++len) {
    auto v = make(7, len);
    EXPECT_TRUE(check_record(kSeed, 7, len, v.data(), len, &why)) << len << ": " << why;
  }
}

TEST(Oracle, LengthsAreDeterministicAndInRange) {
  std::uint32_t lo = 5000, hi = 0;
  for (std::uint64_t s = 0; s < 100000; ++s) {
    const auto l = record_length(kSeed, s, 1, 4096);
    ASSERT_EQ(l, record_length(kSeed, s, 1, 4096));
    lo = std::min(lo, l);
    hi = std::max(hi, l);
  }
  EXPECT_EQ(lo, 1u);
  EXPECT_EQ(hi, 4096u);
}

TEST(Oracle, RejectsLostRecord) {
  std::string why;
  auto v = make(8, 100);  // seq 7 was lost
  EXPECT_FALSE(check_record(kSeed, 7, 100, v.data(), v.size(), &why));
  EXPECT_NE(why.find("lost"), std::string::npos) << why;
}

TEST(Oracle, RejectsDuplicateOrReorderedRecord) {
  std::string why;
  auto v = make(6, 100);
  EXPECT_FALSE(check_record(kSeed, 7, 100, v.data(), v.size(), &why));
  EXPECT_NE(why.find("duplicated"), std::string::npos) << why;
}

TEST(Oracle, RejectsShortRecordsOfAnotherSeq) {
  std::string why;
  int rejected = 0;
  for (std::size_t len = 1; len < kFramedMin; ++len) {
    auto v = make(8, len);
    rejected += check_record(kSeed, 7, len, v.data(), len, &why) ? 0 : 1;
  }
  EXPECT_EQ(rejected, static_cast<int>(kFramedMin) - 1);
}

TEST(Oracle, RejectsWrongLength) {
  std::string why;
  auto v = make(7, 100);
  EXPECT_FALSE(check_record(kSeed, 7, 101, v.data(), v.size(), &why));
  EXPECT_FALSE(check_record(kSeed, 7, 100, v.data(), 99, &why));
}

TEST(Oracle, RejectsEveryFlippedByte) {
  std::string why;
  for (std::size_t len : {1u, 5u, 23u, 24u, 25u, 64u, 1000u}) {
    auto good = make(3, len);
    for (std::size_t i = 0; i < len; ++i) {
      auto v = good;
      v[i] ^= 0x10;
      EXPECT_FALSE(check_record(kSeed, 3, len, v.data(), len, &why)) << "len " << len << " byte " << i;
    }
  }
}

TEST(Oracle, RejectsTornRecord) {
  // The front of seq 9 over the back of seq 5 (a reader that saw a stale lap).
  std::string why;
  auto v = make(9, 512);
  auto old = make(5, 512);
  std::memcpy(v.data() + 256, old.data() + 256, 256);
  EXPECT_FALSE(check_record(kSeed, 9, 512, v.data(), v.size(), &why));
  EXPECT_NE(why.find("checksum"), std::string::npos) << why;
}

TEST(Oracle, ChildSuccessAndFailureAreReported) {
  auto ok = run_in_child([] { return std::string(); }, std::chrono::seconds(30));
  EXPECT_TRUE(ok.ok()) << ok.describe();
  auto bad = run_in_child([] { return std::string("it broke"); }, std::chrono::seconds(30));
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_EQ(bad.message, "it broke");
}

TEST(Oracle, ChildCrashIsReported) {
  auto r = run_in_child(
      [] {
        ::raise(SIGKILL);
        return std::string();
      },
      std::chrono::seconds(30));
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(r.exited);
  EXPECT_EQ(r.signal, SIGKILL);
}

TEST(Oracle, HungChildIsKilledAtItsDeadline) {
  auto r = run_in_child(
      [] {
        ::pause();  // waits for a signal that never comes
        return std::string();
      },
      std::chrono::seconds(1));
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(r.watchdog || r.signal == SIGALRM) << r.describe();
}

TEST(Oracle, RingNamesAreUniqueAndValid) {
  const auto a = unique_ring_name();
  const auto b = unique_ring_name();
  EXPECT_NE(a, b);
  EXPECT_EQ(a.rfind("/" + name_prefix(), 0), 0u) << a;
  EXPECT_NE(a.find("Oracle.RingNamesAreUniqueAndValid"), std::string::npos) << a;
}

TEST(Oracle, GuardRemovesTheObject) {
  const auto name = unique_ring_name();
  {
    ShmGuard g(name);
    const char b[8] = {};
    ASSERT_TRUE(::access(shm_path(name).c_str(), F_OK) != 0);
    FILE* f = std::fopen(shm_path(name).c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fwrite(b, 1, sizeof b, f);
    std::fclose(f);
    ASSERT_EQ(::access(shm_path(name).c_str(), F_OK), 0);
  }
  EXPECT_NE(::access(shm_path(name).c_str(), F_OK), 0);
}

}  // namespace
}  // namespace shmring::test
