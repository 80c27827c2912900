// One attached role (producer or consumer) of one ring. The C++ handles and
// the C API both drive rings through this interface; each ring kind provides
// its own producer and consumer. Internal header.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "liveness.hpp"
#include "segment.hpp"
#include "shmring/error.hpp"
#include "shmring/ring.hpp"

namespace shmring::detail {

class Endpoint {
 public:
  Endpoint(OpenedSegment seg, Attachment att, Role role) noexcept
      : seg_(std::move(seg)),
        att_(std::move(att)),
        role_(role),
        // R-A1: acquire, pairs with R-R1 in reset_ring (a reset finished
        // before we attached is fully visible).
        reset_gen_(atom(seg_.hdr->id.reset_gen).load(std::memory_order_acquire)) {}
  virtual ~Endpoint() = default;
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;

  // Producer side. The defaults answer a consumer that calls them.
  virtual Errc reserve(std::size_t n, std::byte** out, std::int64_t timeout_ns);
  virtual Errc commit(std::size_t n, bool publish);
  // Consumer side.
  virtual Errc peek(const std::byte** out, std::size_t* n, std::int64_t timeout_ns);
  virtual Errc release(bool publish);
  // Either side: publish deferred commits or releases.
  virtual Errc flush() = 0;

  std::size_t max_record() const noexcept { return static_cast<std::size_t>(seg_.geo.max_record); }
  Kind kind() const noexcept { return seg_.geo.kind; }
  Role role() const noexcept { return role_; }
  const std::string& name() const noexcept { return seg_.name; }
  const OpenedSegment& segment() const noexcept { return seg_; }
  Departure peer_departure() const noexcept { return att_.peer_departure(); }
  // The ring's name no longer leads to this ring (docs/liveness.md,
  // "A ring whose name was removed"): checked at most once per half liveness
  // period, so a caller may ask on every record.
  bool orphaned() const noexcept {
    return segment_orphaned(seg_.hdr, std::int64_t{seg_.geo.liveness_ms} * 1'000'000 / 2);
  }

 protected:
  Errc wrong_role() const noexcept { return Errc::invalid_argument; }
  // This handle's "asleep" flags in its attach entry (see note_idle_wake).
  std::uint64_t* sleep_flag() noexcept { return &seg_.hdr->attach[att_.entry()].sleeping; }
  // A forced reset (shmtool reset --force) happened since we attached. A
  // relaxed load. At the start of a call it is advisory (it may miss a
  // reset in flight). RG-1: made right after an acquire load of a word a
  // reset rewrites (an index, an mpmc slot word) and before that value is
  // validated or used, it is conclusive: if the load read the reset's store
  // (or anything stored after it), the acquire pairs with R-R2 and this
  // load returns the new generation (docs/memory-ordering.md, "Forced
  // reset"). Every kind makes this check after each such load, so a reset
  // is never mistaken for corruption and no index from before the reset is
  // combined with one from after it.
  bool was_reset() const noexcept {
    return atom(seg_.hdr->id.reset_gen).load(std::memory_order_relaxed) != reset_gen_;
  }

  OpenedSegment seg_;
  Attachment att_;  // destroyed before seg_ unmaps the table it points into
  Role role_;
  std::uint32_t reset_gen_;
};

// Opens the ring and attaches in the given role.
Errc open_endpoint(std::string_view name, Role role, const OpenOptions& opts, std::unique_ptr<Endpoint>* out);

// Per-kind factories (lib/spsc.cpp, ...).
// The attachment is made (exclusive roles claimed) before a kind reads its
// indices, so a replaced producer's successor starts from the final tail.
std::unique_ptr<Endpoint> make_spsc_endpoint(OpenedSegment seg, Attachment att, Role role, Errc* err);
std::unique_ptr<Endpoint> make_locked_endpoint(OpenedSegment seg, Attachment att, Role role, Errc* err);

std::unique_ptr<Endpoint> make_mpmc_endpoint(OpenedSegment seg, Attachment att, Role role, Errc* err);

// The locked kind's robust mutexes: initialised once by the creator.
Errc init_locked_mutexes(Header* h);
// The mpmc kind: bytes per slot (header + payload, cache-line multiple), and
// the slot words for tickets starting at first_ticket (creation, reset, and
// tests that start the counters near the 2^64 wrap).
std::uint64_t mpmc_stride(std::uint64_t slot_size) noexcept;
void init_mpmc_slots(std::byte* data, const Geometry& g, std::uint64_t first_ticket = 0) noexcept;

}  // namespace shmring::detail
