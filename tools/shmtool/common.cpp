#include "common.hpp"

#include <pwd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <unordered_map>

namespace shmtool {

using shmring::Errc;

int exit_for(Errc e) noexcept {
  switch (e) {
    case Errc::ok: return kExitOk;
    case Errc::invalid_argument: return kExitUsage;
    case Errc::not_found: return kExitNotFound;
    case Errc::corrupt:
    case Errc::version_mismatch: return kExitCorrupt;
    case Errc::permission_denied: return kExitPermission;
    case Errc::busy: return kExitBusy;
    case Errc::timed_out:
    case Errc::would_block: return kExitTimeout;
    default: return kExitFailure;
  }
}

std::string escape_text(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

namespace {
std::string* g_error_sink = nullptr;
}  // namespace

void capture_errors(std::string* sink) { g_error_sink = sink; }

int fail(int code, std::string_view cmd, std::string_view name, std::string_view cause) {
  std::string line = "shmtool ";
  line += cmd;
  if (!name.empty()) {
    line += ' ';
    line += escape_text(name);
  }
  line += ": ";
  line += escape_text(cause);  // newline-free by construction
  line += '\n';
  if (g_error_sink != nullptr) {
    g_error_sink->append(line);
    return code;
  }
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
  return code;
}

std::string library_cause(std::string_view name, Errc e) {
  std::string msg = shmring::last_error_message();
  // "shmring /name: cause" -> "cause"
  const std::string prefix = "shmring " + std::string(name) + ": ";
  if (msg.rfind(prefix, 0) == 0) return msg.substr(prefix.size());
  if (msg.rfind("shmring ", 0) == 0) {
    const auto colon = msg.find(": ");
    if (colon != std::string::npos) return msg.substr(colon + 2);
  }
  if (msg.empty()) return shmring::to_string(e);
  return msg;
}

bool parse_u64(std::string_view s, std::uint64_t* out, std::string* why) {
  if (s.empty()) {
    *why = "empty number";
    return false;
  }
  for (char c : s) {
    if (c < '0' || c > '9') {
      why->assign(1, '\'');
      why->append(escape_text(s));
      why->append("' is not a non-negative decimal integer");
      return false;
    }
  }
  const std::string copy(s);
  errno = 0;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(copy.c_str(), &end, 10);
  if (errno == ERANGE || end != copy.c_str() + copy.size()) {
    why->assign(1, '\'');
    why->append(copy);
    why->append("' is out of range");
    return false;
  }
  *out = v;
  return true;
}

bool parse_size(std::string_view s, std::uint64_t* out, std::string* why) {
  std::uint64_t mult = 1;
  if (!s.empty()) {
    switch (s.back()) {
      case 'k':
      case 'K': mult = 1ull << 10; break;
      case 'M': mult = 1ull << 20; break;
      case 'G': mult = 1ull << 30; break;
      default: break;
    }
    if (mult != 1) s.remove_suffix(1);
  }
  std::uint64_t v = 0;
  if (!parse_u64(s, &v, why)) {
    if (s.empty()) *why = "empty size";
    return false;
  }
  if (v > UINT64_MAX / mult) {
    *why = "size out of range";
    return false;
  }
  *out = v * mult;
  return true;
}

bool parse_args(int argc, char** argv, int first, const std::vector<OptSpec>& spec, Args* out, std::string* why) {
  bool options_done = false;
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    if (options_done || a.size() < 2 || a[0] != '-') {
      if (a == "-" && !options_done) {
        *why = "'-' is not a ring name";
        return false;
      }
      out->positional.push_back(a);
      continue;
    }
    if (a == "--") {
      options_done = true;
      continue;
    }
    if (a == "-h" || a == "--help") {
      out->help = true;
      continue;
    }
    std::string value;
    bool has_value = false;
    if (const auto eq = a.find('='); eq != std::string::npos && a.rfind("--", 0) == 0) {
      value = a.substr(eq + 1);
      a.resize(eq);
      has_value = true;
    }
    const OptSpec* s = nullptr;
    for (const auto& o : spec)
      if (a == o.name) s = &o;
    if (s == nullptr) {
      *why = "unknown option " + escape_text(a);
      return false;
    }
    if (out->has(a)) {
      *why = "option " + a + " given twice";
      return false;
    }
    if (!s->takes_value) {
      if (has_value) {
        *why = "option " + a + " takes no value";
        return false;
      }
      out->flags.insert(a);
      continue;
    }
    if (!has_value) {
      if (i + 1 >= argc) {
        *why = "option " + a + " needs a value";
        return false;
      }
      value = argv[++i];
    }
    out->values[a] = value;
  }
  return true;
}

bool entry_name(std::string_view in, std::string* entry, std::string* why) {
  std::string_view s = in;
  if (!s.empty() && s.front() == '/') s.remove_prefix(1);
  if (s.empty()) {
    *why = "empty name";
    return false;
  }
  if (s == "." || s == "..") {
    *why = "name is . or ..";
    return false;
  }
  if (s.find('/') != std::string_view::npos) {
    *why = "a name may hold no '/' after the leading one";
    return false;
  }
  if (s.find('\0') != std::string_view::npos || s.size() >= 255) {
    *why = "name too long or holds a NUL byte";
    return false;
  }
  *entry = std::string(s);
  return true;
}

std::string human_size(std::uint64_t v) {
  static const char* const kSuffix[] = {"", "K", "M", "G", "T"};
  int i = 0;
  while (i < 4 && v != 0 && v % 1024 == 0) {
    v /= 1024;
    ++i;
  }
  return std::to_string(v) + kSuffix[i];
}

std::string octal_mode(unsigned mode) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0%03o", mode & 07777);
  return buf;
}

std::string iso_time(std::int64_t ns) {
  if (ns <= 0) return "-";
  const time_t secs = static_cast<time_t>(ns / 1'000'000'000);
  struct tm tm {};
  if (gmtime_r(&secs, &tm) == nullptr) return "-";
  char buf[64];
  if (std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) return "-";
  return buf;
}

std::string user_name(unsigned uid) {
  static std::unordered_map<unsigned, std::string> cache;
  if (auto it = cache.find(uid); it != cache.end()) return it->second;
  std::string name = std::to_string(uid);
  struct passwd pw {};
  struct passwd* res = nullptr;
  char buf[4096];
  if (getpwuid_r(uid, &pw, buf, sizeof buf, &res) == 0 && res != nullptr && res->pw_name != nullptr)
    name = res->pw_name;
  cache.emplace(uid, name);
  return name;
}

// ---- Json ----------------------------------------------------------------------

std::string Json::quote(std::string_view s) {
  std::string out = "\"";
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  for (std::size_t i = 0; i < n;) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        default:
          if (c < 0x20 || c == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
          } else {
            out += static_cast<char>(c);
          }
      }
      ++i;
      continue;
    }
    // A well-formed UTF-8 sequence passes through; anything else is U+FFFD.
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      cp = c & 0x07;
    }
    bool ok = len != 0 && i + len <= n;
    for (std::size_t k = 1; ok && k < len; ++k) {
      if ((p[i + k] & 0xc0) != 0x80) ok = false;
      cp = (cp << 6) | (p[i + k] & 0x3f);
    }
    if (ok) {
      const bool overlong = (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
      const bool surrogate = cp >= 0xd800 && cp <= 0xdfff;
      if (overlong || surrogate || cp > 0x10ffff) ok = false;
    }
    if (ok) {
      out.append(reinterpret_cast<const char*>(p + i), len);
      i += len;
    } else {
      out += "\\ufffd";
      ++i;
    }
  }
  out += '"';
  return out;
}

void Json::newline() {
  if (!pretty_) return;
  out_ += '\n';
  out_.append(first_.size() * 2, ' ');
}

void Json::before_value() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (!first_.empty()) {
    if (!first_.back()) out_ += ',';
    first_.back() = false;
    newline();
  }
}

Json& Json::begin_object() {
  before_value();
  out_ += '{';
  first_.push_back(true);
  return *this;
}

Json& Json::end_object() {
  const bool empty = first_.back();
  first_.pop_back();
  if (!empty) newline();
  out_ += '}';
  if (first_.empty() && pretty_) out_ += '\n';
  return *this;
}

Json& Json::begin_array() {
  before_value();
  out_ += '[';
  first_.push_back(true);
  return *this;
}

Json& Json::end_array() {
  const bool empty = first_.back();
  first_.pop_back();
  if (!empty) newline();
  out_ += ']';
  return *this;
}

Json& Json::key(std::string_view k) {
  before_value();
  out_ += quote(k);
  out_ += pretty_ ? ": " : ":";
  after_key_ = true;
  return *this;
}

Json& Json::str(std::string_view v) {
  before_value();
  out_ += quote(v);
  return *this;
}

Json& Json::num(std::uint64_t v) {
  before_value();
  out_ += std::to_string(v);
  return *this;
}

Json& Json::num(std::int64_t v) {
  before_value();
  out_ += std::to_string(v);
  return *this;
}

Json& Json::real(double v) {
  before_value();
  if (!std::isfinite(v)) {
    out_ += "null";
    return *this;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  out_ += buf;
  return *this;
}

Json& Json::boolean(bool v) {
  before_value();
  out_ += v ? "true" : "false";
  return *this;
}

Json& Json::raw(std::string_view rendered) {
  before_value();
  out_ += rendered;
  return *this;
}

Json& Json::null() {
  before_value();
  out_ += "null";
  return *this;
}

}  // namespace shmtool
