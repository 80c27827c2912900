// ipc_compare: the shmring transports (ring_spsc, ring_mpmc, ring_locked and
// their _spin and _batched variants). Zero-copy on both sides: the sender
// builds the record inside the reserved slot, the receiver checks it where
// it lies (peek) before releasing it.
#include "harness.hpp"

namespace ipc {
namespace {

// Ring calls wait like a blocking write()/read() does: without a bound (the
// library reports a dead peer as peer_gone; the watchdog ends a hung case).
const shmring::Timeout kRingTimeout = shmring::Timeout::forever();

struct RingChannel {
  const Transport* t = nullptr;
  std::size_t size = 0;
  std::string name;
  bench::NameGuard guard;
  std::size_t depth = 0;

  bool create(const Case& c, std::string* err) {
    t = c.t;
    size = c.size;
    name = bench::unique_name("ring");
    shmring::Config cfg;
    cfg.kind = t->kind;
    cfg.wait = t->wait;
    if (t->kind == shmring::Kind::mpmc) {
      const std::size_t slot = std::max<std::size_t>(8, (size + 7) & ~std::size_t{7});
      const std::size_t stride = (16 + slot + 63) & ~std::size_t{63};
      const std::size_t slots =
          std::max<std::size_t>(c.mode == Mode::pingpong ? 8 : 4, pow2_ceil(buffer_bytes(c) / stride));
      cfg.slot_size = slot;
      cfg.capacity = std::max<std::size_t>(4096, pow2_ceil(slots * slot));
    } else {
      cfg.capacity = buffer_bytes(c);
    }
    if (shmring::create(name, cfg) != shmring::Errc::ok) {
      *err = "create: " + shmring::last_error_message();
      return false;
    }
    guard.arm(bench::ObjKind::shm, name);
    return true;
  }
  void keep_sender() {}
  void keep_receiver() {}
  void unlink_name() { guard.release(); }
};

// Records published once per 64 KiB when batched, else on every commit.
std::size_t publish_every(const RingChannel& ch) {
  return ch.t->batched ? std::max<std::size_t>(1, kChunk / ch.size) : 1;
}

class RingTx {
 public:
  bool open(RingChannel& ch, std::string* err) {
    auto r = shmring::Producer::open(ch.name);
    if (!r) {
      *err = "Producer::open: " + shmring::last_error_message();
      return false;
    }
    p_ = std::move(*r);
    batch_ = publish_every(ch);
    return true;
  }
  std::byte* begin(std::size_t n) {
    auto r = p_.reserve(n, kRingTimeout);
    if (!r) {
      err_ = std::string("reserve: ") + shmring::to_string(r.error());
      return nullptr;
    }
    return r->data();
  }
  bool commit(std::size_t n) {
    const bool now = ++pending_ >= batch_;
    if (now) pending_ = 0;
    const shmring::Errc e = p_.commit(n, now ? shmring::Publish::now : shmring::Publish::later);
    if (e != shmring::Errc::ok) err_ = std::string("commit: ") + shmring::to_string(e);
    return e == shmring::Errc::ok;
  }
  bool flush() {
    pending_ = 0;
    return p_.flush() == shmring::Errc::ok;
  }
  const std::string& err() const { return err_; }

 private:
  shmring::Producer p_;
  std::size_t batch_ = 1, pending_ = 0;
  std::string err_;
};

class RingRx {
 public:
  bool open(RingChannel& ch, std::string* err) {
    auto r = shmring::Consumer::open(ch.name);
    if (!r) {
      *err = "Consumer::open: " + shmring::last_error_message();
      return false;
    }
    c_ = std::move(*r);
    batch_ = publish_every(ch);
    return true;
  }
  template <class F>
  bool poll(F&& f) {
    auto r = c_.peek(kRingTimeout);
    if (!r) {
      err_ = std::string("peek: ") + shmring::to_string(r.error());
      return false;
    }
    if (!f(r->data(), r->size())) return false;
    const bool now = ++pending_ >= batch_;
    if (now) pending_ = 0;
    return c_.release(now ? shmring::Publish::now : shmring::Publish::later) == shmring::Errc::ok;
  }
  const std::string& err() const { return err_; }

 private:
  shmring::Consumer c_;
  std::size_t batch_ = 1, pending_ = 0;
  std::string err_;
};

}  // namespace

void run_ring(benchmark::State& st, const Case& c) { run_case<RingChannel, RingTx, RingRx>(st, c); }

}  // namespace ipc
