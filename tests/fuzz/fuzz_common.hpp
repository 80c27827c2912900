// Shared pieces of the libFuzzer targets (docs/fuzzing.md): a private
// /dev/shm, object names, a byte reader, and quiet stdout.
//
// Each target is its own executable, so these are inline.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

namespace shmring::fuzz {

// Moves this process into a mount namespace with its own small /dev/shm
// (tmpfs, 64 MiB): nothing a target creates can touch or be seen by another
// process, a crash leaves nothing behind on the machine, and a huge create
// fails fast with ENOSPC. Needs root (CI and the dev container run as root);
// false otherwise, and the targets fall back to unique names in the real
// /dev/shm and skip what could leave objects there.
inline bool enter_private_shm() {
  if (::unshare(CLONE_NEWNS) != 0) return false;
  if (::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return false;
  return ::mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=64m,mode=1777") == 0;
}

// "/shmfuzz_<pid>_<tag>": unique per process and purpose.
inline std::string ring_name(const char* tag) {
  return "/shmfuzz_" + std::to_string(::getpid()) + "_" + tag;
}

// Creates the object `name` (exclusively, after removing a leftover of this
// process) holding exactly n bytes of data. False on any failure.
inline bool write_object(const std::string& name, const void* data, std::size_t n) {
  ::shm_unlink(name.c_str());
  const int fd = ::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  const auto* p = static_cast<const unsigned char*>(data);
  std::size_t done = 0;
  while (done < n) {
    const ssize_t w = ::write(fd, p + done, n - done);
    if (w <= 0) break;
    done += static_cast<std::size_t>(w);
  }
  ::close(fd);
  return done == n;
}

// Standard output goes to /dev/null: the shmtool commands print reports.
// libFuzzer and the sanitizers write to stderr, which stays.
inline void silence_stdout() {
  std::fflush(stdout);
  const int fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (fd >= 0) {
    ::dup2(fd, STDOUT_FILENO);
    ::close(fd);
  }
}

// Reads the fuzz input front to back; past the end every read yields zeros.
class Input {
 public:
  Input(const std::uint8_t* d, std::size_t n) noexcept : d_(d), n_(n) {}
  std::size_t left() const noexcept { return n_ - pos_; }
  std::uint8_t u8() noexcept { return pos_ < n_ ? d_[pos_++] : 0; }
  std::uint16_t u16() noexcept { return static_cast<std::uint16_t>(u8() | (u8() << 8)); }
  // Up to n bytes (fewer at the end of the input), as a pointer into it.
  const std::uint8_t* take(std::size_t n, std::size_t* got) noexcept {
    *got = n < left() ? n : left();
    const std::uint8_t* p = d_ + pos_;
    pos_ += *got;
    return p;
  }
  const std::uint8_t* rest(std::size_t* got) noexcept { return take(left(), got); }

 private:
  const std::uint8_t* d_;
  std::size_t n_;
  std::size_t pos_ = 0;
};

// Touches every byte of a record the library handed out, so ASan sees any
// read beyond the mapping; the sum keeps the loop from being optimised away.
inline std::uint64_t touch(const std::byte* p, std::size_t n) {
  std::uint64_t s = 0;
  for (std::size_t i = 0; i < n; ++i) s += static_cast<std::uint64_t>(p[i]);
  return s;
}

}  // namespace shmring::fuzz
