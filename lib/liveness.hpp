// Who is attached, and who of them is still alive. Internal header.
//
// Each attached process owns one entry of the header's attach table. An
// entry names its process by pid AND start time (field 22 of /proc/PID/stat),
// so a pid that the kernel handed to a new process after the original died
// is not mistaken for it. A dead process's entry is reclaimed by whoever
// needs the slot next. See docs/liveness.md.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "layout.hpp"
#include "shmring/error.hpp"
#include "shmring/ring.hpp"

namespace shmring::detail {

// Start time of a process in clock ticks after boot, 0 when it does not
// exist or is a zombie (exited, not reaped: it can no longer touch the ring).
std::uint64_t process_start_time(pid_t pid) noexcept;

enum class Liveness { free, alive, dead };

// Liveness of a table entry from a snapshot of its state word. Reads the
// entry's start time (untrusted: a garbage entry reads as dead).
Liveness entry_liveness(const Header& h, std::uint32_t index, std::uint64_t state_word) noexcept;

// True when some live process (the caller included) holds `role`.
bool any_live(const Header& h, Role role) noexcept;

// Frees every entry of `role` whose process is dead, counting each one it
// frees in departures.died (docs/liveness.md, "Departures"). Returns how
// many this call freed (a racing reclaimer counts its own).
std::uint32_t reclaim_dead(Header& h, Role role) noexcept;

// This process's entry in the attach table, and for an exclusive role
// (spsc), the role's owner word. Detaches on destruction.
class Attachment {
 public:
  Attachment() = default;
  ~Attachment() { detach(); }
  Attachment(Attachment&& o) noexcept;
  Attachment& operator=(Attachment&& o) noexcept;
  Attachment(const Attachment&) = delete;
  Attachment& operator=(const Attachment&) = delete;

  // Claims a free (or dead) entry; with `exclusive`, also the role's owner
  // word, refusing with busy while a live process holds it.
  Errc attach(Header* h, const std::string& name, Role role, bool exclusive);
  void detach() noexcept;
  // The handle was inherited across fork(): the entry is the parent's.
  bool owned_by_this_process() const noexcept;
  std::int32_t entry() const noexcept { return entry_; }
  // attaches[] of the other role, read before this attach was published: the
  // peer-gone rule counts any peer that attached after this moment.
  std::uint64_t peer_attaches_before() const noexcept { return peer_attaches_before_; }
  std::uint64_t generation() const noexcept { return generation_; }
  // How peers of the other role left since this attach: died when any of
  // them died (its entry reclaimed, by this call if nobody did yet), else
  // closed when any of them detached cleanly, else none.
  Departure peer_departure() const noexcept;

 private:
  Header* h_ = nullptr;
  std::int32_t pid_ = 0;
  std::int32_t entry_ = -1;
  std::uint64_t generation_ = 0;
  std::uint64_t peer_attaches_before_ = 0;
  std::uint64_t peer_closed_before_ = 0;  // departures.closed of the other role at attach
  std::uint64_t peer_died_before_ = 0;    // departures.died of the other role at attach
  Role role_ = Role::producer;
  bool exclusive_ = false;
};

// The peer-gone rule of docs/liveness.md for one handle: the peer counts as
// gone when no live process holds `peer_role` now and at least one did at
// some moment since this handle opened.
class PeerWatch {
 public:
  PeerWatch() = default;
  // attaches_at_open: the peer role's attach count read before this handle
  // attached (Attachment::peer_attaches_before()).
  PeerWatch(const Header* h, Role peer_role, std::uint32_t liveness_ms, std::uint64_t attaches_at_open) noexcept;

  // Rate-limited check (at most once per half liveness period, so a try-mode
  // poller does not read /proc on every call). `now` is CLOCK_MONOTONIC ns.
  bool due(std::int64_t now) const noexcept { return now >= next_check_; }
  bool gone(std::int64_t now) noexcept;
  std::int64_t period_ns() const noexcept { return period_ns_; }

 private:
  const Header* h_ = nullptr;
  Role peer_role_ = Role::producer;
  std::uint64_t attaches_at_open_ = 0;
  bool seen_ = false;
  std::int64_t next_check_ = 0;
  std::int64_t period_ns_ = 50'000'000;
};

}  // namespace shmring::detail
