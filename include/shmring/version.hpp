// Library and shared-memory layout versions.
#pragma once

#include <cstdint>

namespace shmring {

inline constexpr int kVersionMajor = 0;
inline constexpr int kVersionMinor = 1;
inline constexpr int kVersionPatch = 0;

// Bumped by any change of the shared-memory format (docs/format.md). A peer
// of another layout version is refused with Errc::version_mismatch.
inline constexpr std::uint32_t kLayoutVersion = 2;

}  // namespace shmring
