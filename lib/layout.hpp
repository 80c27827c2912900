// The shared-memory format, layout version 2 (docs/format.md describes every
// byte). Plain data only: fixed-width integers, no pointers, no constructors.
// Shared words are accessed through std::atomic_ref (see atom() below) so the
// same bytes can be read with pread() by shmtool without running ring code.
//
// Internal header: never installed, never included by users.
#pragma once

#include <pthread.h>
#include <semaphore.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "shmring/version.hpp"

namespace shmring::detail {

inline constexpr std::size_t kCacheLine = 64;
// Fields written by different sides sit 128 bytes apart: one line each plus
// the adjacent line that the L2 spatial prefetcher pulls in with it.
inline constexpr std::size_t kSeparation = 128;
inline constexpr std::size_t kHeaderSize = 4096;
inline constexpr std::size_t kAttachEntries = 32;

inline constexpr char kMagic[8] = {'S', 'H', 'M', 'R', 'I', 'N', 'G', '\0'};

inline constexpr std::uint32_t kInitInitialising = 0;  // zero-filled by ftruncate
inline constexpr std::uint32_t kInitReady = 1;

inline constexpr std::uint64_t kMinCapacity = 4096;
inline constexpr std::uint64_t kMaxCapacity = std::uint64_t{1} << 40;
inline constexpr std::uint64_t kMaxSlotSize = std::uint64_t{1} << 24;

// ---- Records of the variable-length kinds (spsc, locked) ------------------
// Every record starts 8-byte aligned with this header; its footprint is
// align8(8 + len). A record never wraps: when it does not fit before the end
// of the data area, the producer writes a skip record over the rest of the
// area (len = bytes to the end - 8) and puts the record at offset 0.
struct RecordHeader {
  std::uint32_t len;  // payload bytes
  std::uint32_t tag;  // kRecordTag or kSkipTag; anything else is corruption
};
inline constexpr std::uint32_t kRecordTag = 0x31434552;  // "REC1"
inline constexpr std::uint32_t kSkipTag = 0x50494b53;    // "SKIP"
inline constexpr std::uint64_t kRecordAlign = 8;

constexpr std::uint64_t record_footprint(std::uint64_t len) noexcept {
  return (sizeof(RecordHeader) + len + kRecordAlign - 1) & ~(kRecordAlign - 1);
}

// ---- Slots of the mpmc kind -------------------------------------------------
// The data area holds slot_count slots of stride align64(16 + slot_size):
// a SlotHeader, then the payload. The slot word is a small state machine
// (lib/mpmc.cpp, docs/mpmc.md):
//   bits 63..24 lap (ticket >> log2(slot_count), modulo 2^40)
//   bits 23..8  owner: attach entry index (5 bits) | 11 bits of its generation << 5
//   bits  7..0  state (SlotState)
enum SlotState : std::uint64_t {
  kSlotEmpty = 0,
  kSlotWriting = 1,
  kSlotFull = 2,
  kSlotReading = 3,
  kSlotAbandoned = 4,          // claim revoked from a live, stalled claimer: quarantined
  kSlotAbandonedReleased = 5,  // ... and the claimer has since acknowledged it
};

constexpr unsigned kLapShift = 24;
constexpr std::uint64_t kLapMask = (std::uint64_t{1} << 40) - 1;

constexpr std::uint64_t make_word(std::uint64_t lap, std::uint64_t owner, std::uint64_t state) noexcept {
  return ((lap & kLapMask) << kLapShift) | ((owner & 0xffff) << 8) | state;
}
constexpr std::uint64_t word_lap(std::uint64_t w) noexcept { return w >> kLapShift; }
constexpr std::uint64_t word_owner(std::uint64_t w) noexcept { return (w >> 8) & 0xffff; }
constexpr std::uint64_t word_state(std::uint64_t w) noexcept { return w & 0xff; }
// Signed distance a - b of two 40-bit laps.
constexpr std::int64_t lap_diff(std::uint64_t a, std::uint64_t b) noexcept {
  return static_cast<std::int64_t>((a - b) << kLapShift) >> kLapShift;
}

// Slot: header, then payload. Stride is a multiple of the cache line.
struct SlotHeader {
  std::uint64_t word;  // atomic: the state machine above
  std::uint32_t len;   // payload bytes, written by the producer before MP-R1
  std::uint32_t reserved;
};
static_assert(sizeof(SlotHeader) == 16);


// ---- Header blocks ------------------------------------------------------------

// Offset 0: written once by the creator before it publishes kInitReady;
// read-only afterwards except for init_state and reset_gen.
struct IdentityBlock {
  char magic[8];                 // kMagic
  std::uint32_t layout_version;  // kLayoutVersion
  std::uint32_t header_size;     // kHeaderSize
  std::uint32_t kind;            // shmring::Kind
  std::uint32_t wait;            // shmring::WaitStrategy
  std::uint64_t capacity;        // data area bytes (spsc, locked); power of two
  std::uint64_t slot_size;       // mpmc: payload bytes per slot; 0 otherwise
  std::uint64_t slot_count;      // mpmc: number of slots; 0 otherwise
  std::uint64_t data_offset;     // kHeaderSize
  std::uint64_t total_size;      // data_offset + data area bytes == object size
  std::uint64_t max_record;      // largest payload of one record
  std::int64_t create_time_ns;   // CLOCK_REALTIME at creation
  std::int32_t creator_pid;
  std::uint32_t mode;            // permission bits applied at creation
  std::uint32_t init_state;      // atomic: kInitInitialising -> kInitReady (once)
  std::uint32_t reset_gen;       // atomic: bumped by a forced reset
  std::uint32_t attach_capacity; // kAttachEntries
  std::uint32_t flags;           // feature bits; none defined in version 1
  std::uint32_t abi_mutex_size;  // sizeof(pthread_mutex_t) of the creator
  std::uint32_t abi_sem_size;    // sizeof(sem_t) of the creator
  std::uint32_t liveness_ms;     // peer-death detection bound
  std::uint32_t reserved0;
  std::uint64_t reserved1;
};

// Written only by the producer side (spsc) or by producers (mpmc/locked).
struct ProducerLine {
  std::uint64_t tail;     // atomic: byte index one past the last published record
  std::uint64_t records;  // atomic: records published so far (statistic)
  std::uint8_t pad[kSeparation - 16];
};

// Written only by the consumer side.
struct ConsumerLine {
  std::uint64_t head;     // atomic: byte index of the oldest unreleased record
  std::uint64_t records;  // atomic: records released so far (statistic)
  std::uint8_t pad[kSeparation - 16];
};

// A futex word with its waiter count (wait strategy futex), one per
// direction: "data available" (consumers sleep) and "space available"
// (producers sleep).
struct WaitLine {
  std::uint32_t seq;      // atomic: futex word, bumped by the waker
  std::uint32_t waiters;  // atomic: sleepers announced on seq
  std::uint8_t pad[kSeparation - 8];
};

// Wait strategy sem: two process-shared unnamed semaphores that only count
// events (never used as locks).
struct SemBlock {
  alignas(32) unsigned char data_sem[32];
  alignas(32) unsigned char space_sem[32];
  std::uint8_t pad[kSeparation - 64];
};

// The locked kind: two robust process-shared mutexes, one serialising the
// producers (guards tail and the space after it), one serialising the
// consumers (guards head), so a consumer busy with a record never stops a
// producer.
struct LockBlock {
  alignas(64) unsigned char prod_mutex[64];  // pthread_mutex_t
  alignas(64) unsigned char cons_mutex[64];  // pthread_mutex_t
  std::uint64_t recoveries;                  // atomic: owner-died repairs done (statistic)
  std::uint64_t prod_holder;                 // atomic: pid holding prod_mutex (diagnostic)
  std::uint64_t cons_holder;                 // atomic: pid holding cons_mutex (diagnostic)
  std::uint8_t pad[256 - 152];
};

// One attached process.
struct AttachEntry {
  std::uint64_t state;          // atomic: kAttachFree / claimed word (docs/format.md)
  std::int32_t pid;
  std::uint32_t role;           // shmring::Role
  std::uint64_t start_time;     // /proc/PID/stat field 22 (display only)
  std::int64_t attach_time_ns;  // CLOCK_REALTIME
  std::uint64_t generation;     // atomic: bumped by every claim of this entry
  std::uint64_t sleeping;       // atomic: bit 0 asleep on data_wait, bit 1 on space_wait
  std::uint64_t pid_ns;         // inode of the holder's /proc/self/ns/pid (display only)
  std::uint64_t reserved;
};
// Since layout version 2 an entry is alive exactly while an open-file-
// description lock is held on byte offsetof(Header, attach) + 64 * index of
// the object (lib/liveness.hpp, docs/liveness.md); pid and start_time only
// name the process for people.

// Who holds the exclusive roles of an spsc ring, and how many attaches each
// role has seen (for the peer-gone rule).
struct RoleBlock {
  std::uint64_t owner[2];     // atomic, [role-1]: 0 none, else owner_word(pid, entry)
  std::uint64_t attaches[2];  // atomic, [role-1]: attaches so far (monotonic)
  // mpmc recovery statistics (atomic; rare events only):
  std::uint64_t abandoned_claims;  // slots skipped because the claimer died
  std::uint64_t dropped_reads;     // records lost with a consumer that died holding them
  std::uint64_t fenced_claims;     // claims revoked from a live but stalled claimer
  std::uint64_t fenced_reads;      // records revoked from a live but stalled reader (dropped)
  std::uint8_t pad[kSeparation - 64];
};

// How peers left (docs/liveness.md, "Departures"). Monotonic counters per
// role, never reset. Added in bytes that layout version 1 reserved as zero:
// a ring made by an older library reads 0 here and is counted from then on.
struct DepartureBlock {
  std::uint64_t closed[2];  // atomic, [role-1]: clean detaches so far
  std::uint64_t died[2];    // atomic, [role-1]: dead processes' entries reclaimed so far
  std::uint8_t pad[kSeparation - 32];
};

// Attach entry state word: pid in bits 63..32, role in bits 15..8, phase in
// bits 7..0. Zero means free.
inline constexpr std::uint64_t kPhaseClaiming = 1;  // fields being written
inline constexpr std::uint64_t kPhaseAttached = 2;  // fields complete
constexpr std::uint64_t attach_word(std::int32_t pid, std::uint32_t role, std::uint64_t phase) noexcept {
  return (std::uint64_t{static_cast<std::uint32_t>(pid)} << 32) | (std::uint64_t{role & 0xff} << 8) | phase;
}
constexpr std::int32_t attach_word_pid(std::uint64_t w) noexcept { return static_cast<std::int32_t>(w >> 32); }
constexpr std::uint32_t attach_word_role(std::uint64_t w) noexcept { return static_cast<std::uint32_t>((w >> 8) & 0xff); }
constexpr std::uint64_t attach_word_phase(std::uint64_t w) noexcept { return w & 0xff; }
// Role owner word: pid in bits 63..32, attach entry index + 1 in bits 31..0.
constexpr std::uint64_t owner_word(std::int32_t pid, std::uint32_t entry) noexcept {
  return (std::uint64_t{static_cast<std::uint32_t>(pid)} << 32) | (entry + 1);
}

struct Header {
  IdentityBlock id;                          // 0
  std::uint8_t pad0[kSeparation - sizeof(IdentityBlock)];
  ProducerLine prod;                         // 128
  ConsumerLine cons;                         // 256
  WaitLine data_wait;                        // 384
  WaitLine space_wait;                       // 512
  SemBlock sems;                             // 640
  LockBlock lock;                            // 768
  AttachEntry attach[kAttachEntries];        // 1024
  RoleBlock roles;                           // 3072
  std::uint8_t reserved[kHeaderSize - 3200 - kSeparation];  // 3200
  DepartureBlock departures;                 // 3968: the last 128 bytes of the header page
};

// ---- Layout facts: a change here is a format change (bump kLayoutVersion) ----
static_assert(sizeof(RecordHeader) == 8);
static_assert(sizeof(IdentityBlock) == 128);
static_assert(offsetof(IdentityBlock, layout_version) == 8);
static_assert(offsetof(IdentityBlock, kind) == 16);
static_assert(offsetof(IdentityBlock, capacity) == 24);
static_assert(offsetof(IdentityBlock, slot_size) == 32);
static_assert(offsetof(IdentityBlock, slot_count) == 40);
static_assert(offsetof(IdentityBlock, data_offset) == 48);
static_assert(offsetof(IdentityBlock, total_size) == 56);
static_assert(offsetof(IdentityBlock, max_record) == 64);
static_assert(offsetof(IdentityBlock, create_time_ns) == 72);
static_assert(offsetof(IdentityBlock, creator_pid) == 80);
static_assert(offsetof(IdentityBlock, mode) == 84);
static_assert(offsetof(IdentityBlock, init_state) == 88);
static_assert(offsetof(IdentityBlock, reset_gen) == 92);
static_assert(offsetof(IdentityBlock, attach_capacity) == 96);
static_assert(offsetof(IdentityBlock, flags) == 100);
static_assert(offsetof(IdentityBlock, abi_mutex_size) == 104);
static_assert(offsetof(IdentityBlock, abi_sem_size) == 108);
static_assert(offsetof(IdentityBlock, liveness_ms) == 112);
static_assert(sizeof(ProducerLine) == kSeparation && sizeof(ConsumerLine) == kSeparation);
static_assert(sizeof(WaitLine) == kSeparation && sizeof(SemBlock) == kSeparation);
static_assert(sizeof(LockBlock) == 256);
static_assert(offsetof(LockBlock, cons_mutex) == 64);
static_assert(offsetof(LockBlock, recoveries) == 128);
static_assert(offsetof(LockBlock, prod_holder) == 136);
static_assert(offsetof(LockBlock, cons_holder) == 144);
static_assert(sizeof(AttachEntry) == 64);
static_assert(offsetof(AttachEntry, pid) == 8);
static_assert(offsetof(AttachEntry, role) == 12);
static_assert(offsetof(AttachEntry, start_time) == 16);
static_assert(offsetof(AttachEntry, attach_time_ns) == 24);
static_assert(offsetof(AttachEntry, generation) == 32);
static_assert(offsetof(AttachEntry, sleeping) == 40);
static_assert(offsetof(AttachEntry, pid_ns) == 48);
static_assert(offsetof(Header, prod) == 128);
static_assert(offsetof(Header, cons) == 256);
static_assert(offsetof(Header, data_wait) == 384);
static_assert(offsetof(Header, space_wait) == 512);
static_assert(offsetof(Header, sems) == 640);
static_assert(offsetof(Header, lock) == 768);
static_assert(offsetof(Header, attach) == 1024);
static_assert(offsetof(Header, roles) == 3072);
static_assert(offsetof(RoleBlock, attaches) == 16);
static_assert(offsetof(RoleBlock, abandoned_claims) == 32);
static_assert(offsetof(RoleBlock, dropped_reads) == 40);
static_assert(offsetof(RoleBlock, fenced_claims) == 48);
static_assert(offsetof(RoleBlock, fenced_reads) == 56);
static_assert(sizeof(RoleBlock) == kSeparation);
static_assert(sizeof(DepartureBlock) == kSeparation);
static_assert(offsetof(Header, reserved) == 3200);
static_assert(offsetof(Header, departures) == kHeaderSize - kSeparation && offsetof(Header, departures) == 3968);
static_assert(offsetof(DepartureBlock, closed) == 0);
static_assert(offsetof(DepartureBlock, died) == 16);
static_assert(sizeof(Header) == kHeaderSize);
// Producer-written and consumer-written words never share a line (nor an
// adjacent-line prefetch pair).
static_assert(offsetof(Header, cons) - offsetof(Header, prod) >= kSeparation);
static_assert(sizeof(pthread_mutex_t) <= sizeof(LockBlock::prod_mutex));
static_assert(alignof(pthread_mutex_t) <= 64);
static_assert(sizeof(sem_t) <= 32 && alignof(sem_t) <= 32);
static_assert(std::atomic_ref<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic_ref<std::uint32_t>::is_always_lock_free);
static_assert(std::atomic_ref<std::uint64_t>::required_alignment <= alignof(std::uint64_t));
static_assert(std::atomic_ref<std::uint32_t>::required_alignment <= alignof(std::uint32_t));

// Atomic access to a shared word. Every call site names its ordering partner.
template <class T>
inline std::atomic_ref<T> atom(T& word) noexcept {
  return std::atomic_ref<T>(word);
}

}  // namespace shmring::detail
