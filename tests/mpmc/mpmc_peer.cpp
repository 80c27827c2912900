// mpmc_peer: the producer / consumer program that the mpmc tests spawn with
// fork + execve, so that each side is its own process and may carry
// SHMRING_CRASH_AT (read by the library at start-up).
//
//   mpmc_peer produce RING --id I [--count N] [--start S] [--until-stop] [--gate] [--trace]
//   mpmc_peer consume RING [--log FILE [--sync]] [--bitmap FILE] [--count N] [--trace]
//   mpmc_peer pause   RING --id I [--after N]
//   mpmc_peer hold    RING [--log FILE] [consume options]
//
// Common options: --face c|cpp|ep (default c), --min L --max L (record
// lengths; max 0 = the ring's max_record), --timeout-ms T (every blocking
// call; default 20000), --deadline-s N (alarm: the process dies after N s),
// --hold-us U (busy U microseconds while holding each claim / record).
//
// produce      sends records (id, start..start+count-1). --until-stop: until
//              a byte (or EOF) arrives on stdin (count is then an upper
//              bound, 0 none). --gate: after opening, wait for one byte on
//              stdin first. --trace: "claiming SEQ TS" before each reserve
//              and "committing SEQ TS" before each commit. --tolerate-reset:
//              a commit refused with SHMRING_ERESET (the claim was revoked
//              while this process was stopped) is reported ("reset SEQ")
//              and the stream goes on; "done RC SENT RESETS" at the end.
// consume      takes records until peer_gone (or --count), verifying each
//              (frame, length, checksum, body; per-producer seq increases).
//              --log: a 32-byte LogEntry per record (mpmc_common.hpp);
//              --sync writes each at once (for a consumer that is killed);
//              --log-first logs a record before releasing it (else after).
//              --trace: "peeked ID SEQ TICKET" before each release.
//              --tolerate-revoke: a release refused with SHMRING_ERESET
//              (the hold was revoked while this process was stopped) is
//              reported ("revoked ID SEQ") and the loop goes on.
// pause        reports "claiming TS", reserves record (id, 0) and fills it,
//              reports "claimed TS",
//              waits for one byte on stdin, then scribbles over the
//              reserved bytes (a stalled claimer's late writes), commits
//              ("commit RC TS") and sends records 1..after.
//
// hold         opens a consumer, peeks one record and checks it, reports
//              "held ID SEQ TICKET TS" (TICKET with --face ep), waits for one
//              byte on stdin (a reader stopped between peek and release),
//              checks the same bytes again ("intact 1" or "intact 0 WHY":
//              nobody may have written the slot meanwhile), releases
//              ("release RC TS"), then goes on consuming through the same
//              handle like consume (--log gets those records, not the held
//              one) until peer_gone.
//
// Report lines go to fd 3: "opened RC" first, "done RC COUNT" last, "error
// WHY" when something failed (exit status 1).
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "mpmc_common.hpp"
#include "record.hpp"
#include "shmring/shmring.h"

namespace {

using namespace shmring::mpmc_test;

FILE* g_out = nullptr;

void say(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void say(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(g_out, fmt, ap);
  va_end(ap);
  std::fputc('\n', g_out);
  std::fflush(g_out);
}

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr, "mpmc_peer: %s\n", why.c_str());
  std::exit(2);
}

struct Opts {
  std::string mode, ring, log, bitmap;
  Face face = Face::c;
  std::uint32_t id = 0, min_len = 24, max_len = 0;
  std::uint64_t start = 0, count = 0, after = 0;
  std::int64_t timeout_ms = 20'000, hold_us = 0;
  unsigned deadline_s = 120;
  bool until_stop = false, gate = false, trace = false, sync = false, tolerate_reset = false, log_first = false,
       tolerate_revoke = false;
};

Opts parse(int argc, char** argv) {
  if (argc < 3) usage("usage: mpmc_peer MODE RING [options]");
  Opts o;
  o.mode = argv[1];
  o.ring = argv[2];
  for (int i = 3; i < argc; ++i) {
    const std::string a = argv[i];
    auto val = [&]() -> const char* {
      if (i + 1 >= argc) usage("missing value for " + a);
      return argv[++i];
    };
    if (a == "--id") o.id = static_cast<std::uint32_t>(std::strtoul(val(), nullptr, 10));
    else if (a == "--count") o.count = std::strtoull(val(), nullptr, 10);
    else if (a == "--start") o.start = std::strtoull(val(), nullptr, 10);
    else if (a == "--after") o.after = std::strtoull(val(), nullptr, 10);
    else if (a == "--min") o.min_len = static_cast<std::uint32_t>(std::strtoul(val(), nullptr, 10));
    else if (a == "--max") o.max_len = static_cast<std::uint32_t>(std::strtoul(val(), nullptr, 10));
    else if (a == "--timeout-ms") o.timeout_ms = std::strtoll(val(), nullptr, 10);
    else if (a == "--hold-us") o.hold_us = std::strtoll(val(), nullptr, 10);
    else if (a == "--deadline-s") o.deadline_s = static_cast<unsigned>(std::strtoul(val(), nullptr, 10));
    else if (a == "--log") o.log = val();
    else if (a == "--bitmap") o.bitmap = val();
    else if (a == "--face") {
      const auto f = parse_face(val());
      if (!f) usage("unknown face");
      o.face = *f;
    } else if (a == "--until-stop") o.until_stop = true;
    else if (a == "--gate") o.gate = true;
    else if (a == "--trace") o.trace = true;
    else if (a == "--sync") o.sync = true;
    else if (a == "--tolerate-reset") o.tolerate_reset = true;
    else if (a == "--log-first") o.log_first = true;
    else if (a == "--tolerate-revoke") o.tolerate_revoke = true;
    else usage("unknown option " + a);
  }
  return o;
}

std::int64_t timeout_ns(const Opts& o) { return o.timeout_ms < 0 ? -1 : o.timeout_ms * 1'000'000; }

int run_produce(const Opts& o) {
  ProduceOpts p;
  p.ring = o.ring;
  p.face = o.face;
  p.id = o.id;
  p.start = o.start;
  p.count = o.count;
  p.min_len = o.min_len;
  p.max_len = o.max_len;
  p.timeout_ns = timeout_ns(o);
  p.stop_fd = o.until_stop ? 0 : -1;
  p.gate_fd = o.gate ? 0 : -1;
  p.trace_fd = o.trace ? 3 : -1;
  p.reset_fd = o.tolerate_reset ? 3 : -1;
  p.hold_ns = o.hold_us * 1000;
  p.on_open = [](int rc) { say("opened %d", rc); };
  const ProduceResult r = produce(p);
  if (!r.error.empty()) say("error %s", r.error.c_str());
  say("done %d %" PRIu64 " %" PRIu64, r.last_rc, r.sent, r.resets);
  return r.error.empty() ? 0 : 1;
}

int run_consume(const Opts& o) {
  ConsumeOpts c;
  c.ring = o.ring;
  c.face = o.face;
  c.min_len = o.min_len;
  c.max_len = o.max_len;
  c.timeout_ns = timeout_ns(o);
  c.count = o.count;
  c.log_path = o.log;
  c.sync_log = o.sync;
  c.log_before_release = o.log_first;
  c.hold_ns = o.hold_us * 1000;
  c.bitmap_path = o.bitmap;
  c.trace_fd = o.trace ? 3 : -1;
  c.revoke_fd = o.tolerate_revoke ? 3 : -1;
  c.on_open = [](int rc) { say("opened %d", rc); };
  const ConsumeResult r = consume(c);
  if (!r.error.empty()) say("error %s", r.error.c_str());
  say("done %d %" PRIu64, r.end_rc, r.got);
  return r.error.empty() ? 0 : 1;
}

int run_pause(const Opts& o) {
  int rc = 0;
  auto port = open_producer(o.face, o.ring, &rc);
  say("opened %d", rc);
  if (!port) return 1;
  const auto max_len = o.max_len != 0 ? o.max_len : static_cast<std::uint32_t>(port->max_record());
  const std::uint32_t len0 = shmring::live::record_len(o.id, 0, o.min_len, max_len);
  std::byte* p = nullptr;
  say("claiming %" PRId64, now_ns());
  rc = port->reserve(len0, &p, timeout_ns(o));
  if (rc != 0) {
    say("error reserve: %d", rc);
    return 1;
  }
  shmring::live::fill_record(o.id, 0, p, len0);
  say("claimed %" PRId64, now_ns());
  char c;
  while (::read(0, &c, 1) < 0 && errno == EINTR) {
  }
  // Late writes of a claimer that was paused and resumed: they land in
  // the quarantined slot, which nobody may read.
  std::memset(p, 0xA5, max_len);
  rc = port->commit(len0);
  say("commit %d %" PRId64, rc, now_ns());
  std::uint64_t sent = 0;
  int status = 0;
  for (std::uint64_t seq = 1; seq <= o.after; ++seq) {
    const std::uint32_t len = shmring::live::record_len(o.id, seq, o.min_len, max_len);
    int r = port->reserve(len, &p, timeout_ns(o));
    if (r == 0) {
      shmring::live::fill_record(o.id, seq, p, len);
      r = port->commit(len);
    }
    if (r != 0) {
      say("error send of seq %" PRIu64 ": %d", seq, r);
      status = 1;
      break;
    }
    ++sent;
  }
  say("done 0 %" PRIu64, sent);
  return status;
}

int run_hold(const Opts& o) {
  int rc = 0;
  auto port = open_consumer(o.face, o.ring, &rc);
  say("opened %d", rc);
  if (!port) return 1;
  const auto max_len = o.max_len != 0 ? o.max_len : static_cast<std::uint32_t>(port->max_record());
  const std::byte* p = nullptr;
  std::size_t n = 0;
  rc = port->peek(&p, &n, timeout_ns(o));
  if (rc != 0) {
    say("error peek: %d", rc);
    return 1;
  }
  shmring::live::RecordView v;
  std::string why;
  if (!shmring::live::check_record(p, n, o.min_len, max_len, &v, &why)) {
    say("error held record: %s", why.c_str());
    return 1;
  }
  say("held %u %" PRIu64 " %" PRIu64 " %" PRId64, v.id, v.seq, port->ticket_of(p), now_ns());
  char c;
  while (::read(0, &c, 1) < 0 && errno == EINTR) {
  }
  // A late reader reads its record again: the bytes must still be the
  // record it peeked (its slot is quarantined, never reused under it).
  shmring::live::RecordView v2;
  const bool intact = shmring::live::check_record(p, n, o.min_len, max_len, &v2, &why) && v2.id == v.id &&
                      v2.seq == v.seq;
  if (intact) say("intact 1");
  else say("intact 0 %s", why.c_str());
  rc = port->release();
  say("release %d %" PRId64, rc, now_ns());
  ConsumeOpts co;
  co.port = port.get();
  co.min_len = o.min_len;
  co.max_len = o.max_len;
  co.timeout_ns = timeout_ns(o);
  co.log_path = o.log;
  co.sync_log = o.sync;
  const ConsumeResult r = consume(co);
  if (!r.error.empty()) say("error %s", r.error.c_str());
  say("done %d %" PRIu64, r.end_rc, r.got);
  return r.error.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  g_out = ::fdopen(3, "w");
  if (g_out == nullptr) g_out = std::fopen("/dev/null", "w");
  const Opts o = parse(argc, argv);
  ::alarm(o.deadline_s);
  if (o.mode == "produce") return run_produce(o);
  if (o.mode == "consume") return run_consume(o);
  if (o.mode == "pause") return run_pause(o);
  if (o.mode == "hold") return run_hold(o);
  usage("unknown mode " + o.mode);
}
