// Record framing shared by the variable-length kinds (spsc, locked): where a
// record goes, and reading one back with every shared value validated.
// Internal header; docs/format.md describes the bytes.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

#include "layout.hpp"
#include "shmring/error.hpp"

namespace shmring::detail {

struct RingArea {
  std::byte* data;
  std::uint64_t cap;         // power of two
  std::uint64_t max_record;  // validated copy, never the shared field
  std::uint64_t mask() const noexcept { return cap - 1; }
};

// Bytes a record of n payload bytes needs at write index pos, counting the
// skip record when it must go to offset 0.
inline std::uint64_t bytes_needed(const RingArea& a, std::uint64_t pos, std::size_t n) noexcept {
  const std::uint64_t f = record_footprint(n);
  const std::uint64_t room = a.cap - (pos & a.mask());
  return f <= room ? f : room + f;
}

// Places a record of n bytes at pos (space already checked with
// bytes_needed): writes the skip record if needed and returns the index
// where the record's header goes.
inline std::uint64_t place_record(const RingArea& a, std::uint64_t pos, std::size_t n) noexcept {
  const std::uint64_t off = pos & a.mask();
  const std::uint64_t room = a.cap - off;
  if (record_footprint(n) <= room) return pos;
  const RecordHeader skip{static_cast<std::uint32_t>(room - sizeof(RecordHeader)), kSkipTag};
  std::memcpy(a.data + off, &skip, sizeof skip);
  return pos + room;
}

inline void write_record_header(const RingArea& a, std::uint64_t pos, std::size_t n) noexcept {
  const RecordHeader h{static_cast<std::uint32_t>(n), kRecordTag};
  std::memcpy(a.data + (pos & a.mask()), &h, sizeof h);
}

// Finds the record at *pos, moving *pos past a skip record. Every value read
// from the ring is copied once and checked before use. Returns ok (*len set),
// would_block (*pos == tail: nothing there) or corrupt (*why says what).
inline Errc find_record(const RingArea& a, std::uint64_t* pos, std::uint64_t tail, std::uint32_t* len,
                        std::string* why) {
  for (;;) {
    if (*pos == tail) return Errc::would_block;
    const std::uint64_t avail = tail - *pos;
    const std::uint64_t off = *pos & a.mask();
    if (avail > a.cap || avail < sizeof(RecordHeader)) {
      *why = "partial record or index out of range at offset " + std::to_string(off);
      return Errc::corrupt;
    }
    RecordHeader h;
    std::memcpy(&h, a.data + off, sizeof h);  // one copy, then only the copy is used
    if (h.tag == kSkipTag) {
      const std::uint64_t to_end = a.cap - off;
      if (std::uint64_t{h.len} + sizeof(RecordHeader) != to_end || to_end > avail) {
        *why = "bad skip record at offset " + std::to_string(off);
        return Errc::corrupt;
      }
      *pos += to_end;
      continue;
    }
    if (h.tag != kRecordTag) {
      *why = "bad record tag at offset " + std::to_string(off);
      return Errc::corrupt;
    }
    const std::uint64_t f = record_footprint(h.len);
    if (h.len > a.max_record || f > avail || off + f > a.cap) {
      *why = "record length " + std::to_string(h.len) + " at offset " + std::to_string(off) + " exceeds the ring";
      return Errc::corrupt;
    }
    *len = h.len;
    return Errc::ok;
  }
}

// Checks a (head, tail) pair read from the ring.
inline bool indices_sane(const RingArea& a, std::uint64_t head, std::uint64_t tail) noexcept {
  return tail - head <= a.cap && ((head | tail) & (kRecordAlign - 1)) == 0;
}

}  // namespace shmring::detail
