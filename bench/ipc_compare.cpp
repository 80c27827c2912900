// ipc_compare: shmring against every other local transport, each case with a
// forked peer process (names and counters fixed by shared/design.md,
// "Benchmarks"; method in docs/benchmarks.md).
//
//   throughput/<transport>/<bytes>   the parent streams records to the child;
//                                    items_per_second, bytes_per_second
//   pingpong/<transport>/<bytes>     the parent sends, the child answers;
//                                    rtt_p50_ns, rtt_p99_ns, rtt_p999_ns
//   pingpong/cacheline_limit/8       one 64-bit atomic bounced between the two
//                                    processes: the physical floor
//   throughput/memcpy_limit/<bytes>  single-core memcpy: the physical ceiling
//
// Pinned by default (parent = producer/sender on CPU 0, child = consumer on
// CPU 1); ".../unpinned" variants leave placement to the scheduler.
//
// Honesty rules (every transport alike):
//  - The producer writes every byte of every record (memcpy from a template
//    into the ring slot, the batch buffer or the message) and stamps the
//    sequence number at the head and its mangled copy at the tail.
//  - The receiver checks both stamps of every record, in order; a lost,
//    duplicated, reordered or torn record fails the case.
//  - Items are counted from the receiver's report: the child tells the parent
//    how many records it accepted, and the case fails unless that is exactly
//    what was sent. The timed region ends when the child has received the
//    last record (the parent waits for its report inside the last iteration).
//
// Flags of our own (removed before Google Benchmark parses the rest):
//   --rtt_count=N      round trips per ping-pong case (default 100000)
//   --unpinned=some|all|none   which unpinned variants exist (default some:
//                      throughput at 64 B and 64 KiB, ping-pong at 8 B)
//   --watchdog_s=N     abort (after cleaning up) when one case runs longer
#include <benchmark/benchmark.h>
#include <mqueue.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>

#include <boost/date_time/posix_time/posix_time_types.hpp>
#include <boost/interprocess/ipc/message_queue.hpp>
#include <memory>
#include <optional>

#include "bench_common.hpp"
#include "shmring/shmring.hpp"

namespace bip = boost::interprocess;
using bench::Msg;

namespace {

constexpr std::size_t KiB = 1024, MiB = 1024 * 1024;
constexpr std::size_t kChunk = 64 * KiB;  // batch size of stream writers and batched rings
constexpr int kPeerTimeoutMs = 120'000;
// Ring calls wait like a blocking write()/read() does: without a bound (the
// library reports a dead peer as peer_gone; the watchdog ends a hung case).
const shmring::Timeout kRingTimeout = shmring::Timeout::forever();

std::uint64_t g_rtt_count = 100'000;
int g_watchdog_s = 300;

// ---- Watchdog: a case that hangs ends the process, after cleaning up ----------

void on_watchdog(int) {
  static const char msg[] = "ipc_compare: watchdog expired (a case ran longer than --watchdog_s); aborting\n";
  (void)!::write(2, msg, sizeof msg - 1);
  ::raise(SIGTERM);  // the cleanup handler unlinks every armed name
}

class Watchdog {
 public:
  Watchdog() {
    ::signal(SIGALRM, on_watchdog);
    ::alarm(static_cast<unsigned>(g_watchdog_s));
  }
  ~Watchdog() { ::alarm(0); }
};

// ---- Transports --------------------------------------------------------------

enum class Family { ring, pipe, unix_stream, unix_seqpacket, posix_mq, boost_mq };

struct Transport {
  const char* name;
  Family family;
  shmring::Kind kind = shmring::Kind::spsc;
  shmring::WaitStrategy wait = shmring::WaitStrategy::futex;
  bool batched = false;  // ring: Publish::later, one index store per 64 KiB of records
  bool pingpong = true;  // also run as ping-pong
};

const Transport kTransports[] = {
    {"ring_spsc", Family::ring, shmring::Kind::spsc, shmring::WaitStrategy::futex},
    {"ring_spsc_spin", Family::ring, shmring::Kind::spsc, shmring::WaitStrategy::spin},
    {"ring_spsc_batched", Family::ring, shmring::Kind::spsc, shmring::WaitStrategy::futex, true, false},
    {"ring_mpmc", Family::ring, shmring::Kind::mpmc, shmring::WaitStrategy::futex},
    {"ring_mpmc_spin", Family::ring, shmring::Kind::mpmc, shmring::WaitStrategy::spin},
    {"ring_locked", Family::ring, shmring::Kind::locked, shmring::WaitStrategy::futex},
    {"ring_locked_spin", Family::ring, shmring::Kind::locked, shmring::WaitStrategy::spin},
    {"pipe", Family::pipe},
    {"unix_stream", Family::unix_stream},
    {"unix_seqpacket", Family::unix_seqpacket},
    {"posix_mq", Family::posix_mq},
    {"boost_mq", Family::boost_mq},
};

enum class Mode { throughput, pingpong };

struct Case {
  const Transport* t;
  Mode mode;
  std::size_t size;
  bool pinned;
  // Records per timed batch, calibrated by the first call and kept, so that
  // every repetition of a case runs the same number of iterations (Google
  // Benchmark requires it).
  mutable std::int64_t batch = 0;
};

std::size_t pow2_ceil(std::size_t x) {
  std::size_t p = 1;
  while (p < x) p <<= 1;
  return p;
}

// Bytes one direction may hold: 1 MiB (4 MiB for records above 256 KiB), the
// same budget for the ring, the pipe buffer, the socket buffer and the queues.
std::size_t buffer_bytes(const Case& c) {
  if (c.mode == Mode::pingpong) return 64 * KiB;
  return c.size > 256 * KiB ? 4 * MiB : 1 * MiB;
}

std::size_t mq_msg_max() {
  long v = 10;
  if (FILE* f = std::fopen("/proc/sys/fs/mqueue/msg_max", "r")) {
    if (std::fscanf(f, "%ld", &v) != 1) v = 10;
    std::fclose(f);
  }
  return static_cast<std::size_t>(v);
}
std::size_t mq_msgsize_max() {
  long v = 8192;
  if (FILE* f = std::fopen("/proc/sys/fs/mqueue/msgsize_max", "r")) {
    if (std::fscanf(f, "%ld", &v) != 1) v = 8192;
    std::fclose(f);
  }
  return static_cast<std::size_t>(v);
}

// RLIMIT_MSGQUEUE: bytes all POSIX queues of this user may hold (the kernel
// also counts ~100 bytes of bookkeeping per message).
std::size_t mq_bytes_limit() {
  rlimit rl{};
  ::getrlimit(RLIMIT_MSGQUEUE, &rl);
  return rl.rlim_cur == RLIM_INFINITY ? SIZE_MAX : static_cast<std::size_t>(rl.rlim_cur);
}

std::size_t queue_depth(const Case& c, std::size_t limit) {
  return std::clamp<std::size_t>(buffer_bytes(c) / c.size, 4, limit);
}

// One direction of a transport, created by the parent before the fork. The
// names are unlinked as soon as both sides have opened them.
struct Channel {
  const Transport* t = nullptr;
  std::size_t size = 0;
  std::string name;
  bench::NameGuard guard;
  int rfd = -1, wfd = -1;  // fds: the receiver's and the sender's end
  std::size_t depth = 0;   // message queues: messages it holds

  ~Channel() {
    if (rfd >= 0) ::close(rfd);
    if (wfd >= 0) ::close(wfd);
  }

  bool create(const Case& c, std::string* err) {
    t = c.t;
    size = c.size;
    switch (t->family) {
      case Family::ring: {
        name = bench::unique_name("ring");
        shmring::Config cfg;
        cfg.kind = t->kind;
        cfg.wait = t->wait;
        if (t->kind == shmring::Kind::mpmc) {
          const std::size_t slot = std::max<std::size_t>(8, (size + 7) & ~std::size_t{7});
          const std::size_t stride = (16 + slot + 63) & ~std::size_t{63};
          const std::size_t slots = std::max<std::size_t>(c.mode == Mode::pingpong ? 8 : 4,
                                                          pow2_ceil(buffer_bytes(c) / stride));
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
      case Family::pipe: {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) return sys_fail("pipe2", err);
        rfd = fds[0];
        wfd = fds[1];
        // As large as the ring; fall back to the unprivileged maximum.
        if (::fcntl(wfd, F_SETPIPE_SZ, static_cast<int>(buffer_bytes(c))) < 0) ::fcntl(wfd, F_SETPIPE_SZ, 1 << 20);
        return true;
      }
      case Family::unix_stream:
      case Family::unix_seqpacket: {
        int fds[2];
        const int type = t->family == Family::unix_stream ? SOCK_STREAM : SOCK_SEQPACKET;
        if (::socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, fds) != 0) return sys_fail("socketpair", err);
        wfd = fds[0];
        rfd = fds[1];
        // Unix sockets account queued bytes to the sender's buffer; give it
        // the ring's budget (FORCE: root may pass net.core.wmem_max).
        int sz = static_cast<int>(std::max(buffer_bytes(c), 4 * size));
        for (int fd : {wfd, rfd}) {
          if (::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz) != 0)
            ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
          if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz) != 0)
            ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
        }
        return true;
      }
      case Family::posix_mq: {
        if (size > mq_msgsize_max()) {
          *err = "record larger than /proc/sys/fs/mqueue/msgsize_max";
          return false;
        }
        name = bench::unique_name("mq");
        mq_attr a{};
        a.mq_maxmsg = static_cast<long>(queue_depth(c, mq_msg_max()));
        a.mq_msgsize = static_cast<long>(size);
        for (;;) {
          const mqd_t q = ::mq_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600, &a);
          if (q != static_cast<mqd_t>(-1)) {
            guard.arm(bench::ObjKind::mq, name);
            ::mq_close(q);
            depth = static_cast<std::size_t>(a.mq_maxmsg);
            return true;
          }
          // EMFILE/ENOMEM: RLIMIT_MSGQUEUE (bytes of all queues of the user)
          // is full; take the deepest queue that fits.
          if ((errno != EMFILE && errno != ENOMEM) || a.mq_maxmsg <= 1) return sys_fail("mq_open", err);
          a.mq_maxmsg /= 2;
        }
      }
      case Family::boost_mq: {
        name = bench::unique_name("bmq");
        try {
          depth = queue_depth(c, 65536);
          bip::message_queue q(bip::create_only, name.c_str() + 1, depth, size);
          guard.arm(bench::ObjKind::shm, name);
        } catch (const std::exception& e) {
          *err = std::string("boost message_queue: ") + e.what();
          bip::message_queue::remove(name.c_str() + 1);
          return false;
        }
        return true;
      }
    }
    return false;
  }

  // After the fork: each side closes the descriptor of the other side.
  void keep_sender() {
    if (rfd >= 0) ::close(rfd);
    rfd = -1;
  }
  void keep_receiver() {
    if (wfd >= 0) ::close(wfd);
    wfd = -1;
  }
  void unlink_name() { guard.release(); }

  static bool sys_fail(const char* what, std::string* err) {
    *err = std::string(what) + ": " + std::strerror(errno);
    return false;
  }
};

// Senders: begin(n) -> where to write the next record, commit(n), flush().
// Receivers: poll(f) blocks until at least one record arrived and calls
// f(ptr, len) for each complete one (f returns false to stop: bad record).

class RingTx {
 public:
  bool open(Channel& ch, std::string* err) {
    auto r = shmring::Producer::open(ch.name);
    if (!r) {
      *err = "Producer::open: " + shmring::last_error_message();
      return false;
    }
    p_ = std::move(*r);
    batch_ = ch.t->batched ? std::max<std::size_t>(1, kChunk / ch.size) : 1;
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
  bool open(Channel& ch, std::string* err) {
    auto r = shmring::Consumer::open(ch.name);
    if (!r) {
      *err = "Consumer::open: " + shmring::last_error_message();
      return false;
    }
    c_ = std::move(*r);
    batch_ = ch.t->batched ? std::max<std::size_t>(1, kChunk / ch.size) : 1;
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

// Pipe and unix stream socket: records packed into 64 KiB writes (a record
// larger than that is one write of its own); the reader reads what is there
// (up to its buffer) and parses every complete record out of it.
class StreamTx {
 public:
  bool open(Channel& ch, std::string*) {
    fd_ = ch.wfd;
    buf_.resize(std::max(kChunk, ch.size));
    return true;
  }
  std::byte* begin(std::size_t n) {
    if (fill_ + n > buf_.size() && !flush()) return nullptr;
    return buf_.data() + fill_;
  }
  bool commit(std::size_t n) {
    fill_ += n;
    return true;
  }
  bool flush() {
    if (fill_ == 0) return true;
    if (!bench::write_all(fd_, buf_.data(), fill_)) {
      err_ = std::string("write: ") + std::strerror(errno);
      return false;
    }
    fill_ = 0;
    return true;
  }
  const std::string& err() const { return err_; }

 private:
  int fd_ = -1;
  std::vector<std::byte> buf_;
  std::size_t fill_ = 0;
  std::string err_;
};

class StreamRx {
 public:
  bool open(Channel& ch, std::string*) {
    fd_ = ch.rfd;
    size_ = ch.size;
    buf_.resize(std::max<std::size_t>(256 * KiB, 2 * ch.size));
    return true;
  }
  template <class F>
  bool poll(F&& f) {
    for (;;) {
      bool any = false;
      while (have_ - off_ >= size_) {
        if (!f(buf_.data() + off_, size_)) return false;
        off_ += size_;
        any = true;
      }
      if (off_ != 0) {  // keep a partial record at the front
        std::memmove(buf_.data(), buf_.data() + off_, have_ - off_);
        have_ -= off_;
        off_ = 0;
      }
      if (any) return true;
      const ssize_t r = ::read(fd_, buf_.data() + have_, buf_.size() - have_);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        err_ = r == 0 ? "EOF" : std::string("read: ") + std::strerror(errno);
        return false;
      }
      have_ += static_cast<std::size_t>(r);
    }
  }
  const std::string& err() const { return err_; }

 private:
  int fd_ = -1;
  std::size_t size_ = 0, have_ = 0, off_ = 0;
  std::vector<std::byte> buf_;
  std::string err_;
};

// Seqpacket: one message per record (message boundaries are its point), with
// sendmmsg/recvmmsg moving up to 64 KiB of messages per system call.
class SeqTx {
 public:
  bool open(Channel& ch, std::string*) {
    fd_ = ch.wfd;
    size_ = ch.size;
    max_ = std::clamp<std::size_t>(kChunk / size_, 1, 1024);
    buf_.resize(max_ * size_);
    iov_.resize(max_);
    msgs_.resize(max_);
    return true;
  }
  std::byte* begin(std::size_t) {
    if (n_ == max_ && !flush()) return nullptr;
    return buf_.data() + n_ * size_;
  }
  bool commit(std::size_t) {
    ++n_;
    return true;
  }
  bool flush() {
    for (std::size_t i = 0; i < n_; ++i) {
      iov_[i] = {buf_.data() + i * size_, size_};
      msgs_[i] = {};
      msgs_[i].msg_hdr.msg_iov = &iov_[i];
      msgs_[i].msg_hdr.msg_iovlen = 1;
    }
    std::size_t sent = 0;
    while (sent < n_) {
      const int r = ::sendmmsg(fd_, msgs_.data() + sent, static_cast<unsigned>(n_ - sent), 0);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        err_ = std::string("sendmmsg: ") + std::strerror(errno);
        return false;
      }
      sent += static_cast<std::size_t>(r);
    }
    n_ = 0;
    return true;
  }
  const std::string& err() const { return err_; }

 private:
  int fd_ = -1;
  std::size_t size_ = 0, max_ = 1, n_ = 0;
  std::vector<std::byte> buf_;
  std::vector<iovec> iov_;
  std::vector<mmsghdr> msgs_;
  std::string err_;
};

class SeqRx {
 public:
  bool open(Channel& ch, std::string*) {
    fd_ = ch.rfd;
    size_ = ch.size;
    max_ = std::clamp<std::size_t>(kChunk / size_, 1, 1024);
    slot_ = size_ + 8;  // room to see an oversized message as one
    buf_.resize(max_ * slot_);
    iov_.resize(max_);
    msgs_.resize(max_);
    return true;
  }
  template <class F>
  bool poll(F&& f) {
    for (std::size_t i = 0; i < max_; ++i) {
      iov_[i] = {buf_.data() + i * slot_, slot_};
      msgs_[i] = {};
      msgs_[i].msg_hdr.msg_iov = &iov_[i];
      msgs_[i].msg_hdr.msg_iovlen = 1;
    }
    int r;
    do {
      r = ::recvmmsg(fd_, msgs_.data(), static_cast<unsigned>(max_), MSG_WAITFORONE, nullptr);
    } while (r < 0 && errno == EINTR);
    if (r <= 0) {
      err_ = r == 0 ? "EOF" : std::string("recvmmsg: ") + std::strerror(errno);
      return false;
    }
    for (int i = 0; i < r; ++i) {
      // A zero-length message is the peer's close (we never send one).
      if (msgs_[i].msg_len == 0) {
        if (i > 0) return true;
        err_ = "EOF";
        return false;
      }
      if (!f(buf_.data() + static_cast<std::size_t>(i) * slot_, msgs_[i].msg_len)) return false;
    }
    return true;
  }
  const std::string& err() const { return err_; }

 private:
  int fd_ = -1;
  std::size_t size_ = 0, max_ = 1, slot_ = 0;
  std::vector<std::byte> buf_;
  std::vector<iovec> iov_;
  std::vector<mmsghdr> msgs_;
  std::string err_;
};

// POSIX message queue: one mq_send / mq_receive per record (no batch API).
class MqTx {
 public:
  ~MqTx() {
    if (q_ != static_cast<mqd_t>(-1)) ::mq_close(q_);
  }
  bool open(Channel& ch, std::string* err) {
    q_ = ::mq_open(ch.name.c_str(), O_WRONLY | O_CLOEXEC);
    if (q_ == static_cast<mqd_t>(-1)) return Channel::sys_fail("mq_open (sender)", err);
    buf_.resize(ch.size);
    return true;
  }
  std::byte* begin(std::size_t) { return buf_.data(); }
  bool commit(std::size_t n) {
    while (::mq_send(q_, reinterpret_cast<const char*>(buf_.data()), n, 0) != 0) {
      if (errno == EINTR) continue;
      err_ = std::string("mq_send: ") + std::strerror(errno);
      return false;
    }
    return true;
  }
  bool flush() { return true; }
  const std::string& err() const { return err_; }

 private:
  mqd_t q_ = static_cast<mqd_t>(-1);
  std::vector<std::byte> buf_;
  std::string err_;
};

class MqRx {
 public:
  ~MqRx() {
    if (q_ != static_cast<mqd_t>(-1)) ::mq_close(q_);
  }
  bool open(Channel& ch, std::string* err) {
    q_ = ::mq_open(ch.name.c_str(), O_RDONLY | O_CLOEXEC);
    if (q_ == static_cast<mqd_t>(-1)) return Channel::sys_fail("mq_open (receiver)", err);
    buf_.resize(ch.size);
    return true;
  }
  template <class F>
  bool poll(F&& f) {
    ssize_t r;
    while ((r = ::mq_receive(q_, reinterpret_cast<char*>(buf_.data()), buf_.size(), nullptr)) < 0) {
      if (errno == EINTR) continue;
      err_ = std::string("mq_receive: ") + std::strerror(errno);
      return false;
    }
    return f(buf_.data(), static_cast<std::size_t>(r));
  }
  const std::string& err() const { return err_; }

 private:
  mqd_t q_ = static_cast<mqd_t>(-1);
  std::vector<std::byte> buf_;
  std::string err_;
};

// Boost.Interprocess message_queue: one send / receive per record.
class BoostTx {
 public:
  bool open(Channel& ch, std::string* err) {
    try {
      q_.emplace(bip::open_only, ch.name.c_str() + 1);
    } catch (const std::exception& e) {
      *err = std::string("boost message_queue open: ") + e.what();
      return false;
    }
    buf_.resize(ch.size);
    return true;
  }
  std::byte* begin(std::size_t) { return buf_.data(); }
  bool commit(std::size_t n) {
    q_->send(buf_.data(), n, 0);
    return true;
  }
  bool flush() { return true; }
  const std::string& err() const { return err_; }

 private:
  std::optional<bip::message_queue> q_;
  std::vector<std::byte> buf_;
  std::string err_;
};

class BoostRx {
 public:
  bool open(Channel& ch, std::string* err) {
    try {
      q_.emplace(bip::open_only, ch.name.c_str() + 1);
    } catch (const std::exception& e) {
      *err = std::string("boost message_queue open: ") + e.what();
      return false;
    }
    buf_.resize(ch.size);
    return true;
  }
  template <class F>
  bool poll(F&& f) {
    bip::message_queue::size_type n = 0;
    unsigned prio = 0;
    q_->receive(buf_.data(), buf_.size(), n, prio);
    return f(buf_.data(), static_cast<std::size_t>(n));
  }
  const std::string& err() const { return err_; }

 private:
  std::optional<bip::message_queue> q_;
  std::vector<std::byte> buf_;
  std::string err_;
};

// ---- The two measurements ----------------------------------------------------------

std::uint64_t throughput_warmup(const Case& c) {
  // Two buffers' worth (every page of the ring touched by both sides, the
  // pipe's pages allocated), between 16 and 100k records.
  return std::clamp<std::uint64_t>(2 * buffer_bytes(c) / c.size, 16, 100'000);
}

void fail(benchmark::State& st, const std::string& why) { st.SkipWithError(why.c_str()); }

// The end of a throughput stream: a record whose sequence number is
// kEndFlag | (records sent before it), stamped like any other.
constexpr std::uint64_t kEndFlag = std::uint64_t{1} << 63;
// Each call of a throughput case moves at least this much time's worth of
// records (estimated from the warm-up), so that no reported run rests on a
// handful of records caught in a scheduling stall.
constexpr double kMinBatchSeconds = 0.1;

template <class Tx, class Rx>
void run_throughput(benchmark::State& st, const Case& c) {
  Watchdog dog;
  const std::size_t size = c.size;
  std::string err;
  Channel ch;
  if (!ch.create(c, &err)) return fail(st, err);
  const std::uint64_t warm = throughput_warmup(c);
  bench::ScopedPin pin(c.pinned ? 0 : -1);
  if (!pin.ok()) return fail(st, "cannot pin to CPU 0");
  bench::Peer peer;
  const bool started = peer.start(
      c.pinned ? 1 : -1,
      [&](int ctl) -> int {
        ch.keep_receiver();
        std::uint64_t expect = 0;
        bool end = false;
        std::string why;
        {
          Rx rx;
          std::string e;
          if (!rx.open(ch, &e)) {
            bench::send_msg(ctl, Msg::error, 0, e.c_str());
            return 1;
          }
          bench::send_msg(ctl, Msg::ready);
          auto on = [&](const std::byte* p, std::size_t len) {
            if (end || !bench::check(p, len, size, expect)) {
              if (!end && bench::check(p, len, size, kEndFlag | expect)) {
                end = true;  // the producer sent exactly `expect` records
                return true;
              }
              why = bench::describe_bad(p, len, size, expect);
              return false;
            }
            if (++expect == warm) bench::send_msg(ctl, Msg::warm, expect);
            return true;
          };
          while (!end) {
            if (!rx.poll(on)) {
              bench::send_msg(ctl, Msg::error, expect, (why.empty() ? rx.err() : why).c_str());
              return 1;
            }
          }
        }
        bench::send_msg(ctl, Msg::done, expect);
        return 0;
      },
      &err);
  if (!started) return fail(st, err);
  ch.keep_sender();
  Tx tx;
  if (!tx.open(ch, &err)) return fail(st, err);
  if (!peer.wait(Msg::ready, nullptr, kPeerTimeoutMs, &err)) return fail(st, err);
  ch.unlink_name();  // both sides are attached: nothing can be left behind now

  const std::vector<std::byte> tmpl = bench::make_template(size);
  std::uint64_t seq = 0;
  auto produce = [&](std::uint64_t stamp_as) -> bool {
    std::byte* p = tx.begin(size);
    if (!p) return false;
    std::memcpy(p, tmpl.data(), size);
    bench::stamp(p, size, stamp_as);
    return tx.commit(size);
  };
  const std::int64_t w0 = bench::now_ns();
  for (std::uint64_t i = 0; i < warm; ++i) {
    if (!produce(seq++)) return fail(st, tx.err());
  }
  if (!tx.flush()) return fail(st, tx.err());
  if (!peer.wait(Msg::warm, nullptr, kPeerTimeoutMs, &err)) return fail(st, err);
  const double warm_rate = static_cast<double>(warm) * 1e9 / static_cast<double>(std::max<std::int64_t>(1, bench::now_ns() - w0));
  if (c.batch == 0) c.batch = static_cast<std::int64_t>(std::clamp(warm_rate * kMinBatchSeconds, 16.0, 1e8));
  const auto batch = static_cast<benchmark::IterationCount>(c.batch);

  Msg done{};
  bool ok = true;
  while (ok && st.KeepRunningBatch(batch)) {
    for (benchmark::IterationCount j = 0; j < batch; ++j) {
      if (!produce(seq++)) {
        ok = false;
        err = tx.err();
        break;
      }
    }
    if (ok && st.iterations() >= st.max_iterations) {
      // The last batch: the clock stops when the receiver has every record.
      if (!produce(kEndFlag | seq) || !tx.flush()) {
        ok = false;
        err = tx.err();
      } else if (!peer.wait(Msg::done, &done, kPeerTimeoutMs, &err)) {
        ok = false;
      }
    }
  }
  if (!ok) return fail(st, err);
  peer.reap();
  if (done.value != seq) return fail(st, "receiver accepted " + std::to_string(done.value) + " records, sent " +
                                             std::to_string(seq));
  if (!peer.exited_ok()) return fail(st, "receiver exited with an error");
  const std::uint64_t n = seq - warm;
  st.SetItemsProcessed(static_cast<std::int64_t>(n));
  st.SetBytesProcessed(static_cast<std::int64_t>(n * size));
  if (ch.depth != 0) st.counters["queue_depth"] = static_cast<double>(ch.depth);
}

void report_rtt(benchmark::State& st, std::vector<std::uint64_t>& samples, double peer_sleeps) {
  const bench::Percentiles p = bench::percentiles(samples);
  st.counters["rtt_p50_ns"] = p.p50;
  st.counters["rtt_p90_ns"] = p.p90;
  st.counters["rtt_p99_ns"] = p.p99;
  st.counters["rtt_p999_ns"] = p.p999;
  st.counters["rtt_max_ns"] = p.max;
  st.counters["rtt_mean_ns"] = p.mean;
  st.counters["round_trips"] = static_cast<double>(samples.size());
  if (peer_sleeps >= 0) st.counters["peer_sleeps_per_rt"] = peer_sleeps;
}

long voluntary_switches() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return ru.ru_nvcsw;
}

template <class Tx, class Rx>
void run_pingpong(benchmark::State& st, const Case& c) {
  Watchdog dog;
  const std::size_t size = c.size;
  std::string err;
  Channel there, back;  // parent -> child, child -> parent
  if (!there.create(c, &err) || !back.create(c, &err)) return fail(st, err);
  const std::uint64_t n = static_cast<std::uint64_t>(st.max_iterations);
  const std::uint64_t warm = std::min<std::uint64_t>(10'000, std::max<std::uint64_t>(1000, n / 10));
  bench::ScopedPin pin(c.pinned ? 0 : -1);
  if (!pin.ok()) return fail(st, "cannot pin to CPU 0");
  const std::vector<std::byte> tmpl = bench::make_template(size);
  bench::Peer peer;
  const bool started = peer.start(
      c.pinned ? 1 : -1,
      [&](int ctl) -> int {
        there.keep_receiver();
        back.keep_sender();
        std::uint64_t expect = 0;
        std::string why;
        long sw0 = 0;
        {
          Rx rx;
          Tx tx;
          std::string e;
          if (!rx.open(there, &e) || !tx.open(back, &e)) {
            bench::send_msg(ctl, Msg::error, 0, e.c_str());
            return 1;
          }
          bench::send_msg(ctl, Msg::ready);
          auto on = [&](const std::byte* p, std::size_t len) {
            if (!bench::check(p, len, size, expect)) {
              why = bench::describe_bad(p, len, size, expect);
              return false;
            }
            std::byte* q = tx.begin(size);
            if (!q) return false;
            std::memcpy(q, tmpl.data(), size);
            bench::stamp(q, size, expect);
            if (!tx.commit(size) || !tx.flush()) return false;
            if (++expect == warm) sw0 = voluntary_switches();
            return true;
          };
          while (expect < warm + n) {
            if (!rx.poll(on)) {
              if (why.empty()) why = !rx.err().empty() ? rx.err() : tx.err();
              bench::send_msg(ctl, Msg::error, expect, why.c_str());
              return 1;
            }
          }
        }
        Msg m{};
        m.kind = Msg::done;
        m.value = expect;
        m.t_ns = bench::now_ns();
        m.extra[0] = static_cast<std::uint64_t>(voluntary_switches() - sw0);
        (void)bench::write_all(ctl, &m, sizeof m);
        return 0;
      },
      &err);
  if (!started) return fail(st, err);
  there.keep_sender();
  back.keep_receiver();
  Tx tx;
  Rx rx;
  if (!tx.open(there, &err) || !rx.open(back, &err)) return fail(st, err);
  if (!peer.wait(Msg::ready, nullptr, kPeerTimeoutMs, &err)) return fail(st, err);
  there.unlink_name();
  back.unlink_name();

  std::uint64_t seq = 0;
  std::string why;
  auto on = [&](const std::byte* p, std::size_t len) {
    if (!bench::check(p, len, size, seq)) {
      why = bench::describe_bad(p, len, size, seq);
      return false;
    }
    return true;
  };
  auto round_trip = [&]() -> bool {
    std::byte* p = tx.begin(size);
    if (!p) return false;
    std::memcpy(p, tmpl.data(), size);
    bench::stamp(p, size, seq);
    if (!tx.commit(size) || !tx.flush()) return false;
    if (!rx.poll(on)) return false;
    ++seq;
    return true;
  };
  auto why_failed = [&] { return !why.empty() ? why : !tx.err().empty() ? tx.err() : rx.err(); };
  for (std::uint64_t i = 0; i < warm; ++i) {
    if (!round_trip()) return fail(st, why_failed());
  }
  std::vector<std::uint64_t> samples(n);
  const bench::Ticks& clk = bench::Ticks::get();
  std::uint64_t i = 0;
  bool ok = true;
  for (auto _ : st) {
    const std::uint64_t t0 = clk.now();
    if (!round_trip()) {
      ok = false;
      break;
    }
    samples[i++] = clk.now() - t0;
  }
  if (!ok) return fail(st, why_failed());
  Msg done{};
  if (!peer.wait(Msg::done, &done, kPeerTimeoutMs, &err)) return fail(st, err);
  peer.reap();
  if (done.value != warm + n) return fail(st, "peer answered " + std::to_string(done.value) + " of " +
                                                  std::to_string(warm + n) + " messages");
  report_rtt(st, samples, static_cast<double>(done.extra[0]) / static_cast<double>(n));
  st.SetItemsProcessed(static_cast<std::int64_t>(n));
}

// ---- Reference cases ---------------------------------------------------------------

// Two processes bounce one 64-bit word in a MAP_SHARED page: the parent
// writes an odd value, the child answers with the next even one. One
// cache-line transfer each way and nothing else: the floor of any
// cross-process round trip on these two CPUs.
void run_cacheline(benchmark::State& st, const Case& c) {
  Watchdog dog;
  void* mem = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return fail(st, "mmap failed");
  auto* word = new (mem) std::atomic<std::uint64_t>(0);
  const std::uint64_t n = static_cast<std::uint64_t>(st.max_iterations);
  const std::uint64_t warm = std::min<std::uint64_t>(10'000, std::max<std::uint64_t>(1000, n / 10));
  bench::ScopedPin pin(c.pinned ? 0 : -1);
  std::string err;
  bench::Peer peer;
  const bool started = peer.start(
      c.pinned ? 1 : -1,
      [&](int ctl) -> int {
        bench::send_msg(ctl, Msg::ready);
        for (std::uint64_t v = 1; v < 2 * (warm + n); v += 2) {
          while (word->load(std::memory_order_acquire) != v) bench::cpu_relax();
          word->store(v + 1, std::memory_order_release);
        }
        bench::send_msg(ctl, Msg::done, warm + n);
        return 0;
      },
      &err);
  if (!started) {
    ::munmap(mem, 4096);
    return fail(st, err);
  }
  if (!peer.wait(Msg::ready, nullptr, kPeerTimeoutMs, &err)) {
    ::munmap(mem, 4096);
    return fail(st, err);
  }
  std::uint64_t v = 1;
  for (std::uint64_t i = 0; i < warm; ++i, v += 2) {
    word->store(v, std::memory_order_release);
    while (word->load(std::memory_order_acquire) != v + 1) bench::cpu_relax();
  }
  std::vector<std::uint64_t> samples(n);
  const bench::Ticks& clk = bench::Ticks::get();
  std::uint64_t i = 0;
  for (auto _ : st) {
    const std::uint64_t t0 = clk.now();
    word->store(v, std::memory_order_release);
    while (word->load(std::memory_order_acquire) != v + 1) bench::cpu_relax();
    samples[i++] = clk.now() - t0;
    v += 2;
  }
  Msg done{};
  const bool ok = peer.wait(Msg::done, &done, kPeerTimeoutMs, &err);
  peer.reap();
  ::munmap(mem, 4096);
  if (!ok) return fail(st, err);
  report_rtt(st, samples, -1);
  st.SetItemsProcessed(static_cast<std::int64_t>(n));
}

// Single-core memcpy of records of the given size into a buffer as large as
// the ring (cycled), from one template: the ceiling for a producer that
// writes every byte of every record.
void run_memcpy(benchmark::State& st, const Case& c) {
  bench::ScopedPin pin(c.pinned ? 0 : -1);
  const std::size_t size = c.size;
  const std::size_t region = std::max<std::size_t>(buffer_bytes(c), 2 * size);
  std::vector<std::byte> dst(region);
  const std::vector<std::byte> src = bench::make_template(size);
  std::memset(dst.data(), 1, dst.size());
  std::size_t off = 0;
  for (auto _ : st) {
    if (off + size > region) off = 0;
    std::memcpy(dst.data() + off, src.data(), size);
    benchmark::DoNotOptimize(dst.data() + off);
    benchmark::ClobberMemory();
    off += (size + 7) & ~std::size_t{7};
  }
  st.SetItemsProcessed(st.iterations());
  st.SetBytesProcessed(st.iterations() * static_cast<std::int64_t>(size));
}

template <class Tx, class Rx>
void dispatch_mode(benchmark::State& st, const Case& c) {
  if (c.mode == Mode::throughput) {
    run_throughput<Tx, Rx>(st, c);
  } else {
    run_pingpong<Tx, Rx>(st, c);
  }
}

void run_case(benchmark::State& st, const Case& c) {
  switch (c.t->family) {
    case Family::ring: return dispatch_mode<RingTx, RingRx>(st, c);
    case Family::pipe:
    case Family::unix_stream: return dispatch_mode<StreamTx, StreamRx>(st, c);
    case Family::unix_seqpacket: return dispatch_mode<SeqTx, SeqRx>(st, c);
    case Family::posix_mq: return dispatch_mode<MqTx, MqRx>(st, c);
    case Family::boost_mq: return dispatch_mode<BoostTx, BoostRx>(st, c);
  }
}

// ---- Registration -------------------------------------------------------------------

// Raises the POSIX mq limits as far as we are allowed (root): the queue gets
// the same 1 MiB budget as the ring. Values stay raised (harmless).
void raise_mq_limits() {
  auto raise = [](const char* path, long want) {
    long cur = 0;
    if (FILE* f = std::fopen(path, "r")) {
      if (std::fscanf(f, "%ld", &cur) != 1) cur = 0;
      std::fclose(f);
    }
    if (cur >= want) return;
    if (FILE* f = std::fopen(path, "w")) {
      std::fprintf(f, "%ld\n", want);
      std::fclose(f);
    }
  };
  raise("/proc/sys/fs/mqueue/msg_max", 65536);
  raise("/proc/sys/fs/mqueue/msgsize_max", 1 << 20);
  rlimit rl{RLIM_INFINITY, RLIM_INFINITY};
  if (::setrlimit(RLIMIT_MSGQUEUE, &rl) != 0) {
    ::getrlimit(RLIMIT_MSGQUEUE, &rl);
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_MSGQUEUE, &rl);
  }
}

std::vector<std::unique_ptr<Case>> g_cases;

void add(const Case& c, const std::string& unpinned_mode) {
  const bool representative = (c.mode == Mode::throughput && (c.size == 64 || c.size == 65536)) ||
                              (c.mode == Mode::pingpong && c.size == 8);
  for (bool pinned : {true, false}) {
    if (!pinned && (unpinned_mode == "none" || (unpinned_mode == "some" && !representative))) continue;
    auto cc = std::make_unique<Case>(c);
    cc->pinned = pinned;
    std::string name = std::string(c.mode == Mode::throughput ? "throughput/" : "pingpong/") + c.t->name + "/" +
                       std::to_string(c.size) + (pinned ? "" : "/unpinned");
    const Case* cp = cc.get();
    g_cases.push_back(std::move(cc));
    auto* b = benchmark::RegisterBenchmark(name.c_str(), [cp](benchmark::State& st) { run_case(st, *cp); });
    b->UseRealTime();
    if (c.mode == Mode::pingpong) b->Iterations(static_cast<benchmark::IterationCount>(g_rtt_count));
  }
}

void register_all(const std::string& unpinned) {
  static const Transport kCacheline{"cacheline_limit", Family::ring};
  static const Transport kMemcpy{"memcpy_limit", Family::ring};
  const std::size_t tp_sizes[] = {8, 64, 512, 4 * KiB, 64 * KiB, 1 * MiB};
  const std::size_t pp_sizes[] = {8, 64, 512, 4 * KiB};
  const std::size_t mq_max = mq_msgsize_max();

  // Reference cases first, so a report reads top-down.
  for (bool pinned : {true, false}) {
    if (!pinned && unpinned == "none") continue;
    auto cc = std::make_unique<Case>(Case{&kCacheline, Mode::pingpong, 8, pinned});
    const Case* cp = cc.get();
    g_cases.push_back(std::move(cc));
    benchmark::RegisterBenchmark(pinned ? "pingpong/cacheline_limit/8" : "pingpong/cacheline_limit/8/unpinned",
                                 [cp](benchmark::State& st) { run_cacheline(st, *cp); })
        ->UseRealTime()
        ->Iterations(static_cast<benchmark::IterationCount>(g_rtt_count));
  }
  for (std::size_t s : tp_sizes) {
    auto cc = std::make_unique<Case>(Case{&kMemcpy, Mode::throughput, s, true});
    const Case* cp = cc.get();
    g_cases.push_back(std::move(cc));
    benchmark::RegisterBenchmark(("throughput/memcpy_limit/" + std::to_string(s)).c_str(),
                                 [cp](benchmark::State& st) { run_memcpy(st, *cp); });
  }
  for (const Transport& t : kTransports) {
    for (std::size_t s : tp_sizes) {
      // Kernel limits: msgsize_max, and RLIMIT_MSGQUEUE must hold 4 messages.
      if (t.family == Family::posix_mq && (s > mq_max || 4 * (s + 128) > mq_bytes_limit())) continue;
      if (t.family == Family::unix_seqpacket && s > 64 * KiB) continue;  // one skb per message
      add(Case{&t, Mode::throughput, s, true}, unpinned);
    }
  }
  for (const Transport& t : kTransports) {
    if (!t.pingpong) continue;
    for (std::size_t s : pp_sizes) add(Case{&t, Mode::pingpong, s, true}, unpinned);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string v;
  if (bench::take_flag(&argc, argv, "--rtt_count", &v)) g_rtt_count = std::max<std::uint64_t>(1, std::stoull(v));
  std::string unpinned = "some";
  if (bench::take_flag(&argc, argv, "--unpinned", &v)) unpinned = v;
  if (bench::take_flag(&argc, argv, "--watchdog_s", &v)) g_watchdog_s = std::max(1, std::stoi(v));
  bench::install_cleanup_handlers();
  bench::sweep_stale();
  raise_mq_limits();
  (void)bench::Ticks::get();  // calibrate before any case

  benchmark::AddCustomContext("cpu_model", bench::cpu_model());
  benchmark::AddCustomContext("pinning", "producer/sender CPU 0, consumer/receiver CPU 1 (\"/unpinned\": none)");
  benchmark::AddCustomContext("rtt_clock", bench::Ticks::get().source());
  benchmark::AddCustomContext("rtt_count", std::to_string(g_rtt_count));
  benchmark::AddCustomContext("mq_limits", "msg_max " + std::to_string(mq_msg_max()) + ", msgsize_max " +
                                               std::to_string(mq_msgsize_max()) + ", RLIMIT_MSGQUEUE " +
                                               std::to_string(mq_bytes_limit()));
  register_all(unpinned);
  const int rc = bench::run_benchmarks(argc, argv);
  bench::sweep_stale();
  return rc;
}
