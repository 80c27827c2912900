// Test-only hooks compiled in with -DSHMRING_TEST_HOOKS=ON. Internal header.
//
// SHMRING_CRASHPOINT("name") kills the process with SIGKILL at the N-th time
// it passes the named point, when the environment says
// SHMRING_CRASH_AT=name:N. Without the option it compiles to nothing; with
// it, an unarmed point costs one predictable branch on a global flag.
#pragma once

namespace shmring::detail {
extern bool g_crash_armed;  // SHMRING_CRASH_AT was set at start-up
void crash_point(const char* name) noexcept;
}  // namespace shmring::detail

#if defined(SHMRING_TEST_HOOKS)
#define SHMRING_CRASHPOINT(name)                                          \
  do {                                                                    \
    if (__builtin_expect(::shmring::detail::g_crash_armed, 0)) {          \
      ::shmring::detail::crash_point(name);                               \
    }                                                                     \
  } while (0)
#else
#define SHMRING_CRASHPOINT(name) ((void)0)
#endif
