// shmtool's snapshot: orphaned rings, whose name was removed while
// processes still have them open, found through /proc/PID/fd and read
// through those links.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "snapshot.hpp"
#include "snapshot_internal.hpp"

namespace shmtool {

std::vector<Orphan> find_orphans() {
  std::vector<Orphan> out;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return out;
  static constexpr std::string_view kPrefix = "/dev/shm/";
  static constexpr std::string_view kSuffix = " (deleted)";
  while (const dirent* pe = ::readdir(proc)) {
    char* end = nullptr;
    const long pid = std::strtol(pe->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    const std::string fd_dir = std::string("/proc/") + pe->d_name + "/fd";
    DIR* fds = ::opendir(fd_dir.c_str());
    if (fds == nullptr) continue;  // gone, or not ours to read
    while (const dirent* fe = ::readdir(fds)) {
      if (fe->d_name[0] == '.') continue;
      const std::string link = fd_dir + "/" + fe->d_name;
      char target[512];
      const ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
      if (n <= 0) continue;
      const std::string_view t(target, static_cast<std::size_t>(n));
      if (t.size() <= kPrefix.size() + kSuffix.size() || t.substr(0, kPrefix.size()) != kPrefix ||
          t.substr(t.size() - kSuffix.size()) != kSuffix)
        continue;
      const std::string name(t.substr(kPrefix.size(), t.size() - kPrefix.size() - kSuffix.size()));
      if (name.find('/') != std::string::npos) continue;
      struct stat st {};
      if (::stat(link.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
      auto it = std::find_if(out.begin(), out.end(),
                             [&](const Orphan& o) { return o.dev == st.st_dev && o.ino == st.st_ino; });
      if (it == out.end()) {
        Orphan o;
        o.name = name;
        o.dev = st.st_dev;
        o.ino = st.st_ino;
        o.fd_path = link;
        out.push_back(o);
        it = out.end() - 1;
      }
      if (std::find(it->pids.begin(), it->pids.end(), static_cast<pid_t>(pid)) == it->pids.end())
        it->pids.push_back(static_cast<pid_t>(pid));
    }
    ::closedir(fds);
  }
  ::closedir(proc);
  for (Orphan& o : out) std::sort(o.pids.begin(), o.pids.end());
  std::sort(out.begin(), out.end(), [](const Orphan& a, const Orphan& b) { return a.name < b.name; });
  return out;
}

Report examine_orphan(const Orphan& o, Depth depth) {
  Report r;
  r.name = o.name;
  r.shown = "/" + o.name;
  r.orphaned = true;
  r.holders = o.pids;
  // Through the /proc magic link: the object itself, whatever its name.
  const int raw = ::open(o.fd_path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (raw < 0) {
    r.open_errno = errno;
    r.status = errno == ENOENT ? Status::not_found : Status::permission;
    r.why = std::string("open ") + o.fd_path + ": " + std::strerror(errno);
  } else {
    r = snap::examine_descriptor(std::move(r), raw, depth);
  }
  r.diagnosis = snap::make_diagnosis(r);
  return r;
}

}  // namespace shmtool
