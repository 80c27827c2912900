// watch: rates, fill and peers from periodic pread copies of the header.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>

#include "commands.hpp"

namespace shmtool {

namespace {

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

termios g_saved{};
bool g_raw = false;

void restore_terminal() {
  if (g_raw) {
    ::tcsetattr(STDIN_FILENO, TCSANOW, &g_saved);
    g_raw = false;
  }
}

std::int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

std::string rate(double v, const char* unit) {
  char b[64];
  if (v >= 1e9)
    std::snprintf(b, sizeof b, "%.2f G%s", v / 1e9, unit);
  else if (v >= 1e6)
    std::snprintf(b, sizeof b, "%.2f M%s", v / 1e6, unit);
  else if (v >= 1e3)
    std::snprintf(b, sizeof b, "%.2f k%s", v / 1e3, unit);
  else
    std::snprintf(b, sizeof b, "%.0f %s", v, unit);
  return b;
}

std::string bar(double pct) {
  const int w = 30;
  int fill = static_cast<int>(pct / 100.0 * w + 0.5);
  if (fill < 0) fill = 0;
  if (fill > w) fill = w;
  return "[" + std::string(static_cast<std::size_t>(fill), '#') + std::string(static_cast<std::size_t>(w - fill), '.') + "]";
}

struct Sample {
  std::int64_t t = 0;
  std::uint64_t prod_records = 0, cons_records = 0, tail = 0, head = 0;
  std::uint32_t reset_gen = 0;
  bool valid = false;
};

Sample sample_of(const Report& r, std::int64_t t) {
  Sample s;
  s.t = t;
  if (!r.geo_ok) return s;
  s.valid = true;
  s.tail = r.hdr.prod.tail;
  s.head = r.hdr.cons.head;
  s.reset_gen = r.hdr.id.reset_gen;
  if (r.geo.kind == shmring::Kind::mpmc) {
    s.prod_records = s.tail;  // tickets
    s.cons_records = s.head;
  } else {
    s.prod_records = r.hdr.prod.records;
    s.cons_records = r.hdr.cons.records;
  }
  return s;
}

}  // namespace

int cmd_watch(int argc, char** argv) {
  Args a;
  int code = 0;
  if (!parse_command("watch", argc, argv, {{"--interval", true}, {"--count", true}}, &a, &code)) return code;
  std::string entry, why;
  if (!entry_name(a.positional[0], &entry, &why)) return fail(kExitUsage, "watch", a.positional[0], why);
  const std::string shown = "/" + entry;
  std::uint64_t interval_ms = 1000, count = UINT64_MAX;
  if (const std::string* s = a.value("--interval")) {
    if (!parse_u64(*s, &interval_ms, &why)) return fail(kExitUsage, "watch", shown, "--interval: " + why);
    if (interval_ms < 50 || interval_ms > 3'600'000)
      return fail(kExitUsage, "watch", shown, "--interval must be between 50 and 3600000 ms");
  }
  if (const std::string* s = a.value("--count")) {
    if (!parse_u64(*s, &count, &why) || count == 0)
      return fail(kExitUsage, "watch", shown, "--count: " + (why.empty() ? "must be at least 1" : why));
  }
  const int dirfd = open_shm_dir();
  if (dirfd < 0) return fail(kExitFailure, "watch", shown, "cannot open /dev/shm");
  Report r = examine(dirfd, entry, Depth::header);
  if (!r.geo_ok) {
    ::close(dirfd);
    return fail(status_exit(r.status) == kExitOk ? kExitFailure : status_exit(r.status), "watch", shown, r.why);
  }
  const bool tty = ::isatty(STDOUT_FILENO) == 1;
  const bool keys = tty && ::isatty(STDIN_FILENO) == 1;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  ::sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGHUP, &sa, nullptr);
  if (keys && ::tcgetattr(STDIN_FILENO, &g_saved) == 0) {
    termios raw = g_saved;
    raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    if (::tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0) g_raw = true;
  }
  if (tty) std::fputs("\x1b[?25l", stdout);  // hide the cursor

  Sample prev = sample_of(r, now_ns());
  int exit_code = kExitOk;
  for (std::uint64_t n = 0; n < count && !g_stop;) {
    // Wait one interval, or a key.
    const std::int64_t until = prev.t + static_cast<std::int64_t>(interval_ms) * 1'000'000;
    bool quit = false;
    for (;;) {
      const std::int64_t left = until - now_ns();
      if (left <= 0 || g_stop) break;
      pollfd pfd{keys ? STDIN_FILENO : -1, POLLIN, 0};
      const int pr = ::poll(&pfd, 1, static_cast<int>(left / 1'000'000) + 1);
      if (pr > 0 && (pfd.revents & POLLIN) != 0) {
        char c = 0;
        if (::read(STDIN_FILENO, &c, 1) == 1 && (c == 'q' || c == 'Q' || c == 3)) quit = true;
        if (quit) break;
      }
    }
    if (quit || g_stop) break;
    forget_processes();
    r = examine(dirfd, entry, Depth::header);
    const Sample cur = sample_of(r, now_ns());
    ++n;
    if (r.status == Status::not_found) {
      exit_code = fail(kExitNotFound, "watch", shown, "the ring was removed");
      break;
    }
    const double dt = static_cast<double>(cur.t - prev.t) / 1e9;
    double in_rec = 0, out_rec = 0, in_b = 0, out_b = 0;
    bool have_rates = cur.valid && prev.valid && cur.reset_gen == prev.reset_gen && dt > 0;
    if (have_rates) {
      in_rec = static_cast<double>(cur.prod_records - prev.prod_records) / dt;
      out_rec = static_cast<double>(cur.cons_records - prev.cons_records) / dt;
      in_b = static_cast<double>(cur.tail - prev.tail) / dt;
      out_b = static_cast<double>(cur.head - prev.head) / dt;
      if (in_rec < 0 || out_rec < 0 || in_b < 0 || out_b < 0) have_rates = false;  // counters moved back
    }
    const bool mpmc = r.geo_ok && r.geo.kind == shmring::Kind::mpmc;
    char pct[32];
    std::snprintf(pct, sizeof pct, "%.1f%%", r.fill_pct);
    std::string peers;
    for (const Peer& p : r.peers) {
      if (!peers.empty()) peers += ", ";
      peers += std::to_string(p.pid) + (p.role == 1 ? " producer" : p.role == 2 ? " consumer" : " ?") + " (" +
               live_text(p.live) + ")";
    }
    if (peers.empty()) peers = "none";
    const std::string mbs_in = mpmc ? "n/a" : rate(in_b, "B/s");
    const std::string mbs_out = mpmc ? "n/a" : rate(out_b, "B/s");
    std::string o;
    if (tty) {
      o += "\x1b[H\x1b[J";
      o += "shmtool watch " + escape_text(shown) + "   (" + kind_text(r.hdr.id.kind) + ", capacity " +
           human_size(r.hdr.id.capacity) + ", " + wait_text(r.hdr.id.wait) + ")   every " +
           std::to_string(interval_ms) + " ms, q quits\n\n";
      o += "state     " + std::string(status_text(r.status)) + (r.status == Status::ready ? "" : ": " + escape_text(r.why)) + "\n";
      o += "fill      " + bar(r.fill_pct) + " " + pct + "  " + std::to_string(r.fill_records) + " records" +
           (r.fill_bytes_known ? ", " + std::to_string(r.fill_bytes) + " bytes" : "") + "\n";
      if (have_rates) {
        o += "in        " + rate(in_rec, "records/s") + "   " + mbs_in + "\n";
        o += "out       " + rate(out_rec, "records/s") + "   " + mbs_out + "\n";
      } else {
        o += "in        -\nout       -   (" + std::string(cur.reset_gen != prev.reset_gen ? "the ring was reset" : "no rate yet") + ")\n";
      }
      o += "totals    published " + std::to_string(r.hdr.prod.records) + ", released " +
           std::to_string(r.hdr.cons.records) + (mpmc ? " (mpmc: tickets " + std::to_string(cur.tail) + "/" + std::to_string(cur.head) + ")" : "") + "\n";
      o += "peers     " + std::to_string(r.live) + " live, " + std::to_string(r.dead) + " dead: " + peers + "\n";
      o += "waiters   data " + std::to_string(r.hdr.data_wait.waiters) + ", space " +
           std::to_string(r.hdr.space_wait.waiters) + "\n";
    } else {
      char ts[32];
      const time_t t = ::time(nullptr);
      struct tm tm {};
      gmtime_r(&t, &tm);
      std::strftime(ts, sizeof ts, "%H:%M:%S", &tm);
      o += std::string(ts) + " " + escape_text(shown) + " state=" + status_text(r.status) + " fill=" +
           std::to_string(r.fill_records) + "rec/" + (r.fill_bytes_known ? std::to_string(r.fill_bytes) : "-") + "B(" +
           pct + ")";
      if (have_rates) {
        char b[160];
        std::snprintf(b, sizeof b, " in=%.0frec/s,%.2fMB/s out=%.0frec/s,%.2fMB/s", in_rec, mpmc ? 0.0 : in_b / 1e6,
                      out_rec, mpmc ? 0.0 : out_b / 1e6);
        o += b;
      } else {
        o += " in=- out=-";
      }
      o += " peers=" + std::to_string(r.live) + "/" + std::to_string(r.dead) + "\n";
    }
    std::fwrite(o.data(), 1, o.size(), stdout);
    if (std::fflush(stdout) != 0) {
      exit_code = kExitFailure;
      break;
    }
    prev = cur;
  }
  if (tty) {
    std::fputs("\x1b[?25h", stdout);  // show the cursor
    std::fflush(stdout);
  }
  restore_terminal();
  ::close(dirfd);
  return exit_code;
}

}  // namespace shmtool
