// shmring-bridge: what its parts share (internal to the tool, not installed).
//
//   cli.cpp          command line, logging, signals, main
//   zmq_socket.cpp   ZeroMQ socket setup and connection events
//   stats.cpp        the counters' periodic and final report
//   send.cpp         shmring-bridge send: the sender's state file and loop
//   recv.cpp         shmring-bridge recv: ring creation and the receiving loop
//   wire.hpp         the batch format and the state file's layout
#pragma once

#include <time.h>

#include <csignal>
#include <cstddef>
#include <cstdint>
#include <string>

#include "shmring/shmring.hpp"

namespace shmring::bridge_tool {

// Exit codes follow shmtool's: 0 ok, 1 failure, 2 usage, 3 ring not found.
inline constexpr int kExitFail = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitNotFound = 3;

// Set by SIGINT / SIGTERM (cli.cpp).
extern volatile std::sig_atomic_t g_stop;
// "send" or "recv", and the canonical ring name: every log line names them.
extern const char* g_role;
extern std::string g_ring;

void log_line(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

inline std::int64_t clock_ns(clockid_t clock) {
  timespec ts;
  clock_gettime(clock, &ts);
  return std::int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}
inline std::int64_t mono_ns() { return clock_ns(CLOCK_MONOTONIC); }
inline std::int64_t real_ns() { return clock_ns(CLOCK_REALTIME); }

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

// ---- ZeroMQ socket setup and connection events (zmq_socket.cpp) -------------

struct Zmq {
  void* ctx = nullptr;
  void* sock = nullptr;
  void* mon = nullptr;
  std::uint64_t connects = 0, disconnects = 0, retries = 0;
  bool warned_unreachable = false;
  ~Zmq();
};

bool setup_socket(Zmq& z, int type, const Options& o, bool do_bind);
// Drains the monitor socket (never blocks).
void poll_events(Zmq& z);

// ---- Stats (stats.cpp) --------------------------------------------------------

struct Stats {
  std::uint64_t records = 0, bytes = 0, batches = 0;
  std::uint64_t gaps = 0, gap_records = 0, uncertain_records = 0, epochs = 0, seq_resets = 0;
  std::uint64_t dup_dropped = 0, bad_batches = 0;
  std::uint64_t late_batches = 0, late_records = 0;  // recv: of superseded epochs, dropped
  std::uint64_t next_seq = 0, epoch = 0;
  std::int64_t lag_ns = 0;         // recv: age of the last batch; send: time the last send waited
  std::uint64_t blocked_ns = 0;    // send: total time zmq_send waited for the high-water mark
};

class StatsPrinter {
 public:
  StatsPrinter(const Options& o, bool send) : o_(o), send_(send), next_(mono_ns() + to_ns(o.stats_s)) {}
  void maybe_print(const Stats& s, const Zmq& z);
  void print(const Stats& s, const Zmq& z, bool final);
  bool enabled() const { return o_.stats_s > 0 || o_.json; }
  // At the end of a run: takes in the last connection events, then prints
  // the final counters if stats were asked for.
  void finish(const Stats& s, Zmq& z);

 private:
  static std::int64_t to_ns(double s) { return static_cast<std::int64_t>(s * 1e9); }
  const Options& o_;
  bool send_;
  std::int64_t next_;
};

// ---- The two directions (send.cpp, recv.cpp) ---------------------------------

int run_send(const Options& o);
int run_recv(const Options& o);
// Parses --kind (also used by the command line to validate it).
bool parse_kind(const std::string& k, shmring::Kind* out);

}  // namespace shmring::bridge_tool
