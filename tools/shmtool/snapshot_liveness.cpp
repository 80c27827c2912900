// shmtool's snapshot: processes and liveness. /proc/PID/stat, the status
// and liveness texts, and the classification of attach entries as the
// library decides it (docs/liveness.md).
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unordered_map>

#include "common.hpp"
#include "liveness.hpp"
#include "snapshot.hpp"
#include "snapshot_internal.hpp"

namespace shmtool {

namespace sd = shmring::detail;

const char* status_text(Status s) noexcept {
  switch (s) {
    case Status::not_found: return "not_found";
    case Status::permission: return "permission_denied";
    case Status::io_error: return "io_error";
    case Status::symlink: return "symlink";
    case Status::not_regular: return "not_regular";
    case Status::empty: return "initialising";
    case Status::truncated: return "truncated";
    case Status::foreign: return "foreign";
    case Status::initialising: return "initialising";
    case Status::incompatible: return "incompatible";
    case Status::corrupt: return "corrupt";
    case Status::ready: return "ready";
    case Status::stale: return "stale";
  }
  return "unknown";
}

int status_exit(Status s) noexcept {
  switch (s) {
    case Status::ready:
    case Status::stale: return kExitOk;
    case Status::not_found: return kExitNotFound;
    case Status::permission: return kExitPermission;
    case Status::io_error: return kExitFailure;
    default: return kExitCorrupt;
  }
}

const char* live_text(Live l) noexcept {
  switch (l) {
    case Live::alive: return "alive";
    case Live::alive_unverified: return "alive (unverified: /proc hidden)";
    case Live::attaching: return "attaching";
    case Live::dead: return "dead";
    case Live::dead_reused: return "dead (reused pid)";
    case Live::dead_zombie: return "dead (zombie)";
    case Live::alive_other_ns: return "alive (pid in another PID namespace)";
    case Live::garbage: return "garbage entry";
  }
  return "unknown";
}

bool is_alive(Live l) noexcept {
  return l == Live::alive || l == Live::alive_unverified || l == Live::attaching || l == Live::alive_other_ns;
}

namespace {
std::unordered_map<pid_t, ProcInfo>& proc_cache() {
  static std::unordered_map<pid_t, ProcInfo> cache;
  return cache;
}
}  // namespace

void forget_processes() { proc_cache().clear(); }

ProcInfo proc_info(pid_t pid) {
  auto& cache = proc_cache();
  if (pid <= 0) return {};
  if (auto it = cache.find(pid); it != cache.end()) return it->second;
  ProcInfo info;
  char path[48];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == EACCES) {
      // hidepid: kill(pid, 0) says whether it exists (EPERM: it does, another user's).
      info.exists = ::kill(pid, 0) == 0 || errno == EPERM;
      info.hidden = info.exists;
    }
  } else {
    char buf[1024];
    const ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n > 0) {
      buf[n] = '\0';
      // comm (field 2) may contain spaces and ')': parse from the last ')'.
      const char* p = std::strrchr(buf, ')');
      if (p != nullptr && p[1] == ' ') {
        p += 2;
        info.exists = true;
        info.state = *p;
        info.zombie = *p == 'Z' || *p == 'X' || *p == 'x';
        int field = 3;
        while (field < 22 && p != nullptr) {
          p = std::strchr(p, ' ');
          if (p != nullptr) ++p;
          ++field;
        }
        if (p != nullptr) info.start = std::strtoull(p, nullptr, 10);
      }
    }
  }
  cache.emplace(pid, info);
  return info;
}

namespace snap {

namespace {

std::uint64_t own_pid_ns() {
  static const std::uint64_t v = sd::own_pid_namespace();
  return v;
}

}  // namespace

int g_object_fd = -1;

std::uint64_t pid_max() {
  static std::uint64_t v = [] {
    std::uint64_t m = 4194304;  // the kernel's upper limit (PID_MAX_LIMIT on 64-bit)
    if (FILE* f = std::fopen("/proc/sys/kernel/pid_max", "re")) {
      unsigned long long x = 0;
      if (std::fscanf(f, "%llu", &x) == 1 && x > 0) m = x;
      std::fclose(f);
    }
    return m;
  }();
  return v;
}

Live classify(const sd::Header& h, std::uint32_t index, std::uint64_t w) {
  const sd::AttachEntry& e = h.attach[index & 31];
  const std::int32_t pid = sd::attach_word_pid(w);
  const std::uint32_t role = sd::attach_word_role(w);
  const std::uint64_t phase = sd::attach_word_phase(w);
  if (pid <= 0 || static_cast<std::uint64_t>(pid) > pid_max() || (role != 1 && role != 2) ||
      (phase != sd::kPhaseClaiming && phase != sd::kPhaseAttached))
    return Live::garbage;
  const bool other_ns = e.pid_ns != 0 && own_pid_ns() != 0 && e.pid_ns != own_pid_ns();
  if (g_object_fd >= 0) {
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = sd::lock_offset(index & 31);
    fl.l_len = 1;
    if (::fcntl(g_object_fd, F_OFD_GETLK, &fl) == 0) {
      if (fl.l_type != F_UNLCK) {
        if (phase == sd::kPhaseClaiming) return Live::attaching;
        return other_ns ? Live::alive_other_ns : Live::alive;
      }
      if (other_ns) return Live::dead;  // its pid means nothing here
      const ProcInfo pi = proc_info(pid);
      if (pi.exists && pi.zombie) return Live::dead_zombie;
      if (pi.exists && !pi.hidden && pi.start != e.start_time) return Live::dead_reused;
      return Live::dead;
    }
  }
  // No descriptor (or no lock support): the pid and start time, in our own
  // PID namespace only.
  if (other_ns) return Live::dead;
  const ProcInfo pi = proc_info(pid);
  if (!pi.exists) return Live::dead;
  if (pi.zombie) return Live::dead_zombie;
  if (phase == sd::kPhaseClaiming) return Live::attaching;
  if (pi.hidden) return Live::alive_unverified;
  // Same rule as the library (lib/liveness.cpp): pid AND start time.
  return e.start_time == pi.start ? Live::alive : Live::dead_reused;
}

bool pid_alive(std::uint64_t pid) {
  if (pid == 0 || pid > pid_max()) return false;
  const ProcInfo pi = proc_info(static_cast<pid_t>(pid));
  return pi.exists && !pi.zombie;
}

Peer add_peer(Report& r, const sd::Header& h, std::uint32_t index) {
  const sd::AttachEntry& e = h.attach[index];
  const std::uint64_t w = e.state;
  Peer p;
  p.index = index;
  p.word = w;
  p.pid = sd::attach_word_pid(w);
  p.role = sd::attach_word_role(w);
  p.phase = sd::attach_word_phase(w);
  p.entry_pid = e.pid;
  p.entry_role = e.role;
  p.start_time = e.start_time;
  p.attach_time_ns = e.attach_time_ns;
  p.generation = e.generation;
  p.sleeping = e.sleeping;
  p.live = classify(h, index, w);
  if (is_alive(p.live))
    ++r.live;
  else
    ++r.dead;
  r.peers.push_back(p);
  return p;
}

}  // namespace snap

}  // namespace shmtool
