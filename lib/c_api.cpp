// The C API: a thin layer over detail::Endpoint. No exception crosses it.
#include <cstring>
#include <new>
#include <type_traits>

#include "endpoint.hpp"
#include "shmring/shmring.h"

struct shmring_handle {
  std::unique_ptr<shmring::detail::Endpoint> ep;
};

namespace {

using shmring::Errc;

int rc(Errc e) noexcept { return static_cast<int>(e); }

// A C caller (or another language through the C ABI) may pass any 32-bit
// pattern in an enum field. In C++ loading an enum object whose value lies
// outside the enum's range is undefined, so the bits are copied out as an
// integer and compared with the enumerators as integers.
template <class E>
long long raw(const E& e) noexcept {
  std::underlying_type_t<E> v;
  static_assert(sizeof v == sizeof e);
  std::memcpy(&v, &e, sizeof v);
  return static_cast<long long>(v);
}

bool to_config(const shmring_config* c, shmring::Config* out) {
  switch (raw(c->kind)) {
    case SHMRING_SPSC: out->kind = shmring::Kind::spsc; break;
    case SHMRING_MPMC: out->kind = shmring::Kind::mpmc; break;
    case SHMRING_LOCKED: out->kind = shmring::Kind::locked; break;
    default: return false;
  }
  switch (raw(c->wait)) {
    case SHMRING_WAIT_FUTEX: out->wait = shmring::WaitStrategy::futex; break;
    case SHMRING_WAIT_SPIN: out->wait = shmring::WaitStrategy::spin; break;
    case SHMRING_WAIT_SEM: out->wait = shmring::WaitStrategy::sem; break;
    default: return false;
  }
  out->capacity = c->capacity;
  out->slot_size = c->slot_size;
  out->mode = c->mode == 0 ? 0600 : c->mode;
  return true;
}

// Runs f, turning any exception (allocation failure) into an error code.
template <class F>
int guarded(const char* name, F&& f) noexcept {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return rc(shmring::detail::fail(Errc::system_error, name ? name : "", "out of memory"));
  } catch (...) {
    return rc(shmring::detail::fail(Errc::system_error, name ? name : "", "unexpected exception"));
  }
}

}  // namespace

extern "C" {

int shmring_create(const char* name, const shmring_config* cfg) {
  return guarded(name, [&] {
    if (name == nullptr || cfg == nullptr) return rc(shmring::detail::fail(Errc::invalid_argument, "", "null argument"));
    shmring::Config c;
    if (!to_config(cfg, &c)) return rc(shmring::detail::fail(Errc::invalid_argument, name, "unknown kind or wait strategy"));
    return rc(shmring::create(name, c));
  });
}

int shmring_unlink(const char* name) {
  return guarded(name, [&] {
    if (name == nullptr) return rc(shmring::detail::fail(Errc::invalid_argument, "", "null name"));
    return rc(shmring::unlink(name));
  });
}

int shmring_open(const char* name, shmring_role role, shmring_t** out) {
  return guarded(name, [&] {
    if (out == nullptr) return rc(shmring::detail::fail(Errc::invalid_argument, name ? name : "", "null out"));
    *out = nullptr;
    if (name == nullptr) return rc(shmring::detail::fail(Errc::invalid_argument, "", "null name"));
    shmring::Role r;
    switch (raw(role)) {
      case SHMRING_PRODUCER: r = shmring::Role::producer; break;
      case SHMRING_CONSUMER: r = shmring::Role::consumer; break;
      default: return rc(shmring::detail::fail(Errc::invalid_argument, name, "unknown role"));
    }
    auto h = std::make_unique<shmring_t>();
    if (Errc e = shmring::detail::open_endpoint(name, r, {}, &h->ep); e != Errc::ok) return rc(e);
    *out = h.release();
    return int{SHMRING_OK};
  });
}

void shmring_close(shmring_t* r) { delete r; }

int shmring_reserve(shmring_t* r, size_t n, void** buf, int64_t timeout_ns) {
  if (r == nullptr || buf == nullptr) return SHMRING_EINVAL;
  std::byte* p = nullptr;
  const Errc e = r->ep->reserve(n, &p, timeout_ns);
  *buf = e == Errc::ok ? p : nullptr;
  return rc(e);
}

int shmring_commit(shmring_t* r, size_t n) { return r ? rc(r->ep->commit(n, true)) : SHMRING_EINVAL; }
int shmring_commit_deferred(shmring_t* r, size_t n) { return r ? rc(r->ep->commit(n, false)) : SHMRING_EINVAL; }

int shmring_peek(shmring_t* r, const void** buf, size_t* n, int64_t timeout_ns) {
  if (r == nullptr || buf == nullptr || n == nullptr) return SHMRING_EINVAL;
  const std::byte* p = nullptr;
  std::size_t len = 0;
  const Errc e = r->ep->peek(&p, &len, timeout_ns);
  *buf = e == Errc::ok ? p : nullptr;
  *n = e == Errc::ok ? len : 0;
  return rc(e);
}

int shmring_release(shmring_t* r) { return r ? rc(r->ep->release(true)) : SHMRING_EINVAL; }
int shmring_release_deferred(shmring_t* r) { return r ? rc(r->ep->release(false)) : SHMRING_EINVAL; }
int shmring_flush(shmring_t* r) { return r ? rc(r->ep->flush()) : SHMRING_EINVAL; }

int shmring_send(shmring_t* r, const void* p, size_t n, int64_t timeout_ns) {
  if (r == nullptr || (p == nullptr && n != 0)) return SHMRING_EINVAL;
  std::byte* dst = nullptr;
  if (Errc e = r->ep->reserve(n, &dst, timeout_ns); e != Errc::ok) return rc(e);
  if (n != 0) std::memcpy(dst, p, n);
  return rc(r->ep->commit(n, true));
}

int shmring_recv(shmring_t* r, void* p, size_t cap, size_t* n, int64_t timeout_ns) {
  if (r == nullptr || n == nullptr || (p == nullptr && cap != 0)) return SHMRING_EINVAL;
  const std::byte* src = nullptr;
  std::size_t len = 0;
  *n = 0;
  if (Errc e = r->ep->peek(&src, &len, timeout_ns); e != Errc::ok) return rc(e);
  *n = len;
  if (len > cap) return SHMRING_ETOOBIG;  // the record stays in the ring
  if (len != 0) std::memcpy(p, src, len);
  return rc(r->ep->release(true));
}

size_t shmring_max_record(const shmring_t* r) { return r ? r->ep->max_record() : 0; }

static_assert(SHMRING_DEPARTURE_NONE == static_cast<int>(shmring::Departure::none));
static_assert(SHMRING_DEPARTURE_CLOSED == static_cast<int>(shmring::Departure::closed));
static_assert(SHMRING_DEPARTURE_DIED == static_cast<int>(shmring::Departure::died));

int shmring_peer_departure(const shmring_t* r) {
  if (r == nullptr || !r->ep) return SHMRING_EINVAL;
  return static_cast<int>(r->ep->peer_departure());
}

int shmring_orphaned(const shmring_t* r) {
  if (r == nullptr) return SHMRING_EINVAL;
  return r->ep->orphaned() ? 1 : 0;
}

const char* shmring_strerror(int code) {
  switch (code) {
    case SHMRING_OK: return "success";
    case SHMRING_EWOULDBLOCK: return "ring is empty or full (try again)";
    case SHMRING_ETIMEDOUT: return "timed out";
    case SHMRING_EPEERGONE: return "peer gone: no live process on the other side";
    case SHMRING_EBUSY: return "busy: the role is held by a live process";
    case SHMRING_EEXIST: return "a ring or object of that name already exists";
    case SHMRING_ENOENT: return "no ring of that name";
    case SHMRING_EPERM: return "permission denied";
    case SHMRING_ECORRUPT: return "corrupt or foreign shared-memory object";
    case SHMRING_EVERSION: return "incompatible layout version";
    case SHMRING_ETOOBIG: return "record too big";
    case SHMRING_ERESET: return "ring was reset, or this handle's stalled claim or hold was revoked";
    case SHMRING_EINVAL: return "invalid argument";
    case SHMRING_ENOSPC: return "not enough shared memory";
    case SHMRING_ESYSTEM: return "operating-system error";
    default: return "unknown shmring error code";
  }
}

const char* shmring_last_error(void) { return shmring::last_error_message().c_str(); }

}  // extern "C"
