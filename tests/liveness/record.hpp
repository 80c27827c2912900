// The liveness suite's record oracle, shared by the test binary and the
// shmring_peer helper. Header-only, no gtest.
//
// A record carries (producer id, sequence number, length, checksum) in a
// 24-byte frame, followed by a body that is a pure function of (id, seq).
// Its length is also a pure function of (id, seq, min, max), so a consumer
// detects a lost, duplicated, reordered, resized or torn record without any
// side channel.
//
//   [0,4)   producer id
//   [4,8)   len (whole record, bytes)
//   [8,16)  seq
//   [16,24) checksum over [0,16) and [24,len)
//   [24,len) body
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace shmring::live {

inline constexpr std::size_t kFrame = 24;

inline constexpr std::uint64_t mix64(std::uint64_t x) noexcept {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

inline std::uint32_t record_len(std::uint32_t id, std::uint64_t seq, std::uint32_t min_len,
                                std::uint32_t max_len) noexcept {
  if (min_len < kFrame) min_len = kFrame;
  if (max_len < min_len) max_len = min_len;
  const std::uint64_t r = mix64((std::uint64_t{id} << 40) ^ seq ^ 0x1e4a);
  return static_cast<std::uint32_t>(min_len + r % (std::uint64_t{max_len} - min_len + 1));
}

namespace detail_rec {
inline std::uint64_t body_word(std::uint64_t& s) noexcept {
  s ^= s >> 12;
  s ^= s << 25;
  s ^= s >> 27;
  return s * 0x2545f4914f6cdd1dULL;
}
inline std::uint64_t body_seed(std::uint32_t id, std::uint64_t seq) noexcept {
  return mix64(seq * 0x632be59bd9b4e019ULL ^ id) | 1;
}
inline std::uint64_t sum_bytes(const unsigned char* p, std::size_t n, std::uint64_t h) noexcept {
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = (h ^ w) * 0x100000001b3ULL;
    h ^= h >> 29;
  }
  for (; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ULL;
  return h;
}
}  // namespace detail_rec

// Writes record (id, seq) of len bytes (len >= kFrame) into out.
inline void fill_record(std::uint32_t id, std::uint64_t seq, void* out, std::size_t len) noexcept {
  auto* p = static_cast<unsigned char*>(out);
  const auto len32 = static_cast<std::uint32_t>(len);
  std::memcpy(p, &id, 4);
  std::memcpy(p + 4, &len32, 4);
  std::memcpy(p + 8, &seq, 8);
  std::uint64_t s = detail_rec::body_seed(id, seq);
  std::size_t i = kFrame;
  for (; i + 8 <= len; i += 8) {
    const std::uint64_t w = detail_rec::body_word(s);
    std::memcpy(p + i, &w, 8);
  }
  if (i < len) {
    const std::uint64_t w = detail_rec::body_word(s);
    std::memcpy(p + i, &w, len - i);
  }
  std::uint64_t h = detail_rec::sum_bytes(p, 16, 0xcbf29ce484222325ULL);
  h = detail_rec::sum_bytes(p + kFrame, len - kFrame, h);
  std::memcpy(p + 16, &h, 8);
}

struct RecordView {
  std::uint32_t id = 0;
  std::uint64_t seq = 0;
};

// Checks that [p, p+n) is a whole, untorn record whose length matches the
// (min, max) length function. Fills *v with its id and seq. On failure
// returns false with *why set.
inline bool check_record(const void* p_in, std::size_t n, std::uint32_t min_len, std::uint32_t max_len,
                         RecordView* v, std::string* why) {
  const auto* p = static_cast<const unsigned char*>(p_in);
  if (n < kFrame) {
    *why = "record of " + std::to_string(n) + " bytes, shorter than the frame";
    return false;
  }
  std::uint32_t id, len32;
  std::uint64_t seq, sum;
  std::memcpy(&id, p, 4);
  std::memcpy(&len32, p + 4, 4);
  std::memcpy(&seq, p + 8, 8);
  std::memcpy(&sum, p + 16, 8);
  v->id = id;
  v->seq = seq;
  if (len32 != n) {
    *why = "record (" + std::to_string(id) + "," + std::to_string(seq) + ") says " + std::to_string(len32) +
           " bytes, peek returned " + std::to_string(n);
    return false;
  }
  if (record_len(id, seq, min_len, max_len) != n) {
    *why = "record (" + std::to_string(id) + "," + std::to_string(seq) + ") has the wrong length " +
           std::to_string(n);
    return false;
  }
  std::uint64_t h = detail_rec::sum_bytes(p, 16, 0xcbf29ce484222325ULL);
  h = detail_rec::sum_bytes(p + kFrame, n - kFrame, h);
  if (h != sum) {
    *why = "record (" + std::to_string(id) + "," + std::to_string(seq) + ") checksum mismatch (torn)";
    return false;
  }
  std::uint64_t s = detail_rec::body_seed(id, seq);
  std::size_t i = kFrame;
  for (; i + 8 <= n; i += 8) {
    const std::uint64_t w = detail_rec::body_word(s);
    if (std::memcmp(p + i, &w, 8) != 0) {
      *why = "record (" + std::to_string(id) + "," + std::to_string(seq) + ") body differs at byte " +
             std::to_string(i);
      return false;
    }
  }
  if (i < n) {
    const std::uint64_t w = detail_rec::body_word(s);
    if (std::memcmp(p + i, &w, n - i) != 0) {
      *why = "record (" + std::to_string(id) + "," + std::to_string(seq) + ") tail differs";
      return false;
    }
  }
  return true;
}

}  // namespace shmring::live
