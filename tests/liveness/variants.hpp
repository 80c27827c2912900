// Parameters shared by the liveness test files: ring kind x wait strategy,
// and small helpers for building shmring_peer command lines.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <ostream>
#include <string>
#include <vector>

#include "live_support.hpp"

namespace shmring::live {

struct KW {
  Kind kind;
  WaitStrategy wait;
};

inline void PrintTo(const KW& k, std::ostream* os) { *os << to_string(k.kind) << "/" << to_string(k.wait); }

inline std::string kw_name(const ::testing::TestParamInfo<KW>& i) {
  return std::string(to_string(i.param.kind)) + "_" + to_string(i.param.wait);
}

inline auto all_kinds_and_waits() {
  return ::testing::Values(KW{Kind::spsc, WaitStrategy::futex}, KW{Kind::spsc, WaitStrategy::spin},
                           KW{Kind::spsc, WaitStrategy::sem}, KW{Kind::locked, WaitStrategy::futex},
                           KW{Kind::locked, WaitStrategy::spin}, KW{Kind::locked, WaitStrategy::sem});
}

inline auto spsc_waits() {
  return ::testing::Values(KW{Kind::spsc, WaitStrategy::futex}, KW{Kind::spsc, WaitStrategy::spin},
                           KW{Kind::spsc, WaitStrategy::sem});
}

inline std::vector<std::string> args(std::initializer_list<std::string> a) { return std::vector<std::string>(a); }

inline std::string ms(std::int64_t v) { return std::to_string(v); }

inline double to_us(std::int64_t ns) { return static_cast<double>(ns) / 1000.0; }
inline double to_ms(std::int64_t ns) { return static_cast<double>(ns) / 1e6; }

// Prints a measurement line that the closing notes quote, and records it in
// the gtest XML output.
#define LIVE_MEASURE(key, ...)                                        \
  do {                                                                \
    char buf_[512];                                                   \
    std::snprintf(buf_, sizeof buf_, __VA_ARGS__);                    \
    std::printf("[ measured ] %s\n", buf_);                           \
    std::fflush(stdout);                                              \
    ::testing::Test::RecordProperty(key, buf_);                       \
  } while (0)

// The report line must start with `prefix`: returns it or fails the test.
#define LIVE_EXPECT_LINE(peer, prefix, timeout_ms, out)                                          \
  do {                                                                                           \
    auto l_ = (peer).line_starting(prefix, std::chrono::milliseconds(timeout_ms));               \
    ASSERT_TRUE(l_.has_value()) << "no '" << prefix << "' line from the peer within " << timeout_ms \
                                << " ms; lines so far: " << ::testing::PrintToString((peer).history()); \
    out = *l_;                                                                                   \
  } while (0)

}  // namespace shmring::live
