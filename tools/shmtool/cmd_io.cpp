// push and pop: a ring from the shell, like a FIFO, through the public API.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "commands.hpp"
#include "shmring/ring.hpp"

namespace shmtool {

using shmring::Errc;

namespace {

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

bool write_all(int fd, const void* p, std::size_t n) {
  const auto* c = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t w = ::write(fd, c, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    c += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

std::string open_cause(const std::string& name, Errc e) {
  std::string c = library_cause(name, e);
  return c;
}

}  // namespace

int cmd_push(int argc, char** argv) {
  Args a;
  int code = 0;
  if (!parse_command("push", argc, argv, {{"--binary", false}, {"--timeout-ms", true}}, &a, &code)) return code;
  std::string name;
  if (!canonical("push", a.positional[0], &name, &code)) return code;
  shmring::Timeout timeout = shmring::Timeout::forever();
  if (!parse_timeout("push", name, a, &timeout, &code)) return code;
  auto opened = shmring::Producer::open(name);
  if (!opened) return fail(exit_for(opened.error()), "push", name, open_cause(name, opened.error()));
  shmring::Producer p = std::move(*opened);
  const bool binary = a.has("--binary");
  std::uint64_t n = 0;
  auto send = [&](const char* data, std::size_t len) -> int {
    const Errc e = p.send(std::as_bytes(std::span(data, len)), timeout);
    switch (e) {
      case Errc::ok: ++n; return -1;
      case Errc::too_big:
        return fail(kExitFailure, "push", name,
                    std::string(binary ? "frame " : "line ") + std::to_string(n + 1) + " is " + std::to_string(len) +
                        " bytes, more than the ring's largest record (" + std::to_string(p.max_record()) +
                        " bytes); " + std::to_string(n) + " records were pushed");
      case Errc::peer_gone:
        return fail(kExitFailure, "push", name,
                    "the ring is full and its consumer is gone; " + std::to_string(n) + " records were pushed");
      case Errc::timed_out:
      case Errc::would_block:
        return fail(kExitTimeout, "push", name,
                    "the ring stayed full past --timeout-ms; " + std::to_string(n) + " records were pushed");
      case Errc::reset:
        return fail(kExitFailure, "push", name,
                    "the ring was reset under this producer; " + std::to_string(n) + " records were pushed before");
      default: return fail(exit_for(e), "push", name, shmring::to_string(e));
    }
  };
  if (!binary) {
    char* line = nullptr;
    std::size_t cap = 0;
    ssize_t len = 0;
    int rc = -1;
    while ((len = ::getline(&line, &cap, stdin)) >= 0) {
      std::size_t l = static_cast<std::size_t>(len);
      if (l > 0 && line[l - 1] == '\n') --l;
      rc = send(line, l);
      if (rc >= 0) break;
    }
    std::free(line);
    if (rc >= 0) return rc;
    if (std::ferror(stdin)) return fail(kExitFailure, "push", name, "reading standard input failed");
    return kExitOk;
  }
  std::vector<char> buf;
  for (;;) {
    unsigned char hdr[4];
    const std::size_t got = std::fread(hdr, 1, 4, stdin);
    if (got == 0 && std::feof(stdin)) return kExitOk;
    if (got != 4)
      return fail(kExitFailure, "push", name,
                  "standard input ends inside a frame header; " + std::to_string(n) + " records were pushed");
    const std::uint32_t len = std::uint32_t{hdr[0]} | std::uint32_t{hdr[1]} << 8 | std::uint32_t{hdr[2]} << 16 |
                              std::uint32_t{hdr[3]} << 24;
    if (len > p.max_record())
      return fail(kExitFailure, "push", name,
                  "frame " + std::to_string(n + 1) + " is " + std::to_string(len) +
                      " bytes, more than the ring's largest record (" + std::to_string(p.max_record()) + " bytes); " +
                      std::to_string(n) + " records were pushed");
    buf.resize(len);
    if (std::fread(buf.data(), 1, len, stdin) != len)
      return fail(kExitFailure, "push", name,
                  "standard input ends inside a frame; " + std::to_string(n) + " records were pushed");
    if (const int rc = send(buf.data(), len); rc >= 0) return rc;
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
  auto opened = shmring::Consumer::open(name);
  if (!opened) return fail(exit_for(opened.error()), "pop", name, open_cause(name, opened.error()));
  shmring::Consumer c = std::move(*opened);
  const bool binary = a.has("--binary");
  std::uint64_t n = 0;
  std::vector<char> out;
  while (n < count) {
    auto rec = c.peek(timeout);
    if (!rec) {
      switch (rec.error()) {
        case Errc::peer_gone: return kExitOk;  // end of stream: the producers are gone, the ring is empty
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
        default: return fail(exit_for(rec.error()), "pop", name, shmring::to_string(rec.error()));
      }
    }
    const std::span<const std::byte> r = *rec;
    out.clear();
    if (binary) {
      const auto len = static_cast<std::uint32_t>(r.size());
      const char hdr[4] = {static_cast<char>(len & 0xff), static_cast<char>((len >> 8) & 0xff),
                           static_cast<char>((len >> 16) & 0xff), static_cast<char>((len >> 24) & 0xff)};
      out.insert(out.end(), hdr, hdr + 4);
    }
    const auto* p = reinterpret_cast<const char*>(r.data());
    out.insert(out.end(), p, p + r.size());
    if (!binary) out.push_back('\n');
    // Written out first, released after: a record is never lost to a
    // closed or full stdout.
    if (!write_all(STDOUT_FILENO, out.data(), out.size()))
      return fail(kExitFailure, "pop", name,
                  std::string("writing standard output failed: ") + std::strerror(errno) + " (" + std::to_string(n) +
                      " records popped; an spsc or locked ring keeps the record being written)");
    if (const Errc e = c.release(); e != Errc::ok)
      return fail(e == Errc::reset ? kExitFailure : exit_for(e), "pop", name, shmring::to_string(e));
    ++n;
  }
  return kExitOk;
}

}  // namespace shmtool
