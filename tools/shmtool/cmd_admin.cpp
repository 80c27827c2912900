// create, rm, reset.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "admin.hpp"
#include "commands.hpp"
#include "segment.hpp"
#include "shmring/ring.hpp"

namespace shmtool {

namespace sd = shmring::detail;
using shmring::Errc;

namespace {

bool canonical(const char* cmd, const std::string& arg, std::string* name, int* code) {
  auto r = shmring::canonical_name(arg);
  if (!r) {
    *code = fail(kExitUsage, cmd, arg, library_cause(arg, r.error()));
    return false;
  }
  *name = *r;
  return true;
}

bool parse_mode(const std::string& s, unsigned* out, std::string* why) {
  if (s.empty() || s.size() > 4) {
    *why = "mode '" + escape_text(s) + "' must be 1 to 4 octal digits (e.g. 0660)";
    return false;
  }
  unsigned v = 0;
  for (char c : s) {
    if (c < '0' || c > '7') {
      *why = "mode '" + escape_text(s) + "' is not octal (e.g. 0660)";
      return false;
    }
    v = v * 8 + static_cast<unsigned>(c - '0');
  }
  if (v == 0 || v > 0777) {
    *why = "mode " + escape_text(s) + " must be between 0001 and 0777";
    return false;
  }
  *out = v;
  return true;
}

}  // namespace

int cmd_create(int argc, char** argv) {
  Args a;
  int code = 0;
  if (!parse_command("create", argc, argv,
                     {{"--kind", true}, {"--capacity", true}, {"--slot-size", true}, {"--wait", true}, {"--mode", true}},
                     &a, &code))
    return code;
  std::string name;
  if (!canonical("create", a.positional[0], &name, &code)) return code;
  shmring::Config cfg;
  const std::string* kind = a.value("--kind");
  if (kind == nullptr) return fail(kExitUsage, "create", name, "--kind spsc|mpmc|locked is required");
  if (*kind == "spsc")
    cfg.kind = shmring::Kind::spsc;
  else if (*kind == "mpmc")
    cfg.kind = shmring::Kind::mpmc;
  else if (*kind == "locked")
    cfg.kind = shmring::Kind::locked;
  else
    return fail(kExitUsage, "create", name, "--kind must be spsc, mpmc or locked, not '" + *kind + "'");
  std::string why;
  std::uint64_t v = 0;
  const std::string* cap = a.value("--capacity");
  if (cap == nullptr) return fail(kExitUsage, "create", name, "--capacity BYTES is required");
  if (!parse_size(*cap, &v, &why)) return fail(kExitUsage, "create", name, "--capacity: " + why);
  cfg.capacity = v;
  if (const std::string* s = a.value("--slot-size")) {
    if (!parse_size(*s, &v, &why)) return fail(kExitUsage, "create", name, "--slot-size: " + why);
    if (cfg.kind != shmring::Kind::mpmc) return fail(kExitUsage, "create", name, "--slot-size applies to mpmc rings only");
    cfg.slot_size = v;
  } else if (cfg.kind == shmring::Kind::mpmc) {
    return fail(kExitUsage, "create", name, "--slot-size BYTES is required for an mpmc ring");
  }
  if (const std::string* w = a.value("--wait")) {
    if (*w == "futex")
      cfg.wait = shmring::WaitStrategy::futex;
    else if (*w == "spin")
      cfg.wait = shmring::WaitStrategy::spin;
    else if (*w == "sem")
      cfg.wait = shmring::WaitStrategy::sem;
    else
      return fail(kExitUsage, "create", name, "--wait must be futex, spin or sem, not '" + *w + "'");
  }
  if (const std::string* m = a.value("--mode")) {
    unsigned mode = 0;
    if (!parse_mode(*m, &mode, &why)) return fail(kExitUsage, "create", name, "--mode: " + why);
    cfg.mode = mode;
  }
  sd::Geometry g;
  if (sd::geometry_for(cfg, &g, &why) != Errc::ok) return fail(kExitUsage, "create", name, why);
  const Errc e = shmring::create(name, cfg);
  if (e == Errc::exists)
    return fail(kExitFailure, "create", name, "already exists (shmtool rm removes it, or pick another name)");
  if (e != Errc::ok) return fail(exit_for(e), "create", name, library_cause(name, e));
  std::printf("created %s: %s, capacity %llu (%s)%s, max record %llu bytes, wait %s, mode %s\n", name.c_str(),
              shmring::to_string(cfg.kind), static_cast<unsigned long long>(g.capacity), human_size(g.capacity).c_str(),
              cfg.kind == shmring::Kind::mpmc
                  ? (", " + std::to_string(g.slot_count) + " slots of " + std::to_string(g.slot_size) + " bytes").c_str()
                  : "",
              static_cast<unsigned long long>(g.max_record), shmring::to_string(cfg.wait),
              octal_mode(cfg.mode == 0 ? 0600 : cfg.mode).c_str());
  return kExitOk;
}

int cmd_reset(int argc, char** argv) {
  Args a;
  int code = 0;
  if (!parse_command("reset", argc, argv, {{"--force", false}}, &a, &code)) return code;
  std::string name;
  if (!canonical("reset", a.positional[0], &name, &code)) return code;
  // Refuse what is not a regular file before the library opens anything.
  const int dirfd = open_shm_dir();
  if (dirfd >= 0) {
    struct stat st {};
    const int rc = ::fstatat(dirfd, name.c_str() + 1, &st, AT_SYMLINK_NOFOLLOW);
    const int err = errno;
    ::close(dirfd);
    if (rc != 0 && err == ENOENT) return fail(kExitNotFound, "reset", name, "no such ring");
    if (rc == 0 && S_ISLNK(st.st_mode)) return fail(kExitCorrupt, "reset", name, "is a symbolic link: refused");
    if (rc == 0 && !S_ISREG(st.st_mode)) return fail(kExitCorrupt, "reset", name, "not a regular file: refused");
  }
  std::string detail;
  const Errc e = sd::reset_ring(name, a.has("--force"), &detail);
  switch (e) {
    case Errc::ok:
      if (detail.empty())
        std::printf("reset %s\n", name.c_str());
      else
        std::printf("reset %s (%s; they get SHMRING_ERESET on their next call and must reopen)\n", name.c_str(),
                    detail.c_str());
      return kExitOk;
    case Errc::busy:
      return fail(kExitBusy, "reset", name,
                  (detail.empty() ? library_cause(name, e) : detail) + " (--force resets under them)");
    case Errc::timed_out:
      return fail(kExitCorrupt, "reset", name,
                  "not initialised (a creator at work, or one that died): nothing to reset; shmtool rm removes it");
    case Errc::corrupt:
    case Errc::version_mismatch:
      return fail(kExitCorrupt, "reset", name, library_cause(name, e) + "; refused (shmtool rm --force removes it)");
    default: return fail(exit_for(e), "reset", name, library_cause(name, e));
  }
}

int cmd_rm(int argc, char** argv) {
  Args a;
  int code = 0;
  if (!parse_command("rm", argc, argv, {{"--force", false}}, &a, &code)) return code;
  std::string entry, why;
  if (!entry_name(a.positional[0], &entry, &why)) return fail(kExitUsage, "rm", a.positional[0], why);
  const std::string shown = "/" + entry;
  const bool force = a.has("--force");
  const int dirfd = open_shm_dir();
  if (dirfd < 0) return fail(kExitFailure, "rm", shown, "cannot open /dev/shm");
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } dir_closer{dirfd};

  struct stat before {};
  if (::fstatat(dirfd, entry.c_str(), &before, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return fail(kExitNotFound, "rm", shown, "no such object in /dev/shm");
    if (errno == EACCES || errno == EPERM) return fail(kExitPermission, "rm", shown, "permission denied");
    return fail(kExitFailure, "rm", shown, std::string("stat: ") + std::strerror(errno));
  }
  if (S_ISDIR(before.st_mode)) return fail(kExitCorrupt, "rm", shown, "is a directory, not a ring: not removed");
  if (!S_ISREG(before.st_mode) && !force)
    return fail(kExitCorrupt, "rm", shown,
                std::string(S_ISLNK(before.st_mode) ? "is a symbolic link" : "is not a regular file") +
                    ", not a ring: not removed (--force removes the entry itself, never a link's target)");
  if (S_ISREG(before.st_mode)) {
    // Hold the object open while checking it, so its identity is pinned.
    const int raw = ::openat(dirfd, entry.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (raw < 0) {
      if (errno == ENOENT) return fail(kExitNotFound, "rm", shown, "no such object in /dev/shm (it vanished)");
      if ((errno == EACCES || errno == EPERM) && !force)
        return fail(kExitPermission, "rm", shown,
                    "permission denied (owner " + user_name(before.st_uid) + ", mode " + octal_mode(before.st_mode) + ")");
    }
    struct Closer2 {
      int fd;
      ~Closer2() {
        if (fd >= 0) ::close(fd);
      }
    } obj_closer{raw};
    if (raw >= 0) {
      struct stat pinned {};
      if (::fstat(raw, &pinned) != 0 || pinned.st_dev != before.st_dev || pinned.st_ino != before.st_ino)
        return fail(kExitFailure, "rm", shown, "the name was replaced while being checked: not removed");
      const Report r = examine(dirfd, entry, Depth::header);
      if (r.have_stat && (r.st.st_dev != before.st_dev || r.st.st_ino != before.st_ino))
        return fail(kExitFailure, "rm", shown, "the name was replaced while being checked: not removed");
      const bool ring = r.status == Status::ready || r.status == Status::stale;
      if (!ring && !force)
        return fail(kExitCorrupt, "rm", shown,
                    r.why + ": not removed (--force removes it anyway)");
      if (r.live > 0 && !force) {
        std::string pids;
        for (const Peer& p : r.peers) {
          if (!is_alive(p.live)) continue;
          if (!pids.empty()) pids += ", ";
          pids += std::to_string(p.pid) + (p.role == 1 ? " (producer)" : " (consumer)");
        }
        return fail(kExitBusy, "rm", shown, "live peers attached: " + pids + " (--force removes it under them)");
      }
    }
  }
  // The TOCTOU guard: the entry must still be the object checked above.
  // (A window remains between this check and unlinkat; docs/shmtool.md.)
  struct stat now {};
  if (::fstatat(dirfd, entry.c_str(), &now, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return fail(kExitNotFound, "rm", shown, "vanished before it could be removed");
    return fail(kExitFailure, "rm", shown, std::string("stat: ") + std::strerror(errno));
  }
  if (now.st_dev != before.st_dev || now.st_ino != before.st_ino)
    return fail(kExitFailure, "rm", shown, "the name was replaced while being checked: not removed");
  if (::unlinkat(dirfd, entry.c_str(), 0) != 0) {
    const int err = errno;
    if (err == ENOENT) return fail(kExitNotFound, "rm", shown, "vanished before it could be removed");
    if (err == EACCES || err == EPERM)
      return fail(kExitPermission, "rm", shown,
                  "permission denied (owner " + user_name(before.st_uid) + ", mode " + octal_mode(before.st_mode) +
                      "; /dev/shm is sticky: only the owner or root may remove it)");
    return fail(kExitFailure, "rm", shown, std::string("unlink: ") + std::strerror(err));
  }
  std::printf("removed %s\n", escape_text(shown).c_str());
  return kExitOk;
}

}  // namespace shmtool
