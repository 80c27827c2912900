// How a blocked call waits. Ring code calls only wait_until(); the strategy
// decides how to pass the time between checks. Internal header.
#pragma once

#include <sched.h>

#include <cstdint>

#include "segment.hpp"
#include "shmring/error.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace shmring::detail {

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// Iterations of the busy phase before a waiter starts yielding the CPU, and
// how often the busy phase looks at the clock.
inline constexpr int kSpinIterations = 2048;
inline constexpr int kClockEvery = 128;

// Calls ready() until it returns anything but would_block, or the timeout
// (0 = try once, < 0 = forever, > 0 = nanoseconds) passes. The fast path (the
// first check succeeds) reads no clock.
template <class Ready>
Errc wait_until(Ready&& ready, std::int64_t timeout_ns) {
  Errc e = ready();
  if (e != Errc::would_block || timeout_ns == 0) return e;
  const std::int64_t deadline = timeout_ns < 0 ? INT64_MAX : monotonic_ns() + timeout_ns;
  for (int i = 1;; ++i) {
    if (i < kSpinIterations) {
      cpu_relax();
      if (i % kClockEvery == 0 && monotonic_ns() >= deadline) return Errc::timed_out;
    } else {
      if (monotonic_ns() >= deadline) return Errc::timed_out;
      ::sched_yield();
    }
    e = ready();
    if (e != Errc::would_block) return e;
  }
}

}  // namespace shmring::detail
