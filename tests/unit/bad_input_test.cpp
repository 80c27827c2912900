// Bad input of reliability.md part (b) that applies to a segment: damaged
// headers, damaged files, foreign file types under the name, indices out of
// range and damaged records. Each must give a clear error (corrupt,
// version_mismatch, or timed_out for a creator that never finished), never a
// crash, a hang or an out-of-bounds access. Every case has a positive
// control: the same planting with valid values works.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstring>
#include <functional>
#include <vector>

#include "layout.hpp"
#include "shmring/shmring.h"
#include "support/ring_fixture.hpp"
#include "support/shm_raw.hpp"

namespace shmring::test {
namespace {

using namespace std::chrono_literals;
using detail::IdentityBlock;
using detail::kRecordTag;
using detail::kSkipTag;
using detail::RecordHeader;

constexpr std::uint64_t kCap = 4096;

OpenOptions quick(std::chrono::nanoseconds t = 50ms) {
  OpenOptions o;
  o.init_timeout = t;
  return o;
}

// Opens both sides; both must agree. Returns the outcome.
Errc open_both(const std::string& name, OpenOptions o = quick()) {
  auto p = Producer::open(name, o);
  auto c = Consumer::open(name, o);
  EXPECT_EQ(p.error(), c.error()) << "producer and consumer disagree on " << name;
  return p.error();
}

Errc create_ring(const std::string& name, std::size_t cap = kCap) {
  Config cfg;
  cfg.capacity = cap;
  return create(name, cfg);
}

// ---- Damaged identity blocks -----------------------------------------------------------

struct HeaderCase {
  const char* what;
  std::function<void(IdentityBlock&)> damage;
  Errc want;
};

void PrintTo(const HeaderCase& k, std::ostream* os) { *os << k.what; }

class HeaderDamage : public ::testing::TestWithParam<HeaderCase> {};

TEST_P(HeaderDamage, OpenGivesAClearError) {
  const auto& k = GetParam();
  const auto name = unique_ring_name();
  ShmGuard guard(name);
  ASSERT_EQ(create_ring(name), Errc::ok);
  {
    RawMap raw(name);
    ASSERT_TRUE(raw.ok());
    k.damage(raw.header()->id);
  }
  const auto t0 = now_ns();
  EXPECT_EQ(open_both(name), k.want) << k.what;
  if (k.want == Errc::timed_out) {
    EXPECT_GE(now_ns() - t0, 50'000'000);
  }
  if (k.want != Errc::ok) {
    const std::string msg = last_error_message();
    EXPECT_NE(msg.find(name), std::string::npos) << msg;
    shmring_t* h = nullptr;
    if (k.want != Errc::timed_out) {  // the C API waits its full second; covered once below
      EXPECT_EQ(shmring_open(name.c_str(), SHMRING_CONSUMER, &h), static_cast<int>(k.want));
      EXPECT_EQ(h, nullptr);
    }
  }
}

std::string header_case_name(const ::testing::TestParamInfo<HeaderCase>& info) {
  std::string s = info.param.what;
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return s;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, HeaderDamage,
    ::testing::Values(
        // Positive controls: fields nobody validates, and a header left alone.
        HeaderCase{"untouched", [](IdentityBlock&) {}, Errc::ok},
        HeaderCase{"creator pid and time", [](IdentityBlock& id) { id.creator_pid = 1; id.create_time_ns = 5; }, Errc::ok},
        HeaderCase{"other wait strategy", [](IdentityBlock& id) { id.wait = 3; }, Errc::ok},
        // Magic.
        HeaderCase{"magic first byte", [](IdentityBlock& id) { id.magic[0] = 'X'; }, Errc::corrupt},
        HeaderCase{"magic last byte", [](IdentityBlock& id) { id.magic[7] = '!'; }, Errc::corrupt},
        HeaderCase{"magic zero but ready", [](IdentityBlock& id) { std::memset(id.magic, 0, 8); }, Errc::corrupt},
        HeaderCase{"magic zero and initialising",
                   [](IdentityBlock& id) { std::memset(id.magic, 0, 8); id.init_state = 0; }, Errc::timed_out},
        // Version and compatibility.
        HeaderCase{"layout version 3", [](IdentityBlock& id) { id.layout_version = 3; }, Errc::version_mismatch},
        HeaderCase{"layout version 0", [](IdentityBlock& id) { id.layout_version = 0; }, Errc::version_mismatch},
        HeaderCase{"layout version max", [](IdentityBlock& id) { id.layout_version = 0xffffffffu; }, Errc::version_mismatch},
        HeaderCase{"unknown feature flag", [](IdentityBlock& id) { id.flags = 1u << 7; }, Errc::version_mismatch},
        HeaderCase{"other mutex ABI", [](IdentityBlock& id) { id.abi_mutex_size += 8; }, Errc::version_mismatch},
        HeaderCase{"other semaphore ABI", [](IdentityBlock& id) { id.abi_sem_size = 16; }, Errc::version_mismatch},
        // Initialisation state.
        HeaderCase{"still initialising", [](IdentityBlock& id) { id.init_state = 0; }, Errc::timed_out},
        HeaderCase{"init state garbage", [](IdentityBlock& id) { id.init_state = 7; }, Errc::corrupt},
        // Header sizes that disagree.
        HeaderCase{"header size 8192", [](IdentityBlock& id) { id.header_size = 8192; }, Errc::corrupt},
        HeaderCase{"header size 0", [](IdentityBlock& id) { id.header_size = 0; }, Errc::corrupt},
        HeaderCase{"data offset 0", [](IdentityBlock& id) { id.data_offset = 0; }, Errc::corrupt},
        HeaderCase{"data offset past the object", [](IdentityBlock& id) { id.data_offset = 1u << 20; }, Errc::corrupt},
        HeaderCase{"attach table 0", [](IdentityBlock& id) { id.attach_capacity = 0; }, Errc::corrupt},
        HeaderCase{"attach table 1000", [](IdentityBlock& id) { id.attach_capacity = 1000; }, Errc::corrupt},
        HeaderCase{"liveness 0", [](IdentityBlock& id) { id.liveness_ms = 0; }, Errc::corrupt},
        HeaderCase{"liveness huge", [](IdentityBlock& id) { id.liveness_ms = 0xffffffffu; }, Errc::corrupt},
        // Kind and wait.
        HeaderCase{"kind 0", [](IdentityBlock& id) { id.kind = 0; }, Errc::corrupt},
        HeaderCase{"kind 99", [](IdentityBlock& id) { id.kind = 99; }, Errc::corrupt},
        HeaderCase{"kind mpmc without slots", [](IdentityBlock& id) { id.kind = 2; }, Errc::corrupt},
        HeaderCase{"wait 0", [](IdentityBlock& id) { id.wait = 0; }, Errc::corrupt},
        HeaderCase{"wait 4", [](IdentityBlock& id) { id.wait = 4; }, Errc::corrupt},
        // Geometry.
        HeaderCase{"capacity not a power of two", [](IdentityBlock& id) { id.capacity = 5000; }, Errc::corrupt},
        HeaderCase{"capacity not a power of two, sizes consistent",
                   [](IdentityBlock& id) { id.capacity = 4000; id.total_size = 8096; id.max_record = 1992; }, Errc::corrupt},
        HeaderCase{"capacity 0", [](IdentityBlock& id) { id.capacity = 0; }, Errc::corrupt},
        HeaderCase{"capacity 2048", [](IdentityBlock& id) { id.capacity = 2048; }, Errc::corrupt},
        HeaderCase{"capacity 2^63", [](IdentityBlock& id) { id.capacity = std::uint64_t{1} << 63; }, Errc::corrupt},
        HeaderCase{"capacity larger than the object, sizes consistent",
                   [](IdentityBlock& id) { id.capacity = 8192; id.total_size = 12288; id.max_record = 4088; }, Errc::corrupt},
        HeaderCase{"capacity overflowing the total",
                   [](IdentityBlock& id) { id.capacity = std::uint64_t{0} - 4096; id.total_size = 0; }, Errc::corrupt},
        HeaderCase{"total size +4096", [](IdentityBlock& id) { id.total_size += 4096; }, Errc::corrupt},
        HeaderCase{"total size 0", [](IdentityBlock& id) { id.total_size = 0; }, Errc::corrupt},
        HeaderCase{"max record +1", [](IdentityBlock& id) { id.max_record += 1; }, Errc::corrupt},
        HeaderCase{"max record = capacity", [](IdentityBlock& id) { id.max_record = 4096; }, Errc::corrupt},
        HeaderCase{"max record huge", [](IdentityBlock& id) { id.max_record = ~std::uint64_t{0}; }, Errc::corrupt},
        HeaderCase{"slot size on spsc", [](IdentityBlock& id) { id.slot_size = 64; }, Errc::corrupt},
        HeaderCase{"slot count on spsc", [](IdentityBlock& id) { id.slot_count = 64; }, Errc::corrupt}),
    header_case_name);

TEST(BadHeader, CApiTimesOutOnANeverReadyRing) {
  const auto name = unique_ring_name();
  ShmGuard guard(name);
  ASSERT_EQ(create_ring(name), Errc::ok);
  {
    RawMap raw(name);
    ASSERT_TRUE(raw.ok());
    raw.header()->id.init_state = 0;
  }
  shmring_t* h = nullptr;
  const auto t0 = now_ns();
  EXPECT_EQ(shmring_open(name.c_str(), SHMRING_PRODUCER, &h), SHMRING_ETIMEDOUT);
  EXPECT_GE(now_ns() - t0, 1'000'000'000);  // the documented 1 s default
  EXPECT_EQ(h, nullptr);
  EXPECT_NE(std::string(shmring_last_error()).find(name), std::string::npos) << shmring_last_error();
}

// An spsc ring whose header is rewritten to say "locked": the locked kind's
// mutexes were never initialised by a creator. Open may refuse (corrupt) or
// work, but nothing may crash or hang: every call below has a timeout.
TEST(BadHeader, KindRewrittenToLockedNeverCrashesOrHangs) {
  const auto name = unique_ring_name();
  ShmGuard guard(name);
  ASSERT_EQ(create_ring(name), Errc::ok);
  {
    RawMap raw(name);
    ASSERT_TRUE(raw.ok());
    raw.header()->id.kind = static_cast<std::uint32_t>(Kind::locked);
  }
  auto p = Producer::open(name, quick());
  auto c = Consumer::open(name, quick());
  if (!p.ok() || !c.ok()) {
    EXPECT_TRUE(p.error() == Errc::corrupt || p.error() == Errc::ok) << errc_name(p.error());
    EXPECT_TRUE(c.error() == Errc::corrupt || c.error() == Errc::ok) << errc_name(c.error());
    return;
  }
  const Errc e = push_record(*p, 1, 50, 100ms);
  EXPECT_TRUE(e == Errc::ok || e == Errc::corrupt || e == Errc::timed_out) << errc_name(e);
  auto pk = c->peek(100ms);
  if (e == Errc::ok && pk.ok()) {
    EXPECT_EQ(pk->size(), 50u);
  }
}

// ---- Damaged files ------------------------------------------------------------------------

class BadFile : public ::testing::TestWithParam<std::size_t> {};

// A real ring cut to (or grown to) a size its header does not describe.
TEST_P(BadFile, ObjectSizeDisagreesWithTheHeader) {
  const std::size_t size = GetParam();
  const auto name = unique_ring_name();
  ShmGuard guard(name);
  ASSERT_EQ(create_ring(name), Errc::ok);
  ASSERT_TRUE(truncate_object(name, size));
  EXPECT_EQ(open_both(name), Errc::corrupt) << "size " << size;
  EXPECT_NE(last_error_message().find(name), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Sizes, BadFile,
                         ::testing::Values(std::size_t{1}, std::size_t{100}, std::size_t{4095},  // smaller than the header
                                           std::size_t{4096}, std::size_t{4104}, std::size_t{6144},
                                           std::size_t{8191},  // smaller than the header claims
                                           std::size_t{8193}, std::size_t{12288}, std::size_t{1} << 20));  // larger

TEST(BadFileShape, ZeroLengthObjectTimesOutAfterTheInitTimeout) {
  const auto name = unique_ring_name();
  ShmGuard guard(name);
  ASSERT_TRUE(write_object(name, nullptr, 0));  // a creator that died before sizing it
  const auto t0 = now_ns();
  auto p = Producer::open(name, quick(50ms));
  const auto waited = now_ns() - t0;
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error(), Errc::timed_out);
  EXPECT_GE(waited, 50'000'000);
  EXPECT_NE(last_error_message().find(name), std::string::npos) << last_error_message();
  EXPECT_EQ(Consumer::open(name, quick(10ms)).error(), Errc::timed_out);
  // Try once: no waiting at all still gives a clear answer.
  EXPECT_EQ(Consumer::open(name, quick(0ns)).error(), Errc::timed_out);
}

TEST(BadFileShape, AllZeroObjectTimesOut) {
  const auto name = unique_ring_name();
  ShmGuard guard(name);
  std::vector<std::byte> zeros(8192);
  ASSERT_TRUE(write_object(name, zeros.data(), zeros.size()));
  EXPECT_EQ(open_both(name, quick(20ms)), Errc::timed_out);
}

TEST(BadFileShape, ForeignTextFileIsCorrupt) {
  const auto name = unique_ring_name();
  ShmGuard guard(name);
  std::string text(5000, 'x');
  ASSERT_TRUE(write_object(name, text.data(), text.size()));
  EXPECT_EQ(open_both(name), Errc::corrupt);
  // And it was not modified.
  const auto after = read_object(name);
  ASSERT_EQ(after.size(), text.size());
  EXPECT_EQ(std::memcmp(after.data(), text.data(), text.size()), 0);
}

TEST(BadFileShape, RandomGarbageNeverOpens) {
  Prng rng(20240611);
  const std::size_t sizes[] = {1, 7, 100, 4095, 4096, 4097, 8192, 12288, 65536 + 4096};
  for (int i = 0; i < 200; ++i) {
    const std::size_t size = sizes[rng.next() % std::size(sizes)];
    std::vector<std::uint64_t> words((size + 7) / 8);
    for (auto& w : words) w = rng.next();
    const auto name = unique_ring_name();
    ShmGuard guard(name);
    ASSERT_TRUE(write_object(name, words.data(), size));
    const Errc e = open_both(name, quick(1ms));
    EXPECT_TRUE(e == Errc::corrupt || e == Errc::version_mismatch) << "iteration " << i << ": " << errc_name(e);
  }
}

// Random bytes flipped in a genuine image (header, indices or records): open
// and use either work or fail cleanly. A successful open never reports a
// geometry other than the real one.
TEST(BadFileShape, MutatedRealImagesFailCleanly) {
  std::vector<std::byte> image;
  {
    const auto name = unique_ring_name("template");
    ShmGuard guard(name);
    ASSERT_EQ(create_ring(name), Errc::ok);
    {
      auto p = Producer::open(name);
      ASSERT_TRUE(p.ok());
      for (std::uint64_t s = 0; s < 20; ++s) ASSERT_EQ(push_record(*p, s, s * 37 % 300), Errc::ok);
    }  // closed: the image has records but nobody attached
    image = read_object(name);
  }
  ASSERT_EQ(image.size(), 8192u);
  Prng rng(77);
  int opened = 0, refused = 0;
  for (int i = 0; i < 400; ++i) {
    auto img = image;
    const int flips = 1 + static_cast<int>(rng.next() % 6);
    for (int f = 0; f < flips; ++f) {
      const std::uint64_t where = rng.next() % 10;
      // Mostly the identity block; sometimes the indices; sometimes records.
      const std::size_t off = where < 6   ? rng.next() % 128
                              : where < 8 ? (rng.next() % 2 == 0 ? 128 : 256) + rng.next() % 8
                                          : 4096 + rng.next() % 1024;
      img[off] = static_cast<std::byte>(rng.next());
    }
    const auto name = unique_ring_name();
    ShmGuard guard(name);
    ASSERT_TRUE(write_object(name, img.data(), img.size()));
    auto p = Producer::open(name, quick(1ms));
    auto c = Consumer::open(name, quick(1ms));
    ASSERT_EQ(p.error(), c.error()) << "iteration " << i;
    if (!p.ok()) {
      ++refused;
      EXPECT_TRUE(p.error() == Errc::corrupt || p.error() == Errc::version_mismatch ||
                  p.error() == Errc::timed_out)
          << "iteration " << i << ": " << errc_name(p.error());
      continue;
    }
    ++opened;
    EXPECT_EQ(p->max_record(), 2040u) << "iteration " << i;
    // Drain whatever the consumer will accept; every answer must be one of
    // these, and a corrupt answer sticks.
    for (int r = 0; r < 40; ++r) {
      auto pk = c->peek(Timeout::try_once());
      if (!pk.ok()) {
        EXPECT_TRUE(pk.error() == Errc::would_block || pk.error() == Errc::corrupt) << errc_name(pk.error());
        break;
      }
      EXPECT_LE(pk->size(), 2040u);
      ASSERT_EQ(c->release(), Errc::ok);
    }
    const Errc e = push_record(*p, 1, 100);
    EXPECT_TRUE(e == Errc::ok || e == Errc::would_block || e == Errc::corrupt) << errc_name(e);
  }
  EXPECT_GT(opened, 0);
  EXPECT_GT(refused, 0);
}

// ---- Foreign file types under the name ----------------------------------------------------

TEST(ForeignFileType, SymlinkToARingIsRefused) {
  const auto target = unique_ring_name("target");
  const auto link = unique_ring_name("link");
  ShmGuard tguard(target), lguard(link);
  ASSERT_EQ(create_ring(target), Errc::ok);
  ASSERT_EQ(::symlink(shm_path(target).c_str(), shm_path(link).c_str()), 0) << std::strerror(errno);
  EXPECT_EQ(open_both(link), Errc::corrupt);
  EXPECT_NE(last_error_message().find(link), std::string::npos) << last_error_message();
  shmring_t* h = nullptr;
  EXPECT_EQ(shmring_open(link.c_str(), SHMRING_PRODUCER, &h), SHMRING_ECORRUPT);
  EXPECT_EQ(create_ring(link), Errc::exists);
  // The target ring is intact and usable.
  EXPECT_EQ(open_both(target), Errc::ok);
}

TEST(ForeignFileType, SymlinkToAnOrdinaryFileIsRefusedAndTheFileUntouched) {
  const auto link = unique_ring_name("link");
  ShmGuard lguard(link);
  char tmpl[] = "/tmp/shmring_test_XXXXXX";
  const int fd = ::mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  const std::string victim = tmpl;
  ASSERT_EQ(::write(fd, "precious", 8), 8);
  ::close(fd);
  ASSERT_EQ(::symlink(victim.c_str(), shm_path(link).c_str()), 0);
  EXPECT_EQ(open_both(link), Errc::corrupt);
  EXPECT_EQ(create_ring(link), Errc::exists);
  struct stat st {};
  ASSERT_EQ(::stat(victim.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 8);
  ::unlink(victim.c_str());
}

TEST(ForeignFileType, DanglingSymlinkIsRefused) {
  const auto link = unique_ring_name("dangling");
  ShmGuard lguard(link);
  ASSERT_EQ(::symlink("/nonexistent/shmring", shm_path(link).c_str()), 0);
  EXPECT_EQ(open_both(link), Errc::corrupt);
  EXPECT_EQ(create_ring(link), Errc::exists);
  EXPECT_NE(::access("/nonexistent/shmring", F_OK), 0);
}

TEST(ForeignFileType, DirectoryIsCorrupt) {
  const auto name = unique_ring_name("dir");
  ShmGuard guard(name);
  ASSERT_EQ(::mkdir(shm_path(name).c_str(), 0700), 0) << std::strerror(errno);
  // reliability.md (b): not S_ISREG gives "not a segment", i.e. corrupt.
  EXPECT_EQ(open_both(name), Errc::corrupt) << last_error_message();
  EXPECT_EQ(create_ring(name), Errc::exists);
}

TEST(ForeignFileType, FifoIsCorrupt) {
  const auto name = unique_ring_name("fifo");
  ShmGuard guard(name);
  ASSERT_EQ(::mkfifo(shm_path(name).c_str(), 0600), 0) << std::strerror(errno);
  EXPECT_EQ(open_both(name), Errc::corrupt) << last_error_message();
  EXPECT_EQ(create_ring(name), Errc::exists);
}

// ---- Indices out of range --------------------------------------------------------------------

struct IndexCase {
  const char* what;
  std::uint64_t head, tail;
  Errc want;
};

void PrintTo(const IndexCase& k, std::ostream* os) { *os << k.what; }

class BadIndices : public ::testing::TestWithParam<IndexCase> {};

TEST_P(BadIndices, PlantedBeforeOpen) {
  const auto& k = GetParam();
  const auto name = unique_ring_name();
  ShmGuard guard(name);
  ASSERT_EQ(create_ring(name), Errc::ok);
  {
    RawMap raw(name);
    ASSERT_TRUE(raw.ok());
    raw.set_indices(k.head, k.tail);
  }
  EXPECT_EQ(open_both(name), k.want) << k.what;
  if (k.want == Errc::corrupt) {
    EXPECT_NE(last_error_message().find(name), std::string::npos);
    shmring_t* h = nullptr;
    EXPECT_EQ(shmring_open(name.c_str(), SHMRING_PRODUCER, &h), SHMRING_ECORRUPT);
  }
}

constexpr std::uint64_t kTop = ~std::uint64_t{0};

INSTANTIATE_TEST_SUITE_P(
    Cases, BadIndices,
    ::testing::Values(IndexCase{"empty far along", 40960, 40960, Errc::ok},
                      IndexCase{"full", 8, 8 + kCap, Errc::ok},
                      IndexCase{"across 2^64", kTop - 7, 8, Errc::ok},
                      IndexCase{"one record past full", 0, kCap + 8, Errc::corrupt},
                      IndexCase{"tail huge", 0, kTop - 7, Errc::corrupt},
                      IndexCase{"consumer ahead of producer", 8, 0, Errc::corrupt},
                      IndexCase{"consumer far ahead", 1 << 20, 0, Errc::corrupt},
                      IndexCase{"tail misaligned", 0, 4, Errc::corrupt},
                      IndexCase{"head misaligned", 4, 8, Errc::corrupt},
                      IndexCase{"both misaligned", 3, 3, Errc::corrupt}),
    [](const ::testing::TestParamInfo<IndexCase>& info) {
      std::string s = info.param.what;
      for (char& c : s)
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
      return s;
    });

// ---- Damaged indices and records at run time ---------------------------------------------

class BadRecords : public RingFixture {
 protected:
  // Closes the handles, plants `records` at the data-area offset of `head`,
  // sets the indices and reopens.
  void plant(std::uint64_t head, std::uint64_t tail, const std::vector<std::pair<std::uint64_t, RecordHeader>>& hdrs) {
    close_sides();
    RawMap raw(name_);
    ASSERT_TRUE(raw.ok());
    for (const auto& [off, h] : hdrs) std::memcpy(raw.data() + off, &h, sizeof h);
    raw.set_indices(head, tail);
    open_sides();
  }
  // peek must say corrupt, and keep saying it.
  void expect_sticky_corrupt(const char* what) {
    auto pk = cons_.peek(Timeout::try_once());
    ASSERT_FALSE(pk.ok()) << what;
    EXPECT_EQ(pk.error(), Errc::corrupt) << what;
    EXPECT_NE(last_error_message().find(name_), std::string::npos) << last_error_message();
    EXPECT_EQ(cons_.peek(10ms).error(), Errc::corrupt) << what;
    EXPECT_EQ(cons_.release(), Errc::corrupt) << what;
    EXPECT_EQ(cons_.flush(), Errc::corrupt) << what;
    std::byte buf[16];
    EXPECT_EQ(cons_.recv(buf, Timeout::try_once()).error(), Errc::corrupt) << what;
  }
};

TEST_F(BadRecords, ValidPlantedRecordIsRead) {
  make_ring(kCap);
  plant(0, 16, {{0, RecordHeader{5, kRecordTag}}});
  RawMap raw(name_);
  std::memcpy(raw.data() + 8, "hello", 5);
  auto pk = cons_.peek(Timeout::try_once());
  ASSERT_TRUE(pk.ok()) << errc_name(pk.error());
  ASSERT_EQ(pk->size(), 5u);
  EXPECT_EQ(std::memcmp(pk->data(), "hello", 5), 0);
}

TEST_F(BadRecords, LengthBeyondTheCapacity) {
  make_ring(kCap);
  plant(0, 16, {{0, RecordHeader{1u << 20, kRecordTag}}});
  expect_sticky_corrupt("length 1 MiB in a 4 KiB ring");
}

TEST_F(BadRecords, LengthMaxUint32) {
  make_ring(kCap);
  plant(0, 16, {{0, RecordHeader{0xffffffffu, kRecordTag}}});
  expect_sticky_corrupt("length 2^32-1");
}

TEST_F(BadRecords, LengthAboveMaxRecordThatWouldFit) {
  make_ring(kCap);
  plant(0, kCap, {{0, RecordHeader{2041, kRecordTag}}});
  expect_sticky_corrupt("length max_record + 1");
}

TEST_F(BadRecords, LengthBeyondThePublishedTail) {
  make_ring(kCap);
  plant(0, 16, {{0, RecordHeader{100, kRecordTag}}});
  expect_sticky_corrupt("record longer than the published bytes");
}

TEST_F(BadRecords, RecordRunningOffTheEndOfTheDataArea) {
  make_ring(kCap);
  // At offset 4000 only 96 bytes remain; a 180-byte record would wrap.
  plant(4000, 4000 + 400, {{4000, RecordHeader{180, kRecordTag}}});
  expect_sticky_corrupt("record past the end of the data area");
}

TEST_F(BadRecords, BadTag) {
  make_ring(kCap);
  plant(0, 16, {{0, RecordHeader{4, 0xdeadbeefu}}});
  expect_sticky_corrupt("tag 0xdeadbeef");
}

TEST_F(BadRecords, ZeroTagFromAnUnwrittenArea) {
  make_ring(kCap);
  plant(0, 64, {});
  expect_sticky_corrupt("tail ahead over zero bytes");
}

TEST_F(BadRecords, ValidSkipRecordIsFollowed) {
  make_ring(kCap);
  plant(4000, 4096 + 16, {{4000, RecordHeader{88, kSkipTag}}, {0, RecordHeader{3, kRecordTag}}});
  auto pk = cons_.peek(Timeout::try_once());
  ASSERT_TRUE(pk.ok()) << errc_name(pk.error());
  EXPECT_EQ(pk->size(), 3u);
}

TEST_F(BadRecords, SkipRecordOfTheWrongLength) {
  make_ring(kCap);
  plant(4000, 4096 + 16, {{4000, RecordHeader{50, kSkipTag}}, {0, RecordHeader{3, kRecordTag}}});
  expect_sticky_corrupt("skip record not reaching the end");
}

TEST_F(BadRecords, SkipRecordBeyondThePublishedTail) {
  make_ring(kCap);
  plant(4000, 4000 + 16, {{4000, RecordHeader{88, kSkipTag}}});
  expect_sticky_corrupt("skip record longer than the published bytes");
}

TEST_F(BadRecords, SkipRecordHugeLength) {
  make_ring(kCap);
  plant(0, 64, {{0, RecordHeader{0xfffffff0u, kSkipTag}}});
  expect_sticky_corrupt("skip record of 4 GiB");
}

TEST_F(BadRecords, CApiPeekReportsCorruptAndNamesTheRing) {
  make_ring(kCap);
  plant(0, 16, {{0, RecordHeader{1u << 20, kRecordTag}}});
  close_sides();
  shmring_t* c = nullptr;
  ASSERT_EQ(shmring_open(name_.c_str(), SHMRING_CONSUMER, &c), SHMRING_OK);
  const void* p = nullptr;
  std::size_t n = 0;
  EXPECT_EQ(shmring_peek(c, &p, &n, 0), SHMRING_ECORRUPT);
  EXPECT_EQ(p, nullptr);
  EXPECT_NE(std::string(shmring_last_error()).find(name_), std::string::npos) << shmring_last_error();
  char buf[8];
  EXPECT_EQ(shmring_recv(c, buf, sizeof buf, &n, 0), SHMRING_ECORRUPT);
  shmring_close(c);
}

// The producer's tail is rewritten under an open consumer.
TEST_F(BadRecords, TailCorruptedUnderAnOpenConsumer) {
  for (std::uint64_t bad : {kCap * 2, std::uint64_t{4}, kTop - 7}) {
    SCOPED_TRACE("tail " + std::to_string(bad));
    make_ring(kCap);
    ASSERT_EQ(push_record(prod_, 0, 10), Errc::ok);
    ASSERT_EQ(pop_record(cons_, 0, 10), "");
    RawMap raw(name_);
    ASSERT_TRUE(raw.ok());
    detail::atom(raw.header()->prod.tail).store(bad, std::memory_order_release);
    expect_sticky_corrupt("tail rewritten");
    close_sides();
    guard_.reset();
  }
}

// The consumer's head is rewritten under an open producer that needs room.
TEST_F(BadRecords, HeadCorruptedUnderAnOpenProducer) {
  for (std::uint64_t bad : {kCap + 8, std::uint64_t{4}, kTop - 7}) {
    SCOPED_TRACE("head " + std::to_string(bad));
    make_ring(kCap);
    std::uint64_t n = 0;
    while (push_record(prod_, n, 8) == Errc::ok) ++n;
    ASSERT_EQ(n, 256u);
    RawMap raw(name_);
    ASSERT_TRUE(raw.ok());
    detail::atom(raw.header()->cons.head).store(bad, std::memory_order_release);
    auto r = prod_.reserve(8, Timeout::try_once());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), Errc::corrupt);
    EXPECT_NE(last_error_message().find(name_), std::string::npos) << last_error_message();
    EXPECT_EQ(prod_.reserve(8, 10ms).error(), Errc::corrupt);
    EXPECT_EQ(prod_.commit(8), Errc::corrupt);
    EXPECT_EQ(prod_.flush(), Errc::corrupt);
    close_sides();
    guard_.reset();
  }
}

// Control for the test above: a valid head planted the same way gives room.
TEST_F(BadRecords, ValidHeadPlantedUnderAnOpenProducerGivesRoom) {
  make_ring(kCap);
  std::uint64_t n = 0;
  while (push_record(prod_, n, 8) == Errc::ok) ++n;
  RawMap raw(name_);
  ASSERT_TRUE(raw.ok());
  detail::atom(raw.header()->cons.head).store(raw.tail(), std::memory_order_release);
  EXPECT_EQ(push_record(prod_, n, 8), Errc::ok);
}

}  // namespace
}  // namespace shmring::test
