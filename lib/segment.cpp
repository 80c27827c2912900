// Segment lifetime: POSIX calls used directly (docs/design.md says why Boost's
// shared_memory_object does not fit here).
#include "segment.hpp"

#include "endpoint.hpp"
#include "hooks.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>
#include <thread>

namespace shmring::detail {

namespace {

thread_local std::string t_last_error;

std::string errno_text(int err) {
  char buf[128];
  // GNU strerror_r returns the message pointer (maybe not buf).
  const char* msg = strerror_r(err, buf, sizeof buf);
  return msg;
}

bool is_power_of_two(std::uint64_t v) noexcept { return v != 0 && (v & (v - 1)) == 0; }

// Closes a file descriptor on scope exit.
class Fd {
 public:
  explicit Fd(int fd) noexcept : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const noexcept { return fd_; }

 private:
  int fd_;
};

Errc from_open_errno(int err) {
  switch (err) {
    case ENOENT: return Errc::not_found;
    case EEXIST: return Errc::exists;
    case EACCES:
    case EPERM: return Errc::permission_denied;
    case ELOOP: return Errc::corrupt;  // a symlink planted under the name
    case ENAMETOOLONG:
    case EINVAL: return Errc::invalid_argument;
    case ENOSPC:
    case ENOMEM:
    case EFBIG: return Errc::no_space;
    default: return Errc::system_error;
  }
}

// Another open file description of the object behind `fd`: reopened through
// /proc/self/fd (the same inode whatever happened to the name), or, without
// /proc, by name, checked to be the same object.
int open_lock_descriptor(int fd, const std::string& name) {
  const std::string self = "/proc/self/fd/" + std::to_string(fd);
  int lk = ::open(self.c_str(), O_RDWR | O_CLOEXEC);
  if (lk >= 0) return lk;
  lk = ::shm_open(name.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0);
  if (lk < 0) return -1;
  struct stat a {}, b {};
  if (::fstat(fd, &a) != 0 || ::fstat(lk, &b) != 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
    ::close(lk);
    errno = ESTALE;  // the name was removed or replaced while we opened it
    return -1;
  }
  return lk;
}

}  // namespace

}  // namespace shmring::detail

namespace shmring {
const std::string& last_error_message() noexcept { return detail::t_last_error; }
}  // namespace shmring

namespace shmring::detail {

Errc fail(Errc e, std::string_view name, std::string cause) {
  t_last_error.assign("shmring ");
  t_last_error.append(name.empty() ? std::string_view("(unnamed)") : name);
  t_last_error.append(": ");
  t_last_error.append(cause);
  return e;
}

std::int64_t monotonic_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

std::int64_t realtime_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

Errc canonicalize(std::string_view in, std::string* out) {
  std::string shown;
  for (char c : in.substr(0, 64)) shown += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (in.size() > 64) shown += "...";
  std::string_view s = in;
  if (!s.empty() && s.front() == '/') s.remove_prefix(1);
  if (s.empty()) return fail(Errc::invalid_argument, shown, "empty name");
  // glibc rejects >= NAME_MAX; stay well inside so a suffix-free name always fits.
  if (s.size() > 200) return fail(Errc::invalid_argument, shown, "name longer than 200 characters");
  if (s == "." || s == "..") return fail(Errc::invalid_argument, shown, "name is . or ..");
  if (s.front() == '-' || s.front() == '.')
    return fail(Errc::invalid_argument, shown, "name may not start with '-' or '.'");
  if (s.substr(0, 4) == "sem.")
    return fail(Errc::invalid_argument, shown, "names starting with sem. belong to POSIX named semaphores");
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) {
      return fail(Errc::invalid_argument, shown,
                  c == '/' ? "a name may hold no '/' after the leading one"
                           : "names may contain only letters, digits, '.', '_' and '-'");
    }
  }
  std::string canon(s.size() + 1, '/');
  s.copy(canon.data() + 1, s.size());
  *out = std::move(canon);
  return Errc::ok;
}

Errc geometry_for(const Config& cfg, Geometry* out, std::string* why) {
  Geometry g;
  g.kind = cfg.kind;
  g.wait = cfg.wait;
  g.liveness_ms = 100;
  g.data_offset = kHeaderSize;
  if (cfg.wait != WaitStrategy::futex && cfg.wait != WaitStrategy::spin && cfg.wait != WaitStrategy::sem) {
    *why = "unknown wait strategy";
    return Errc::invalid_argument;
  }
  switch (cfg.kind) {
    case Kind::spsc:
    case Kind::locked: {
      if (!is_power_of_two(cfg.capacity) || cfg.capacity < kMinCapacity || cfg.capacity > kMaxCapacity) {
        *why = "capacity " + std::to_string(cfg.capacity) +
               " must be a power of two between 4096 and 2^40 bytes";
        return Errc::invalid_argument;
      }
      if (cfg.slot_size != 0) {
        *why = "slot_size applies to mpmc rings only (give 0)";
        return Errc::invalid_argument;
      }
      g.capacity = cfg.capacity;
      // A record of footprint <= capacity/2 always fits in an empty ring,
      // whatever the write offset (docs/format.md, "Why capacity/2").
      g.max_record = cfg.capacity / 2 - sizeof(RecordHeader);
      g.total_size = g.data_offset + g.capacity;
      break;
    }
    case Kind::mpmc: {
      if (!is_power_of_two(cfg.capacity) || cfg.capacity < kMinCapacity || cfg.capacity > kMaxCapacity) {
        *why = "capacity " + std::to_string(cfg.capacity) +
               " must be a power of two between 4096 and 2^40 bytes";
        return Errc::invalid_argument;
      }
      if (cfg.slot_size < 8 || cfg.slot_size % 8 != 0 || cfg.slot_size > cfg.capacity / 2 ||
          cfg.slot_size > kMaxSlotSize) {
        *why = "slot_size " + std::to_string(cfg.slot_size) +
               " must be a multiple of 8 between 8 and min(capacity/2, 16 MiB)";
        return Errc::invalid_argument;
      }
      // capacity / slot_size payload slots, rounded down to a power of two.
      std::uint64_t count = cfg.capacity / cfg.slot_size;
      while ((count & (count - 1)) != 0) count &= count - 1;
      g.capacity = cfg.capacity;
      g.slot_size = cfg.slot_size;
      g.slot_count = count;
      g.max_record = cfg.slot_size;
      g.total_size = g.data_offset + count * mpmc_stride(cfg.slot_size);
      break;
    }
    default:
      *why = "unknown ring kind";
      return Errc::invalid_argument;
  }
  *out = g;
  return Errc::ok;
}

Errc validate_header(const IdentityBlock& id, std::uint64_t object_size, Geometry* out, std::string* why) {
  static constexpr char kZero[8] = {};
  if (std::memcmp(id.magic, kMagic, sizeof kMagic) != 0) {
    if (std::memcmp(id.magic, kZero, sizeof kZero) == 0 && id.init_state == kInitInitialising) {
      *why = "still initialising (no magic yet)";
      return Errc::would_block;
    }
    *why = "not a shmring object (bad magic)";
    return Errc::corrupt;
  }
  if (id.layout_version != kLayoutVersion) {
    *why = "layout version " + std::to_string(id.layout_version) + ", this library reads version " +
           std::to_string(kLayoutVersion);
    return Errc::version_mismatch;
  }
  if (id.init_state == kInitInitialising) {
    *why = "still initialising";
    return Errc::would_block;
  }
  if (id.init_state != kInitReady) {
    *why = "initialisation state " + std::to_string(id.init_state) + " is invalid";
    return Errc::corrupt;
  }
  if (id.header_size != kHeaderSize || id.data_offset != kHeaderSize) {
    *why = "header size " + std::to_string(id.header_size) + " / data offset " +
           std::to_string(id.data_offset) + " (expected 4096)";
    return Errc::corrupt;
  }
  if (id.flags != 0) {
    *why = "unknown feature flags " + std::to_string(id.flags);
    return Errc::version_mismatch;
  }
  if (id.abi_mutex_size != sizeof(pthread_mutex_t) || id.abi_sem_size != sizeof(sem_t)) {
    *why = "created by a process with another C library ABI (mutex/semaphore sizes differ)";
    return Errc::version_mismatch;
  }
  if (id.attach_capacity != kAttachEntries) {
    *why = "attach table of " + std::to_string(id.attach_capacity) + " entries (expected " +
           std::to_string(kAttachEntries) + ")";
    return Errc::corrupt;
  }
  Config cfg;
  cfg.kind = static_cast<Kind>(id.kind);
  cfg.wait = static_cast<WaitStrategy>(id.wait);
  cfg.capacity = id.capacity;
  cfg.slot_size = id.slot_size;
  Geometry g;
  std::string reason;
  if (geometry_for(cfg, &g, &reason) != Errc::ok) {
    *why = "header describes an impossible ring: " + reason;
    return Errc::corrupt;
  }
  if (id.slot_count != g.slot_count || id.max_record != g.max_record || id.total_size != g.total_size) {
    *why = "recorded sizes disagree with the capacity (max_record " + std::to_string(id.max_record) +
           ", total " + std::to_string(id.total_size) + ")";
    return Errc::corrupt;
  }
  if (object_size != g.total_size) {
    *why = "object is " + std::to_string(object_size) + " bytes, header says " + std::to_string(g.total_size);
    return Errc::corrupt;
  }
  if (id.liveness_ms == 0 || id.liveness_ms > 60'000) {
    *why = "liveness bound " + std::to_string(id.liveness_ms) + " ms out of range";
    return Errc::corrupt;
  }
  g.liveness_ms = id.liveness_ms;
  *out = g;
  return Errc::ok;
}

Mapping::~Mapping() {
  if (base_ != nullptr) ::munmap(base_, len_);
}

Mapping& Mapping::operator=(Mapping&& o) noexcept {
  if (this != &o) {
    if (base_ != nullptr) ::munmap(base_, len_);
    base_ = o.base_;
    len_ = o.len_;
    o.base_ = nullptr;
    o.len_ = 0;
  }
  return *this;
}

Errc create_segment(std::string_view name_in, const Config& cfg) {
  std::string name;
  if (Errc e = canonicalize(name_in, &name); e != Errc::ok) return e;
  Geometry g;
  std::string why;
  if (geometry_for(cfg, &g, &why) != Errc::ok) return fail(Errc::invalid_argument, name, why);
  const unsigned mode = cfg.mode == 0 ? 0600u : cfg.mode;
  if ((mode & ~0777u) != 0) return fail(Errc::invalid_argument, name, "mode has bits outside 0777");

  // O_EXCL: never silently reuse an object somebody else made.
  const int raw = ::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (raw < 0) {
    const int err = errno;
    return fail(from_open_errno(err), name, "create: " + errno_text(err));
  }
  Fd fd(raw);
  SHMRING_CRASHPOINT("create.after_open");  // a size-0 object is left
  auto undo = [&](Errc e, std::string cause) {
    ::shm_unlink(name.c_str());
    return fail(e, name, std::move(cause));
  };
  // The umask may have cleared bits of the requested mode: apply it exactly.
  if (::fchmod(fd.get(), mode) != 0) return undo(Errc::system_error, "fchmod: " + errno_text(errno));
  if (::ftruncate(fd.get(), static_cast<off_t>(g.total_size)) != 0) {
    const int err = errno;
    return undo(from_open_errno(err) == Errc::no_space ? Errc::no_space : Errc::system_error,
                "ftruncate to " + std::to_string(g.total_size) + " bytes: " + errno_text(err));
  }
  // Back every page now, so a too-small /dev/shm is an error here instead of
  // a SIGBUS on first touch later.
  if (int err = ::posix_fallocate(fd.get(), 0, static_cast<off_t>(g.total_size)); err != 0) {
    return undo(err == ENOSPC || err == ENOMEM || err == EFBIG ? Errc::no_space : Errc::system_error,
                "reserving " + std::to_string(g.total_size) + " bytes of shared memory: " + errno_text(err));
  }
  SHMRING_CRASHPOINT("create.after_reserve");  // full size, all zeros
  void* base = ::mmap(nullptr, kHeaderSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (base == MAP_FAILED) return undo(Errc::system_error, "mmap: " + errno_text(errno));
  Mapping map(base, kHeaderSize);
  auto* h = static_cast<Header*>(base);  // zero-filled by ftruncate
  IdentityBlock& id = h->id;
  id.layout_version = kLayoutVersion;
  id.header_size = kHeaderSize;
  id.kind = static_cast<std::uint32_t>(g.kind);
  id.wait = static_cast<std::uint32_t>(g.wait);
  id.capacity = g.capacity;
  id.slot_size = g.slot_size;
  id.slot_count = g.slot_count;
  id.data_offset = g.data_offset;
  id.total_size = g.total_size;
  id.max_record = g.max_record;
  id.create_time_ns = realtime_ns();
  id.creator_pid = static_cast<std::int32_t>(::getpid());
  id.mode = mode;
  id.attach_capacity = kAttachEntries;
  id.flags = 0;
  id.abi_mutex_size = sizeof(pthread_mutex_t);
  id.abi_sem_size = sizeof(sem_t);
  id.liveness_ms = g.liveness_ms;
  if (g.wait == WaitStrategy::sem) {
    // Process-shared, initialised exactly once, by the exclusive creator,
    // before the ring is published as ready.
    if (::sem_init(reinterpret_cast<sem_t*>(h->sems.data_sem), 1, 0) != 0 ||
        ::sem_init(reinterpret_cast<sem_t*>(h->sems.space_sem), 1, 0) != 0) {
      return undo(Errc::system_error, "sem_init: " + errno_text(errno));
    }
  }
  if (g.kind == Kind::mpmc) {
    // The slot words live past the header page: map the whole object.
    void* all = ::mmap(nullptr, g.total_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    if (all == MAP_FAILED) return undo(Errc::system_error, "mmap: " + errno_text(errno));
    Mapping whole(all, g.total_size);
    init_mpmc_slots(whole.base() + g.data_offset, g);
  }
  if (g.kind == Kind::locked && init_locked_mutexes(h) != Errc::ok) {
    return undo(Errc::system_error, "initialising the robust mutexes failed");
  }
  SHMRING_CRASHPOINT("create.before_magic");  // every field but the magic and init_state
  std::memcpy(id.magic, kMagic, sizeof kMagic);
  SHMRING_CRASHPOINT("create.before_publish");  // the magic, but init_state not ready
  // I-R1: release, publishes every field above; pairs with I-A1 in open_segment.
  atom(id.init_state).store(kInitReady, std::memory_order_release);
  return Errc::ok;
}

Errc unlink_segment(std::string_view name_in) {
  std::string name;
  if (Errc e = canonicalize(name_in, &name); e != Errc::ok) return e;
  if (::shm_unlink(name.c_str()) != 0) {
    const int err = errno;
    return fail(from_open_errno(err), name, "unlink: " + errno_text(err));
  }
  return Errc::ok;
}

Errc open_segment(std::string_view name_in, std::chrono::nanoseconds init_timeout, OpenedSegment* out) {
  std::string name;
  if (Errc e = canonicalize(name_in, &name); e != Errc::ok) return e;
  const int raw = ::shm_open(name.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0);
  if (raw < 0) {
    const int err = errno;
    if (err == EINVAL || err == EISDIR) {
      // glibc reports a directory under a valid name as EINVAL: something
      // that is not a ring sits there.
      struct stat st {};
      const std::string path = "/dev/shm" + name;
      if (::lstat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
        return fail(Errc::corrupt, name, "not a regular file (a directory or device is under that name)");
    }
    return fail(from_open_errno(err), name, err == ELOOP ? "is a symbolic link, not a ring" : errno_text(err));
  }
  Fd fd(raw);
  const std::int64_t deadline = monotonic_ns() + init_timeout.count();
  std::string why;
  // Wait (bounded) for the creator: size 0 means it has not reached
  // ftruncate yet; a zero magic or init_state means it is still writing.
  for (;;) {
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return fail(Errc::system_error, name, "fstat: " + errno_text(errno));
    if (!S_ISREG(st.st_mode)) return fail(Errc::corrupt, name, "not a regular file");
    const auto size = static_cast<std::uint64_t>(st.st_size);
    Errc state = Errc::would_block;
    if (size == 0) {
      why = "object is empty (creator has not sized it yet)";
    } else if (size < kHeaderSize) {
      return fail(Errc::corrupt, name,
                  "truncated: " + std::to_string(size) + " bytes, smaller than the 4096-byte header");
    } else {
      // Validate a private copy before mapping anything past the header.
      Header snap;
      const ssize_t got = ::pread(fd.get(), &snap, sizeof snap, 0);
      if (got != static_cast<ssize_t>(sizeof snap)) return fail(Errc::corrupt, name, "short read of the header");
      Geometry g;
      state = validate_header(snap.id, size, &g, &why);
      if (state == Errc::ok) {
        void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd.get(), 0);
        if (base == MAP_FAILED) return fail(Errc::system_error, name, "mmap: " + errno_text(errno));
        Mapping map(base, size);
        auto* h = reinterpret_cast<Header*>(map.base());
        // I-A1: acquire, pairs with I-R1 in create_segment: the identity
        // block is complete once ready is seen through the mapping.
        if (atom(h->id.init_state).load(std::memory_order_acquire) != kInitReady)
          return fail(Errc::corrupt, name, "initialisation state changed under us");
        // Re-validate a copy taken through the mapping: that copy is what
        // the ring code will trust from now on.
        IdentityBlock mapped_id;
        std::memcpy(static_cast<void*>(&mapped_id), &h->id, sizeof mapped_id);
        state = validate_header(mapped_id, size, &g, &why);
        if (state != Errc::ok) return fail(state == Errc::would_block ? Errc::corrupt : state, name, why);
        out->name = name;
        out->geo = g;
        out->hdr = h;
        out->data = map.base() + g.data_offset;
        // The attach locks live on a second open file description of the
        // same object that is never mapped: a mapping holds a reference to
        // the description it was made from, so a fork() child that inherits
        // the mapping would otherwise keep a dead parent's locks alive.
        // Kept for the mapping's lifetime, O_CLOEXEC (exec drops it).
        const int lk = open_lock_descriptor(fd.get(), name);
        if (lk < 0) return fail(Errc::system_error, name, "cannot open a lock descriptor: " + errno_text(errno));
        out->lock = SegmentLock();  // before the old mapping goes
        out->map = std::move(map);
        out->lock.adopt(lk, out->map.base(), out->map.size(), name);
        return Errc::ok;
      }
      if (state != Errc::would_block) return fail(state, name, why);
    }
    if (monotonic_ns() >= deadline) {
      return fail(Errc::timed_out, name,
                  "not initialised within " + std::to_string(init_timeout.count() / 1'000'000) +
                      " ms (" + why + "; did the creator die?)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace shmring::detail
