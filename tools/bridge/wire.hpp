// shmring-bridge: the batch format on the wire and the sender's state file.
// docs/bridge.md describes both; every field a receiver reads is untrusted.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>

namespace shmring::bridge {

static_assert(std::endian::native == std::endian::little, "the wire format is little-endian and copied as is");

// One ZeroMQ message = one batch: a BatchHeader, then `count` records, each a
// u32 length followed by that many bytes (no padding).
inline constexpr std::uint32_t kBatchMagic = 0x31425253;  // "SRB1"
inline constexpr std::uint16_t kWireVersion = 1;

struct BatchHeader {
  std::uint32_t magic;            // kBatchMagic
  std::uint16_t version;          // kWireVersion
  std::uint16_t flags;            // 0
  std::uint64_t epoch;            // sender's random id, new at every start
  std::uint64_t first_seq;        // bridge sequence number of the first record
  std::uint64_t epoch_start_seq;  // the sequence number this epoch resumed at
  std::uint32_t count;            // records in the batch (>= 1)
  std::uint32_t uncertain;        // records whose fate the restart could not tell (see docs/bridge.md)
  std::uint32_t ring_kind;        // shmring::Kind of the sender's ring
  std::uint32_t reserved;         // 0
  std::uint64_t max_record;       // the sender's ring's max_record()
  std::int64_t sent_ns;           // CLOCK_REALTIME when the batch was handed to ZeroMQ
};
static_assert(sizeof(BatchHeader) == 64);
static_assert(offsetof(BatchHeader, epoch) == 8);
static_assert(offsetof(BatchHeader, first_seq) == 16);
static_assert(offsetof(BatchHeader, epoch_start_seq) == 24);
static_assert(offsetof(BatchHeader, count) == 32);
static_assert(offsetof(BatchHeader, uncertain) == 36);
static_assert(offsetof(BatchHeader, ring_kind) == 40);
static_assert(offsetof(BatchHeader, max_record) == 48);
static_assert(offsetof(BatchHeader, sent_ns) == 56);
static_assert(std::is_trivially_copyable_v<BatchHeader>);

inline constexpr std::size_t kRecordPrefix = sizeof(std::uint32_t);

// Validates a received message; returns the header or nullopt with *why set.
// Checks that the records exactly fill the message, so the caller may walk
// them without further bounds checks.
inline std::optional<BatchHeader> parse_batch(std::span<const std::byte> msg, std::string* why) {
  BatchHeader h;
  if (msg.size() < sizeof h) {
    *why = "message of " + std::to_string(msg.size()) + " bytes is shorter than a batch header";
    return std::nullopt;
  }
  std::memcpy(&h, msg.data(), sizeof h);
  if (h.magic != kBatchMagic || h.version != kWireVersion) {
    *why = "not a shmring-bridge batch (magic or version)";
    return std::nullopt;
  }
  if (h.count == 0) {
    *why = "empty batch";
    return std::nullopt;
  }
  std::size_t off = sizeof h;
  for (std::uint32_t i = 0; i < h.count; ++i) {
    if (msg.size() - off < kRecordPrefix) {
      *why = "record " + std::to_string(i) + " of " + std::to_string(h.count) + " runs past the message";
      return std::nullopt;
    }
    std::uint32_t len;
    std::memcpy(&len, msg.data() + off, sizeof len);
    off += kRecordPrefix;
    if (msg.size() - off < len) {
      *why = "record " + std::to_string(i) + " length " + std::to_string(len) + " runs past the message";
      return std::nullopt;
    }
    off += len;
  }
  if (off != msg.size()) {
    *why = std::to_string(msg.size() - off) + " trailing bytes after the records";
    return std::nullopt;
  }
  if (h.first_seq + h.count < h.first_seq) {
    *why = "sequence number overflow";
    return std::nullopt;
  }
  return h;
}

// ---- The sender's state file --------------------------------------------------
//
// The sender keeps the bridge sequence number of the next record it will take
// from its ring in a small file (default /dev/shm/<ring>.bridge-send), so that
// a restarted sender continues the numbering and the receiver can count what
// the dead one took from the ring but never delivered. One word, written only
// by the one sender that holds the ring's consumer role:
//
//   word = next_seq << 16 | pending
//
//   BR-1 intent:  word = C << 16 | N   before N taken records leave the ring
//   BR-2 commit:  word = (C + N) << 16 after they have left it
//
// Taken records leave the ring at the sender's flush() and also whenever it
// waits for more (a waiting consumer publishes its deferred releases), so
// BR-1 .. BR-2 bracket both (send.cpp, commit_left).
//
// Both are plain release stores by the sole writer; the only reader is a
// later sender process (BR-A1, acquire load at start), which runs after the
// writer died or exited, so process exit orders them. A restart that finds
// pending != 0 resumes at C + N; it reports N "uncertain" records unless the
// record at its ring's read position (or its absence) shows that the batch
// had left (pending_hash; docs/bridge.md, "Gaps").
inline constexpr char kStateMagic[8] = {'S', 'R', 'B', 'S', 'T', 'A', 'T', '1'};
inline constexpr unsigned kPendingBits = 16;
inline constexpr std::uint64_t kMaxPending = (std::uint64_t{1} << kPendingBits) - 1;

struct SendState {
  char magic[8];
  std::uint32_t version;
  std::uint32_t reserved;
  std::atomic<std::uint64_t> word;
  std::uint64_t last_epoch;
  // record_hash() of the first record of the pending batch, written before
  // BR-1 (whose release orders it). A restart that finds pending != 0 and a
  // different record (or none) at the ring's read position knows the batch
  // had left the ring.
  std::uint64_t pending_hash;
};
static_assert(sizeof(SendState) == 40);
static_assert(offsetof(SendState, pending_hash) == 32);
static_assert(offsetof(SendState, word) == 16);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

// A 64-bit hash of one record's bytes (not cryptographic: it tells a record
// from the one N places after it).
inline std::uint64_t record_hash(std::span<const std::byte> r) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ULL ^ r.size();
  std::size_t i = 0;
  for (; i + 8 <= r.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, r.data() + i, 8);
    h = (h ^ w) * 0x100000001b3ULL;
    h ^= h >> 29;
  }
  for (; i < r.size(); ++i) h = (h ^ static_cast<std::uint8_t>(r[i])) * 0x100000001b3ULL;
  return h ^ (h >> 32);
}

}  // namespace shmring::bridge
