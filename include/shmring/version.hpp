// Library and shared-memory layout versions.
#pragma once

#if !defined(__cplusplus) || __cplusplus < 202002L
#error "shmring's C++ headers need C++20 (-std=c++20 or later); from C or an older C++, include <shmring/shmring.h>"
#endif

#include <cstdint>

namespace shmring {

inline constexpr int kVersionMajor = 0;
inline constexpr int kVersionMinor = 1;
inline constexpr int kVersionPatch = 0;

// Bumped by any change of the shared-memory format (docs/format.md). A peer
// of another layout version is refused with Errc::version_mismatch.
inline constexpr std::uint32_t kLayoutVersion = 2;

}  // namespace shmring
