// Golden offsets of the shared-memory format, layout version 2. The numbers
// are literals on purpose: they mirror the format documentation
// (docs/format.md and the comments of lib/layout.hpp), so a drift of the
// structs fails here even if someone also edits the static_asserts. The
// second half reads a real ring's bytes at those literal offsets.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "layout.hpp"
#include "liveness.hpp"
#include "shmring/ring.hpp"
#include "shmring/version.hpp"
#include "support/shm_raw.hpp"
#include "support/test_support.hpp"

namespace shmring {
namespace {

using namespace detail;

TEST(Layout, Constants) {
  EXPECT_EQ(kLayoutVersion, 2u);
  EXPECT_EQ(kHeaderSize, 4096u);
  EXPECT_EQ(kCacheLine, 64u);
  EXPECT_EQ(kSeparation, 128u);
  EXPECT_EQ(kAttachEntries, 32u);
  EXPECT_EQ(std::memcmp(kMagic, "SHMRING\0", 8), 0);
  EXPECT_EQ(kInitInitialising, 0u);
  EXPECT_EQ(kInitReady, 1u);
  EXPECT_EQ(kMinCapacity, 4096u);
  EXPECT_EQ(kMaxCapacity, std::uint64_t{1} << 40);
  EXPECT_EQ(kRecordTag, 0x31434552u);  // "REC1" in memory order
  EXPECT_EQ(kSkipTag, 0x50494b53u);    // "SKIP" in memory order
  EXPECT_EQ(std::memcmp(&kRecordTag, "REC1", 4), 0);
  EXPECT_EQ(std::memcmp(&kSkipTag, "SKIP", 4), 0);
  EXPECT_EQ(kRecordAlign, 8u);
  EXPECT_EQ(static_cast<std::uint32_t>(Kind::spsc), 1u);
  EXPECT_EQ(static_cast<std::uint32_t>(Kind::mpmc), 2u);
  EXPECT_EQ(static_cast<std::uint32_t>(Kind::locked), 3u);
  EXPECT_EQ(static_cast<std::uint32_t>(WaitStrategy::futex), 1u);
  EXPECT_EQ(static_cast<std::uint32_t>(WaitStrategy::spin), 2u);
  EXPECT_EQ(static_cast<std::uint32_t>(WaitStrategy::sem), 3u);
  EXPECT_EQ(static_cast<std::uint32_t>(Role::producer), 1u);
  EXPECT_EQ(static_cast<std::uint32_t>(Role::consumer), 2u);
}

TEST(Layout, RecordFraming) {
  EXPECT_EQ(sizeof(RecordHeader), 8u);
  EXPECT_EQ(offsetof(RecordHeader, len), 0u);
  EXPECT_EQ(offsetof(RecordHeader, tag), 4u);
  // footprint = align8(8 + len)
  EXPECT_EQ(record_footprint(0), 8u);
  EXPECT_EQ(record_footprint(1), 16u);
  EXPECT_EQ(record_footprint(7), 16u);
  EXPECT_EQ(record_footprint(8), 16u);
  EXPECT_EQ(record_footprint(9), 24u);
  EXPECT_EQ(record_footprint(2040), 2048u);
  EXPECT_EQ(record_footprint(2041), 2056u);
}

TEST(Layout, IdentityBlock) {
  EXPECT_EQ(sizeof(IdentityBlock), 128u);
  EXPECT_EQ(offsetof(IdentityBlock, magic), 0u);
  EXPECT_EQ(offsetof(IdentityBlock, layout_version), 8u);
  EXPECT_EQ(offsetof(IdentityBlock, header_size), 12u);
  EXPECT_EQ(offsetof(IdentityBlock, kind), 16u);
  EXPECT_EQ(offsetof(IdentityBlock, wait), 20u);
  EXPECT_EQ(offsetof(IdentityBlock, capacity), 24u);
  EXPECT_EQ(offsetof(IdentityBlock, slot_size), 32u);
  EXPECT_EQ(offsetof(IdentityBlock, slot_count), 40u);
  EXPECT_EQ(offsetof(IdentityBlock, data_offset), 48u);
  EXPECT_EQ(offsetof(IdentityBlock, total_size), 56u);
  EXPECT_EQ(offsetof(IdentityBlock, max_record), 64u);
  EXPECT_EQ(offsetof(IdentityBlock, create_time_ns), 72u);
  EXPECT_EQ(offsetof(IdentityBlock, creator_pid), 80u);
  EXPECT_EQ(offsetof(IdentityBlock, mode), 84u);
  EXPECT_EQ(offsetof(IdentityBlock, init_state), 88u);
  EXPECT_EQ(offsetof(IdentityBlock, reset_gen), 92u);
  EXPECT_EQ(offsetof(IdentityBlock, attach_capacity), 96u);
  EXPECT_EQ(offsetof(IdentityBlock, flags), 100u);
  EXPECT_EQ(offsetof(IdentityBlock, abi_mutex_size), 104u);
  EXPECT_EQ(offsetof(IdentityBlock, abi_sem_size), 108u);
  EXPECT_EQ(offsetof(IdentityBlock, liveness_ms), 112u);
  EXPECT_EQ(offsetof(IdentityBlock, reserved0), 116u);
  EXPECT_EQ(offsetof(IdentityBlock, reserved1), 120u);
}

TEST(Layout, SideLines) {
  EXPECT_EQ(sizeof(ProducerLine), 128u);
  EXPECT_EQ(offsetof(ProducerLine, tail), 0u);
  EXPECT_EQ(offsetof(ProducerLine, records), 8u);
  EXPECT_EQ(sizeof(ConsumerLine), 128u);
  EXPECT_EQ(offsetof(ConsumerLine, head), 0u);
  EXPECT_EQ(offsetof(ConsumerLine, records), 8u);
  EXPECT_EQ(sizeof(WaitLine), 128u);
  EXPECT_EQ(offsetof(WaitLine, seq), 0u);
  EXPECT_EQ(offsetof(WaitLine, waiters), 4u);
  EXPECT_EQ(sizeof(SemBlock), 128u);
  EXPECT_EQ(offsetof(SemBlock, data_sem), 0u);
  EXPECT_EQ(offsetof(SemBlock, space_sem), 32u);
  EXPECT_EQ(sizeof(LockBlock), 256u);
  EXPECT_EQ(offsetof(LockBlock, prod_mutex), 0u);
  EXPECT_EQ(offsetof(LockBlock, cons_mutex), 64u);
  EXPECT_EQ(offsetof(LockBlock, recoveries), 128u);
  EXPECT_EQ(offsetof(LockBlock, prod_holder), 136u);
  EXPECT_EQ(offsetof(LockBlock, cons_holder), 144u);
  EXPECT_EQ(sizeof(RoleBlock), 128u);
  EXPECT_EQ(offsetof(RoleBlock, owner), 0u);
  EXPECT_EQ(offsetof(RoleBlock, attaches), 16u);
  EXPECT_EQ(offsetof(RoleBlock, abandoned_claims), 32u);
  EXPECT_EQ(offsetof(RoleBlock, dropped_reads), 40u);
  EXPECT_EQ(offsetof(RoleBlock, fenced_claims), 48u);
  EXPECT_EQ(offsetof(RoleBlock, fenced_reads), 56u);
}

TEST(Layout, AttachEntry) {
  EXPECT_EQ(sizeof(AttachEntry), 64u);
  EXPECT_EQ(offsetof(AttachEntry, state), 0u);
  EXPECT_EQ(offsetof(AttachEntry, pid), 8u);
  EXPECT_EQ(offsetof(AttachEntry, role), 12u);
  EXPECT_EQ(offsetof(AttachEntry, start_time), 16u);
  EXPECT_EQ(offsetof(AttachEntry, attach_time_ns), 24u);
  EXPECT_EQ(offsetof(AttachEntry, generation), 32u);
  EXPECT_EQ(offsetof(AttachEntry, sleeping), 40u);
  EXPECT_EQ(offsetof(AttachEntry, pid_ns), 48u);
  EXPECT_EQ(offsetof(AttachEntry, reserved), 56u);
  EXPECT_EQ(lock_offset(0), 1024);
  EXPECT_EQ(lock_offset(31), 1024 + 31 * 64);
  // State word: pid << 32 | role << 8 | phase; owner word: pid << 32 | entry + 1.
  EXPECT_EQ(kPhaseClaiming, 1u);
  EXPECT_EQ(kPhaseAttached, 2u);
  EXPECT_EQ(attach_word(0x1234, 2, kPhaseAttached), 0x0000123400000202u);
  EXPECT_EQ(attach_word_pid(0x0000123400000202u), 0x1234);
  EXPECT_EQ(attach_word_role(0x0000123400000202u), 2u);
  EXPECT_EQ(attach_word_phase(0x0000123400000202u), 2u);
  EXPECT_EQ(owner_word(0x1234, 5), 0x0000123400000006u);
}

TEST(Layout, Header) {
  EXPECT_EQ(sizeof(Header), 4096u);
  EXPECT_EQ(offsetof(Header, id), 0u);
  EXPECT_EQ(offsetof(Header, prod), 128u);
  EXPECT_EQ(offsetof(Header, cons), 256u);
  EXPECT_EQ(offsetof(Header, data_wait), 384u);
  EXPECT_EQ(offsetof(Header, space_wait), 512u);
  EXPECT_EQ(offsetof(Header, sems), 640u);
  EXPECT_EQ(offsetof(Header, lock), 768u);
  EXPECT_EQ(offsetof(Header, attach), 1024u);
  EXPECT_EQ(offsetof(Header, roles), 3072u);
  EXPECT_EQ(offsetof(Header, reserved), 3200u);
  // Absolute offsets of the words the two sides write.
  EXPECT_EQ(offsetof(Header, prod) + offsetof(ProducerLine, tail), 128u);
  EXPECT_EQ(offsetof(Header, cons) + offsetof(ConsumerLine, head), 256u);
  EXPECT_EQ(offsetof(Header, data_wait) + offsetof(WaitLine, seq), 384u);
  EXPECT_EQ(offsetof(Header, space_wait) + offsetof(WaitLine, seq), 512u);
  EXPECT_EQ(offsetof(Header, lock) + offsetof(LockBlock, cons_mutex), 832u);
  EXPECT_EQ(offsetof(Header, roles) + offsetof(RoleBlock, attaches), 3088u);
  EXPECT_EQ(offsetof(Header, attach) + 31 * sizeof(AttachEntry), 3008u);
}

template <class T>
T load_at(const std::vector<std::byte>& b, std::size_t off) {
  T v{};
  std::memcpy(&v, b.data() + off, sizeof v);
  return v;
}

// The bytes a real creator writes, read at the documented offsets.
TEST(Layout, CreatedRingBytes) {
  const auto name = test::unique_ring_name();
  test::ShmGuard guard(name);
  Config cfg;
  cfg.capacity = 8192;
  cfg.wait = WaitStrategy::spin;
  cfg.mode = 0640;
  ASSERT_EQ(create(name, cfg), Errc::ok) << last_error_message();
  const auto b = test::read_object(name);
  ASSERT_EQ(b.size(), 4096u + 8192u);
  EXPECT_EQ(std::memcmp(b.data(), "SHMRING\0", 8), 0);
  EXPECT_EQ(load_at<std::uint32_t>(b, 8), 2u);      // layout_version
  EXPECT_EQ(load_at<std::uint32_t>(b, 12), 4096u);  // header_size
  EXPECT_EQ(load_at<std::uint32_t>(b, 16), 1u);     // kind spsc
  EXPECT_EQ(load_at<std::uint32_t>(b, 20), 2u);     // wait spin
  EXPECT_EQ(load_at<std::uint64_t>(b, 24), 8192u);  // capacity
  EXPECT_EQ(load_at<std::uint64_t>(b, 32), 0u);     // slot_size
  EXPECT_EQ(load_at<std::uint64_t>(b, 40), 0u);     // slot_count
  EXPECT_EQ(load_at<std::uint64_t>(b, 48), 4096u);  // data_offset
  EXPECT_EQ(load_at<std::uint64_t>(b, 56), 12288u); // total_size
  EXPECT_EQ(load_at<std::uint64_t>(b, 64), 4088u);  // max_record = capacity/2 - 8
  EXPECT_GT(load_at<std::int64_t>(b, 72), 0);       // create_time_ns
  EXPECT_EQ(load_at<std::int32_t>(b, 80), static_cast<std::int32_t>(::getpid()));  // creator_pid
  EXPECT_EQ(load_at<std::uint32_t>(b, 84), 0640u);  // mode
  EXPECT_EQ(load_at<std::uint32_t>(b, 88), 1u);     // init_state ready
  EXPECT_EQ(load_at<std::uint32_t>(b, 92), 0u);     // reset_gen
  EXPECT_EQ(load_at<std::uint32_t>(b, 96), 32u);    // attach_capacity
  EXPECT_EQ(load_at<std::uint32_t>(b, 100), 0u);    // flags
  EXPECT_EQ(load_at<std::uint32_t>(b, 104), static_cast<std::uint32_t>(sizeof(pthread_mutex_t)));
  EXPECT_EQ(load_at<std::uint32_t>(b, 108), static_cast<std::uint32_t>(sizeof(sem_t)));
  EXPECT_GT(load_at<std::uint32_t>(b, 112), 0u);    // liveness_ms
  EXPECT_EQ(load_at<std::uint64_t>(b, 128), 0u);    // tail
  EXPECT_EQ(load_at<std::uint64_t>(b, 256), 0u);    // head
}

// Indices and record headers land where the format says: after one record
// of 5 bytes, tail (offset 128) is 16 and the data area starts at 4096 with
// {len 5, "REC1"} then the payload; after release, head (offset 256) is 16.
TEST(Layout, IndicesAndRecordInTheObject) {
  const auto name = test::unique_ring_name();
  test::ShmGuard guard(name);
  Config cfg;
  cfg.capacity = 4096;
  ASSERT_EQ(create(name, cfg), Errc::ok) << last_error_message();
  auto p = Producer::open(name);
  auto c = Consumer::open(name);
  ASSERT_TRUE(p.ok() && c.ok());
  const char msg[] = "hello";
  ASSERT_EQ(p->send(std::as_bytes(std::span(msg, 5))), Errc::ok);
  auto b = test::read_object(name);
  ASSERT_EQ(b.size(), 8192u);
  EXPECT_EQ(load_at<std::uint64_t>(b, 128), 16u);
  EXPECT_EQ(load_at<std::uint64_t>(b, 136), 1u);  // producer records
  EXPECT_EQ(load_at<std::uint32_t>(b, 4096), 5u);
  EXPECT_EQ(std::memcmp(b.data() + 4100, "REC1", 4), 0);
  EXPECT_EQ(std::memcmp(b.data() + 4104, "hello", 5), 0);
  EXPECT_EQ(load_at<std::uint64_t>(b, 256), 0u);
  char out[16];
  auto r = c->recv(std::as_writable_bytes(std::span(out)));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 5u);
  b = test::read_object(name);
  EXPECT_EQ(load_at<std::uint64_t>(b, 256), 16u);
  EXPECT_EQ(load_at<std::uint64_t>(b, 264), 1u);  // consumer records
}

}  // namespace
}  // namespace shmring
