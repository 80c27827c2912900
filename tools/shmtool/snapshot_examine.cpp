// shmtool's snapshot: reading one object. Look before opening (never a
// FIFO, device or socket; a symlink refused unfollowed), open read-only,
// fstat, pread a bounded copy, identify it, then hand it to analyse_ring;
// examine() re-reads a live ring whose copy looked torn.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <thread>

#include "common.hpp"
#include "segment.hpp"
#include "snapshot.hpp"
#include "snapshot_internal.hpp"

namespace shmtool {

namespace sd = shmring::detail;
using shmring::Errc;

namespace {

std::string type_of(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISLNK(m)) return "a symbolic link";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  return "not a regular file";
}

std::uint64_t u64_at(const std::vector<std::byte>& b, std::size_t off) {
  std::uint64_t v = 0;
  if (off + 8 <= b.size()) std::memcpy(&v, b.data() + off, 8);
  return v;
}

bool pread_all(int fd, void* buf, std::size_t n, off_t off, std::size_t* got) {
  auto* p = static_cast<char*>(buf);
  std::size_t done = 0;
  while (done < n) {
    const ssize_t r = ::pread(fd, p + done, n - done, off + static_cast<off_t>(done));
    if (r < 0) {
      if (errno == EINTR) continue;
      *got = done;
      return false;
    }
    if (r == 0) break;
    done += static_cast<std::size_t>(r);
  }
  *got = done;
  return true;
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

Report examine_once(int dirfd, const std::string& entry, Depth depth) {
  Report r;
  r.name = entry;
  r.shown = "/" + entry;
  // Look before opening: never open a FIFO, device or socket, and refuse a
  // symlink without following it.
  struct stat lst {};
  if (::fstatat(dirfd, entry.c_str(), &lst, AT_SYMLINK_NOFOLLOW) != 0) {
    r.open_errno = errno;
    if (errno == ENOENT) {
      r.status = Status::not_found;
      r.why = "no such object in /dev/shm";
    } else if (errno == EACCES || errno == EPERM) {
      r.status = Status::permission;
      r.why = "permission denied";
    } else {
      r.status = Status::io_error;
      r.why = std::string("stat: ") + std::strerror(errno);
    }
    return r;
  }
  r.st = lst;
  r.have_stat = true;
  if (S_ISLNK(lst.st_mode)) {
    r.status = Status::symlink;
    r.why = "is a symbolic link (refused, never followed): not a ring";
    return r;
  }
  if (!S_ISREG(lst.st_mode)) {
    r.status = Status::not_regular;
    r.why = "is " + type_of(lst.st_mode) + ": not a ring";
    return r;
  }
  const int raw = ::openat(dirfd, entry.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (raw < 0) {
    r.open_errno = errno;
    switch (errno) {
      case ENOENT:
        r.status = Status::not_found;
        r.why = "no such object in /dev/shm (it vanished)";
        break;
      case EACCES:
      case EPERM:
        r.status = Status::permission;
        r.why = "permission denied (owner " + user_name(lst.st_uid) + ", mode " + octal_mode(lst.st_mode) + ")";
        break;
      case ELOOP:
        r.status = Status::symlink;
        r.why = "is a symbolic link (refused, never followed): not a ring";
        break;
      default:
        r.status = Status::io_error;
        r.why = std::string("open: ") + std::strerror(errno);
    }
    return r;
  }
  return snap::examine_descriptor(std::move(r), raw, depth);
}

}  // namespace

namespace snap {

Report examine_descriptor(Report r, int raw, Depth depth) {
  Fd fd(raw);
  struct ObjectFd {
    explicit ObjectFd(int f) { g_object_fd = f; }
    ~ObjectFd() { g_object_fd = -1; }
  } object_fd(fd.get());
  if (::fstat(fd.get(), &r.st) != 0) {
    r.status = Status::io_error;
    r.why = std::string("fstat: ") + std::strerror(errno);
    return r;
  }
  if (!S_ISREG(r.st.st_mode)) {
    r.status = Status::not_regular;
    r.why = "is " + type_of(r.st.st_mode) + ": not a ring";
    return r;
  }
  const auto size = static_cast<std::uint64_t>(r.st.st_size);
  if (size == 0) {
    r.status = Status::empty;
    r.why = "empty object (size 0): its creator has not sized it yet, or died before it did";
    return r;
  }
  const std::uint64_t want = depth == Depth::header ? std::min<std::uint64_t>(size, sd::kHeaderSize)
                                                    : std::min<std::uint64_t>(size, kMaxRead);
  r.bytes.assign(static_cast<std::size_t>(want), std::byte{0});
  std::size_t got = 0;
  if (!pread_all(fd.get(), r.bytes.data(), r.bytes.size(), 0, &got)) {
    r.status = Status::io_error;
    r.why = std::string("read: ") + std::strerror(errno);
    return r;
  }
  if (got < want) {
    r.status = Status::corrupt;
    r.why = "object shrank from " + std::to_string(size) + " to " + std::to_string(got) +
            " bytes while being read (truncated concurrently)";
    r.bytes.resize(got);
    return r;
  }
  // Identity: the magic first (a zero magic with init_state 0 is a creator
  // at work), then the full header.
  sd::IdentityBlock id{};
  std::memcpy(&id, r.bytes.data(), std::min<std::size_t>(got, sizeof id));
  if (std::memcmp(id.magic, sd::kMagic, sizeof sd::kMagic) != 0) {
    static constexpr char kZero[8] = {};
    if (std::memcmp(id.magic, kZero, sizeof kZero) == 0 && id.init_state == sd::kInitInitialising) {
      r.status = Status::initialising;
      r.why = "initialising: no magic yet (a creator at work, or one that died: rm it if it stays so)";
    } else {
      r.status = Status::foreign;
      r.why = "not a shmring object (bad magic)";
    }
    return r;
  }
  if (got < sd::kHeaderSize) {
    r.status = Status::truncated;
    r.why = "truncated: " + std::to_string(got) + " bytes, smaller than the 4096-byte header";
    return r;
  }
  std::memcpy(static_cast<void*>(&r.hdr), r.bytes.data(), sizeof r.hdr);
  r.have_header = true;
  std::string why;
  const Errc v = sd::validate_header(r.hdr.id, size, &r.geo, &why);
  if (v != Errc::ok) {
    r.why = why;
    if (v == Errc::would_block) {
      r.status = Status::initialising;
      r.why += " (a creator at work, or one that died: rm it if it stays so)";
    } else if (v == Errc::version_mismatch) {
      r.status = Status::incompatible;
    } else {
      r.status = Status::corrupt;
    }
    if (r.status != Status::incompatible) {
      // The attach table is still worth showing for a corrupt header.
      for (std::uint32_t i = 0; i < sd::kAttachEntries; ++i)
        if (r.hdr.attach[i].state != 0) add_peer(r, r.hdr, i);
    }
    return r;
  }
  r.geo_ok = true;
  std::uint64_t head2 = r.hdr.cons.head, tail2 = r.hdr.prod.tail;
  if (depth == Depth::full) {
    if (size <= kMaxRead) {
      r.data_read = true;
      // Indices again, after the copy (see analyse_ring's walk).
      std::vector<std::byte> again(sd::kHeaderSize);
      std::size_t n2 = 0;
      if (pread_all(fd.get(), again.data(), again.size(), 0, &n2) && n2 == again.size()) {
        head2 = u64_at(again, offsetof(sd::Header, cons) + offsetof(sd::ConsumerLine, head));
        tail2 = u64_at(again, offsetof(sd::Header, prod) + offsetof(sd::ProducerLine, tail));
        std::uint32_t gen2 = 0;
        std::memcpy(&gen2, again.data() + offsetof(sd::IdentityBlock, reset_gen), 4);
        if (gen2 != r.hdr.id.reset_gen) {
          r.problems.push_back("the ring was reset while being read");
        }
      }
    } else {
      r.notes.push_back("object larger than " + human_size(kMaxRead) +
                        ": the data area (record chain, slots) was not examined");
    }
  }
  analyse_ring(r, head2, tail2);
  if (!r.problems.empty()) {
    r.status = Status::corrupt;
    r.why = r.problems.front();
    if (r.problems.size() > 1) r.why += " (and " + std::to_string(r.problems.size() - 1) + " more)";
  } else if (r.live > 0 || r.dead == 0) {
    // Live peers, or nobody attached (a fresh, reset or cleanly closed ring).
    r.status = Status::ready;
  } else {
    r.status = Status::stale;
    r.why = "no live peer, " + std::to_string(r.dead) + " dead";
  }
  if (!r.data_read && depth == Depth::full) r.bytes.clear();
  return r;
}

}  // namespace snap

int open_shm_dir() { return ::open(kShmDir, O_RDONLY | O_DIRECTORY | O_CLOEXEC); }

int g_recheck_pause_ms = 2;

Report examine(int dirfd, const std::string& entry, Depth depth) {
  Report r = examine_once(dirfd, entry, depth);
  // A problem seen while live peers run may be a torn copy: look again.
  for (int i = 0; i < 3 && !r.problems.empty() && r.live > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(g_recheck_pause_ms));
    r = examine_once(dirfd, entry, depth);
  }
  // A held slot at the tickets' front is usually a record in flight on a
  // busy ring. It is news (diagnosis, fill) only when a second copy shows
  // the same word: the same holder, still on the same lap.
  bool in_flight = false;
  for (const SlotView& v : r.held) in_flight = in_flight || (v.blocks && !v.owner_stopped);
  if (in_flight) {
    std::this_thread::sleep_for(std::chrono::milliseconds(g_recheck_pause_ms));
    const Report again = examine_once(dirfd, entry, depth);
    for (SlotView& v : r.held)
      for (const SlotView& w : again.held) v.steady = v.steady || (v.blocks && w.index == v.index && w.word == v.word);
  }
  for (SlotView& v : r.held) v.steady = v.steady || (v.blocks && v.owner_stopped);
  r.diagnosis = snap::make_diagnosis(r);
  return r;
}

}  // namespace shmtool
