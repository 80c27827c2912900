// Every entry point of the C API (include/shmring/shmring.h): normal use,
// NULL and out-of-range arguments, the wrong role, try/timeout outcomes,
// too big, batches, strerror for every code and last_error naming the ring.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "shmring/shmring.h"
#include "support/payload.hpp"
#include "support/shm_raw.hpp"
#include "support/test_support.hpp"

extern "C" int shmring_test_c_roundtrip(const char* name);
extern "C" int shmring_test_create_with_raw_enums(const char* name, int kind, int wait);
extern "C" int shmring_test_open_with_raw_role(const char* name, int role, shmring_t** out);

namespace shmring::test {
namespace {

shmring_config spsc_config(std::size_t capacity = 4096) {
  shmring_config c{};
  c.kind = SHMRING_SPSC;
  c.wait = SHMRING_WAIT_FUTEX;
  c.capacity = capacity;
  return c;
}

// A ring and both C handles.
class CApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    name_ = unique_ring_name();
    guard_.emplace(name_);
    const auto cfg = spsc_config();
    ASSERT_EQ(shmring_create(name_.c_str(), &cfg), SHMRING_OK) << shmring_last_error();
    ASSERT_EQ(shmring_open(name_.c_str(), SHMRING_PRODUCER, &p_), SHMRING_OK) << shmring_last_error();
    ASSERT_EQ(shmring_open(name_.c_str(), SHMRING_CONSUMER, &c_), SHMRING_OK) << shmring_last_error();
  }
  void TearDown() override {
    shmring_close(c_);
    shmring_close(p_);
  }

  int send_record(std::uint64_t seq, std::size_t len, std::int64_t timeout_ns = 0) {
    std::vector<unsigned char> b(len);
    fill_record(9, seq, b.data(), len);
    return shmring_send(p_, b.data(), len, timeout_ns);
  }
  std::string recv_record(std::uint64_t seq, std::size_t len) {
    std::vector<unsigned char> b(4096);
    std::size_t n = 0;
    const int rc = shmring_recv(c_, b.data(), b.size(), &n, 0);
    if (rc != SHMRING_OK) return std::string("recv: ") + shmring_strerror(rc);
    std::string why;
    return check_record(9, seq, len, b.data(), n, &why) ? "" : why;
  }

  std::string name_;
  std::optional<ShmGuard> guard_;
  shmring_t* p_ = nullptr;
  shmring_t* c_ = nullptr;
};

TEST(CApi, CompilesAndRunsFromC) {
  const auto name = unique_ring_name();
  ShmGuard guard(name);
  EXPECT_EQ(shmring_test_c_roundtrip(name.c_str()), 0) << "failed check at c_api_roundtrip.c line";
}

TEST_F(CApiTest, ZeroCopyRoundTrip) {
  EXPECT_EQ(shmring_max_record(p_), 2040u);
  EXPECT_EQ(shmring_max_record(c_), 2040u);
  void* w = nullptr;
  ASSERT_EQ(shmring_reserve(p_, 300, &w, 0), SHMRING_OK);
  ASSERT_NE(w, nullptr);
  fill_record(9, 0, w, 300);
  const void* r = reinterpret_cast<const void*>(0x1);
  std::size_t n = 77;
  EXPECT_EQ(shmring_peek(c_, &r, &n, 0), SHMRING_EWOULDBLOCK);  // not committed yet
  EXPECT_EQ(r, nullptr);
  EXPECT_EQ(n, 0u);
  ASSERT_EQ(shmring_commit(p_, 300), SHMRING_OK);
  ASSERT_EQ(shmring_peek(c_, &r, &n, 0), SHMRING_OK);
  std::string why;
  EXPECT_TRUE(check_record(9, 0, 300, r, n, &why)) << why;
  const void* r2 = nullptr;
  std::size_t n2 = 0;
  ASSERT_EQ(shmring_peek(c_, &r2, &n2, 0), SHMRING_OK);  // same record again
  EXPECT_EQ(r2, r);
  EXPECT_EQ(n2, 300u);
  ASSERT_EQ(shmring_release(c_), SHMRING_OK);
  EXPECT_EQ(shmring_peek(c_, &r, &n, 0), SHMRING_EWOULDBLOCK);
}

TEST_F(CApiTest, SendRecvRoundTrip) {
  // Three in flight at a time (they fit in the 4 KiB ring).
  for (std::uint64_t s = 0; s < 53; ++s) {
    if (s < 50) {
      ASSERT_EQ(send_record(s, s * 13 % 700), SHMRING_OK) << s;
    }
    if (s >= 3) {
      ASSERT_EQ(recv_record(s - 3, (s - 3) * 13 % 700), "") << s - 3;
    }
  }
  std::size_t n = 5;
  char b[8];
  EXPECT_EQ(shmring_recv(c_, b, sizeof b, &n, 0), SHMRING_EWOULDBLOCK);
  EXPECT_EQ(n, 0u);
  // Zero-length records, with and without a buffer.
  EXPECT_EQ(shmring_send(p_, nullptr, 0, 0), SHMRING_OK);
  EXPECT_EQ(shmring_recv(c_, nullptr, 0, &n, 0), SHMRING_OK);
  EXPECT_EQ(n, 0u);
}

TEST_F(CApiTest, EmptyAndFullWithTimeouts) {
  const void* r = nullptr;
  std::size_t n = 0;
  EXPECT_EQ(shmring_peek(c_, &r, &n, 0), SHMRING_EWOULDBLOCK);
  auto t0 = now_ns();
  EXPECT_EQ(shmring_peek(c_, &r, &n, 5'000'000), SHMRING_ETIMEDOUT);
  EXPECT_GE(now_ns() - t0, 5'000'000);
  char b[16];
  EXPECT_EQ(shmring_recv(c_, b, sizeof b, &n, 1'000'000), SHMRING_ETIMEDOUT);
  int sent = 0;
  while (send_record(static_cast<std::uint64_t>(sent), 8) == SHMRING_OK) ++sent;
  EXPECT_EQ(sent, 256);
  EXPECT_EQ(send_record(999, 8, 0), SHMRING_EWOULDBLOCK);
  t0 = now_ns();
  EXPECT_EQ(send_record(999, 8, 5'000'000), SHMRING_ETIMEDOUT);
  EXPECT_GE(now_ns() - t0, 5'000'000);
  void* w = reinterpret_cast<void*>(0x1);
  EXPECT_EQ(shmring_reserve(p_, 8, &w, 0), SHMRING_EWOULDBLOCK);
  EXPECT_EQ(w, nullptr);
  ASSERT_EQ(recv_record(0, 8), "");
  EXPECT_EQ(send_record(256, 8, 0), SHMRING_OK);
  for (int s = 1; s <= 256; ++s) ASSERT_EQ(recv_record(static_cast<std::uint64_t>(s), 8), "") << s;
}

TEST_F(CApiTest, TooBigWritesNothing) {
  const std::size_t max = shmring_max_record(p_);
  void* w = reinterpret_cast<void*>(0x1);
  EXPECT_EQ(shmring_reserve(p_, max + 1, &w, 0), SHMRING_ETOOBIG);
  EXPECT_EQ(w, nullptr);
  EXPECT_EQ(shmring_reserve(p_, SIZE_MAX, &w, -1), SHMRING_ETOOBIG);  // even "forever" returns
  std::vector<char> big(max + 1, 'x');
  EXPECT_EQ(shmring_send(p_, big.data(), big.size(), 0), SHMRING_ETOOBIG);
  EXPECT_EQ(shmring_commit(p_, max + 1), SHMRING_EINVAL);
  EXPECT_EQ(shmring_flush(p_), SHMRING_OK);
  const void* r = nullptr;
  std::size_t n = 0;
  EXPECT_EQ(shmring_peek(c_, &r, &n, 0), SHMRING_EWOULDBLOCK);
  RawMap raw(name_);
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(raw.tail(), 0u);
  EXPECT_EQ(shmring_send(p_, big.data(), max, 0), SHMRING_OK);  // the largest fits
  ASSERT_EQ(shmring_peek(c_, &r, &n, 0), SHMRING_OK);
  EXPECT_EQ(n, max);
}

TEST_F(CApiTest, RecvTooSmallKeepsTheRecordAndReportsItsSize) {
  ASSERT_EQ(send_record(4, 500), SHMRING_OK);
  std::vector<unsigned char> small(499);
  std::size_t n = 0;
  EXPECT_EQ(shmring_recv(c_, small.data(), small.size(), &n, 0), SHMRING_ETOOBIG);
  EXPECT_EQ(n, 500u);
  n = 0;
  EXPECT_EQ(shmring_recv(c_, nullptr, 0, &n, 0), SHMRING_ETOOBIG);  // a size query
  EXPECT_EQ(n, 500u);
  const void* r = nullptr;
  ASSERT_EQ(shmring_peek(c_, &r, &n, 0), SHMRING_OK);
  EXPECT_EQ(n, 500u);
  EXPECT_EQ(recv_record(4, 500), "");
}

TEST_F(CApiTest, DeferredCommitsAndFlush) {
  void* w = nullptr;
  for (std::uint64_t s = 0; s < 5; ++s) {
    ASSERT_EQ(shmring_reserve(p_, 40, &w, 0), SHMRING_OK);
    fill_record(9, s, w, 40);
    ASSERT_EQ(shmring_commit_deferred(p_, 40), SHMRING_OK);
  }
  const void* r = nullptr;
  std::size_t n = 0;
  EXPECT_EQ(shmring_peek(c_, &r, &n, 0), SHMRING_EWOULDBLOCK);
  ASSERT_EQ(shmring_flush(p_), SHMRING_OK);
  for (std::uint64_t s = 0; s < 5; ++s) ASSERT_EQ(recv_record(s, 40), "") << s;
  // A plain commit publishes the deferred ones before it.
  for (std::uint64_t s = 5; s < 8; ++s) {
    ASSERT_EQ(shmring_reserve(p_, 40, &w, 0), SHMRING_OK);
    fill_record(9, s, w, 40);
    ASSERT_EQ(s < 7 ? shmring_commit_deferred(p_, 40) : shmring_commit(p_, 40), SHMRING_OK);
  }
  for (std::uint64_t s = 5; s < 8; ++s) ASSERT_EQ(recv_record(s, 40), "") << s;
}

TEST_F(CApiTest, DeferredReleasesAndFlush) {
  int sent = 0;
  while (send_record(static_cast<std::uint64_t>(sent), 8) == SHMRING_OK) ++sent;
  ASSERT_EQ(sent, 256);
  const void* r = nullptr;
  std::size_t n = 0;
  for (int s = 0; s < sent; ++s) {
    ASSERT_EQ(shmring_peek(c_, &r, &n, 0), SHMRING_OK);
    ASSERT_EQ(shmring_release_deferred(c_), SHMRING_OK);
  }
  EXPECT_EQ(shmring_peek(c_, &r, &n, 0), SHMRING_EWOULDBLOCK);
  EXPECT_EQ(send_record(256, 8), SHMRING_EWOULDBLOCK);  // no space handed back yet
  ASSERT_EQ(shmring_flush(c_), SHMRING_OK);
  EXPECT_EQ(send_record(256, 8), SHMRING_OK);
  EXPECT_EQ(recv_record(256, 8), "");
}

TEST_F(CApiTest, CallOrderAndRoleMistakesAreEinval) {
  void* w = nullptr;
  const void* r = nullptr;
  std::size_t n = 0;
  char b[8] = {};
  // Producer calls on the consumer handle and vice versa.
  EXPECT_EQ(shmring_reserve(c_, 8, &w, 0), SHMRING_EINVAL);
  EXPECT_EQ(shmring_commit(c_, 8), SHMRING_EINVAL);
  EXPECT_EQ(shmring_commit_deferred(c_, 8), SHMRING_EINVAL);
  EXPECT_EQ(shmring_send(c_, b, sizeof b, 0), SHMRING_EINVAL);
  EXPECT_EQ(shmring_peek(p_, &r, &n, 0), SHMRING_EINVAL);
  EXPECT_EQ(shmring_release(p_), SHMRING_EINVAL);
  EXPECT_EQ(shmring_release_deferred(p_), SHMRING_EINVAL);
  EXPECT_EQ(shmring_recv(p_, b, sizeof b, &n, 0), SHMRING_EINVAL);
  // Out of order.
  EXPECT_EQ(shmring_commit(p_, 0), SHMRING_EINVAL);
  EXPECT_EQ(shmring_release(c_), SHMRING_EINVAL);
  EXPECT_EQ(shmring_release_deferred(c_), SHMRING_EINVAL);
  ASSERT_EQ(shmring_reserve(p_, 8, &w, 0), SHMRING_OK);
  EXPECT_EQ(shmring_commit(p_, 9), SHMRING_EINVAL);  // more than reserved
  EXPECT_EQ(shmring_commit(p_, 8), SHMRING_OK);
  EXPECT_EQ(shmring_flush(p_), SHMRING_OK);
  EXPECT_EQ(shmring_flush(c_), SHMRING_OK);
  // The mistakes did not disturb the ring.
  ASSERT_EQ(shmring_peek(c_, &r, &n, 0), SHMRING_OK);
  EXPECT_EQ(n, 8u);
}

TEST_F(CApiTest, NullArgumentsAreEinval) {
  void* w = nullptr;
  const void* r = nullptr;
  std::size_t n = 0;
  char b[8] = {};
  EXPECT_EQ(shmring_reserve(nullptr, 8, &w, 0), SHMRING_EINVAL);
  EXPECT_EQ(shmring_reserve(p_, 8, nullptr, 0), SHMRING_EINVAL);
  EXPECT_EQ(shmring_commit(nullptr, 8), SHMRING_EINVAL);
  EXPECT_EQ(shmring_commit_deferred(nullptr, 8), SHMRING_EINVAL);
  EXPECT_EQ(shmring_peek(nullptr, &r, &n, 0), SHMRING_EINVAL);
  EXPECT_EQ(shmring_peek(c_, nullptr, &n, 0), SHMRING_EINVAL);
  EXPECT_EQ(shmring_peek(c_, &r, nullptr, 0), SHMRING_EINVAL);
  EXPECT_EQ(shmring_release(nullptr), SHMRING_EINVAL);
  EXPECT_EQ(shmring_release_deferred(nullptr), SHMRING_EINVAL);
  EXPECT_EQ(shmring_flush(nullptr), SHMRING_EINVAL);
  EXPECT_EQ(shmring_send(nullptr, b, 1, 0), SHMRING_EINVAL);
  EXPECT_EQ(shmring_send(p_, nullptr, 1, 0), SHMRING_EINVAL);
  EXPECT_EQ(shmring_recv(nullptr, b, sizeof b, &n, 0), SHMRING_EINVAL);
  EXPECT_EQ(shmring_recv(c_, nullptr, 8, &n, 0), SHMRING_EINVAL);
  EXPECT_EQ(shmring_recv(c_, b, sizeof b, nullptr, 0), SHMRING_EINVAL);
  EXPECT_EQ(shmring_max_record(nullptr), 0u);
  shmring_close(nullptr);  // a no-op
  const auto cfg = spsc_config();
  EXPECT_EQ(shmring_create(nullptr, &cfg), SHMRING_EINVAL);
  EXPECT_EQ(shmring_create(name_.c_str(), nullptr), SHMRING_EINVAL);
  EXPECT_EQ(shmring_unlink(nullptr), SHMRING_EINVAL);
  shmring_t* h = reinterpret_cast<shmring_t*>(0x1);
  EXPECT_EQ(shmring_open(nullptr, SHMRING_PRODUCER, &h), SHMRING_EINVAL);
  EXPECT_EQ(h, nullptr);
  EXPECT_EQ(shmring_open(name_.c_str(), SHMRING_PRODUCER, nullptr), SHMRING_EINVAL);
  // Nothing above touched the ring.
  EXPECT_EQ(shmring_peek(c_, &r, &n, 0), SHMRING_EWOULDBLOCK);
}

TEST(CApi, CreateRefusesBadConfigurations) {
  struct Case {
    const char* what;
    shmring_config cfg;
  };
  auto with = [](auto f) {
    shmring_config c = spsc_config();
    f(c);
    return c;
  };
  const std::vector<Case> cases = {
      {"capacity not a power of two", with([](shmring_config& c) { c.capacity = 5000; })},
      {"capacity 0", with([](shmring_config& c) { c.capacity = 0; })},
      {"slot_size on spsc", with([](shmring_config& c) { c.slot_size = 16; })},
      {"mode with setuid bit", with([](shmring_config& c) { c.mode = 04600; })},
  };
  for (const auto& k : cases) {
    SCOPED_TRACE(k.what);
    const auto name = unique_ring_name();
    ShmGuard guard(name);
    EXPECT_EQ(shmring_create(name.c_str(), &k.cfg), SHMRING_EINVAL);
    EXPECT_NE(std::string(shmring_last_error()).find(name), std::string::npos) << shmring_last_error();
    EXPECT_NE(::access(shm_path(name).c_str(), F_OK), 0);
  }
}

// Enum values outside the declared ones, passed from C: EINVAL, and no
// undefined behaviour in the library (UBSan builds check the latter).
TEST(CApi, OutOfRangeEnumsFromCAreEinval) {
  const auto name = unique_ring_name();
  ShmGuard guard(name);
  EXPECT_EQ(shmring_test_create_with_raw_enums(name.c_str(), 17, SHMRING_WAIT_FUTEX), SHMRING_EINVAL);
  EXPECT_EQ(shmring_test_create_with_raw_enums(name.c_str(), -1, SHMRING_WAIT_FUTEX), SHMRING_EINVAL);
  EXPECT_EQ(shmring_test_create_with_raw_enums(name.c_str(), SHMRING_SPSC, 17), SHMRING_EINVAL);
  EXPECT_NE(::access(shm_path(name).c_str(), F_OK), 0);
  ASSERT_EQ(shmring_test_create_with_raw_enums(name.c_str(), SHMRING_SPSC, SHMRING_WAIT_FUTEX), SHMRING_OK);
  shmring_t* h = reinterpret_cast<shmring_t*>(0x1);
  EXPECT_EQ(shmring_test_open_with_raw_role(name.c_str(), 7, &h), SHMRING_EINVAL);
  EXPECT_EQ(h, nullptr);
  EXPECT_EQ(shmring_test_open_with_raw_role(name.c_str(), SHMRING_CONSUMER, &h), SHMRING_OK);
  shmring_close(h);
}

TEST(CApi, CreateOpenUnlinkLifecycle) {
  const auto name = unique_ring_name();
  ShmGuard guard(name);
  const auto cfg = spsc_config(1 << 16);
  ASSERT_EQ(shmring_create(name.c_str(), &cfg), SHMRING_OK);
  shmring_t* p = nullptr;
  ASSERT_EQ(shmring_open(name.c_str(), SHMRING_PRODUCER, &p), SHMRING_OK);
  EXPECT_EQ(shmring_max_record(p), (1u << 15) - 8);
  ASSERT_EQ(shmring_unlink(name.c_str()), SHMRING_OK);
  EXPECT_EQ(shmring_unlink(name.c_str()), SHMRING_ENOENT);
  EXPECT_EQ(shmring_send(p, "abc", 3, 0), SHMRING_OK);  // still works
  shmring_close(p);
  shmring_t* c = nullptr;
  EXPECT_EQ(shmring_open(name.c_str(), SHMRING_CONSUMER, &c), SHMRING_ENOENT);
  EXPECT_NE(std::string(shmring_last_error()).find(name), std::string::npos) << shmring_last_error();
}

TEST(CApi, StrerrorHasADistinctTextForEveryCode) {
  const int codes[] = {SHMRING_OK,      SHMRING_EWOULDBLOCK, SHMRING_ETIMEDOUT, SHMRING_EPEERGONE,
                       SHMRING_EBUSY,   SHMRING_EEXIST,      SHMRING_ENOENT,    SHMRING_EPERM,
                       SHMRING_ECORRUPT, SHMRING_EVERSION,   SHMRING_ETOOBIG,   SHMRING_ERESET,
                       SHMRING_EINVAL,  SHMRING_ENOSPC,      SHMRING_ESYSTEM};
  // The codes themselves: 0 and -1 .. -14, all distinct.
  std::set<int> values(std::begin(codes), std::end(codes));
  EXPECT_EQ(values.size(), std::size(codes));
  EXPECT_EQ(*values.begin(), -14);
  EXPECT_EQ(*values.rbegin(), 0);
  std::set<std::string> texts;
  for (int c : codes) {
    const char* s = shmring_strerror(c);
    ASSERT_NE(s, nullptr) << c;
    EXPECT_GT(std::strlen(s), 3u) << c;
    texts.insert(s);
    // The C++ face says the same.
    EXPECT_EQ(make_error_code(static_cast<Errc>(c)).message(), s);
  }
  EXPECT_EQ(texts.size(), std::size(codes));
  for (int c : {1, -15, -100, 12345, INT32_MIN, INT32_MAX}) {
    const char* s = shmring_strerror(c);
    ASSERT_NE(s, nullptr) << c;
    EXPECT_GT(std::strlen(s), 0u);
    EXPECT_EQ(texts.count(s), 0u) << "unknown code " << c << " reads like a known one: " << s;
  }
}

TEST(CApi, LastErrorNamesTheRingAndTheCause) {
  const auto name = unique_ring_name();
  shmring_t* h = nullptr;
  ASSERT_EQ(shmring_open(name.c_str(), SHMRING_PRODUCER, &h), SHMRING_ENOENT);
  const std::string msg = shmring_last_error();
  EXPECT_NE(msg.find(name), std::string::npos) << msg;
  EXPECT_NE(msg.find("shmring"), std::string::npos) << msg;
  // A different failure replaces the message.
  const auto bad = spsc_config(1000);
  const auto name2 = unique_ring_name();
  ShmGuard guard(name2);
  ASSERT_EQ(shmring_create(name2.c_str(), &bad), SHMRING_EINVAL);
  const std::string msg2 = shmring_last_error();
  EXPECT_NE(msg2.find(name2), std::string::npos) << msg2;
  EXPECT_NE(msg2.find("1000"), std::string::npos) << msg2;  // the cause: the capacity given
}

}  // namespace
}  // namespace shmring::test
