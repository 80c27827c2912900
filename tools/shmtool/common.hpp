// shmtool: shared pieces of every command (exit codes, option parsing,
// strict numbers, escaping, a tiny JSON writer). docs/shmtool.md is the manual.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "shmring/error.hpp"

namespace shmtool {

// Exit status: a fixed contract (design.md, "shmtool").
enum Exit : int {
  kExitOk = 0,
  kExitFailure = 1,
  kExitUsage = 2,
  kExitNotFound = 3,
  kExitCorrupt = 4,
  kExitPermission = 5,
  kExitBusy = 6,
  kExitTimeout = 7,
  kExitPeerDied = 8,  // pop/push: the other side died rather than closed; inspect/verify --stale-is-error: stale
};
// push and pop stopped by a signal: 128 + the signal number (SIGHUP 129,
// SIGINT 130, SIGTERM 143), the shells' convention for "killed by".
inline constexpr int kExitSignalBase = 128;

// The exit status for a library outcome.
int exit_for(shmring::Errc e) noexcept;

// Prints the one error line "shmtool CMD NAME: CAUSE" (escaped, newline-free)
// on stderr and returns code.
int fail(int code, std::string_view cmd, std::string_view name, std::string_view cause);
// While a sink is set, fail() appends its line there instead of writing it
// to stderr (the hidden batch mode of inspect/verify).
void capture_errors(std::string* sink);
// The library's last message without its "shmring NAME: " prefix.
std::string library_cause(std::string_view name, shmring::Errc e);

// Text made safe for a terminal: bytes outside printable ASCII and the
// backslash become \xNN / \\ (names from /dev/shm may hold anything).
std::string escape_text(std::string_view s);

// Strict numbers. parse_u64: digits only ("-1", "+1", " 1", "1e9", "0x",
// "" and out-of-range values are refused). parse_size additionally takes one
// binary suffix k/K (2^10), M (2^20) or G (2^30).
bool parse_u64(std::string_view s, std::uint64_t* out, std::string* why);
bool parse_size(std::string_view s, std::uint64_t* out, std::string* why);

// Command-line options of one command.
struct OptSpec {
  const char* name;  // "--kind"
  bool takes_value;
};
struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> values;
  std::set<std::string> flags;
  bool help = false;
  bool has(const std::string& o) const { return values.count(o) != 0 || flags.count(o) != 0; }
  const std::string* value(const std::string& o) const {
    auto it = values.find(o);
    return it == values.end() ? nullptr : &it->second;
  }
};
// Parses argv[first..argc). "--opt value", "--opt=value", "--" ends options,
// "-h"/"--help" sets help. False with *why on an unknown, repeated or
// value-less option.
bool parse_args(int argc, char** argv, int first, const std::vector<OptSpec>& spec, Args* out, std::string* why);

// A name as it may appear in /dev/shm (for inspect, verify, rm): one path
// component, "/" prefix optional. Returns the entry name without the slash.
bool entry_name(std::string_view in, std::string* entry, std::string* why);

// Human sizes: 4096 -> "4K", 1048576 -> "1M", 1000 -> "1000".
std::string human_size(std::uint64_t v);
std::string octal_mode(unsigned mode);
std::string iso_time(std::int64_t realtime_ns);
std::string user_name(unsigned uid);

// Minimal JSON writer: valid JSON for any input (strings are escaped;
// bytes that are not UTF-8 become U+FFFD).
class Json {
 public:
  explicit Json(bool pretty = true) : pretty_(pretty) {}
  Json& begin_object();
  Json& end_object();
  Json& begin_array();
  Json& end_array();
  Json& key(std::string_view k);
  Json& str(std::string_view v);
  Json& num(std::uint64_t v);
  Json& num(std::int64_t v);
  Json& num(int v) { return num(static_cast<std::int64_t>(v)); }
  Json& num(unsigned v) { return num(static_cast<std::uint64_t>(v)); }
  Json& real(double v);
  Json& boolean(bool v);
  Json& null();
  // A value rendered by another Json writer, inserted as is.
  Json& raw(std::string_view rendered);
  // key + value shorthands
  template <class T>
  Json& kv(std::string_view k, T v) {
    key(k);
    return value(v);
  }
  const std::string& text() const { return out_; }
  static std::string quote(std::string_view s);

 private:
  Json& value(std::string_view v) { return str(v); }
  Json& value(const std::string& v) { return str(v); }
  Json& value(const char* v) { return str(v); }
  Json& value(bool v) { return boolean(v); }
  Json& value(double v) { return real(v); }
  Json& value(std::uint64_t v) { return num(v); }
  Json& value(std::int64_t v) { return num(v); }
  Json& value(int v) { return num(v); }
  Json& value(unsigned v) { return num(v); }
  void before_value();
  void newline();
  std::string out_;
  std::vector<bool> first_;  // per open container: no element yet
  bool after_key_ = false;
  bool pretty_;
};

inline constexpr int kSchemaVersion = 1;

}  // namespace shmtool
