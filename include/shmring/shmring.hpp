// Umbrella include for the C++ API. Nothing is defined here.
#pragma once

#if !defined(__cplusplus) || __cplusplus < 202002L
#error "shmring's C++ headers need C++20 (-std=c++20 or later); from C or an older C++, include <shmring/shmring.h>"
#endif

#include "shmring/error.hpp"    // IWYU pragma: export
#include "shmring/ring.hpp"     // IWYU pragma: export
#include "shmring/version.hpp"  // IWYU pragma: export
