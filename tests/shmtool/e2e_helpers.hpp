// Helpers shared by the shmtool end-to-end tests (e2e_*_test.cpp): running
// the binary, ring configurations, and the one-error-line failure contract.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "json.hpp"
#include "run.hpp"
#include "shmring/ring.hpp"

namespace shmtool_test::e2e {

inline ToolRun tool(const std::vector<std::string>& args, const RunOptions& o = {}) { return run_tool(args, o); }

inline shmring::Config cfg_of(shmring::Kind k, std::size_t cap = 4096, std::size_t slot = 0,
                              shmring::WaitStrategy w = shmring::WaitStrategy::futex, unsigned mode = 0600) {
  shmring::Config c;
  c.kind = k;
  c.capacity = cap;
  c.slot_size = k == shmring::Kind::mpmc ? (slot == 0 ? 64 : slot) : 0;
  c.wait = w;
  c.mode = mode;
  return c;
}

inline std::span<const std::byte> bytes_of(const std::string& s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

// The failure contract: a non-zero exit prints exactly one stderr line,
// naming the ring.
inline void expect_one_error_line(const ToolRun& r, const std::string& ring) {
  EXPECT_EQ(r.stderr_lines(), 1) << r.describe();
  if (!ring.empty()) {
    EXPECT_NE(r.err.find(ring), std::string::npos) << r.describe();
  }
}

inline const Json* find_ring(const Json& list, const std::string& name) {
  for (const Json& r : list["rings"].arr)
    if (r["name"].str == name) return &r;
  return nullptr;
}

}  // namespace shmtool_test::e2e
