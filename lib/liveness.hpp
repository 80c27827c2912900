// Who is attached, and who of them is still alive. Internal header.
//
// Each attached handle owns one entry of the header's attach table, and
// holds an open-file-description lock (fcntl F_OFD_SETLK, write lock) on one
// byte of the ring's object at lock_offset(entry) for as long as it is
// attached. The kernel drops that lock when the last descriptor of the open
// file description closes, which includes the death of the process, whatever
// its PID namespace. An entry is alive exactly while its byte is locked
// (F_OFD_GETLK). pid, start time and PID namespace stay in the entry for
// display only. A dead entry is reclaimed by whoever needs the slot next.
// See docs/liveness.md.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "layout.hpp"
#include "shmring/error.hpp"
#include "shmring/ring.hpp"

namespace shmring::detail {

// The byte of the object whose lock stands for attach entry `index`: the
// first byte of the entry itself (the lock is advisory: it never affects
// reads or writes through the mapping).
constexpr off_t lock_offset(std::uint32_t index) noexcept {
  return static_cast<off_t>(offsetof(Header, attach) + std::size_t{index} * sizeof(AttachEntry));
}

// A descriptor of a ring's object that goes with one mapping of it, kept
// open (O_CLOEXEC) for as long as the mapping: the attach locks belong to its
// open file description. It is a separate open of the object, never mapped
// (a mapping keeps its own description alive, also in a fork() child). Every
// one is listed process-wide, so that entry_liveness() can find the
// descriptor of the header it is asked about, and so that a fork() child
// closes its inherited copies (pthread_atfork): otherwise the child would
// keep a dead parent's locks alive. Move-only.
struct LockNode;
class SegmentLock {
 public:
  SegmentLock() = default;
  ~SegmentLock();
  SegmentLock(SegmentLock&& o) noexcept : node_(o.node_) { o.node_ = nullptr; }
  SegmentLock& operator=(SegmentLock&& o) noexcept;
  SegmentLock(const SegmentLock&) = delete;
  SegmentLock& operator=(const SegmentLock&) = delete;
  // Takes ownership of fd; [base, base + len) is the mapping it backs.
  void adopt(int fd, const void* base, std::size_t len, const std::string& name);
  int fd() const noexcept;
  LockNode* node() const noexcept { return node_; }

 private:
  LockNode* node_ = nullptr;
};

// The object's name no longer leads to the object behind `h` (removed, or
// replaced by another object): checked at most once per `period_ns` per
// mapping (fstat of the kept descriptor against stat of /dev/shm/NAME), the
// last answer is returned in between.
bool segment_orphaned(const Header* h, std::int64_t period_ns) noexcept;

// For display only: this process's start time (field 22 of /proc/self/stat,
// read once per process) and PID namespace (inode of /proc/self/ns/pid).
std::uint64_t own_start_time() noexcept;
std::uint64_t own_pid_namespace() noexcept;

enum class Liveness { free, alive, dead };

// Liveness of a table entry from a snapshot of its state word: free when the
// word is 0, else alive exactly while the entry's lock byte is held (by any
// process, or by a handle of this one). Garbage reads as dead.
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
  // The lock could not be taken (no OFD locks there): attach() failed with
  // Errc::system_error and a message saying so.
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
  LockNode* node_ = nullptr;  // the mapping's descriptor (referenced)
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
  // poller does not make the fcntl calls on every call). `now` is CLOCK_MONOTONIC ns.
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
