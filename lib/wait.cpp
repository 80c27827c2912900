#include "wait.hpp"

#include <linux/futex.h>
#include <semaphore.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstring>

namespace shmring::detail {

namespace {

std::atomic<std::uint64_t> g_wake_syscalls{0};

timespec to_timespec(std::int64_t ns) noexcept {
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
  return ts;
}

// glibc reads the futex flags of a sem_t from the semaphore itself (the int
// after the 64-bit value word) on every sem_post and sem_clockwait, and
// aborts the process (futex_fatal_error) when the kernel refuses them. A
// peer that scribbles over the ring could therefore kill us through a
// semaphore. So before every call that word is compared with the one a
// freshly initialised process-shared semaphore holds; on a mismatch the
// call is skipped: no post (waiters still re-check on their bounded sleeps)
// and a short plain sleep instead of the wait. glibc-specific, like the
// mutex kind check in locked.cpp; the segment's ABI tag already pins
// sizeof(sem_t). A peer that changes the word between this check and
// glibc's own read can still win that race (docs/reliability.md).
constexpr std::size_t kSemFlagsOffset = 8;
static_assert(sizeof(sem_t) >= kSemFlagsOffset + sizeof(int));

int reference_sem_flags() noexcept {
  sem_t ref;
  int flags = -1;
  if (::sem_init(&ref, 1, 0) == 0) {
    std::memcpy(&flags, reinterpret_cast<const unsigned char*>(&ref) + kSemFlagsOffset, sizeof flags);
    ::sem_destroy(&ref);
  }
  return flags;
}

bool sem_plausible(unsigned char* sem) noexcept {
  static const int want = reference_sem_flags();
  auto* flags = reinterpret_cast<int*>(sem + kSemFlagsOffset);
  // Relaxed: a plausibility check of a word only glibc's own calls use; it
  // orders nothing.
  return std::atomic_ref<int>(*flags).load(std::memory_order_relaxed) == want;
}

}  // namespace

std::uint64_t wake_syscalls() noexcept { return g_wake_syscalls.load(std::memory_order_relaxed); }

void futex_sleep(std::uint32_t* word, std::uint32_t seen, std::int64_t until_ns) noexcept {
  // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, so EINTR
  // retries (done by the caller's loop) never stretch the wait. Shared
  // futex (no FUTEX_PRIVATE_FLAG): the word lives in a MAP_SHARED object and
  // the waker is another process.
  const timespec ts = to_timespec(until_ns == INT64_MAX ? INT64_MAX / 2 : until_ns);
  ::syscall(SYS_futex, word, FUTEX_WAIT_BITSET, seen, &ts, nullptr, FUTEX_BITSET_MATCH_ANY);
  // Every outcome (woken, EAGAIN: word changed, ETIMEDOUT, EINTR) makes the
  // caller re-check the ring; a return is never trusted as "ready".
}

int futex_wake_all(std::uint32_t* word) noexcept {
  g_wake_syscalls.fetch_add(1, std::memory_order_relaxed);  // process-local statistic
  return static_cast<int>(::syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0));
}

void note_idle_wake(Header& h, WaitLine& line) noexcept {
  thread_local std::uint32_t idle = 0;
  if (++idle % 4 != 0) return;
  const std::uint64_t bit = &line == &h.data_wait ? 1 : 2;
  // Acquire: a sleeper's flag (set before its W1) is visible once its
  // count is.
  std::uint32_t counted = atom(line.waiters).load(std::memory_order_acquire);
  std::uint32_t asleep = 0;
  for (std::uint32_t i = 0; i < kAttachEntries; ++i) {
    const std::uint64_t w = atom(h.attach[i].state).load(std::memory_order_acquire);  // L-A1
    if (w == 0 || (atom(h.attach[i].sleeping).load(std::memory_order_relaxed) & bit) == 0) continue;
    if (entry_liveness(h, i, w) == Liveness::alive) ++asleep;
  }
  // Lower only, and only if nobody announced meanwhile (the CAS fails then).
  // A sleeper racing with this recount is at worst woken by its own bounded
  // sleep (half the liveness period).
  if (asleep < counted) {
    atom(line.waiters).compare_exchange_strong(counted, asleep, std::memory_order_acq_rel);
  }
}

void sem_sleep(unsigned char* sem, std::int64_t until_ns) noexcept {
  // sem_clockwait: CLOCK_MONOTONIC, so a wall-clock step does not move the
  // deadline (sem_timedwait uses CLOCK_REALTIME).
  if (!sem_plausible(sem)) {
    // A damaged semaphore: sleep 1 ms at most, then the caller re-checks.
    const timespec ts = to_timespec(std::min(until_ns, monotonic_ns() + 1'000'000));
    ::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
    return;
  }
  const timespec ts = to_timespec(until_ns == INT64_MAX ? INT64_MAX / 2 : until_ns);
  ::sem_clockwait(reinterpret_cast<sem_t*>(sem), CLOCK_MONOTONIC, &ts);
}

void sem_wake(unsigned char* sem, std::uint32_t waiters) noexcept {
  // The semaphore counts "something happened" events only; it is never a
  // lock. Post up to one token per announced waiter; extra tokens cost a
  // spurious re-check, never a lost wake-up.
  if (!sem_plausible(sem)) return;  // damaged: see sem_plausible()
  auto* s = reinterpret_cast<sem_t*>(sem);
  int value = 0;
  if (::sem_getvalue(s, &value) == 0 && value >= static_cast<int>(waiters > 64 ? 64 : waiters)) return;
  g_wake_syscalls.fetch_add(1, std::memory_order_relaxed);
  ::sem_post(s);
}

}  // namespace shmring::detail
