// main() of every test binary: gtest plus the shmring harness (leftover
// check, per-test watchdog, cleanup on fatal signals).
#include <gtest/gtest.h>

#include <cstdio>

#include "support/test_support.hpp"

#ifndef SHMRING_TEST_WATCHDOG_S
#define SHMRING_TEST_WATCHDOG_S 120
#endif

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  const unsigned watchdog = shmring::test::install_test_harness(SHMRING_TEST_WATCHDOG_S);
  if (!GTEST_FLAG_GET(list_tests))
    std::printf("shmring tests: stress scale %g, sanitizer %s, watchdog %u s per test\n",
                shmring::test::stress_scale(), shmring::test::sanitizer_name(), watchdog);
  return RUN_ALL_TESTS();
}
