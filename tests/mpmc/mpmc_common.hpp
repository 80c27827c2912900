// Shared code of the mpmc suite (tests/mpmc): the producer and consumer
// bodies that forked children and the mpmc_peer helper run, the consumers'
// reports (per-record logs and per-producer bitmaps), a helper-process
// launcher (fork + execve, so SHMRING_CRASH_AT is read at start-up), and
// raw access to a ring's counters and tickets. No gtest here: the peer
// program links it too.
//
// Records are tests/liveness/record.hpp's: producer id, length, sequence
// number and checksum in a 24-byte frame, then a body that is a pure
// function of (id, seq); the length is a pure function of (id, seq, min,
// max). A consumer checks every byte, so a torn, resized, duplicated or
// foreign record is detected without any side channel.
#pragma once

#include <sched.h>
#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "layout.hpp"  // internal: slot words, counters
#include "shmring/ring.hpp"

namespace shmring::mpmc_test {

std::int64_t now_ns() noexcept;  // CLOCK_MONOTONIC, comparable across processes

// Which face drives the ring.
enum class Face {
  c,    // shmring.h
  cpp,  // shmring::Producer / Consumer
  ep,   // internal detail::Endpoint (consumers can then tell the ticket of each record)
};
const char* to_string(Face f) noexcept;
std::optional<Face> parse_face(std::string_view s) noexcept;

// One delivered record, as a consumer logs it (32 bytes, binary).
struct LogEntry {
  std::uint32_t id;
  std::uint32_t len;
  std::uint64_t seq;
  std::uint64_t ticket;  // Face::ep only (else ~0): lap << log2(slots) | slot, from the READING slot word
  std::int64_t ts;       // CLOCK_MONOTONIC right after peek returned
};
static_assert(sizeof(LogEntry) == 32);
inline constexpr std::uint64_t kNoTicket = ~std::uint64_t{0};

// One producer or consumer handle behind one interface, over any face.
// Return codes are the C API's (0 ok, SHMRING_E* negative).
class ProducerPort {
 public:
  virtual ~ProducerPort() = default;
  virtual int reserve(std::size_t n, std::byte** p, std::int64_t timeout_ns) = 0;
  virtual int commit(std::size_t n) = 0;
  virtual std::size_t max_record() const = 0;
};

class ConsumerPort {
 public:
  virtual ~ConsumerPort() = default;
  virtual int peek(const std::byte** p, std::size_t* n, std::int64_t timeout_ns) = 0;
  virtual int release() = 0;
  virtual std::size_t max_record() const = 0;
  // Face::ep: the ticket of the record just peeked (else kNoTicket).
  virtual std::uint64_t ticket_of(const std::byte*) const { return kNoTicket; }
};

std::unique_ptr<ProducerPort> open_producer(Face f, const std::string& ring, int* rc);
std::unique_ptr<ConsumerPort> open_consumer(Face f, const std::string& ring, int* rc);

struct ProduceOpts {
  std::string ring;
  Face face = Face::c;
  std::uint32_t id = 0;
  std::uint64_t start = 0;
  std::uint64_t count = 0;  // records to send; with stop_fd, an upper bound (0: none)
  std::uint32_t min_len = 24;
  std::uint32_t max_len = 0;  // 0: the ring's max_record()
  std::int64_t timeout_ns = 20'000'000'000;
  int stop_fd = -1;   // stop once this fd is readable (a byte or EOF); checked every 16 records
  int trace_fd = -1;  // "claiming SEQ TS" before each reserve, "committing SEQ TS" before each commit
  int gate_fd = -1;   // after opening, wait for one byte (or EOF) on this fd before sending
  std::int64_t hold_ns = 0;  // busy for this long between reserve and commit (work on the claim)
  int reset_fd = -1;  // with it, a commit refused with SHMRING_ERESET (claim revoked) is
                      // reported there ("reset SEQ") and the stream goes on with the next seq
  std::function<void(int rc)> on_open;  // called once the open returned
};

struct ProduceResult {
  std::string error;  // empty: every send succeeded (the loop ended by count or stop)
  std::uint64_t sent = 0;   // committed
  std::uint64_t resets = 0; // commits refused with reset (reset_fd only)
  int last_rc = 0;  // Errc of the call that ended the loop (0 when none failed)
};

// Opens the producer through opts.face and sends records (opts.id, start..).
ProduceResult produce(const ProduceOpts& opts);

struct ConsumeOpts {
  std::string ring;
  Face face = Face::c;
  std::uint32_t min_len = 24;
  std::uint32_t max_len = 0;  // 0: the ring's max_record()
  std::int64_t timeout_ns = 20'000'000'000;
  std::uint64_t count = 0;     // stop after this many (0: until peer_gone)
  std::string log_path;        // per-record LogEntry file ("" none)
  bool sync_log = false;       // write(2) each entry at once (a consumer that may be killed)
  std::int64_t hold_ns = 0;    // busy for this long between peek and release (work on the record)
  bool log_before_release = false;  // log each record before releasing it (else after): with
                                    // sync_log, what a killed consumer saw is logged even if
                                    // it dies between the two
  std::string bitmap_path;     // per-producer bitmaps at the end ("" none)
  int trace_fd = -1;           // "peeked ID SEQ TICKET" before each release
  std::function<void(int rc)> on_open;  // called once the open returned
  ConsumerPort* port = nullptr;  // consume through this open handle (ring, face, on_open unused)
  int revoke_fd = -1;  // with it, a release refused with SHMRING_ERESET (the hold was revoked while
                       // this process was stopped) is reported there ("revoked ID SEQ") and the
                       // loop goes on; the record is not counted in got
};

struct ConsumeResult {
  std::string error;  // verification failure or an unexpected error code
  std::uint64_t got = 0;
  std::uint64_t revoked = 0;  // releases refused with reset (revoke_fd only)
  int end_rc = 0;  // the code that ended the loop (peer_gone normally)
};

// Opens the consumer and takes records until peer_gone (or count), checking
// each record's frame, length, checksum and body, and that each producer's
// sequence numbers only increase.
ConsumeResult consume(const ConsumeOpts& opts);

// ---- Reports -----------------------------------------------------------------

std::vector<LogEntry> read_log(const std::string& path);

// Per-producer bitmaps of delivered sequence numbers.
using Bitmaps = std::map<std::uint32_t, std::vector<std::uint64_t>>;
bool write_bitmaps(const std::string& path, const Bitmaps& b);
std::optional<Bitmaps> read_bitmaps(const std::string& path);
inline void set_bit(std::vector<std::uint64_t>& v, std::uint64_t i) {
  if (v.size() <= i / 64) v.resize(i / 64 + 1 + v.size() / 2);
  v[i / 64] |= std::uint64_t{1} << (i % 64);
}
inline bool get_bit(const std::vector<std::uint64_t>& v, std::uint64_t i) {
  return i / 64 < v.size() && ((v[i / 64] >> (i % 64)) & 1) != 0;
}

// Exactly-once over the union of consumers: for every producer id in
// `expected` (id -> number of records sent, seq 0..n-1), each seq delivered
// by exactly one consumer; nothing else delivered. Returns "" or what is
// wrong (the first few problems).
std::string check_exactly_once(const std::vector<Bitmaps>& per_consumer,
                               const std::map<std::uint32_t, std::uint64_t>& expected);

// ---- Temporary files -----------------------------------------------------------

// "c3.log" from ("c", 3, ".log"), built with append (gcc 12 gives false
// -Wrestrict warnings on "literal" + std::string).
std::string numbered(std::string_view stem, long i, std::string_view ext);

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string path(std::string_view file) const { return std::string(dir_).append("/").append(file); }
  bool ok() const noexcept { return !dir_.empty(); }

 private:
  std::string dir_;
};

// ---- Helper processes (mpmc_peer) ----------------------------------------------

// One helper process: argv after the program name, and SHMRING_CRASH_AT in
// its environment when crash_at is not empty. Its fd 3 writes report lines
// to us; its stdin reads bytes we send. Destruction kills and reaps it.
// PR_SET_PDEATHSIG: it dies with the test process.
class Proc {
 public:
  Proc(const std::string& program, const std::vector<std::string>& args, const std::string& crash_at = "");
  ~Proc();
  Proc(const Proc&) = delete;
  Proc& operator=(const Proc&) = delete;

  pid_t pid() const noexcept { return pid_; }
  bool started() const noexcept { return pid_ > 0; }

  // The next line whose first word is `word` (other lines are kept in
  // history()), or nullopt at EOF / timeout.
  std::optional<std::string> expect(std::string_view word, std::chrono::milliseconds timeout);
  const std::vector<std::string>& history() const noexcept { return history_; }
  std::string history_text() const;
  // Reads every remaining line until EOF (bounded).
  void drain(std::chrono::milliseconds timeout);

  bool send_byte(char c = 'x');
  void close_stdin();
  void signal(int sig);
  // Bounded wait for the exit (a pidfd poll, no sleeping); SIGKILL at the deadline.
  struct Exit {
    bool exited = false;
    int code = -1;
    int sig = 0;
    bool timed_out = false;
    std::string describe() const;
  };
  Exit wait(std::chrono::milliseconds timeout);
  // True when the process has ended (not reaped yet or reaped).
  bool ended(std::chrono::milliseconds timeout);
  std::int64_t ended_at_ns() const noexcept { return ended_ns_; }

 private:
  std::optional<std::string> line(std::int64_t deadline_ns);
  pid_t pid_ = -1;
  int out_fd_ = -1, in_fd_ = -1, pidfd_ = -1;
  bool reaped_ = false, eof_ = false;
  std::int64_t ended_ns_ = 0;
  std::string buf_;
  std::vector<std::string> history_;
  Exit exit_;
};

// Word i of a line, as text or as an integer ("" / 0 when missing).
std::string word_at(const std::string& line, std::size_t i);
std::int64_t word_int(const std::string& line, std::size_t i);

// ---- Raw ring access ----------------------------------------------------------------

// A read-write mapping of a whole ring object, bypassing the library.
class RingView {
 public:
  explicit RingView(const std::string& ring);
  ~RingView();
  RingView(const RingView&) = delete;
  RingView& operator=(const RingView&) = delete;
  bool ok() const noexcept { return base_ != nullptr; }

  detail::Header* header() const noexcept { return static_cast<detail::Header*>(base_); }
  std::uint64_t slot_count() const noexcept { return header()->id.slot_count; }
  std::uint64_t slot_size() const noexcept { return header()->id.slot_size; }
  std::uint64_t tail() const noexcept;
  std::uint64_t head() const noexcept;
  std::uint64_t abandoned_claims() const noexcept;
  std::uint64_t dropped_reads() const noexcept;
  std::uint64_t fenced_claims() const noexcept;
  std::uint64_t fenced_reads() const noexcept;
  std::uint64_t slot_word(std::uint64_t index) const noexcept;
  // Starts the tickets at t0 (only while nobody is attached): both
  // counters, and every slot word for tickets t0..t0+n-1
  // (detail::init_mpmc_slots).
  bool start_tickets_at(std::uint64_t t0) const noexcept;

 private:
  void* base_ = nullptr;
  std::size_t size_ = 0;
};

// Busy-polls (sched_yield between looks; no sleeping) until pred() holds or
// the timeout passes; returns pred()'s last value.
template <class Pred>
bool poll_until(Pred&& pred, std::chrono::milliseconds timeout) {
  const std::int64_t deadline = now_ns() + std::chrono::nanoseconds(timeout).count();
  for (unsigned i = 0;; ++i) {
    if (pred()) return true;
    if ((i & 15) == 0 && now_ns() >= deadline) return pred();
    ::sched_yield();
  }
}

}  // namespace shmring::mpmc_test
