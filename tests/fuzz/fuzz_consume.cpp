// Fuzz target: the read (and write) paths of every kind over an arbitrary
// header, indices and data, as a corrupting peer would leave them.
//
// Input layout (all fields optional: missing bytes read as zero):
//   byte 0   bits 0-1 kind (spsc, mpmc, locked, spsc), bits 2-3 wait
//            strategy (futex, spin, sem, futex), bit 4 open the handles
//            after the damage instead of before it (the open-time checks
//            instead of the in-flight ones)
//   byte 1   records an honest producer writes first (0..31)
//   byte 2   mpmc slot size / 8 - 1 (0..7: 8..64 bytes)
//   byte 3   number of patches P (0..15)
//   P times  u16 offset (into the whole object, modulo its size), u8 length,
//            that many bytes written at that offset
//   rest     operations, one byte each (at most 256): peek+release,
//            peek+deferred release+flush, recv into 16 bytes, recv into the
//            largest record, send (length from the next byte), reserve +
//            deferred commit + flush
// A handle may report errors (corrupt, reset, would_block, ...) but every
// record it hands out must lie within its limits, and nothing may crash,
// hang or read outside the mapping.
#include <sys/mman.h>
#include <sys/stat.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "fuzz_common.hpp"
#include "layout.hpp"
#include "shmring/ring.hpp"

using namespace shmring;

namespace {

volatile std::uint64_t g_sink = 0;

// A read-write mapping of the object, for the damage.
struct Raw {
  void* base = MAP_FAILED;
  std::size_t size = 0;
  explicit Raw(const std::string& name) {
    const int fd = ::shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) return;
    struct stat st {};
    if (::fstat(fd, &st) == 0 && st.st_size > 0) {
      size = static_cast<std::size_t>(st.st_size);
      base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    }
    ::close(fd);
  }
  ~Raw() {
    if (base != MAP_FAILED) ::munmap(base, size);
  }
};

void patch(const std::string& name, fuzz::Input& in, unsigned patches) {
  Raw raw(name);
  for (unsigned i = 0; i < patches; ++i) {
    const std::size_t off = in.u16();
    const std::size_t len = in.u8();
    std::size_t got = 0;
    const std::uint8_t* bytes = in.take(len, &got);
    if (raw.base == MAP_FAILED || raw.size == 0) continue;
    const std::size_t at = off % raw.size;
    const std::size_t n = got < raw.size - at ? got : raw.size - at;
    std::memcpy(static_cast<unsigned char*>(raw.base) + at, bytes, n);
  }
}

void check_record(const Consumer& c, std::span<const std::byte> r) {
  if (r.size() > c.max_record()) __builtin_trap();  // a length the ring never accepts
  g_sink = g_sink + fuzz::touch(r.data(), r.size());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::enter_private_shm();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  const std::uint8_t mode = in.u8();
  const unsigned prefill = in.u8() % 32;
  const unsigned slot8 = in.u8() % 8;
  const unsigned patches = in.u8() % 16;

  static const Kind kinds[] = {Kind::spsc, Kind::mpmc, Kind::locked, Kind::spsc};
  static const WaitStrategy waits[] = {WaitStrategy::futex, WaitStrategy::spin, WaitStrategy::sem,
                                       WaitStrategy::futex};
  Config cfg;
  cfg.kind = kinds[mode & 3];
  cfg.wait = waits[(mode >> 2) & 3];
  cfg.capacity = 4096;
  if (cfg.kind == Kind::mpmc) cfg.slot_size = 8 * (slot8 + 1);
  const bool open_after = (mode & 0x10) != 0;

  static const std::string name = fuzz::ring_name("consume");
  ::shm_unlink(name.c_str());
  if (create(name, cfg) != Errc::ok) return 0;

  OpenOptions o;
  o.init_timeout = std::chrono::nanoseconds(0);
  std::optional<Producer> p;
  std::optional<Consumer> c;
  auto open_both = [&] {
    if (auto r = Producer::open(name, o)) p.emplace(std::move(*r));
    if (auto r = Consumer::open(name, o)) c.emplace(std::move(*r));
  };
  {
    // Honest records first.
    auto hp = Producer::open(name, o);
    if (hp) {
      std::byte rec[40];
      for (unsigned i = 0; i < prefill; ++i) {
        std::memset(rec, static_cast<int>(i), sizeof rec);
        (void)hp->send(std::span<const std::byte>(rec, 1 + (i * 7) % sizeof rec), Timeout::try_once());
      }
    }
  }
  if (!open_after) open_both();
  patch(name, in, patches);
  if (open_after) open_both();

  std::vector<std::byte> big(c ? c->max_record() : 0);
  for (int i = 0; i < 256 && in.left() > 0; ++i) {
    const std::uint8_t op = in.u8();
    switch (op % 6) {
      case 0:
        if (c) {
          if (auto r = c->peek(Timeout::try_once())) {
            check_record(*c, *r);
            (void)c->release();
          }
        }
        break;
      case 1:
        if (c) {
          if (auto r = c->peek(Timeout::try_once())) {
            check_record(*c, *r);
            (void)c->release(Publish::later);
          }
          (void)c->flush();
        }
        break;
      case 2:
        if (c) {
          std::byte small[16];
          if (auto r = c->recv(small, Timeout::try_once()); r && *r > sizeof small) __builtin_trap();
        }
        break;
      case 3:
        if (c && !big.empty()) {
          if (auto r = c->recv(big, Timeout::try_once()); r && *r > big.size()) __builtin_trap();
        }
        break;
      case 4:
        if (p) {
          std::byte rec[64];
          std::memset(rec, op, sizeof rec);
          (void)p->send(std::span<const std::byte>(rec, in.u8() % sizeof rec), Timeout::try_once());
        }
        break;
      case 5:
        if (p) {
          if (auto s = p->reserve(16, Timeout::try_once())) {
            if (s->size() < 16) __builtin_trap();
            std::memset(s->data(), 0x33, 16);
            (void)p->commit(16, Publish::later);
          }
          (void)p->flush();
        }
        break;
    }
  }
  c.reset();
  p.reset();
  ::shm_unlink(name.c_str());
  return 0;
}
