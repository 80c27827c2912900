// Fuzz target: open and validate an arbitrary segment image.
//
// The input is the whole object. First the pure validator runs over its
// first bytes (as open() and shmtool use it); then the bytes become a real
// /dev/shm object, which is opened as consumer and as producer with
// init_timeout 0, and whatever opens is used: a few sends, then peeks and
// releases of everything readable, each record's bytes touched. The library
// must refuse or serve, never crash, hang or read outside its mapping.
#include <chrono>
#include <cstring>
#include <string>

#include "fuzz_common.hpp"
#include "layout.hpp"
#include "segment.hpp"
#include "shmring/ring.hpp"

using namespace shmring;

namespace {
bool g_private = false;
volatile std::uint64_t g_sink = 0;
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_private = fuzz::enter_private_shm();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // 1. validate_header over a snapshot, against the input's size and against
  //    sizes near the one the header claims.
  if (size >= sizeof(detail::IdentityBlock)) {
    detail::IdentityBlock id;
    std::memcpy(&id, data, sizeof id);
    detail::Geometry g;
    std::string why;
    detail::validate_header(id, size, &g, &why);
    if (detail::validate_header(id, detail::kHeaderSize + id.capacity, &g, &why) == Errc::ok) g_sink = g_sink + g.max_record;
  }
  if (size > (std::size_t{1} << 20)) return 0;

  // 2. the object itself, through the public API.
  static const std::string name = fuzz::ring_name("segment");
  if (!fuzz::write_object(name, data, size)) return 0;
  {
    OpenOptions o;
    o.init_timeout = std::chrono::nanoseconds(0);
    auto c = Consumer::open(name, o);
    auto p = Producer::open(name, o);
    if (p) {
      const std::byte rec[24] = {};
      for (int i = 0; i < 3; ++i) (void)p->send(rec, Timeout::try_once());
      if (auto s = p->reserve(8, Timeout::try_once())) {
        std::memset(s->data(), 0x5a, 8);
        (void)p->commit(8);
      }
    }
    if (c) {
      for (int i = 0; i < 16; ++i) {
        auto r = c->peek(Timeout::try_once());
        if (!r) break;
        if (r->size() > c->max_record()) __builtin_trap();  // a length the ring never accepts
        g_sink = g_sink + fuzz::touch(r->data(), r->size());
        if (c->release() != Errc::ok) break;
      }
      std::byte buf[16];
      (void)c->recv(buf, Timeout::try_once());
    }
  }
  ::shm_unlink(name.c_str());
  return 0;
}
