// Direct access to /dev/shm objects, bypassing the library: plant damaged
// objects, map a ring's header to corrupt it or plant indices, read modes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "layout.hpp"  // internal: the shared header

namespace shmring::test {

// Creates the object exclusively (mode 0600) holding exactly these bytes
// (none: a zero-length object). False (with errno) on failure.
bool write_object(const std::string& ring_name, const void* data, std::size_t n);
// The object's bytes, or an empty vector if it cannot be read.
std::vector<std::byte> read_object(const std::string& ring_name);
bool truncate_object(const std::string& ring_name, std::size_t size);
// st_mode & 07777 of the object, or -1.
int object_mode(const std::string& ring_name);

// A read-write mapping of a whole existing object.
class RawMap {
 public:
  explicit RawMap(const std::string& ring_name);
  ~RawMap();
  RawMap(const RawMap&) = delete;
  RawMap& operator=(const RawMap&) = delete;

  bool ok() const noexcept { return base_ != nullptr; }
  std::size_t size() const noexcept { return size_; }
  std::byte* base() const noexcept { return static_cast<std::byte*>(base_); }
  detail::Header* header() const noexcept { return static_cast<detail::Header*>(base_); }
  std::byte* data() const noexcept { return base() + detail::kHeaderSize; }
  // Plants both indices (only while no handle is open, or to corrupt one).
  void set_indices(std::uint64_t head, std::uint64_t tail) const noexcept;
  std::uint64_t tail() const noexcept;
  std::uint64_t head() const noexcept;

 private:
  void* base_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace shmring::test
