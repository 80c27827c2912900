// main() of the liveness test binaries: gtest plus the liveness harness
// (per-test watchdog, cleanup on fatal signals, /dev/shm leftover check).
#include <gtest/gtest.h>

#include <cstdio>

#include "live_support.hpp"

#ifndef SHMRING_LIVE_WATCHDOG_S
#define SHMRING_LIVE_WATCHDOG_S 120
#endif

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  shmring::live::install_harness(SHMRING_LIVE_WATCHDOG_S);
  if (!GTEST_FLAG_GET(list_tests))
    std::printf("shmring liveness tests: stress scale %g%s\n", shmring::live::stress_scale(),
                shmring::live::under_sanitizer() ? " (sanitizer build)" : "");
  return RUN_ALL_TESTS();
}
