// push and pop: a ring from the shell, like a FIFO, through the public API.
//
// Stopping (docs/shmtool.md, "Stopping push and pop"): SIGINT, SIGTERM and
// SIGHUP only set a flag (the handler does nothing else); every blocking
// step (a wait on the ring, reading stdin, writing stdout) runs in slices of
// at most kSliceMs and checks the flag between slices, so the command
// returns normally and its handle detaches (a clean close, not a "dead"
// attach entry). SIGPIPE is ignored: a closed stdout is the EPIPE of a
// write, or POLLERR seen while waiting.
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "commands.hpp"
#include "shmring/ring.hpp"

namespace shmtool {

using shmring::Errc;

namespace {

// The longest a stop request waits to be noticed (plus one library call
// that was already under way, itself bounded by the same slice).
constexpr int kSliceMs = 100;

volatile sig_atomic_t g_stop_signal = 0;
void on_stop_signal(int sig) { g_stop_signal = sig; }

// Handlers for the stop signals, without SA_RESTART (a blocked read or
// write returns EINTR). A signal that was ignored when we started stays
// ignored (nohup, or a shell's background job), as shells expect.
void install_stop_handlers() {
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    struct sigaction old {};
    if (::sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_IGN) continue;
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    ::sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    ::sigaction(sig, &sa, nullptr);
  }
  struct sigaction ign {};
  ign.sa_handler = SIG_IGN;
  ::sigemptyset(&ign.sa_mask);
  ::sigaction(SIGPIPE, &ign, nullptr);
}

int signal_exit() { return kExitSignalBase + g_stop_signal; }

// True when stdout is a pipe or socket whose reader has gone.
bool stdout_closed() {
  pollfd p{STDOUT_FILENO, POLLOUT, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP)) != 0;
}

bool canonical(const char* cmd, const std::string& arg, std::string* name, int* code) {
  auto r = shmring::canonical_name(arg);
  if (!r) {
    *code = fail(kExitUsage, cmd, arg, library_cause(arg, r.error()));
    return false;
  }
  *name = *r;
  return true;
}

// --timeout-ms: absent means wait forever.
bool parse_timeout(const char* cmd, const std::string& name, const Args& a, shmring::Timeout* t, int* code) {
  *t = shmring::Timeout::forever();
  if (const std::string* s = a.value("--timeout-ms")) {
    std::uint64_t ms = 0;
    std::string why;
    if (!parse_u64(*s, &ms, &why) || ms > 1'000'000'000'000ull) {
      *code = fail(kExitUsage, cmd, name, "--timeout-ms: " + (why.empty() ? "too large" : why));
      return false;
    }
    *t = ms == 0 ? shmring::Timeout::try_once() : shmring::Timeout::from_ns(static_cast<std::int64_t>(ms) * 1'000'000);
  }
  return true;
}

std::int64_t mono_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Runs a waiting library call (op(timeout) -> Errc) in slices of at most
// kSliceMs within the caller's timeout, asking stop() between slices.
// Returns Errc::ok or the call's outcome; *stopped when stop() said so.
template <class Op, class Stop>
Errc sliced(shmring::Timeout t, Op&& op, Stop&& stop, bool* stopped) {
  *stopped = false;
  if (t.ns() == 0) return op(t);
  constexpr std::int64_t kSliceNs = std::int64_t{kSliceMs} * 1'000'000;
  const std::int64_t deadline = t.ns() < 0 ? -1 : mono_ns() + t.ns();
  for (;;) {
    if (stop()) {
      *stopped = true;
      return Errc::would_block;
    }
    std::int64_t slice = kSliceNs;
    if (deadline >= 0) {
      const std::int64_t left = deadline - mono_ns();
      if (left <= 0) return Errc::timed_out;
      slice = std::min(slice, left);
    }
    const Errc e = op(shmring::Timeout::from_ns(slice));
    if (e != Errc::timed_out && e != Errc::would_block) return e;
  }
}

// Standard output. A record once taken is written out whole unless stdout
// stops accepting it: a stop request abandons it only while a write is
// blocked (the write returns EINTR or short). Returns 0 when written, EPIPE
// (reader gone), EINTR (stop requested while stdout was full), or another
// errno.
int write_out(const char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(STDOUT_FILENO, p, n);
    if (w < 0) {
      if (errno == EINTR || errno == EAGAIN) {
        if (g_stop_signal != 0) return EINTR;
        if (errno == EAGAIN) {  // a non-blocking stdout that is full
          pollfd pf{STDOUT_FILENO, POLLOUT, 0};
          (void)::poll(&pf, 1, kSliceMs);
        }
        continue;
      }
      return errno;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
    if (n > 0 && g_stop_signal != 0) return EINTR;  // a short write: interrupted while blocked
  }
  return 0;
}

// Standard input with our own buffer, read in kSliceMs poll slices so that
// a stop request is seen even while stdin is quiet.
class Input {
 public:
  enum class Got { ok, eof, error, stopped };

  // The next line without its '\n' (a last line without one counts too).
  Got line(std::string_view* out) {
    for (std::size_t scanned = 0;;) {
      const char* b = buf_.data() + pos_;
      const std::size_t have = buf_.size() - pos_;
      const void* nl = have > scanned ? std::memchr(b + scanned, '\n', have - scanned) : nullptr;
      if (nl != nullptr) {
        const auto len = static_cast<std::size_t>(static_cast<const char*>(nl) - b);
        *out = std::string_view(b, len);
        pos_ += len + 1;
        return Got::ok;
      }
      scanned = have;
      const Got g = more();
      if (g == Got::eof && have > 0) {
        *out = std::string_view(buf_.data() + pos_, have);
        pos_ += have;
        return Got::ok;
      }
      if (g != Got::ok) return g;
    }
  }

  // Exactly n bytes; Got::eof with *got < n when stdin ends first.
  Got exact(std::size_t n, std::string_view* out, std::size_t* got) {
    while (buf_.size() - pos_ < n) {
      const Got g = more();
      if (g != Got::ok) {
        *got = buf_.size() - pos_;
        return g;
      }
    }
    *out = std::string_view(buf_.data() + pos_, n);
    pos_ += n;
    *got = n;
    return Got::ok;
  }

 private:
  Got more() {
    if (pos_ > 0 && pos_ * 2 >= buf_.size()) {
      buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(pos_));
      pos_ = 0;
    }
    for (;;) {
      if (g_stop_signal != 0) return Got::stopped;
      pollfd pf{STDIN_FILENO, POLLIN, 0};
      const int r = ::poll(&pf, 1, kSliceMs);
      if (r < 0 && errno != EINTR) return Got::error;
      if (r <= 0) continue;
      char chunk[65536];
      const ssize_t n = ::read(STDIN_FILENO, chunk, sizeof chunk);
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        return Got::error;
      }
      if (n == 0) return Got::eof;
      buf_.insert(buf_.end(), chunk, chunk + n);
      return Got::ok;
    }
  }

  std::vector<char> buf_;
  std::size_t pos_ = 0;
};

std::string open_cause(const std::string& name, Errc e) { return library_cause(name, e); }

}  // namespace

int cmd_push(int argc, char** argv) {
  Args a;
  int code = 0;
  if (!parse_command("push", argc, argv, {{"--binary", false}, {"--timeout-ms", true}}, &a, &code)) return code;
  std::string name;
  if (!canonical("push", a.positional[0], &name, &code)) return code;
  shmring::Timeout timeout = shmring::Timeout::forever();
  if (!parse_timeout("push", name, a, &timeout, &code)) return code;
  install_stop_handlers();
  auto opened = shmring::Producer::open(name);
  if (!opened) return fail(exit_for(opened.error()), "push", name, open_cause(name, opened.error()));
  shmring::Producer p = std::move(*opened);
  const bool binary = a.has("--binary");
  std::uint64_t n = 0;
  const auto pushed = [&] { return std::to_string(n) + " records were pushed"; };
  // -1: sent; otherwise the exit status.
  auto send = [&](std::string_view rec) -> int {
    bool stopped = false;
    const Errc e = sliced(
        timeout, [&](shmring::Timeout t) { return p.send(std::as_bytes(std::span(rec.data(), rec.size())), t); },
        [] { return g_stop_signal != 0; }, &stopped);
    if (stopped) return signal_exit();
    switch (e) {
      case Errc::ok: ++n; return -1;
      case Errc::too_big:
        return fail(kExitFailure, "push", name,
                    std::string(binary ? "frame " : "line ") + std::to_string(n + 1) + " is " +
                        std::to_string(rec.size()) + " bytes, more than the ring's largest record (" +
                        std::to_string(p.max_record()) + " bytes); " + pushed());
      case Errc::peer_gone:
        if (p.peer_departure() == shmring::Departure::died)
          return fail(kExitPeerDied, "push", name, "the ring is full and its consumer died; " + pushed());
        return fail(kExitFailure, "push", name, "the ring is full and its consumer is gone; " + pushed());
      case Errc::timed_out:
      case Errc::would_block:
        return fail(kExitTimeout, "push", name, "the ring stayed full past --timeout-ms; " + pushed());
      case Errc::reset:
        return fail(kExitFailure, "push", name,
                    "the ring was reset under this producer; " + std::to_string(n) + " records were pushed before");
      default: return fail(exit_for(e), "push", name, shmring::to_string(e));
    }
  };
  Input in;
  for (;;) {
    std::string_view rec;
    Input::Got g = Input::Got::ok;
    if (!binary) {
      g = in.line(&rec);
    } else {
      std::string_view hdr;
      std::size_t got = 0;
      g = in.exact(4, &hdr, &got);
      if (g == Input::Got::eof && got != 0)
        return fail(kExitFailure, "push", name, "standard input ends inside a frame header; " + pushed());
      if (g == Input::Got::ok) {
        const auto* u = reinterpret_cast<const unsigned char*>(hdr.data());
        const std::uint32_t len = std::uint32_t{u[0]} | std::uint32_t{u[1]} << 8 | std::uint32_t{u[2]} << 16 |
                                  std::uint32_t{u[3]} << 24;
        if (len > p.max_record())
          return fail(kExitFailure, "push", name,
                      "frame " + std::to_string(n + 1) + " is " + std::to_string(len) +
                          " bytes, more than the ring's largest record (" + std::to_string(p.max_record()) +
                          " bytes); " + pushed());
        g = in.exact(len, &rec, &got);
        if (g == Input::Got::eof)
          return fail(kExitFailure, "push", name, "standard input ends inside a frame; " + pushed());
      }
    }
    switch (g) {
      case Input::Got::ok: break;
      case Input::Got::eof: return kExitOk;
      case Input::Got::stopped: return signal_exit();
      case Input::Got::error:
        return fail(kExitFailure, "push", name,
                    std::string("reading standard input failed: ") + std::strerror(errno) + "; " + pushed());
    }
    if (const int rc = send(rec); rc >= 0) return rc;
  }
}

int cmd_pop(int argc, char** argv) {
  Args a;
  int code = 0;
  if (!parse_command("pop", argc, argv, {{"--count", true}, {"--timeout-ms", true}, {"--binary", false}}, &a, &code))
    return code;
  std::string name;
  if (!canonical("pop", a.positional[0], &name, &code)) return code;
  shmring::Timeout timeout = shmring::Timeout::forever();
  if (!parse_timeout("pop", name, a, &timeout, &code)) return code;
  std::uint64_t count = UINT64_MAX;
  if (const std::string* s = a.value("--count")) {
    std::string why;
    if (!parse_u64(*s, &count, &why)) return fail(kExitUsage, "pop", name, "--count: " + why);
  }
  install_stop_handlers();
  auto opened = shmring::Consumer::open(name);
  if (!opened) return fail(exit_for(opened.error()), "pop", name, open_cause(name, opened.error()));
  shmring::Consumer c = std::move(*opened);
  const bool binary = a.has("--binary");
  std::uint64_t n = 0;
  std::vector<char> out;
  bool reader_gone = false;
  const auto stop = [&] {
    if (g_stop_signal != 0) return true;
    reader_gone = stdout_closed();
    return reader_gone;
  };
  while (n < count) {
    // A closed stdout is noticed before a record is taken (an mpmc peek
    // cannot be undone), and while waiting.
    if (stop()) return reader_gone ? kExitOk : signal_exit();
    bool stopped = false;
    const std::byte* rp = nullptr;
    std::size_t rn = 0;
    const Errc e = sliced(
        timeout,
        [&](shmring::Timeout t) {
          auto r = c.peek(t);
          if (!r) return r.error();
          rp = r->data();
          rn = r->size();
          return Errc::ok;
        },
        stop, &stopped);
    if (stopped) return reader_gone ? kExitOk : signal_exit();
    if (e != Errc::ok) {
      switch (e) {
        case Errc::peer_gone:
          // End of stream: the producers are gone and the ring is empty.
          // How they left decides between a finished feed and a broken one.
          if (c.peer_departure() == shmring::Departure::died)
            return fail(kExitPeerDied, "pop", name,
                        "a producer died (the ring is drained; " + std::to_string(n) + " records popped)");
          return kExitOk;
        case Errc::timed_out:
        case Errc::would_block:
          // Without --count, a quiet period after some records ends the
          // stream ("drain what is there"); with --count, or before the
          // first record, it is a timeout.
          if (n > 0 && count == UINT64_MAX) return kExitOk;
          return fail(kExitTimeout, "pop", name,
                      "no record within --timeout-ms (" + std::to_string(n) + " records popped)");
        case Errc::reset:
          return fail(kExitFailure, "pop", name,
                      "the ring was reset under this consumer (" + std::to_string(n) + " records popped before)");
        default: return fail(exit_for(e), "pop", name, shmring::to_string(e));
      }
    }
    out.clear();
    if (binary) {
      const auto len = static_cast<std::uint32_t>(rn);
      const char hdr[4] = {static_cast<char>(len & 0xff), static_cast<char>((len >> 8) & 0xff),
                           static_cast<char>((len >> 16) & 0xff), static_cast<char>((len >> 24) & 0xff)};
      out.insert(out.end(), hdr, hdr + 4);
    }
    const auto* p = reinterpret_cast<const char*>(rp);
    out.insert(out.end(), p, p + rn);
    if (!binary) out.push_back('\n');
    // Written out first, released after: a record is never lost to a
    // closed or full stdout (an spsc or locked ring keeps it for the next
    // consumer; see docs/shmtool.md for mpmc).
    if (const int w = write_out(out.data(), out.size()); w != 0) {
      if (w == EPIPE) return kExitOk;       // the reader has gone, like head(1) expects
      if (w == EINTR) return signal_exit();  // a stop signal while stdout was full
      return fail(kExitFailure, "pop", name,
                  std::string("writing standard output failed: ") + std::strerror(w) + " (" + std::to_string(n) +
                      " records popped; an spsc or locked ring keeps the record being written)");
    }
    if (const Errc r = c.release(); r != Errc::ok)
      return fail(r == Errc::reset ? kExitFailure : exit_for(r), "pop", name, shmring::to_string(r));
    ++n;
  }
  return kExitOk;
}

}  // namespace shmtool
