// ipc_compare: the kernel transports and Boost's message_queue.
//
//   pipe            one write() per record; the reader reads whatever is there
//                   (up to 256 KiB) and parses every complete record out of it
//   pipe_batched    the writer packs records into 64 KiB write()s
//   unix_stream     one write() per record on a SOCK_STREAM socketpair
//   unix_seqpacket  one send() per record (a message each); recvmmsg reads up
//                   to 64 KiB of messages at a time
//   posix_mq        one mq_send / mq_receive per record
//   boost_mq        one send / receive per record (boost::interprocess)
//
// Waits for a message queue are sliced (100 ms) so that a peer that gave up
// (the stop flag) ends the case; pipes and sockets see the peer's close.
#include <mqueue.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <boost/date_time/posix_time/posix_time_types.hpp>
#include <boost/interprocess/ipc/message_queue.hpp>

#include "harness.hpp"

namespace ipc {
namespace {

namespace bip = boost::interprocess;

std::size_t read_proc_long(const char* path, long fallback) {
  long v = fallback;
  if (FILE* f = std::fopen(path, "r")) {
    if (std::fscanf(f, "%ld", &v) != 1) v = fallback;
    std::fclose(f);
  }
  return static_cast<std::size_t>(v);
}

// One direction of a transport, created by the parent before the fork. The
// names are unlinked as soon as both sides have opened them.
struct KernelChannel {
  const Transport* t = nullptr;
  std::size_t size = 0;
  std::string name;
  bench::NameGuard guard;
  int rfd = -1, wfd = -1;  // fds: the receiver's and the sender's end
  std::size_t depth = 0;   // message queues: messages it holds

  KernelChannel() = default;
  KernelChannel(const KernelChannel&) = delete;
  KernelChannel& operator=(const KernelChannel&) = delete;
  ~KernelChannel() {
    if (rfd >= 0) ::close(rfd);
    if (wfd >= 0) ::close(wfd);
  }

  bool create(const Case& c, std::string* err) {
    t = c.t;
    size = c.size;
    switch (t->family) {
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
        if (size > read_proc_long("/proc/sys/fs/mqueue/msgsize_max", 8192)) {
          *err = "record larger than /proc/sys/fs/mqueue/msgsize_max";
          return false;
        }
        name = bench::unique_name("mq");
        mq_attr a{};
        a.mq_maxmsg = static_cast<long>(queue_depth(c, read_proc_long("/proc/sys/fs/mqueue/msg_max", 10)));
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
      default: break;
    }
    *err = "not a kernel transport";
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
};

// Pipe and unix stream socket. Per record: one write() per record. Batched
// (pipe_batched): records packed into 64 KiB writes (a larger record is one
// write of its own).
class StreamTx {
 public:
  bool open(KernelChannel& ch, std::string*) {
    fd_ = ch.wfd;
    batched_ = ch.t->batched;
    buf_.resize(batched_ ? std::max(kChunk, ch.size) : ch.size);
    return true;
  }
  std::byte* begin(std::size_t n) {
    if (fill_ + n > buf_.size() && !flush()) return nullptr;
    return buf_.data() + fill_;
  }
  bool commit(std::size_t n) {
    fill_ += n;
    return batched_ || flush();
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
  bool batched_ = false;
  std::vector<std::byte> buf_;
  std::size_t fill_ = 0;
  std::string err_;
};

// Reads what is there (up to 256 KiB) and hands out every complete record.
class StreamRx {
 public:
  bool open(KernelChannel& ch, std::string*) {
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
        err_ = r == 0 ? "EOF (the peer closed)" : std::string("read: ") + std::strerror(errno);
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

// Seqpacket: one send() per record; the receiver takes up to 64 KiB of
// messages per recvmmsg.
class SeqTx {
 public:
  bool open(KernelChannel& ch, std::string*) {
    fd_ = ch.wfd;
    buf_.resize(ch.size);
    return true;
  }
  std::byte* begin(std::size_t) { return buf_.data(); }
  bool commit(std::size_t n) {
    for (;;) {
      const ssize_t r = ::send(fd_, buf_.data(), n, 0);
      if (r < 0 && errno == EINTR) continue;
      if (r != static_cast<ssize_t>(n)) {
        err_ = std::string("send: ") + (r < 0 ? std::strerror(errno) : "short");
        return false;
      }
      return true;
    }
  }
  bool flush() { return true; }
  const std::string& err() const { return err_; }

 private:
  int fd_ = -1;
  std::vector<std::byte> buf_;
  std::string err_;
};

class SeqRx {
 public:
  bool open(KernelChannel& ch, std::string*) {
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
      err_ = r == 0 ? "EOF (the peer closed)" : std::string("recvmmsg: ") + std::strerror(errno);
      return false;
    }
    for (int i = 0; i < r; ++i) {
      // A zero-length message is the peer's close (we never send one).
      if (msgs_[i].msg_len == 0) {
        if (i > 0) return true;
        err_ = "EOF (the peer closed)";
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

timespec deadline_in(long ms) {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_nsec += ms * 1'000'000;
  ts.tv_sec += ts.tv_nsec / 1'000'000'000;
  ts.tv_nsec %= 1'000'000'000;
  return ts;
}

// POSIX message queue: one mq_send / mq_receive per record (no batch API).
class MqTx {
 public:
  ~MqTx() {
    if (q_ != static_cast<mqd_t>(-1)) ::mq_close(q_);
  }
  bool open(KernelChannel& ch, std::string* err) {
    q_ = ::mq_open(ch.name.c_str(), O_WRONLY | O_CLOEXEC);
    if (q_ == static_cast<mqd_t>(-1)) return sys_fail("mq_open (sender)", err);
    buf_.resize(ch.size);
    return true;
  }
  std::byte* begin(std::size_t) { return buf_.data(); }
  bool commit(std::size_t n) {
    for (;;) {
      const timespec ts = deadline_in(100);
      if (::mq_timedsend(q_, reinterpret_cast<const char*>(buf_.data()), n, 0, &ts) == 0) return true;
      if (errno == EINTR || (errno == ETIMEDOUT && !aborted())) continue;
      err_ = errno == ETIMEDOUT ? "stopped: the peer failed" : std::string("mq_send: ") + std::strerror(errno);
      return false;
    }
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
  bool open(KernelChannel& ch, std::string* err) {
    q_ = ::mq_open(ch.name.c_str(), O_RDONLY | O_CLOEXEC);
    if (q_ == static_cast<mqd_t>(-1)) return sys_fail("mq_open (receiver)", err);
    buf_.resize(ch.size);
    return true;
  }
  template <class F>
  bool poll(F&& f) {
    for (;;) {
      const timespec ts = deadline_in(100);
      const ssize_t r = ::mq_timedreceive(q_, reinterpret_cast<char*>(buf_.data()), buf_.size(), nullptr, &ts);
      if (r >= 0) return f(buf_.data(), static_cast<std::size_t>(r));
      if (errno == EINTR || (errno == ETIMEDOUT && !aborted())) continue;
      err_ = errno == ETIMEDOUT ? "stopped: the peer failed" : std::string("mq_receive: ") + std::strerror(errno);
      return false;
    }
  }
  const std::string& err() const { return err_; }

 private:
  mqd_t q_ = static_cast<mqd_t>(-1);
  std::vector<std::byte> buf_;
  std::string err_;
};

boost::posix_time::ptime boost_deadline() {
  return boost::posix_time::microsec_clock::universal_time() + boost::posix_time::milliseconds(100);
}

// Boost.Interprocess message_queue: one send / receive per record. Both
// ends open the queue the parent created and keep one record's buffer.
class BoostEnd {
 public:
  bool open(KernelChannel& ch, std::string* err) {
    try {
      q_.emplace(bip::open_only, ch.name.c_str() + 1);
    } catch (const std::exception& e) {
      *err = std::string("boost message_queue open: ") + e.what();
      return false;
    }
    buf_.resize(ch.size);
    return true;
  }
  const std::string& err() const { return err_; }

 protected:
  std::optional<bip::message_queue> q_;
  std::vector<std::byte> buf_;
  std::string err_;
};

class BoostTx : public BoostEnd {
 public:
  std::byte* begin(std::size_t) { return buf_.data(); }
  bool commit(std::size_t n) {
    while (!q_->timed_send(buf_.data(), n, 0, boost_deadline())) {
      if (aborted()) {
        err_ = "stopped: the peer failed";
        return false;
      }
    }
    return true;
  }
  bool flush() { return true; }
};

class BoostRx : public BoostEnd {
 public:
  template <class F>
  bool poll(F&& f) {
    bip::message_queue::size_type n = 0;
    unsigned prio = 0;
    while (!q_->timed_receive(buf_.data(), buf_.size(), n, prio, boost_deadline())) {
      if (aborted()) {
        err_ = "stopped: the peer failed";
        return false;
      }
    }
    return f(buf_.data(), static_cast<std::size_t>(n));
  }
};

}  // namespace

void run_kernel(benchmark::State& st, const Case& c) {
  switch (c.t->family) {
    case Family::pipe:
    case Family::unix_stream: return run_case<KernelChannel, StreamTx, StreamRx>(st, c);
    case Family::unix_seqpacket: return run_case<KernelChannel, SeqTx, SeqRx>(st, c);
    case Family::posix_mq: return run_case<KernelChannel, MqTx, MqRx>(st, c);
    case Family::boost_mq: return run_case<KernelChannel, BoostTx, BoostRx>(st, c);
    default: fail(st, "not a kernel transport");
  }
}

}  // namespace ipc
