// Regression tests for what the adversarial peer can do to the mpmc
// tickets: a forged prod.tail or cons.head far (2^38 laps) from the slot
// words. Before the fix, try_claim / try_take stepped the forged ticket
// forward one slot at a time, "helping" it past slots that look already
// used, without ever looking at the clock: 2^38 laps x slot_count steps, a
// call that never returns whatever its timeout. Each call here runs in a
// child with a deadline, so a hang fails the test instead of stalling it.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "endpoint.hpp"
#include "layout.hpp"
#include "segment.hpp"
#include "support/shm_raw.hpp"
#include "support/test_support.hpp"

namespace shmring::test {
namespace {

using namespace std::chrono_literals;

constexpr std::uint64_t kFar = std::uint64_t{1} << 38;  // laps: half the 40-bit lap space, minus one bit

// Opens `role` on an mpmc ring whose ticket counter (tail for a producer,
// head for a consumer) was moved kFar laps back, and makes one try-mode
// and one 50 ms call. Returns "" when both return a documented code.
std::string far_ticket_call(const std::string& name, Role role) {
  std::unique_ptr<detail::Endpoint> ep;
  if (Errc e = detail::open_endpoint(name, role, {}, &ep); e != Errc::ok)
    return std::string("open: ") + errc_name(e);
  RawMap raw(name);
  if (!raw.ok()) return "map failed";
  const std::uint64_t n = raw.header()->id.slot_count;
  for (const std::int64_t timeout : {std::int64_t{0}, std::int64_t{50'000'000}}) {
    std::uint64_t& word = role == Role::producer ? raw.header()->prod.tail : raw.header()->cons.head;
    detail::atom(word).store(0 - kFar * n, std::memory_order_relaxed);
    Errc e;
    if (role == Role::producer) {
      std::byte* p = nullptr;
      e = ep->reserve(8, &p, timeout);
    } else {
      const std::byte* p = nullptr;
      std::size_t len = 0;
      e = ep->peek(&p, &len, timeout);
    }
    if (e != Errc::would_block && e != Errc::timed_out && e != Errc::corrupt && e != Errc::peer_gone)
      return std::string("call returned ") + errc_name(e);
  }
  return {};
}

void run_far_ticket(Role role) {
  ShmGuard ring(unique_ring_name("far"));
  Config cfg;
  cfg.kind = Kind::mpmc;
  cfg.capacity = 4096;
  cfg.slot_size = 256;
  ASSERT_EQ(create(ring.name(), cfg), Errc::ok) << last_error_message();
  // A peer of the other role, so that neither call ends with peer_gone
  // before it has looked at the slots.
  std::unique_ptr<detail::Endpoint> peer;
  ASSERT_EQ(detail::open_endpoint(ring.name(), role == Role::producer ? Role::consumer : Role::producer, {}, &peer),
            Errc::ok);
  const ChildResult r = run_in_child([&] { return far_ticket_call(ring.name(), role); }, 10s);
  EXPECT_TRUE(r.ok()) << r.describe();
}

TEST(MpmcForgedTicket, ProducerCallReturnsWhenTailIsFarBehind) { run_far_ticket(Role::producer); }
TEST(MpmcForgedTicket, ConsumerCallReturnsWhenHeadIsFarBehind) { run_far_ticket(Role::consumer); }

}  // namespace
}  // namespace shmring::test
