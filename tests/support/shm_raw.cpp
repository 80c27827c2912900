#include "support/shm_raw.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace shmring::test {

bool write_object(const std::string& ring_name, const void* data, std::size_t n) {
  const int fd = ::shm_open(ring_name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  const auto* p = static_cast<const char*>(data);
  std::size_t off = 0;
  while (off < n) {
    const ssize_t w = ::write(fd, p + off, n - off);
    if (w <= 0) {
      ::close(fd);
      return false;
    }
    off += static_cast<std::size_t>(w);
  }
  ::close(fd);
  return true;
}

std::vector<std::byte> read_object(const std::string& ring_name) {
  std::vector<std::byte> out;
  const int fd = ::shm_open(ring_name.c_str(), O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) return out;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && st.st_size > 0) {
    out.resize(static_cast<std::size_t>(st.st_size));
    if (::pread(fd, out.data(), out.size(), 0) != static_cast<ssize_t>(out.size())) out.clear();
  }
  ::close(fd);
  return out;
}

bool truncate_object(const std::string& ring_name, std::size_t size) {
  const int fd = ::shm_open(ring_name.c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) return false;
  const bool ok = ::ftruncate(fd, static_cast<off_t>(size)) == 0;
  ::close(fd);
  return ok;
}

int object_mode(const std::string& ring_name) {
  const int fd = ::shm_open(ring_name.c_str(), O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct stat st {};
  const int r = ::fstat(fd, &st);
  ::close(fd);
  return r == 0 ? static_cast<int>(st.st_mode & 07777) : -1;
}

RawMap::RawMap(const std::string& ring_name) {
  const int fd = ::shm_open(ring_name.c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) return;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && st.st_size > 0) {
    void* p = ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p != MAP_FAILED) {
      base_ = p;
      size_ = static_cast<std::size_t>(st.st_size);
    }
  }
  ::close(fd);
}

RawMap::~RawMap() {
  if (base_ != nullptr) ::munmap(base_, size_);
}

void RawMap::set_indices(std::uint64_t head, std::uint64_t tail) const noexcept {
  detail::atom(header()->cons.head).store(head, std::memory_order_release);
  detail::atom(header()->prod.tail).store(tail, std::memory_order_release);
}

std::uint64_t RawMap::tail() const noexcept {
  return detail::atom(header()->prod.tail).load(std::memory_order_acquire);
}

std::uint64_t RawMap::head() const noexcept {
  return detail::atom(header()->cons.head).load(std::memory_order_acquire);
}

}  // namespace shmring::test
