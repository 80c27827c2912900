#include "hooks.hpp"

#include <signal.h>

#include <cstdlib>
#include <cstring>

namespace shmring::detail {

namespace {

struct CrashSpec {
  char name[64] = {};
  long count = 0;  // 0: disabled
};

CrashSpec parse_spec() noexcept {
  CrashSpec s;
  const char* env = std::getenv("SHMRING_CRASH_AT");
  if (env == nullptr) return s;
  const char* colon = std::strrchr(env, ':');
  const std::size_t len = colon ? static_cast<std::size_t>(colon - env) : std::strlen(env);
  if (len == 0 || len >= sizeof s.name) return s;
  std::memcpy(s.name, env, len);
  s.count = colon ? std::strtol(colon + 1, nullptr, 10) : 1;
  return s;
}

}  // namespace

bool g_crash_armed = std::getenv("SHMRING_CRASH_AT") != nullptr;

void crash_point(const char* name) noexcept {
  static const CrashSpec spec = parse_spec();
  static long hits = 0;  // a crash test drives one handle from one thread
  if (spec.count <= 0 || std::strcmp(name, spec.name) != 0) return;
  if (++hits == spec.count) ::raise(SIGKILL);
}

}  // namespace shmring::detail
