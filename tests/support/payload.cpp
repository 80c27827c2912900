#include "support/payload.hpp"

#include <cstring>

namespace shmring::test {

namespace {

inline std::uint64_t mix(std::uint64_t h, std::uint64_t w) noexcept {
  h ^= w;
  h *= 0x9e3779b97f4a7c15ULL;
  return h ^ (h >> 29);
}

std::uint64_t stream_seed_for(std::uint64_t stream_seed, std::uint64_t seq) noexcept {
  return stream_seed ^ (seq * 0xd1342543de82ef95ULL);
}

// Fills [p, p+n) from the PRNG and folds the bytes into *h.
void fill_stream(Prng& rng, unsigned char* p, std::size_t n, std::uint64_t* h) noexcept {
  std::uint64_t acc = *h;
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const std::uint64_t w = rng.next();
    std::memcpy(p + i, &w, 8);
    acc = mix(acc, w);
  }
  if (i < n) {
    std::uint64_t w = rng.next();
    std::memcpy(p + i, &w, n - i);
    std::uint64_t tail = 0;
    std::memcpy(&tail, p + i, n - i);
    acc = mix(acc, tail);
  }
  *h = acc;
}

}  // namespace

std::uint64_t checksum64(const void* data, std::size_t n, std::uint64_t h) noexcept {
  const auto* p = static_cast<const unsigned char*>(data);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = mix(h, w);
  }
  if (i < n) {
    std::uint64_t w = 0;
    std::memcpy(&w, p + i, n - i);
    h = mix(h, w);
  }
  return h;
}

void fill_record(std::uint64_t stream_seed, std::uint64_t seq, void* out, std::size_t len) noexcept {
  auto* p = static_cast<unsigned char*>(out);
  Prng rng(stream_seed_for(stream_seed, seq));
  std::uint64_t h = 0;
  if (len < kFramedMin) {
    fill_stream(rng, p, len, &h);
    return;
  }
  const auto len32 = static_cast<std::uint32_t>(len);
  std::memcpy(p, &seq, 8);
  std::memcpy(p + 8, &len32, 4);
  std::memcpy(p + 12, &kPayloadMagic, 4);
  h = checksum64(p, 16);
  fill_stream(rng, p + kFramedMin, len - kFramedMin, &h);
  std::memcpy(p + 16, &h, 8);
}

bool check_record(std::uint64_t stream_seed, std::uint64_t expected_seq, std::size_t expected_len, const void* data,
                  std::size_t len, std::string* why) {
  const auto* p = static_cast<const unsigned char*>(data);
  auto carried = [&]() -> std::string {
    if (len < kFramedMin) return "";
    std::uint64_t s;
    std::uint32_t l, m;
    std::memcpy(&s, p, 8);
    std::memcpy(&l, p + 8, 4);
    std::memcpy(&m, p + 12, 4);
    if (m != kPayloadMagic) return " (no frame magic: garbage or torn)";
    std::string d = " (record carries seq " + std::to_string(s) + ", len " + std::to_string(l);
    if (s > expected_seq) d += ": records were lost";
    if (s < expected_seq) d += ": a record was duplicated or reordered";
    return d + ")";
  };
  if (len != expected_len) {
    *why = "seq " + std::to_string(expected_seq) + ": length " + std::to_string(len) + ", expected " +
           std::to_string(expected_len) + carried();
    return false;
  }
  if (len < kFramedMin) {
    unsigned char want[kFramedMin];
    Prng rng(stream_seed_for(stream_seed, expected_seq));
    std::uint64_t h = 0;
    fill_stream(rng, want, len, &h);
    if (len != 0 && std::memcmp(want, p, len) != 0) {
      *why = "seq " + std::to_string(expected_seq) + ": content of a " + std::to_string(len) +
             "-byte record differs (lost, duplicated, reordered or torn)";
      return false;
    }
    return true;
  }
  std::uint64_t s;
  std::uint32_t l, m;
  std::memcpy(&s, p, 8);
  std::memcpy(&l, p + 8, 4);
  std::memcpy(&m, p + 12, 4);
  if (m != kPayloadMagic || s != expected_seq || l != len) {
    *why = "seq " + std::to_string(expected_seq) + ": bad frame" + carried();
    return false;
  }
  std::uint64_t stored;
  std::memcpy(&stored, p + 16, 8);
  std::uint64_t h = checksum64(p, 16);
  h = checksum64(p + kFramedMin, len - kFramedMin, h);
  if (h != stored) {
    *why = "seq " + std::to_string(expected_seq) + ": checksum mismatch in a " + std::to_string(len) +
           "-byte record (torn or overwritten)";
    return false;
  }
  return true;
}

}  // namespace shmring::test
