// Test-only hooks compiled in with -DSHMRING_TEST_HOOKS=ON. Internal header.
//
// SHMRING_CRASHPOINT("name") kills the process with SIGKILL at the N-th time
// it passes the named point, when the environment says
// SHMRING_CRASH_AT=name:N. Release builds compile it to nothing.
#pragma once

namespace shmring::detail {
void crash_point(const char* name) noexcept;
}

#if defined(SHMRING_TEST_HOOKS)
#define SHMRING_CRASHPOINT(name) ::shmring::detail::crash_point(name)
#else
#define SHMRING_CRASHPOINT(name) ((void)0)
#endif
