#include "support/stress.hpp"

#include <cstring>
#include <vector>

#include "endpoint.hpp"  // internal: the shared-mapping endpoint face
#include "shmring/ring.hpp"
#include "shmring/shmring.h"
#include "support/payload.hpp"
#include "support/test_support.hpp"

namespace shmring::test {

const char* to_string(Face f) noexcept {
  switch (f) {
    case Face::cpp: return "cpp";
    case Face::c: return "c";
    case Face::endpoint: return "endpoint";
  }
  return "?";
}

const char* to_string(Mode m) noexcept {
  switch (m) {
    case Mode::zero_copy: return "zero_copy";
    case Mode::copy: return "copy";
    case Mode::batched: return "batched";
  }
  return "?";
}

namespace {

Errc errc(int rc) { return static_cast<Errc>(rc); }

// ---- C++ handles ---------------------------------------------------------------------
class CppProducer final : public ProducerPort {
 public:
  explicit CppProducer(Producer p) : p_(std::move(p)) {}
  Errc reserve(std::size_t n, std::byte** out, std::int64_t t) override {
    auto r = p_.reserve(n, Timeout::from_ns(t));
    if (!r) return r.error();
    *out = r->data();
    return Errc::ok;
  }
  Errc commit(std::size_t n, bool now) override { return p_.commit(n, now ? Publish::now : Publish::later); }
  Errc flush() override { return p_.flush(); }
  Errc send(const std::byte* p, std::size_t n, std::int64_t t) override {
    return p_.send(std::span<const std::byte>(p, n), Timeout::from_ns(t));
  }
  std::size_t max_record() const override { return p_.max_record(); }

 private:
  Producer p_;
};

class CppConsumer final : public ConsumerPort {
 public:
  explicit CppConsumer(Consumer c) : c_(std::move(c)) {}
  Errc peek(const std::byte** out, std::size_t* n, std::int64_t t) override {
    auto r = c_.peek(Timeout::from_ns(t));
    if (!r) return r.error();
    *out = r->data();
    *n = r->size();
    return Errc::ok;
  }
  Errc release(bool now) override { return c_.release(now ? Publish::now : Publish::later); }
  Errc flush() override { return c_.flush(); }
  Errc recv(std::byte* buf, std::size_t cap, std::size_t* n, std::int64_t t) override {
    auto r = c_.recv(std::span<std::byte>(buf, cap), Timeout::from_ns(t));
    if (!r) return r.error();
    *n = *r;
    return Errc::ok;
  }
  std::size_t max_record() const override { return c_.max_record(); }

 private:
  Consumer c_;
};

// ---- C API -------------------------------------------------------------------------------
class CProducer final : public ProducerPort {
 public:
  explicit CProducer(shmring_t* r) : r_(r) {}
  ~CProducer() override { shmring_close(r_); }
  Errc reserve(std::size_t n, std::byte** out, std::int64_t t) override {
    void* p = nullptr;
    const int rc = shmring_reserve(r_, n, &p, t);
    *out = static_cast<std::byte*>(p);
    return errc(rc);
  }
  Errc commit(std::size_t n, bool now) override {
    return errc(now ? shmring_commit(r_, n) : shmring_commit_deferred(r_, n));
  }
  Errc flush() override { return errc(shmring_flush(r_)); }
  Errc send(const std::byte* p, std::size_t n, std::int64_t t) override { return errc(shmring_send(r_, p, n, t)); }
  std::size_t max_record() const override { return shmring_max_record(r_); }

 private:
  shmring_t* r_;
};

class CConsumer final : public ConsumerPort {
 public:
  explicit CConsumer(shmring_t* r) : r_(r) {}
  ~CConsumer() override { shmring_close(r_); }
  Errc peek(const std::byte** out, std::size_t* n, std::int64_t t) override {
    const void* p = nullptr;
    const int rc = shmring_peek(r_, &p, n, t);
    *out = static_cast<const std::byte*>(p);
    return errc(rc);
  }
  Errc release(bool now) override { return errc(now ? shmring_release(r_) : shmring_release_deferred(r_)); }
  Errc flush() override { return errc(shmring_flush(r_)); }
  Errc recv(std::byte* buf, std::size_t cap, std::size_t* n, std::int64_t t) override {
    return errc(shmring_recv(r_, buf, cap, n, t));
  }
  std::size_t max_record() const override { return shmring_max_record(r_); }

 private:
  shmring_t* r_;
};

// ---- Internal endpoints ----------------------------------------------------------------
class EpProducer final : public ProducerPort {
 public:
  explicit EpProducer(std::unique_ptr<detail::Endpoint> e) : e_(std::move(e)) {}
  Errc reserve(std::size_t n, std::byte** out, std::int64_t t) override { return e_->reserve(n, out, t); }
  Errc commit(std::size_t n, bool now) override { return e_->commit(n, now); }
  Errc flush() override { return e_->flush(); }
  Errc send(const std::byte* p, std::size_t n, std::int64_t t) override {
    std::byte* dst = nullptr;
    if (Errc e = e_->reserve(n, &dst, t); e != Errc::ok) return e;
    if (n != 0) std::memcpy(dst, p, n);
    return e_->commit(n, true);
  }
  std::size_t max_record() const override { return e_->max_record(); }
  detail::Endpoint& endpoint() { return *e_; }

 private:
  std::unique_ptr<detail::Endpoint> e_;
};

class EpConsumer final : public ConsumerPort {
 public:
  explicit EpConsumer(std::unique_ptr<detail::Endpoint> e) : e_(std::move(e)) {}
  Errc peek(const std::byte** out, std::size_t* n, std::int64_t t) override { return e_->peek(out, n, t); }
  Errc release(bool now) override { return e_->release(now); }
  Errc flush() override { return e_->flush(); }
  Errc recv(std::byte* buf, std::size_t cap, std::size_t* n, std::int64_t t) override {
    const std::byte* src = nullptr;
    if (Errc e = e_->peek(&src, n, t); e != Errc::ok) return e;
    if (*n > cap) return Errc::too_big;
    if (*n != 0) std::memcpy(buf, src, *n);
    return e_->release(true);
  }
  std::size_t max_record() const override { return e_->max_record(); }

 private:
  std::unique_ptr<detail::Endpoint> e_;
};

std::string fail_at(const char* what, std::uint64_t seq, Errc e) {
  return std::string(what) + " failed at seq " + std::to_string(seq) + ": " + errc_name(e) + " (" +
         to_string(e) + ")";
}

}  // namespace

std::unique_ptr<ProducerPort> open_producer_port(Face face, const std::string& ring, Errc* err) {
  *err = Errc::ok;
  if (face == Face::cpp) {
    auto p = Producer::open(ring);
    if (!p) {
      *err = p.error();
      return nullptr;
    }
    return std::make_unique<CppProducer>(std::move(*p));
  }
  if (face == Face::c) {
    shmring_t* r = nullptr;
    if (int rc = shmring_open(ring.c_str(), SHMRING_PRODUCER, &r); rc != SHMRING_OK) {
      *err = errc(rc);
      return nullptr;
    }
    return std::make_unique<CProducer>(r);
  }
  *err = Errc::invalid_argument;
  return nullptr;
}

std::unique_ptr<ConsumerPort> open_consumer_port(Face face, const std::string& ring, Errc* err) {
  *err = Errc::ok;
  if (face == Face::cpp) {
    auto c = Consumer::open(ring);
    if (!c) {
      *err = c.error();
      return nullptr;
    }
    return std::make_unique<CppConsumer>(std::move(*c));
  }
  if (face == Face::c) {
    shmring_t* r = nullptr;
    if (int rc = shmring_open(ring.c_str(), SHMRING_CONSUMER, &r); rc != SHMRING_OK) {
      *err = errc(rc);
      return nullptr;
    }
    return std::make_unique<CConsumer>(r);
  }
  *err = Errc::invalid_argument;
  return nullptr;
}

EndpointPair::~EndpointPair() {
  consumer.reset();  // it reads through the producer's mapping
  producer.reset();
}

Errc open_endpoint_pair(const std::string& ring, EndpointPair* out) {
  // What detail::open_endpoint does, twice, except that the consumer is
  // pointed at the producer's mapping.
  detail::OpenedSegment pseg;
  if (Errc e = detail::open_segment(ring, std::chrono::seconds(1), &pseg); e != Errc::ok) return e;
  detail::OpenedSegment cseg;
  if (Errc e = detail::open_segment(ring, std::chrono::seconds(1), &cseg); e != Errc::ok) return e;
  detail::Attachment patt;
  if (Errc e = patt.attach(pseg.hdr, pseg.name, Role::producer, true); e != Errc::ok) return e;
  Errc err = Errc::ok;
  auto prod = detail::make_spsc_endpoint(std::move(pseg), std::move(patt), Role::producer, &err);
  if (!prod) return err;
  // The consumer keeps its own (unused) mapping alive but reads and writes
  // the shared words and records through the producer's: one address per
  // shared byte, as ThreadSanitizer needs to relate the two sides.
  cseg.hdr = prod->segment().hdr;
  cseg.data = prod->segment().data;
  detail::Attachment catt;
  if (Errc e = catt.attach(cseg.hdr, cseg.name, Role::consumer, true); e != Errc::ok) return e;
  auto cons = detail::make_spsc_endpoint(std::move(cseg), std::move(catt), Role::consumer, &err);
  if (!cons) return err;
  out->producer = std::make_unique<EpProducer>(std::move(prod));
  out->consumer = std::make_unique<EpConsumer>(std::move(cons));
  return Errc::ok;
}

StressOutcome produce(const StressParams& p, ProducerPort& port) {
  StressOutcome out;
  const std::int64_t t = std::chrono::duration_cast<std::chrono::nanoseconds>(p.call_timeout).count();
  const std::uint32_t max_len = p.max_len != 0 ? p.max_len : static_cast<std::uint32_t>(port.max_record());
  if (max_len > port.max_record() || p.min_len > max_len) {
    out.error = "bad stress parameters: lengths " + std::to_string(p.min_len) + ".." + std::to_string(max_len) +
                ", max_record " + std::to_string(port.max_record());
    return out;
  }
  std::vector<std::byte> buf(p.mode == Mode::copy ? max_len : 0);
  const std::int64_t start = now_ns();
  for (std::uint64_t seq = 0; seq < p.count; ++seq) {
    const std::uint32_t len = record_length(p.seed, seq, p.min_len, max_len);
    if (p.mode == Mode::copy) {
      fill_record(p.seed, seq, buf.data(), len);
      if (Errc e = port.send(buf.data(), len, t); e != Errc::ok) {
        out.error = fail_at("send", seq, e);
        return out;
      }
    } else {
      std::byte* dst = nullptr;
      if (Errc e = port.reserve(len, &dst, t); e != Errc::ok) {
        out.error = fail_at("reserve", seq, e);
        return out;
      }
      fill_record(p.seed, seq, dst, len);
      const bool now = p.mode != Mode::batched;
      if (Errc e = port.commit(len, now); e != Errc::ok) {
        out.error = fail_at("commit", seq, e);
        return out;
      }
      if (!now && (seq + 1) % p.batch == 0) {
        if (Errc e = port.flush(); e != Errc::ok) {
          out.error = fail_at("flush", seq, e);
          return out;
        }
      }
    }
    ++out.records;
    out.bytes += len;
  }
  if (Errc e = port.flush(); e != Errc::ok) out.error = fail_at("final flush", p.count, e);
  out.elapsed_ns = now_ns() - start;
  return out;
}

StressOutcome consume(const StressParams& p, ConsumerPort& port) {
  StressOutcome out;
  const std::int64_t t = std::chrono::duration_cast<std::chrono::nanoseconds>(p.call_timeout).count();
  const std::uint32_t max_len = p.max_len != 0 ? p.max_len : static_cast<std::uint32_t>(port.max_record());
  std::vector<std::byte> buf(p.mode == Mode::copy ? max_len : 0);
  std::string why;
  const std::int64_t start = now_ns();
  for (std::uint64_t seq = 0; seq < p.count; ++seq) {
    const std::uint32_t want = record_length(p.seed, seq, p.min_len, max_len);
    const std::byte* src = nullptr;
    std::size_t n = 0;
    if (p.mode == Mode::copy) {
      if (Errc e = port.recv(buf.data(), buf.size(), &n, t); e != Errc::ok) {
        out.error = fail_at("recv", seq, e);
        return out;
      }
      src = buf.data();
    } else if (Errc e = port.peek(&src, &n, t); e != Errc::ok) {
      out.error = fail_at("peek", seq, e);
      return out;
    }
    if (!check_record(p.seed, seq, want, src, n, &why)) {
      out.error = "record check failed after " + std::to_string(out.records) + " good records: " + why;
      return out;
    }
    if (p.mode != Mode::copy) {
      const bool now = p.mode != Mode::batched;
      if (Errc e = port.release(now); e != Errc::ok) {
        out.error = fail_at("release", seq, e);
        return out;
      }
      if (!now && (seq + 1) % p.batch == 0) {
        if (Errc e = port.flush(); e != Errc::ok) {
          out.error = fail_at("flush", seq, e);
          return out;
        }
      }
    }
    ++out.records;
    out.bytes += n;
  }
  out.elapsed_ns = now_ns() - start;
  if (Errc e = port.flush(); e != Errc::ok) {
    out.error = fail_at("final flush", p.count, e);
    return out;
  }
  // Nothing may follow the last record (a duplicate at the end). An empty
  // ring answers would_block, or peer_gone once the producer has closed.
  const std::byte* src = nullptr;
  std::size_t n = 0;
  if (Errc e = port.peek(&src, &n, 0); e != Errc::would_block && e != Errc::peer_gone) {
    out.error = std::string("after the last record the ring should be empty, peek gave ") + errc_name(e) +
                (e == Errc::ok ? " (a record of " + std::to_string(n) + " bytes)" : "");
  }
  return out;
}

StressOutcome open_and_produce(const StressParams& p) {
  Errc e = Errc::ok;
  auto port = open_producer_port(p.face, p.ring, &e);
  if (!port) {
    StressOutcome out;
    out.error = std::string("producer open: ") + errc_name(e) + " " + last_error_message();
    return out;
  }
  return produce(p, *port);
}

StressOutcome open_and_consume(const StressParams& p) {
  Errc e = Errc::ok;
  auto port = open_consumer_port(p.face, p.ring, &e);
  if (!port) {
    StressOutcome out;
    out.error = std::string("consumer open: ") + errc_name(e) + " " + last_error_message();
    return out;
  }
  return consume(p, *port);
}

}  // namespace shmring::test
