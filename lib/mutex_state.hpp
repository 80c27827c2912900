// What glibc's robust process-shared mutex says about itself, decoded from
// its words. The one copy of this knowledge: lib/locked.cpp (which drives
// the live mutex) and shmtool (which reads a private byte copy) both use it.
// glibc-specific, like every reading of pthread_mutex_t internals.
// Internal header.
#pragma once

#include <pthread.h>

#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace shmring::detail {

// glibc's special values of __data.__owner (nptl/pthreadP.h):
//   PTHREAD_MUTEX_INCONSISTENT   INT_MAX      a locker got EOWNERDEAD (the
//                                             previous owner died) and has
//                                             not called pthread_mutex_consistent
//                                             yet: a repair is pending/in progress
//   PTHREAD_MUTEX_NOTRECOVERABLE INT_MAX - 1  the mutex was unlocked without
//                                             pthread_mutex_consistent after
//                                             EOWNERDEAD: every later lock fails
inline constexpr std::int32_t kMutexOwnerInconsistent = INT_MAX;
inline constexpr std::int32_t kMutexOwnerNotRecoverable = INT_MAX - 1;
static_assert(kMutexOwnerInconsistent == 0x7fffffff && kMutexOwnerNotRecoverable == 0x7ffffffe);

// Bits of the futex word __data.__lock of a robust mutex (linux/futex.h).
inline constexpr std::uint32_t kMutexTidMask = 0x3fffffffu;      // FUTEX_TID_MASK
inline constexpr std::uint32_t kMutexOwnerDiedBit = 0x40000000u;  // FUTEX_OWNER_DIED
inline constexpr std::uint32_t kMutexWaitersBit = 0x80000000u;    // FUTEX_WAITERS

// Where glibc keeps the two words (x86-64 and aarch64 share this layout).
inline constexpr std::size_t kMutexLockOffset = 0;   // int __lock
inline constexpr std::size_t kMutexOwnerOffset = 8;  // int __owner
static_assert(offsetof(pthread_mutex_t, __data.__lock) == kMutexLockOffset);
static_assert(offsetof(pthread_mutex_t, __data.__owner) == kMutexOwnerOffset);

enum class MutexState {
  free,             // nobody holds it
  held,             // a thread holds it (tid in the lock word)
  owner_died,       // its holder died; the kernel marked it; the next locker gets EOWNERDEAD
  repairing,        // a locker got EOWNERDEAD and holds it, not yet consistent
  not_recoverable,  // unlocked without pthread_mutex_consistent: every lock fails
};

constexpr const char* to_string(MutexState s) noexcept {
  switch (s) {
    case MutexState::free: return "free";
    case MutexState::held: return "held";
    case MutexState::owner_died: return "owner_died";
    case MutexState::repairing: return "repairing";
    case MutexState::not_recoverable: return "not_recoverable";
  }
  return "unknown";
}

struct MutexBits {
  std::uint32_t lock_word = 0;  // __lock
  std::int32_t owner = 0;       // __owner
  std::uint32_t tid = 0;        // lock_word & kMutexTidMask
  bool owner_died = false;      // kMutexOwnerDiedBit
  bool waiters = false;         // kMutexWaitersBit
  MutexState state = MutexState::free;
};

// The decoding. Order matters:
//  - NOTRECOVERABLE in __owner wins over any lock word: glibc 2.36's trylock
//    answers ENOTRECOVERABLE yet leaves its caller's tid in the lock word.
//  - the kernel's OWNER_DIED bit with no tid: the holder died (also when it
//    died while repairing, so __owner may still say INCONSISTENT).
//  - INCONSISTENT with a tid: that thread got EOWNERDEAD and is repairing.
constexpr MutexBits decode_mutex(std::uint32_t lock_word, std::int32_t owner) noexcept {
  MutexBits b;
  b.lock_word = lock_word;
  b.owner = owner;
  b.tid = lock_word & kMutexTidMask;
  b.owner_died = (lock_word & kMutexOwnerDiedBit) != 0;
  b.waiters = (lock_word & kMutexWaitersBit) != 0;
  if (owner == kMutexOwnerNotRecoverable)
    b.state = MutexState::not_recoverable;
  else if (b.tid == 0 && b.owner_died)
    b.state = MutexState::owner_died;
  else if (b.tid != 0 && owner == kMutexOwnerInconsistent)
    b.state = MutexState::repairing;
  else if (b.tid != 0)
    b.state = MutexState::held;
  else
    b.state = MutexState::free;
  return b;
}

// From a byte copy of a pthread_mutex_t (at least sizeof(pthread_mutex_t)).
inline MutexBits decode_mutex_bytes(const unsigned char* m) noexcept {
  std::uint32_t lock = 0;
  std::int32_t owner = 0;
  std::memcpy(&lock, m + kMutexLockOffset, 4);
  std::memcpy(&owner, m + kMutexOwnerOffset, 4);
  return decode_mutex(lock, owner);
}

static_assert(decode_mutex(0, 0).state == MutexState::free);
static_assert(decode_mutex(1234, 1234).state == MutexState::held);
static_assert(decode_mutex(kMutexOwnerDiedBit, 1234).state == MutexState::owner_died);
static_assert(decode_mutex(kMutexOwnerDiedBit, kMutexOwnerInconsistent).state == MutexState::owner_died);
static_assert(decode_mutex(1234, kMutexOwnerInconsistent).state == MutexState::repairing);
static_assert(decode_mutex(0, kMutexOwnerNotRecoverable).state == MutexState::not_recoverable);
static_assert(decode_mutex(1234, kMutexOwnerNotRecoverable).state == MutexState::not_recoverable);

}  // namespace shmring::detail
