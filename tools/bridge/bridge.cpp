// shmring-bridge: carries a ring's records to a ring on another host over
// ZeroMQ PUSH/PULL (docs/bridge.md).
//
//   shmring-bridge send RING ENDPOINT [options]   consume RING, send batches
//   shmring-bridge recv ENDPOINT RING [options]   receive batches, produce into RING
//
// Uses only the public shmring API; the library knows nothing of ZeroMQ.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "shmring/shmring.hpp"
#include "wire.hpp"

namespace sb = shmring::bridge;
using shmring::Errc;

namespace {

// Exit codes follow shmtool's: 0 ok, 1 failure, 2 usage, 3 ring not found.
constexpr int kExitFail = 1;
constexpr int kExitUsage = 2;
constexpr int kExitNotFound = 3;

volatile std::sig_atomic_t g_stop = 0;
extern "C" void on_stop_signal(int) { g_stop = 1; }

const char* g_role = "bridge";
std::string g_ring;

void log_line(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void log_line(const char* fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  std::fprintf(stderr, "shmring-bridge %s %s: %s\n", g_role, g_ring.c_str(), buf);
}

std::int64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}
std::int64_t real_ns() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return std::int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

void usage(FILE* f) {
  std::fputs(
      "usage: shmring-bridge send RING ENDPOINT [options]\n"
      "       shmring-bridge recv ENDPOINT RING [--create] [options]\n"
      "\n"
      "ENDPOINT is a ZeroMQ endpoint (tcp://10.0.0.2:5555, tcp://*:5555). By default\n"
      "send connects and recv binds; --bind / --connect swap that.\n"
      "\n"
      "common options:\n"
      "  --hwm N             ZeroMQ high-water mark in batches (default 16)\n"
      "  --heartbeat-ms MS   ZeroMQ heartbeat interval; a link silent for 4x that is\n"
      "                      dropped and reconnected (default 250, 0 = off)\n"
      "  --stats SECONDS     print counters every SECONDS (and once at exit)\n"
      "  --stats-json        print the counters as JSON lines\n"
      "send options:\n"
      "  --batch-bytes N     largest batch payload (default 65536)\n"
      "  --batch-us US       longest a partial batch waits for more records (default 200)\n"
      "  --state PATH        sequence state file (default /dev/shm/<ring>.bridge-send)\n"
      "  --linger-ms MS      at shutdown, how long queued batches may take to leave (default 2000)\n"
      "recv options:\n"
      "  --create            create RING if missing, with the sender's geometry\n"
      "  --kind K --capacity BYTES --slot-size BYTES --wait futex|spin|sem\n"
      "                      override the geometry --create takes from the sender\n",
      f);
}

struct Options {
  std::string ring, endpoint;
  bool bind = false, connect = false, create = false, json = false;
  int hwm = 16;
  int heartbeat_ms = 250;
  double stats_s = 0;
  std::size_t batch_bytes = 65536;
  int batch_us = 200;
  std::string state_path;
  int linger_ms = 2000;
  std::string kind, wait;
  std::size_t capacity = 0, slot_size = 0;
};

bool parse_num(const char* s, long long lo, long long hi, long long* out) {
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) return false;
  *out = v;
  return true;
}

// ---- ZeroMQ socket setup and connection events ----------------------------

struct Zmq {
  void* ctx = nullptr;
  void* sock = nullptr;
  void* mon = nullptr;
  std::uint64_t connects = 0, disconnects = 0, retries = 0;
  bool warned_unreachable = false;
  ~Zmq() {
    if (mon) zmq_close(mon);
    if (sock) zmq_close(sock);
    if (ctx) zmq_ctx_term(ctx);
  }
};

bool setup_socket(Zmq& z, int type, const Options& o, bool do_bind) {
  z.ctx = zmq_ctx_new();
  z.sock = zmq_socket(z.ctx, type);
  if (!z.sock) {
    log_line("zmq_socket: %s", zmq_strerror(zmq_errno()));
    return false;
  }
  const int hwm = o.hwm;
  zmq_setsockopt(z.sock, type == ZMQ_PUSH ? ZMQ_SNDHWM : ZMQ_RCVHWM, &hwm, sizeof hwm);
  const int linger = type == ZMQ_PUSH ? o.linger_ms : 0;
  zmq_setsockopt(z.sock, ZMQ_LINGER, &linger, sizeof linger);
  const int reconnect = 100;
  zmq_setsockopt(z.sock, ZMQ_RECONNECT_IVL, &reconnect, sizeof reconnect);
  const int reconnect_max = 1000;
  zmq_setsockopt(z.sock, ZMQ_RECONNECT_IVL_MAX, &reconnect_max, sizeof reconnect_max);
  // ZMQ_IMMEDIATE stays 0: a connecting PUSH keeps its pipe (and the
  // batches queued in it, at most SNDHWM) across a reconnect, so a cut link
  // loses only what was already in the TCP connection.
  if (o.heartbeat_ms > 0) {
    const int ivl = o.heartbeat_ms, timeout = 4 * o.heartbeat_ms;
    zmq_setsockopt(z.sock, ZMQ_HEARTBEAT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(z.sock, ZMQ_HEARTBEAT_TIMEOUT, &timeout, sizeof timeout);
    zmq_setsockopt(z.sock, ZMQ_HEARTBEAT_TTL, &timeout, sizeof timeout);
  }
  const std::string mon_ep = "inproc://monitor." + std::to_string(getpid());
  if (zmq_socket_monitor(z.sock, mon_ep.c_str(),
                         ZMQ_EVENT_CONNECTED | ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED |
                             ZMQ_EVENT_CONNECT_RETRIED) == 0) {
    z.mon = zmq_socket(z.ctx, ZMQ_PAIR);
    if (z.mon && zmq_connect(z.mon, mon_ep.c_str()) != 0) {
      zmq_close(z.mon);
      z.mon = nullptr;
    }
  }
  const int rc = do_bind ? zmq_bind(z.sock, o.endpoint.c_str()) : zmq_connect(z.sock, o.endpoint.c_str());
  if (rc != 0) {
    log_line("cannot %s %s: %s", do_bind ? "bind" : "connect to", o.endpoint.c_str(), zmq_strerror(zmq_errno()));
    return false;
  }
  if (do_bind) {  // names the port when ENDPOINT asked for any (tcp://host:*)
    char ep[256] = {};
    std::size_t n = sizeof ep - 1;
    if (zmq_getsockopt(z.sock, ZMQ_LAST_ENDPOINT, ep, &n) == 0) log_line("listening on %s", ep);
  }
  return true;
}

// Drains the monitor socket (never blocks).
void poll_events(Zmq& z) {
  if (!z.mon) return;
  for (;;) {
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, z.mon, ZMQ_DONTWAIT) < 0) {
      zmq_msg_close(&m);
      return;
    }
    std::uint16_t event = 0;
    if (zmq_msg_size(&m) >= 6) std::memcpy(&event, zmq_msg_data(&m), sizeof event);
    const bool more = zmq_msg_more(&m);
    zmq_msg_close(&m);
    if (more) {  // second frame: the endpoint address
      zmq_msg_init(&m);
      zmq_msg_recv(&m, z.mon, 0);
      zmq_msg_close(&m);
    }
    if (event == ZMQ_EVENT_CONNECTED || event == ZMQ_EVENT_ACCEPTED) {
      ++z.connects;
      if (z.connects > 1) log_line("peer connected again (%llu reconnects)", (unsigned long long)(z.connects - 1));
      z.warned_unreachable = false;
    } else if (event == ZMQ_EVENT_DISCONNECTED) {
      ++z.disconnects;
      log_line("peer disconnected");
    } else if (event == ZMQ_EVENT_CONNECT_RETRIED) {
      ++z.retries;
      if (!z.warned_unreachable) {
        log_line("cannot reach the peer yet; retrying");
        z.warned_unreachable = true;
      }
    }
  }
}

// ---- Stats ------------------------------------------------------------------

struct Stats {
  std::uint64_t records = 0, bytes = 0, batches = 0;
  std::uint64_t gaps = 0, gap_records = 0, uncertain_records = 0, epochs = 0, seq_resets = 0;
  std::uint64_t dup_dropped = 0, bad_batches = 0;
  std::uint64_t next_seq = 0, epoch = 0;
  std::int64_t lag_ns = 0;         // recv: age of the last batch; send: time the last send waited
  std::uint64_t blocked_ns = 0;    // send: total time zmq_send waited for the high-water mark
};

class StatsPrinter {
 public:
  StatsPrinter(const Options& o, bool send) : o_(o), send_(send), next_(mono_ns() + to_ns(o.stats_s)) {}
  void maybe_print(const Stats& s, const Zmq& z) {
    if (o_.stats_s <= 0) return;
    const std::int64_t now = mono_ns();
    if (now < next_) return;
    next_ = now + to_ns(o_.stats_s);
    print(s, z, false);
  }
  void print(const Stats& s, const Zmq& z, bool final) {
    const std::uint64_t reconnects = z.connects > 0 ? z.connects - 1 : 0;
    if (o_.json) {
      std::printf(
          "{\"role\":\"%s\",\"ring\":\"%s\",\"final\":%s,\"records\":%llu,\"bytes\":%llu,\"batches\":%llu,"
          "\"gaps\":%llu,\"gap_records\":%llu,\"uncertain_records\":%llu,\"epochs\":%llu,\"seq_resets\":%llu,"
          "\"dup_dropped\":%llu,\"bad_batches\":%llu,\"reconnects\":%llu,\"disconnects\":%llu,"
          "\"next_seq\":%llu,\"epoch\":\"%016llx\",\"lag_us\":%lld,\"blocked_ms\":%llu}\n",
          send_ ? "send" : "recv", g_ring.c_str(), final ? "true" : "false", (unsigned long long)s.records,
          (unsigned long long)s.bytes, (unsigned long long)s.batches, (unsigned long long)s.gaps,
          (unsigned long long)s.gap_records, (unsigned long long)s.uncertain_records, (unsigned long long)s.epochs,
          (unsigned long long)s.seq_resets, (unsigned long long)s.dup_dropped, (unsigned long long)s.bad_batches,
          (unsigned long long)reconnects, (unsigned long long)z.disconnects, (unsigned long long)s.next_seq,
          (unsigned long long)s.epoch, (long long)(s.lag_ns / 1000), (unsigned long long)(s.blocked_ns / 1000000));
    } else {
      std::printf("%s %s: records %llu bytes %llu batches %llu gaps %llu (%llu records, %llu uncertain) "
                  "reconnects %llu seq %llu lag %lld us%s\n",
                  send_ ? "send" : "recv", g_ring.c_str(), (unsigned long long)s.records,
                  (unsigned long long)s.bytes, (unsigned long long)s.batches, (unsigned long long)s.gaps,
                  (unsigned long long)s.gap_records, (unsigned long long)s.uncertain_records,
                  (unsigned long long)reconnects, (unsigned long long)s.next_seq, (long long)(s.lag_ns / 1000),
                  final ? " (final)" : "");
    }
    std::fflush(stdout);
  }
  bool enabled() const { return o_.stats_s > 0 || o_.json; }

 private:
  static std::int64_t to_ns(double s) { return static_cast<std::int64_t>(s * 1e9); }
  const Options& o_;
  bool send_;
  std::int64_t next_;
};

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
        if (t.ns() != 0) r = cons.peek(t);
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
    if (deferred) {
      std::uint32_t len0;
      std::memcpy(&len0, buf.data() + sizeof(sb::BatchHeader), sizeof len0);
      state.st->pending_hash =
          sb::record_hash({buf.data() + sizeof(sb::BatchHeader) + sb::kRecordPrefix, std::size_t{len0}});
      // BR-1: intent, release store (also publishes pending_hash); read by
      // BR-A1 of a later sender.
      state.st->word.store(seq << sb::kPendingBits | count, std::memory_order_release);
      const Errc e = cons.flush();
      if (e != Errc::ok) {
        log_line("flush failed: %s", shmring::to_string(e));
        rc = kExitFail;
        break;
      }
      // BR-2: commit, release store; read by BR-A1 of a later sender.
      state.st->word.store((seq + count) << sb::kPendingBits, std::memory_order_release);
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
  poll_events(z);
  if (printer.enabled()) printer.print(s, z, true);
  return rc;
}

// ---- recv ----------------------------------------------------------------------

bool parse_kind(const std::string& k, shmring::Kind* out) {
  if (k == "spsc") *out = shmring::Kind::spsc;
  else if (k == "mpmc") *out = shmring::Kind::mpmc;
  else if (k == "locked") *out = shmring::Kind::locked;
  else return false;
  return true;
}

// Creates the ring from the first batch's geometry (overridden by options).
Errc create_ring(const Options& o, const sb::BatchHeader& h) {
  shmring::Config cfg;
  if (!o.kind.empty()) {
    parse_kind(o.kind, &cfg.kind);
  } else if (h.ring_kind == 1 || h.ring_kind == 2 || h.ring_kind == 3) {
    cfg.kind = static_cast<shmring::Kind>(h.ring_kind);
  }
  if (o.wait == "spin") cfg.wait = shmring::WaitStrategy::spin;
  if (o.wait == "sem") cfg.wait = shmring::WaitStrategy::sem;
  const std::uint64_t mr = std::min<std::uint64_t>(h.max_record, std::uint64_t{1} << 30);
  if (cfg.kind == shmring::Kind::mpmc) {
    cfg.slot_size = o.slot_size ? o.slot_size : std::max<std::uint64_t>(8, (mr + 7) & ~std::uint64_t{7});
    cfg.capacity = o.capacity ? o.capacity : std::max<std::size_t>(std::size_t{1} << 20, std::bit_ceil(2 * cfg.slot_size));
  } else {
    // max_record = capacity/2 - 8 (docs/format.md): the same capacity back.
    cfg.capacity = o.capacity ? o.capacity : std::max<std::size_t>(4096, std::bit_ceil(2 * mr + 16));
  }
  const Errc e = shmring::create(o.ring, cfg);
  if (e == Errc::ok)
    log_line("created the ring: %s, capacity %zu%s", shmring::to_string(cfg.kind), cfg.capacity,
             cfg.slot_size ? (", slot size " + std::to_string(cfg.slot_size)).c_str() : "");
  return e;
}

int run_recv(const Options& o) {
  shmring::Producer prod;
  auto open_ring = [&]() -> Errc {
    auto p = shmring::Producer::open(o.ring);
    if (!p) return p.error();
    prod = std::move(*p);
    return Errc::ok;
  };
  if (Errc e = open_ring(); e != Errc::ok && !(o.create && e == Errc::not_found)) {
    log_line("cannot open the ring as producer: %s", shmring::last_error_message().c_str());
    return e == Errc::not_found ? kExitNotFound : kExitFail;
  }
  Zmq z;
  if (!setup_socket(z, ZMQ_PULL, o, !o.connect || o.bind)) return kExitFail;
  prctl(PR_SET_NAME, "shmring-bridge", 0, 0, 0);

  Stats s;
  StatsPrinter printer(o, false);
  bool have_epoch = false;
  std::uint64_t expected = 0;  // next sequence number of the current epoch
  int rc = 0;
  zmq_msg_t msg;
  zmq_msg_init(&msg);

  while (!g_stop && rc == 0) {
    poll_events(z);
    printer.maybe_print(s, z);
    zmq_pollitem_t it{z.sock, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, 100) <= 0 || !(it.revents & ZMQ_POLLIN)) continue;
    if (zmq_msg_recv(&msg, z.sock, ZMQ_DONTWAIT) < 0) continue;
    const std::span<const std::byte> m(static_cast<const std::byte*>(zmq_msg_data(&msg)), zmq_msg_size(&msg));
    std::string why;
    const auto hp = sb::parse_batch(m, &why);
    if (!hp) {
      ++s.bad_batches;
      log_line("dropped a malformed batch: %s", why.c_str());
      continue;
    }
    const sb::BatchHeader& h = *hp;
    if (!prod.valid()) {
      Errc e = create_ring(o, h);
      if (e != Errc::ok && e != Errc::exists) {
        log_line("cannot create the ring: %s", shmring::last_error_message().c_str());
        rc = kExitFail;
        break;
      }
      if ((e = open_ring()) != Errc::ok) {
        log_line("cannot open the ring as producer: %s", shmring::last_error_message().c_str());
        rc = kExitFail;
        break;
      }
    }
    // Sequence check (docs/bridge.md, "Gaps").
    std::uint64_t skip = 0;
    if (!have_epoch || h.epoch != s.epoch) {
      if (!have_epoch) {
        // The first batch this receiver sees is its baseline: what came
        // before it may have gone to an earlier receiver, which is not this
        // one's to count (docs/bridge.md, "Gaps").
        log_line("first batch: seq %llu of epoch %016llx (which started at seq %llu)", (unsigned long long)h.first_seq,
                 (unsigned long long)h.epoch, (unsigned long long)h.epoch_start_seq);
      } else {
        ++s.epochs;
        log_line("sender restarted (epoch %016llx -> %016llx, seq %llu)", (unsigned long long)s.epoch,
                 (unsigned long long)h.epoch, (unsigned long long)h.first_seq);
        if (h.first_seq >= expected) {
          if (h.first_seq > expected) {
            ++s.gaps;
            s.gap_records += h.first_seq - expected;
            log_line("gap: %llu records (seq %llu..%llu) were never received", (unsigned long long)(h.first_seq - expected),
                     (unsigned long long)expected, (unsigned long long)(h.first_seq - 1));
          }
        } else {
          // The sender's state was lost or reset: numbering starts over. Its
          // records are new (a sender never sends a record twice).
          ++s.seq_resets;
          log_line("the sender's sequence went back from %llu to %llu (state file reset?): gaps before this "
                   "point cannot be counted",
                   (unsigned long long)expected, (unsigned long long)h.first_seq);
        }
      }
      if (h.uncertain) {
        s.uncertain_records += h.uncertain;
        log_line("%u records at the restart may or may not have been lost (counted in the gap, as uncertain)",
                 h.uncertain);
      }
      have_epoch = true;
      s.epoch = h.epoch;
      expected = h.first_seq;
    } else if (h.first_seq > expected) {
      ++s.gaps;
      s.gap_records += h.first_seq - expected;
      log_line("gap: %llu records (seq %llu..%llu) were never received", (unsigned long long)(h.first_seq - expected),
               (unsigned long long)expected, (unsigned long long)(h.first_seq - 1));
    } else if (h.first_seq < expected) {
      // Already produced: never again.
      skip = std::min<std::uint64_t>(expected - h.first_seq, h.count);
      s.dup_dropped += skip;
    }
    // Produce the records; a full ring blocks here (back-pressure).
    std::size_t off = sizeof(sb::BatchHeader);
    std::uint32_t done = 0;
    bool gave_up = false;
    for (std::uint32_t i = 0; i < h.count && rc == 0; ++i) {
      std::uint32_t len;
      std::memcpy(&len, m.data() + off, sizeof len);
      off += sb::kRecordPrefix;
      const std::byte* data = m.data() + off;
      off += len;
      if (i < skip) continue;
      while (true) {
        auto r = prod.reserve(len, shmring::Timeout::try_once());
        if (!r && r.error() == Errc::would_block) r = prod.reserve(len, std::chrono::milliseconds(100));
        if (r) {
          std::memcpy(r->data(), data, len);
          const bool last = i + 1 == h.count;
          const Errc e = prod.commit(len, last ? shmring::Publish::now : shmring::Publish::later);
          if (e != Errc::ok) {
            log_line("commit failed: %s", shmring::to_string(e));
            rc = kExitFail;
          }
          break;
        }
        if (r.error() == Errc::too_big) {
          log_line("record seq %llu of %u bytes is larger than the ring's max_record %zu: stopping",
                   (unsigned long long)(h.first_seq + i), len, prod.max_record());
          rc = kExitFail;
          break;
        }
        if (r.error() != Errc::timed_out && r.error() != Errc::peer_gone) {
          log_line("reserve failed: %s", shmring::to_string(r.error()));
          rc = kExitFail;
          break;
        }
        if (g_stop) {
          gave_up = true;  // stopping and the ring stays full
          break;
        }
        poll_events(z);
        printer.maybe_print(s, z);
      }
      if (gave_up || rc != 0) break;
      ++done;
      s.bytes += len;
    }
    if (done + skip < h.count) {
      (void)prod.flush();
      log_line("stopping with %llu records of a batch (seq %llu..%llu) not produced",
               (unsigned long long)(h.count - done - skip), (unsigned long long)(h.first_seq + skip + done),
               (unsigned long long)(h.first_seq + h.count - 1));
    }
    s.records += done;
    ++s.batches;
    expected = h.first_seq + h.count;
    s.next_seq = expected;
    s.lag_ns = real_ns() - h.sent_ns;
  }
  zmq_msg_close(&msg);
  poll_events(z);
  if (printer.enabled()) printer.print(s, z, true);
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    usage(stdout);
    return 0;
  }
  if (argc < 4) {
    usage(stderr);
    return kExitUsage;
  }
  Options o;
  const std::string cmd = argv[1];
  if (cmd == "send") {
    o.ring = argv[2];
    o.endpoint = argv[3];
    g_role = "send";
  } else if (cmd == "recv") {
    o.endpoint = argv[2];
    o.ring = argv[3];
    g_role = "recv";
  } else {
    std::fprintf(stderr, "shmring-bridge: unknown command '%s' (send or recv)\n", cmd.c_str());
    return kExitUsage;
  }
  for (int i = 4; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](long long lo, long long hi, long long* out) {
      if (i + 1 >= argc || !parse_num(argv[i + 1], lo, hi, out)) {
        std::fprintf(stderr, "shmring-bridge: %s needs a number between %lld and %lld\n", a.c_str(), lo, hi);
        return false;
      }
      ++i;
      return true;
    };
    long long v = 0;
    if (a == "--bind") o.bind = true;
    else if (a == "--connect") o.connect = true;
    else if (a == "--create" && cmd == "recv") o.create = true;
    else if (a == "--stats-json") o.json = true;
    else if (a == "--hwm") { if (!value(1, 1 << 20, &v)) return kExitUsage; o.hwm = static_cast<int>(v); }
    else if (a == "--heartbeat-ms") { if (!value(0, 3600000, &v)) return kExitUsage; o.heartbeat_ms = static_cast<int>(v); }
    else if (a == "--stats") { if (!value(1, 86400, &v)) return kExitUsage; o.stats_s = static_cast<double>(v); }
    else if (a == "--batch-bytes" && cmd == "send") { if (!value(1, 1 << 26, &v)) return kExitUsage; o.batch_bytes = static_cast<std::size_t>(v); }
    else if (a == "--batch-us" && cmd == "send") { if (!value(0, 1000000, &v)) return kExitUsage; o.batch_us = static_cast<int>(v); }
    else if (a == "--linger-ms" && cmd == "send") { if (!value(0, 3600000, &v)) return kExitUsage; o.linger_ms = static_cast<int>(v); }
    else if (a == "--state" && cmd == "send" && i + 1 < argc) o.state_path = argv[++i];
    else if (a == "--capacity" && cmd == "recv") { if (!value(4096, 1LL << 40, &v)) return kExitUsage; o.capacity = static_cast<std::size_t>(v); }
    else if (a == "--slot-size" && cmd == "recv") { if (!value(8, 1 << 24, &v)) return kExitUsage; o.slot_size = static_cast<std::size_t>(v); }
    else if (a == "--kind" && cmd == "recv" && i + 1 < argc) {
      o.kind = argv[++i];
      shmring::Kind k;
      if (!parse_kind(o.kind, &k)) {
        std::fprintf(stderr, "shmring-bridge: --kind must be spsc, mpmc or locked\n");
        return kExitUsage;
      }
    } else if (a == "--wait" && cmd == "recv" && i + 1 < argc) {
      o.wait = argv[++i];
      if (o.wait != "futex" && o.wait != "spin" && o.wait != "sem") {
        std::fprintf(stderr, "shmring-bridge: --wait must be futex, spin or sem\n");
        return kExitUsage;
      }
    } else {
      std::fprintf(stderr, "shmring-bridge %s: unknown or incomplete option '%s'\n", cmd.c_str(), a.c_str());
      return kExitUsage;
    }
  }
  if (o.bind && o.connect) {
    std::fprintf(stderr, "shmring-bridge: --bind and --connect exclude each other\n");
    return kExitUsage;
  }
  auto canon = shmring::canonical_name(o.ring);
  if (!canon) {
    std::fprintf(stderr, "shmring-bridge %s %s: %s\n", cmd.c_str(), o.ring.c_str(),
                 shmring::last_error_message().c_str());
    return kExitUsage;
  }
  o.ring = *canon;
  g_ring = o.ring;
  // As the bridge's own role in the ring's attach table: shmtool inspect
  // lists this pid, whose command name is shmring-bridge.
  prctl(PR_SET_NAME, "shmring-bridge", 0, 0, 0);
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  return cmd == "send" ? run_send(o) : run_recv(o);
}
