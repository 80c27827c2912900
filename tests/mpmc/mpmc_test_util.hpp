// Helpers of the mpmc multi-process tests (gtest side): rings with /dev/shm
// guards, mpmc_peer processes, merging the consumers' logs, and the checks
// on them. Header-only.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "mpmc_common.hpp"
#include "shmring/ring.hpp"
#include "support/test_support.hpp"

#ifndef SHMRING_MPMC_PEER
#error "SHMRING_MPMC_PEER must name the mpmc_peer helper"
#endif

namespace shmring::mpmc_test {

inline void skip_without_hooks() {
#if !defined(SHMRING_TEST_HOOKS)
  GTEST_SKIP() << "crash points are compiled out (configure with -DSHMRING_TEST_HOOKS=ON)";
#endif
}

inline std::unique_ptr<Proc> peer(const std::vector<std::string>& args, const std::string& crash_at = "") {
  return std::make_unique<Proc>(SHMRING_MPMC_PEER, args, crash_at);
}

// Creates an mpmc ring for one test.
struct Ring {
  explicit Ring(std::size_t capacity, std::size_t slot_size, WaitStrategy wait = WaitStrategy::futex)
      : name(test::unique_ring_name()), guard(name) {
    Config cfg;
    cfg.kind = Kind::mpmc;
    cfg.wait = wait;
    cfg.capacity = capacity;
    cfg.slot_size = slot_size;
    created = create(name, cfg);
  }
  std::string name;
  test::ShmGuard guard;
  Errc created;
};

// Everything the consumers delivered, merged.
struct Union {
  std::vector<LogEntry> all;
  std::map<std::pair<std::uint32_t, std::uint64_t>, int> times;  // (id, seq) -> deliveries
  std::string order_error;
};

inline Union merge_logs(const std::vector<std::string>& paths) {
  Union u;
  for (std::size_t c = 0; c < paths.size(); ++c) {
    std::map<std::uint32_t, std::uint64_t> next;
    for (const LogEntry& e : read_log(paths[c])) {
      u.all.push_back(e);
      ++u.times[{e.id, e.seq}];
      auto it = next.find(e.id);
      if (it != next.end() && e.seq < it->second && u.order_error.empty())
        u.order_error = "consumer " + std::to_string(c) + ": producer " + std::to_string(e.id) + " seq " +
                        std::to_string(e.seq) + " after " + std::to_string(it->second - 1);
      next[e.id] = e.seq + 1;
    }
  }
  return u;
}

// Tickets in [lowest delivered, highest delivered] that nobody delivered.
inline std::vector<std::uint64_t> missing_tickets(const std::vector<LogEntry>& all, std::uint64_t* lowest = nullptr) {
  std::vector<std::uint64_t> t;
  for (const LogEntry& e : all) t.push_back(e.ticket);
  std::sort(t.begin(), t.end());
  std::vector<std::uint64_t> gaps;
  for (std::size_t i = 1; i < t.size(); ++i)
    for (std::uint64_t x = t[i - 1] + 1; x < t[i]; ++x) gaps.push_back(x);
  if (lowest != nullptr) *lowest = t.empty() ? 0 : t.front();
  return gaps;
}

// Checks that records (id, 0..n-1) were each delivered once, except those
// in `never` (delivered zero times). Returns "" or the first problems.
inline std::string check_stream(const Union& u, std::uint32_t id, std::uint64_t n, const std::set<std::uint64_t>& never = {}) {
  std::string out;
  int problems = 0;
  for (std::uint64_t s = 0; s < n; ++s) {
    auto it = u.times.find({id, s});
    const int got = it == u.times.end() ? 0 : it->second;
    const int want = never.count(s) ? 0 : 1;
    if (got != want && problems++ < 5)
      out += "producer " + std::to_string(id) + " seq " + std::to_string(s) + " delivered " + std::to_string(got) +
             " times, expected " + std::to_string(want) + "; ";
  }
  for (const auto& [key, times] : u.times) {
    if (key.first == id && key.second >= n && problems++ < 5)
      out += "producer " + std::to_string(id) + " seq " + std::to_string(key.second) + " delivered but never sent; ";
  }
  return out;
}

// Lets the ring move on: waits until the consumers are `laps` ring lengths
// past where the producers are now.
inline bool let_flow(const RingView& v, std::uint64_t laps, std::chrono::milliseconds timeout) {
  const std::uint64_t target = v.tail() + laps * v.slot_count();
  return poll_until([&] { return static_cast<std::int64_t>(v.head() - target) >= 0; }, timeout);
}

}  // namespace shmring::mpmc_test
