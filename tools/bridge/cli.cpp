// shmring-bridge: carries a ring's records to a ring on another host over
// ZeroMQ PUSH/PULL (docs/bridge.md).
//
//   shmring-bridge send RING ENDPOINT [options]   consume RING, send batches
//   shmring-bridge recv ENDPOINT RING [options]   receive batches, produce into RING
//
// Uses only the public shmring API; the library knows nothing of ZeroMQ.
// This file holds the command line, logging and signals; bridge.hpp lists
// the others.
#include <sys/prctl.h>

#include <cerrno>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>

#include "bridge.hpp"

namespace shmring::bridge_tool {

volatile std::sig_atomic_t g_stop = 0;
const char* g_role = "bridge";
std::string g_ring;

void log_line(const char* fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  std::fprintf(stderr, "shmring-bridge %s %s: %s\n", g_role, g_ring.c_str(), buf);
}

}  // namespace shmring::bridge_tool

using namespace shmring::bridge_tool;

namespace {

extern "C" void on_stop_signal(int) { g_stop = 1; }

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

bool parse_num(const char* s, long long lo, long long hi, long long* out) {
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) return false;
  *out = v;
  return true;
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
    // Reads the number after option `a` into *field; false (reported) when
    // it is missing or out of [lo, hi].
    auto number = [&](long long lo, long long hi, auto* field) {
      long long v = 0;
      if (i + 1 >= argc || !parse_num(argv[i + 1], lo, hi, &v)) {
        std::fprintf(stderr, "shmring-bridge: %s needs a number between %lld and %lld\n", a.c_str(), lo, hi);
        return false;
      }
      ++i;
      *field = static_cast<std::remove_pointer_t<decltype(field)>>(v);
      return true;
    };
    bool ok = true;
    if (a == "--bind") o.bind = true;
    else if (a == "--connect") o.connect = true;
    else if (a == "--create" && cmd == "recv") o.create = true;
    else if (a == "--stats-json") o.json = true;
    else if (a == "--hwm") ok = number(1, 1 << 20, &o.hwm);
    else if (a == "--heartbeat-ms") ok = number(0, 3600000, &o.heartbeat_ms);
    else if (a == "--stats") ok = number(1, 86400, &o.stats_s);
    else if (a == "--batch-bytes" && cmd == "send") ok = number(1, 1 << 26, &o.batch_bytes);
    else if (a == "--batch-us" && cmd == "send") ok = number(0, 1000000, &o.batch_us);
    else if (a == "--linger-ms" && cmd == "send") ok = number(0, 3600000, &o.linger_ms);
    else if (a == "--state" && cmd == "send" && i + 1 < argc) o.state_path = argv[++i];
    else if (a == "--capacity" && cmd == "recv") ok = number(4096, 1LL << 40, &o.capacity);
    else if (a == "--slot-size" && cmd == "recv") ok = number(8, 1 << 24, &o.slot_size);
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
    if (!ok) return kExitUsage;
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
