// shmring-bridge send: consumes RING and sends its records as sequenced
// batches (docs/bridge.md), keeping the sequence in a state file that
// survives a restart.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "bridge.hpp"
#include "wire.hpp"

namespace shmring::bridge_tool {

namespace sb = shmring::bridge;
using shmring::Errc;

namespace {

// ---- The sender's state file (wire.hpp: BR-1, BR-2, BR-A1) -----------------

struct StateFile {
  sb::SendState* st = nullptr;
  ~StateFile() {
    if (st) munmap(st, sizeof *st);
  }
  bool open(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
      log_line("state file %s: %s", path.c_str(), std::strerror(errno));
      return false;
    }
    struct stat sbuf;
    if (fstat(fd, &sbuf) != 0 || !S_ISREG(sbuf.st_mode)) {
      log_line("state file %s: not a regular file", path.c_str());
      ::close(fd);
      return false;
    }
    const bool fresh = sbuf.st_size == 0;
    if (!fresh && sbuf.st_size != static_cast<off_t>(sizeof(sb::SendState))) {
      log_line("state file %s: size %lld is not a shmring-bridge state (remove it to start at 0)", path.c_str(),
               (long long)sbuf.st_size);
      ::close(fd);
      return false;
    }
    if (fresh && ftruncate(fd, sizeof(sb::SendState)) != 0) {
      log_line("state file %s: %s", path.c_str(), std::strerror(errno));
      ::close(fd);
      return false;
    }
    void* p = mmap(nullptr, sizeof(sb::SendState), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) {
      log_line("state file %s: mmap: %s", path.c_str(), std::strerror(errno));
      return false;
    }
    st = static_cast<sb::SendState*>(p);
    if (fresh || std::memcmp(st->magic, sb::kStateMagic, sizeof st->magic) == 0) {
      if (fresh) {
        std::memcpy(st->magic, sb::kStateMagic, sizeof st->magic);
        st->version = 1;
      }
      return true;
    }
    log_line("state file %s: not a shmring-bridge state (remove it to start at 0)", path.c_str());
    return false;
  }
};

// Lets the batch's records [from, to) (already released with
// Publish::later, numbered first_seq onwards) leave the ring, recording
// it in the state file: BR-1 intent, flush, BR-2 commit.
Errc commit_left(StateFile& state, const std::vector<std::byte>& buf, std::uint64_t first_seq, std::uint32_t from,
                 std::uint32_t to, shmring::Consumer& cons) {
  std::size_t off = sizeof(sb::BatchHeader);
  std::uint32_t len = 0;
  for (std::uint32_t i = 0;; ++i) {
    std::memcpy(&len, buf.data() + off, sizeof len);
    if (i == from) break;
    off += sb::kRecordPrefix + len;
  }
  state.st->pending_hash = sb::record_hash({buf.data() + off + sb::kRecordPrefix, std::size_t{len}});
  // BR-1: intent, release store (also publishes pending_hash); read by
  // BR-A1 of a later sender.
  state.st->word.store(first_seq << sb::kPendingBits | (to - from), std::memory_order_release);
  const Errc e = cons.flush();
  if (e != Errc::ok) {
    log_line("flush failed: %s", shmring::to_string(e));
    return e;
  }
  // BR-2: commit, release store; read by BR-A1 of a later sender.
  state.st->word.store((first_seq + (to - from)) << sb::kPendingBits, std::memory_order_release);
  return Errc::ok;
}

}  // namespace

// ---- send ----------------------------------------------------------------------

int run_send(const Options& o) {
  auto c = shmring::Consumer::open(o.ring);
  if (!c) {
    log_line("cannot open the ring as consumer: %s", shmring::last_error_message().c_str());
    return c.error() == Errc::not_found ? kExitNotFound : kExitFail;
  }
  shmring::Consumer& cons = *c;
  const bool deferred = cons.kind() != shmring::Kind::mpmc;  // mpmc frees each slot on release

  StateFile state;
  std::string path = o.state_path;
  if (path.empty()) path = "/dev/shm/" + g_ring.substr(1) + ".bridge-send";
  if (!state.open(path)) return kExitFail;

  std::uint64_t epoch = 0;
  while (epoch == 0)
    if (getrandom(&epoch, sizeof epoch, 0) != sizeof epoch) epoch = static_cast<std::uint64_t>(real_ns()) * 0x9e3779b97f4a7c15ULL;

  // BR-A1: acquire, pairs with BR-1/BR-2 of the previous sender (which has
  // exited or died: the kernel orders its stores before our open).
  const std::uint64_t w = state.st->word.load(std::memory_order_acquire);
  std::uint64_t pending = w & sb::kMaxPending;
  std::uint64_t seq = (w >> sb::kPendingBits) + pending;
  if (pending != 0 && deferred) {
    // Did the interrupted batch leave the ring? If it did not, its first
    // record is still at the read position. An empty ring or another record
    // there proves it did: then nothing is uncertain.
    auto r = cons.peek(shmring::Timeout::try_once());
    if (!r || sb::record_hash(*r) != state.st->pending_hash) {
      log_line("the previous sender died while %llu records left the ring; they had left: resuming at seq %llu",
               (unsigned long long)pending, (unsigned long long)seq);
      pending = 0;
    }
  }
  const std::uint64_t start_seq = seq;
  // BR-2 (as at a commit): the new epoch starts with nothing pending.
  state.st->word.store(seq << sb::kPendingBits, std::memory_order_release);
  state.st->last_epoch = epoch;
  if (pending != 0)
    log_line("the previous sender died while %llu records left the ring: resuming at seq %llu, they are counted "
             "as uncertain",
             (unsigned long long)pending, (unsigned long long)seq);

  Zmq z;
  if (!setup_socket(z, ZMQ_PUSH, o, o.bind && !o.connect)) return kExitFail;
  prctl(PR_SET_NAME, "shmring-bridge", 0, 0, 0);

  Stats s;
  s.epoch = epoch;
  s.next_seq = seq;
  StatsPrinter printer(o, true);
  std::vector<std::byte> buf;
  buf.reserve(sizeof(sb::BatchHeader) + o.batch_bytes + sb::kRecordPrefix + cons.max_record());
  int rc = 0;
  bool peer_gone_logged = false;

  while (true) {
    poll_events(z);
    printer.maybe_print(s, z);
    if (g_stop) break;
    // Gather: wait up to 100 ms for a first record, then up to batch-us for more.
    buf.resize(sizeof(sb::BatchHeader));
    std::uint32_t count = 0;
    std::uint32_t committed = 0;  // of the batch's records, those recorded as left (BR-2)
    std::int64_t deadline = 0;
    while (count < sb::kMaxPending) {
      // Try first: while records are queued, no clock read and no wait.
      auto r = cons.peek(shmring::Timeout::try_once());
      if (!r && r.error() == Errc::would_block) {
        shmring::Timeout t = shmring::Timeout::try_once();
        if (count == 0) {
          t = std::chrono::milliseconds(100);
        } else {
          const std::int64_t left = deadline - mono_ns();
          if (left > 0) t = std::chrono::nanoseconds(left);
        }
        if (t.ns() != 0) {
          // A consumer about to sleep hands its deferred releases back to the
          // producer (it publishes them before waiting): they leave the ring
          // here, so record them as leaving first (BR-1 .. BR-2).
          if (deferred && count > committed) {
            const Errc e = commit_left(state, buf, seq + committed, committed, count, cons);
            if (e != Errc::ok) {
              rc = kExitFail;
              break;
            }
            committed = count;
          }
          r = cons.peek(t);
        }
      }
      if (!r) {
        if (r.error() == Errc::timed_out || r.error() == Errc::would_block) break;
        if (r.error() == Errc::peer_gone) {
          if (!peer_gone_logged) log_line("no producer attached; waiting for one");
          peer_gone_logged = true;
          if (count == 0) {
            // peer_gone returns at once: pace the retry on the ZeroMQ socket.
            zmq_pollitem_t it{z.sock, 0, 0, 0};
            zmq_poll(&it, 0, 50);
          }
          break;
        }
        log_line("peek failed: %s", shmring::to_string(r.error()));
        rc = kExitFail;
        break;
      }
      peer_gone_logged = false;
      const std::span<const std::byte> rec = *r;
      const std::size_t used = buf.size() - sizeof(sb::BatchHeader);
      if (count > 0 && used + sb::kRecordPrefix + rec.size() > o.batch_bytes) break;  // stays peeked
      const std::uint32_t len = static_cast<std::uint32_t>(rec.size());
      const std::size_t at = buf.size();
      buf.resize(at + sb::kRecordPrefix + len);
      std::memcpy(buf.data() + at, &len, sizeof len);
      std::memcpy(buf.data() + at + sb::kRecordPrefix, rec.data(), len);
      if (!deferred) {
        // mpmc: the slot leaves the ring at this release. BR-1 / BR-2 per
        // record (other consumers may take records too: a restart cannot
        // check, the one record stays uncertain).
        state.st->word.store((seq + count) << sb::kPendingBits | 1, std::memory_order_release);
      }
      const Errc e = cons.release(deferred ? shmring::Publish::later : shmring::Publish::now);
      if (e != Errc::ok) {
        log_line("release failed: %s", shmring::to_string(e));
        rc = kExitFail;
        break;
      }
      ++count;
      if (!deferred) state.st->word.store((seq + count) << sb::kPendingBits, std::memory_order_release);
      if (count == 1) deadline = mono_ns() + std::int64_t{o.batch_us} * 1000;
      if (buf.size() - sizeof(sb::BatchHeader) >= o.batch_bytes) break;
      if (g_stop) break;
    }
    if (count == 0) {
      if (rc != 0) break;
      continue;
    }
    if (deferred && count > committed) {
      if (commit_left(state, buf, seq + committed, committed, count, cons) != Errc::ok) {
        rc = kExitFail;
        break;
      }
    }
    sb::BatchHeader h{};
    h.magic = sb::kBatchMagic;
    h.version = sb::kWireVersion;
    h.epoch = epoch;
    h.first_seq = seq;
    h.epoch_start_seq = start_seq;
    h.count = count;
    h.uncertain = static_cast<std::uint32_t>(pending);
    h.ring_kind = static_cast<std::uint32_t>(cons.kind());
    h.max_record = cons.max_record();
    // Hand the batch to ZeroMQ; wait (polling for the stop flag) while the
    // high-water mark is reached: this is where back-pressure stops us.
    const std::int64_t t0 = mono_ns();
    std::int64_t stop_deadline = 0;
    bool sent = false;
    while (true) {
      h.sent_ns = real_ns();
      std::memcpy(buf.data(), &h, sizeof h);
      if (zmq_send(z.sock, buf.data(), buf.size(), ZMQ_DONTWAIT) >= 0) {
        sent = true;
        break;
      }
      if (zmq_errno() != EAGAIN && zmq_errno() != EINTR) {
        log_line("zmq_send: %s", zmq_strerror(zmq_errno()));
        break;
      }
      poll_events(z);
      printer.maybe_print(s, z);
      if (g_stop) {
        if (stop_deadline == 0) stop_deadline = mono_ns() + std::int64_t{o.linger_ms} * 1000000;
        if (mono_ns() > stop_deadline) break;
      }
      zmq_pollitem_t it{z.sock, 0, ZMQ_POLLOUT, 0};
      zmq_poll(&it, 1, 50);
    }
    const std::int64_t waited = mono_ns() - t0;
    s.blocked_ns += static_cast<std::uint64_t>(waited);
    s.lag_ns = waited;
    if (!sent) {
      log_line("%u records (seq %llu..%llu) left the ring but were not sent: the receiver will count them as a gap",
               count, (unsigned long long)seq, (unsigned long long)(seq + count - 1));
      seq += count;
      s.next_seq = seq;
      break;
    }
    seq += count;
    s.next_seq = seq;
    s.records += count;
    s.bytes += buf.size() - sizeof(sb::BatchHeader) - std::size_t{count} * sb::kRecordPrefix;
    ++s.batches;
    if (rc != 0) break;
  }
  printer.finish(s, z);
  return rc;
}

}  // namespace shmring::bridge_tool
