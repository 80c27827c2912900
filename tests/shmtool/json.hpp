// A minimal JSON parser for the end-to-end tests (RFC 8259 subset that
// shmtool emits, strict enough to reject malformed output): objects, arrays,
// strings with escapes (\uXXXX re-encoded as UTF-8), numbers, true, false,
// null. Throws std::runtime_error on malformed input.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace shmtool_test {

struct Json {
  enum Type { null_t, bool_t, number_t, string_t, array_t, object_t } type = null_t;
  bool b = false;
  double num = 0;
  std::string raw_number;  // the digits as printed (exact integers)
  std::string str;
  std::vector<Json> arr;
  std::map<std::string, Json> obj;

  bool has(const std::string& k) const { return type == object_t && obj.count(k) != 0; }
  const Json& operator[](const std::string& k) const {
    auto it = obj.find(k);
    if (type != object_t || it == obj.end()) throw std::runtime_error("no key " + k);
    return it->second;
  }
  const Json& operator[](std::size_t i) const {
    if (type != array_t || i >= arr.size()) throw std::runtime_error("bad index");
    return arr[i];
  }
  std::uint64_t u64() const {
    if (type != number_t) throw std::runtime_error("not a number");
    return std::stoull(raw_number);
  }
  std::int64_t i64() const {
    if (type != number_t) throw std::runtime_error("not a number");
    return std::stoll(raw_number);
  }
  bool is_null() const { return type == null_t; }
};

class JsonParser {
 public:
  explicit JsonParser(std::string_view s) : s_(s) {}
  Json parse() {
    Json v = value(0);
    ws();
    if (i_ != s_.size()) err("trailing characters");
    return v;
  }

 private:
  [[noreturn]] void err(const std::string& what) {
    throw std::runtime_error("json: " + what + " at offset " + std::to_string(i_));
  }
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t' || s_[i_] == '\r')) ++i_;
  }
  char peek() {
    ws();
    if (i_ >= s_.size()) err("unexpected end");
    return s_[i_];
  }
  void expect(char c) {
    if (peek() != c) err(std::string("expected ") + c);
    ++i_;
  }
  bool literal(std::string_view w) {
    if (s_.substr(i_, w.size()) == w) {
      i_ += w.size();
      return true;
    }
    return false;
  }
  static void utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xc0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xe0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }
  std::uint32_t hex4() {
    if (i_ + 4 > s_.size()) err("short \\u escape");
    std::uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = s_[i_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<std::uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<std::uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<std::uint32_t>(c - 'A' + 10);
      else err("bad hex digit");
    }
    return v;
  }
  std::string string() {
    expect('"');
    std::string out;
    for (;;) {
      if (i_ >= s_.size()) err("unterminated string");
      const auto c = static_cast<unsigned char>(s_[i_++]);
      if (c == '"') return out;
      if (c < 0x20) err("raw control character in string");
      if (c != '\\') {
        out += static_cast<char>(c);
        continue;
      }
      if (i_ >= s_.size()) err("bad escape");
      const char e = s_[i_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          std::uint32_t cp = hex4();
          if (cp >= 0xd800 && cp <= 0xdbff) {
            if (!literal("\\u")) err("lone surrogate");
            const std::uint32_t lo = hex4();
            if (lo < 0xdc00 || lo > 0xdfff) err("bad surrogate pair");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          } else if (cp >= 0xdc00 && cp <= 0xdfff) {
            err("lone surrogate");
          }
          utf8(out, cp);
          break;
        }
        default: err("bad escape");
      }
    }
  }
  Json value(int depth) {
    if (depth > 64) err("nesting too deep");
    Json v;
    const char c = peek();
    if (c == '{') {
      ++i_;
      v.type = Json::object_t;
      if (peek() == '}') {
        ++i_;
        return v;
      }
      for (;;) {
        std::string k = string();
        expect(':');
        if (v.obj.count(k) != 0) err("duplicate key " + k);
        v.obj.emplace(std::move(k), value(depth + 1));
        const char d = peek();
        ++i_;
        if (d == '}') return v;
        if (d != ',') err("expected , or }");
      }
    }
    if (c == '[') {
      ++i_;
      v.type = Json::array_t;
      if (peek() == ']') {
        ++i_;
        return v;
      }
      for (;;) {
        v.arr.push_back(value(depth + 1));
        const char d = peek();
        ++i_;
        if (d == ']') return v;
        if (d != ',') err("expected , or ]");
      }
    }
    if (c == '"') {
      v.type = Json::string_t;
      v.str = string();
      return v;
    }
    if (literal("true")) {
      v.type = Json::bool_t;
      v.b = true;
      return v;
    }
    if (literal("false")) {
      v.type = Json::bool_t;
      return v;
    }
    if (literal("null")) return v;
    // number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
    const std::size_t start = i_;
    if (s_[i_] == '-') ++i_;
    auto digits = [&] {
      const std::size_t d0 = i_;
      while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
      if (i_ == d0) err("bad number");
    };
    if (i_ < s_.size() && s_[i_] == '0') {
      ++i_;
    } else {
      digits();
    }
    if (i_ < s_.size() && s_[i_] == '.') {
      ++i_;
      digits();
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      ++i_;
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      digits();
    }
    v.type = Json::number_t;
    v.raw_number = std::string(s_.substr(start, i_ - start));
    v.num = std::stod(v.raw_number);
    return v;
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

inline Json parse_json(std::string_view s) { return JsonParser(s).parse(); }

}  // namespace shmtool_test
