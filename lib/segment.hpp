// The named POSIX shared-memory object behind one ring: name rules, exclusive
// creation, validated opening, mapping lifetime. The only place that calls
// shm_open/mmap. Internal header.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "layout.hpp"
#include "liveness.hpp"
#include "shmring/error.hpp"
#include "shmring/ring.hpp"

namespace shmring::detail {

// Records a detailed message for last_error_message() and returns e. The
// message reads "shmring NAME: CAUSE".
Errc fail(Errc e, std::string_view name, std::string cause);

// Canonical "/name" or Errc::invalid_argument (message set).
Errc canonicalize(std::string_view in, std::string* out);

// The immutable facts of a ring, copied out of a validated header. Ring code
// uses only these copies, never the shared originals, so a peer that
// scribbles over the identity block cannot steer an index or a length.
struct Geometry {
  Kind kind{};
  WaitStrategy wait{};
  std::uint64_t capacity = 0;
  std::uint64_t slot_size = 0;
  std::uint64_t slot_count = 0;
  std::uint64_t data_offset = 0;
  std::uint64_t total_size = 0;
  std::uint64_t max_record = 0;
  std::uint32_t liveness_ms = 0;
};

// Geometry a Config asks for, or invalid_argument with the reason in *why.
Errc geometry_for(const Config& cfg, Geometry* out, std::string* why);

// Checks a header snapshot against the object's real size: magic, layout
// version, kind, every size and offset. A pure function over bytes, shared by
// open(), shmtool and the fuzz targets. On failure *why says what is wrong.
// Returns ok, corrupt or version_mismatch. A header that is not yet ready
// gives would_block (the caller decides whether to wait).
Errc validate_header(const IdentityBlock& snapshot, std::uint64_t object_size, Geometry* out,
                     std::string* why);

// A mapping of the whole object; unmapped on destruction.
class Mapping {
 public:
  Mapping() = default;
  Mapping(void* base, std::size_t len) noexcept : base_(base), len_(len) {}
  ~Mapping();
  Mapping(Mapping&& o) noexcept : base_(o.base_), len_(o.len_) { o.base_ = nullptr; o.len_ = 0; }
  Mapping& operator=(Mapping&& o) noexcept;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;

  std::byte* base() const noexcept { return static_cast<std::byte*>(base_); }
  std::size_t size() const noexcept { return len_; }

 private:
  void* base_ = nullptr;
  std::size_t len_ = 0;
};

struct OpenedSegment {
  std::string name;
  Mapping map;
  // The object's descriptor, kept open for the attach locks (liveness.hpp).
  // Declared after map: it leaves the process-wide list before the unmap.
  SegmentLock lock;
  Geometry geo;
  Header* hdr = nullptr;
  std::byte* data = nullptr;
};

Errc create_segment(std::string_view name, const Config& cfg);
Errc unlink_segment(std::string_view name);
Errc open_segment(std::string_view name, std::chrono::nanoseconds init_timeout, OpenedSegment* out);

std::int64_t monotonic_ns() noexcept;
std::int64_t realtime_ns() noexcept;

}  // namespace shmring::detail
