// Administration for shmtool: reset. Internal header (the project's own
// tools and tests use it; it is not part of the installed API).
#pragma once

#include <string>
#include <string_view>

#include "shmring/error.hpp"

namespace shmring::detail {

// Re-initialises a ring's indices, wait words, slot states and attach table.
// Refuses with busy (and the live pids in *detail) while a live peer is
// attached, unless force: then it first bumps reset_gen, so every live handle
// gets Errc::reset on its next call instead of stale or corrupt data, wakes
// every sleeper, and re-initialises around them. Process-shared mutexes and
// semaphores are re-initialised only when nobody is attached (re-initialising
// one in use is undefined behaviour). A damaged header is refused (corrupt):
// remove such an object instead.
Errc reset_ring(std::string_view name, bool force, std::string* detail);

}  // namespace shmring::detail
