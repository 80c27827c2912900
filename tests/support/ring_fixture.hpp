// A ring created for one test, its producer and consumer handles, and
// helpers that push and check oracle records. Header-only.
#pragma once

#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "shmring/ring.hpp"
#include "support/payload.hpp"
#include "support/test_support.hpp"

namespace shmring::test {

inline constexpr std::uint64_t kFixtureSeed = 0xf1c5;

// Writes oracle record `seq` of `len` bytes: reserve + fill + commit.
inline Errc push_record(Producer& p, std::uint64_t seq, std::size_t len, Timeout t = Timeout::try_once(),
                        Publish pub = Publish::now) {
  auto r = p.reserve(len, t);
  if (!r) return r.error();
  fill_record(kFixtureSeed, seq, r->data(), len);
  return p.commit(len, pub);
}

// Peeks the next record, checks it is oracle record `seq` of `len` bytes and
// releases it. Returns "" or what went wrong.
inline std::string pop_record(Consumer& c, std::uint64_t seq, std::size_t len, Timeout t = Timeout::try_once(),
                              Publish pub = Publish::now) {
  auto r = c.peek(t);
  if (!r) return std::string("peek: ") + errc_name(r.error());
  std::string why;
  if (!check_record(kFixtureSeed, seq, len, r->data(), r->size(), &why)) return why;
  if (Errc e = c.release(pub); e != Errc::ok) return std::string("release: ") + errc_name(e);
  return "";
}

class RingFixture : public ::testing::Test {
 protected:
  // Creates a ring of this capacity and opens both sides.
  void make_ring(std::size_t capacity, WaitStrategy wait = WaitStrategy::futex) {
    name_ = unique_ring_name();
    guard_.emplace(name_);
    Config cfg;
    cfg.capacity = capacity;
    cfg.wait = wait;
    ASSERT_EQ(create(name_, cfg), Errc::ok) << last_error_message();
    open_sides();
  }
  void open_sides() {
    auto p = Producer::open(name_);
    ASSERT_TRUE(p.ok()) << errc_name(p.error()) << " " << last_error_message();
    prod_ = std::move(*p);
    auto c = Consumer::open(name_);
    ASSERT_TRUE(c.ok()) << errc_name(c.error()) << " " << last_error_message();
    cons_ = std::move(*c);
  }
  void close_sides() {
    prod_ = Producer();
    cons_ = Consumer();
  }

  std::string name_;
  std::optional<ShmGuard> guard_;
  Producer prod_;
  Consumer cons_;
};

}  // namespace shmring::test
