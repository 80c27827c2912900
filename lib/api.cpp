// The C++ face: error category, names, and the Producer/Consumer handles.
#include <cstring>

#include "endpoint.hpp"
#include "shmring/ring.hpp"

namespace shmring {

namespace {

class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "shmring"; }
  std::string message(int code) const override { return shmring_strerror(code); }
};

}  // namespace

const std::error_category& error_category() noexcept {
  static const Category cat;
  return cat;
}

const char* to_string(Errc e) noexcept { return shmring_strerror(static_cast<int>(e)); }

const char* to_string(Kind k) noexcept {
  switch (k) {
    case Kind::spsc: return "spsc";
    case Kind::mpmc: return "mpmc";
    case Kind::locked: return "locked";
  }
  return "unknown";
}

const char* to_string(WaitStrategy w) noexcept {
  switch (w) {
    case WaitStrategy::futex: return "futex";
    case WaitStrategy::spin: return "spin";
    case WaitStrategy::sem: return "sem";
  }
  return "unknown";
}

const char* to_string(Role r) noexcept {
  switch (r) {
    case Role::producer: return "producer";
    case Role::consumer: return "consumer";
  }
  return "unknown";
}

const char* to_string(Departure d) noexcept {
  switch (d) {
    case Departure::none: return "none";
    case Departure::closed: return "closed";
    case Departure::died: return "died";
  }
  return "unknown";
}

Errc create(std::string_view name, const Config& cfg) { return detail::create_segment(name, cfg); }
Errc unlink(std::string_view name) { return detail::unlink_segment(name); }

Result<std::string> canonical_name(std::string_view name) {
  std::string out;
  if (Errc e = detail::canonicalize(name, &out); e != Errc::ok) return e;
  return out;
}

namespace detail {

Errc Endpoint::reserve(std::size_t, std::byte**, std::int64_t) { return wrong_role(); }
Errc Endpoint::commit(std::size_t, bool) { return wrong_role(); }
Errc Endpoint::peek(const std::byte**, std::size_t*, std::int64_t) { return wrong_role(); }
Errc Endpoint::release(bool) { return wrong_role(); }

Errc open_endpoint(std::string_view name, Role role, const OpenOptions& opts, std::unique_ptr<Endpoint>* out) {
  if (role != Role::producer && role != Role::consumer) return fail(Errc::invalid_argument, name, "unknown role");
  OpenedSegment seg;
  if (Errc e = open_segment(name, opts.init_timeout, &seg); e != Errc::ok) return e;
  Attachment att;
  if (Errc e = att.attach(seg.hdr, seg.name, role, seg.geo.kind == Kind::spsc); e != Errc::ok) return e;
  Errc err = Errc::ok;
  switch (seg.geo.kind) {
    case Kind::spsc: *out = make_spsc_endpoint(std::move(seg), std::move(att), role, &err); break;
    case Kind::locked: *out = make_locked_endpoint(std::move(seg), std::move(att), role, &err); break;
    case Kind::mpmc: *out = make_mpmc_endpoint(std::move(seg), std::move(att), role, &err); break;
    default: return fail(Errc::invalid_argument, seg.name, "ring kind not supported by this version");
  }
  return err;
}

}  // namespace detail

// ---- Producer ----------------------------------------------------------------

Producer::Producer() noexcept = default;
Producer::~Producer() = default;
Producer::Producer(Producer&&) noexcept = default;
Producer& Producer::operator=(Producer&&) noexcept = default;
Producer::Producer(std::unique_ptr<detail::Endpoint> e) noexcept : impl_(std::move(e)) {}

Result<Producer> Producer::open(std::string_view name, const OpenOptions& opts) {
  std::unique_ptr<detail::Endpoint> e;
  if (Errc err = detail::open_endpoint(name, Role::producer, opts, &e); err != Errc::ok) return err;
  return Producer(std::move(e));
}

Result<std::span<std::byte>> Producer::reserve(std::size_t n, Timeout t) {
  if (!impl_) return Errc::invalid_argument;
  std::byte* p = nullptr;
  if (Errc e = impl_->reserve(n, &p, t.ns()); e != Errc::ok) return e;
  return std::span<std::byte>(p, n);
}

Errc Producer::commit(std::size_t n, Publish p) {
  return impl_ ? impl_->commit(n, p == Publish::now) : Errc::invalid_argument;
}

Errc Producer::flush() { return impl_ ? impl_->flush() : Errc::invalid_argument; }

Errc Producer::send(std::span<const std::byte> data, Timeout t) {
  if (!impl_) return Errc::invalid_argument;
  std::byte* p = nullptr;
  if (Errc e = impl_->reserve(data.size(), &p, t.ns()); e != Errc::ok) return e;
  if (!data.empty()) std::memcpy(p, data.data(), data.size());
  return impl_->commit(data.size(), true);
}

std::size_t Producer::max_record() const noexcept { return impl_ ? impl_->max_record() : 0; }
bool Producer::orphaned() const noexcept { return impl_ && impl_->orphaned(); }
Kind Producer::kind() const noexcept { return impl_ ? impl_->kind() : Kind::spsc; }
const std::string& Producer::name() const noexcept {
  static const std::string empty;
  return impl_ ? impl_->name() : empty;
}

Departure Producer::peer_departure() const noexcept {
  return impl_ ? impl_->peer_departure() : Departure::none;
}

// ---- Consumer ----------------------------------------------------------------

Consumer::Consumer() noexcept = default;
Consumer::~Consumer() = default;
Consumer::Consumer(Consumer&&) noexcept = default;
Consumer& Consumer::operator=(Consumer&&) noexcept = default;
Consumer::Consumer(std::unique_ptr<detail::Endpoint> e) noexcept : impl_(std::move(e)) {}

Result<Consumer> Consumer::open(std::string_view name, const OpenOptions& opts) {
  std::unique_ptr<detail::Endpoint> e;
  if (Errc err = detail::open_endpoint(name, Role::consumer, opts, &e); err != Errc::ok) return err;
  return Consumer(std::move(e));
}

Result<std::span<const std::byte>> Consumer::peek(Timeout t) {
  if (!impl_) return Errc::invalid_argument;
  const std::byte* p = nullptr;
  std::size_t n = 0;
  if (Errc e = impl_->peek(&p, &n, t.ns()); e != Errc::ok) return e;
  return std::span<const std::byte>(p, n);
}

Errc Consumer::release(Publish p) { return impl_ ? impl_->release(p == Publish::now) : Errc::invalid_argument; }
Errc Consumer::flush() { return impl_ ? impl_->flush() : Errc::invalid_argument; }

Result<std::size_t> Consumer::recv(std::span<std::byte> out, Timeout t) {
  if (!impl_) return Errc::invalid_argument;
  const std::byte* p = nullptr;
  std::size_t n = 0;
  if (Errc e = impl_->peek(&p, &n, t.ns()); e != Errc::ok) return e;
  if (n > out.size()) return Errc::too_big;  // the record stays in the ring
  if (n != 0) std::memcpy(out.data(), p, n);
  if (Errc e = impl_->release(true); e != Errc::ok) return e;
  return n;
}

std::size_t Consumer::max_record() const noexcept { return impl_ ? impl_->max_record() : 0; }
bool Consumer::orphaned() const noexcept { return impl_ && impl_->orphaned(); }
Kind Consumer::kind() const noexcept { return impl_ ? impl_->kind() : Kind::spsc; }
const std::string& Consumer::name() const noexcept {
  static const std::string empty;
  return impl_ ? impl_->name() : empty;
}

Departure Consumer::peer_departure() const noexcept {
  return impl_ ? impl_->peer_departure() : Departure::none;
}

}  // namespace shmring
