// Deterministic record payloads and their checker, the oracle of every
// stress test. Both sides derive a record's length and bytes from its
// sequence number, so the consumer can tell a lost, duplicated, reordered,
// resized or torn record from a good one without any side channel.
//
// A record of len >= kFramedMin bytes carries a frame:
//   [0,8)   seq            (little endian, as the machine stores it)
//   [8,12)  len
//   [12,16) kPayloadMagic
//   [16,24) checksum over bytes [0,16) and [24,len)
//   [24,len) body: the record's PRNG stream
// A shorter record is the first len bytes of the PRNG stream alone; the
// consumer regenerates and compares it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace shmring::test {

inline constexpr std::size_t kFramedMin = 24;
inline constexpr std::uint32_t kPayloadMagic = 0x53514e31;  // "1NQS"

inline constexpr std::uint64_t splitmix64(std::uint64_t x) noexcept {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// xorshift64*: a fast per-record stream.
class Prng {
 public:
  explicit Prng(std::uint64_t seed) noexcept : s_(splitmix64(seed) | 1) {}
  std::uint64_t next() noexcept {
    s_ ^= s_ >> 12;
    s_ ^= s_ << 25;
    s_ ^= s_ >> 27;
    return s_ * 0x2545f4914f6cdd1dULL;
  }
  // Uniform in [lo, hi] (hi - lo small compared with 2^64; the bias is negligible).
  std::uint64_t between(std::uint64_t lo, std::uint64_t hi) noexcept { return lo + next() % (hi - lo + 1); }

 private:
  std::uint64_t s_;
};

// The length of record `seq` of a stream: uniform in [min_len, max_len],
// a pure function of (stream_seed, seq).
inline std::uint32_t record_length(std::uint64_t stream_seed, std::uint64_t seq, std::uint32_t min_len,
                                   std::uint32_t max_len) noexcept {
  const std::uint64_t r = splitmix64(stream_seed * 0x632be59bd9b4e019ULL ^ seq);
  return static_cast<std::uint32_t>(min_len + r % (std::uint64_t{max_len} - min_len + 1));
}

// 64-bit checksum of bytes (word-wise multiply-xorshift, FNV-like).
std::uint64_t checksum64(const void* p, std::size_t n, std::uint64_t h = 0xcbf29ce484222325ULL) noexcept;

// Writes record `seq` of `len` bytes into out.
void fill_record(std::uint64_t stream_seed, std::uint64_t seq, void* out, std::size_t len) noexcept;

// Checks that [p, p+len) is record `expected_seq` of expected_len bytes.
// On a mismatch returns false and says what is wrong in *why (what seq the
// record carries when it has a frame: lost, duplicated or reordered).
bool check_record(std::uint64_t stream_seed, std::uint64_t expected_seq, std::size_t expected_len, const void* p,
                  std::size_t len, std::string* why);

}  // namespace shmring::test
