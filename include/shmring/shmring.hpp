// Umbrella include for the C++ API. Nothing is defined here.
#pragma once

#include "shmring/error.hpp"    // IWYU pragma: export
#include "shmring/ring.hpp"     // IWYU pragma: export
#include "shmring/version.hpp"  // IWYU pragma: export
