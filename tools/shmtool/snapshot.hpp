// shmtool's read-only view of /dev/shm objects: open with O_NOFOLLOW, fstat,
// pread a bounded copy; then analyse that private copy (never the live
// object): identity, fill, peers and their liveness, locks, slots, and every
// invariant verify checks. Nothing here maps, locks or writes the object.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "layout.hpp"
#include "mutex_state.hpp"
#include "segment.hpp"

namespace shmtool {

inline constexpr const char* kShmDir = "/dev/shm";
// inspect and verify copy at most this much of an object; beyond it the
// data area (record chain, slots) is not examined.
inline constexpr std::uint64_t kMaxRead = std::uint64_t{256} << 20;

// What an object is, from the outside in. The first failing step decides.
enum class Status {
  not_found,      // ENOENT
  permission,     // EACCES/EPERM on open
  io_error,       // another open/fstat/pread failure
  symlink,        // O_NOFOLLOW refused it (ELOOP)
  not_regular,    // directory, FIFO, socket, device
  empty,          // size 0: a creator that has not sized it (yet)
  truncated,      // shorter than the header, with our magic
  foreign,        // not a shmring object (bad magic)
  initialising,   // magic or init_state not published yet
  incompatible,   // another layout version / ABI / feature flags
  corrupt,        // header invalid, or an invariant broken
  ready,          // valid; a live peer, or no peer entry at all
  stale,          // valid; no live peer, and dead processes' entries left
};
const char* status_text(Status s) noexcept;
int status_exit(Status s) noexcept;  // 0 for ready/stale, else the contract's code

// Liveness of an attach entry's process, with the reason when dead.
// Alive means: some process holds the entry's attach lock (docs/liveness.md).
// The pid qualifies the text only: alive_other_ns is a live process whose
// pid belongs to another PID namespace (a container) and means nothing here.
enum class Live { alive, alive_unverified, attaching, dead, dead_reused, dead_zombie, garbage, alive_other_ns };
const char* live_text(Live l) noexcept;
bool is_alive(Live l) noexcept;

struct ProcInfo {
  bool exists = false;
  bool zombie = false;
  bool hidden = false;      // /proc/PID unreadable (hidepid): kill(pid,0) said it exists
  std::uint64_t start = 0;  // field 22
  char state = 0;           // field 3: 'R', 'S', 'D', 'T' (stopped), 't' (traced), ...; 0 unknown
};
// /proc/PID/stat, parsed from the last ')' (comm may hold anything). Cached
// per process run.
ProcInfo proc_info(pid_t pid);
// Drops that cache (watch calls it before every refresh).
void forget_processes();

struct Peer {
  std::uint32_t index = 0;
  std::uint64_t word = 0;
  std::int32_t pid = 0;
  std::uint32_t role = 0;
  std::uint64_t phase = 0;
  std::int32_t entry_pid = 0;
  std::uint32_t entry_role = 0;
  std::uint64_t start_time = 0;
  std::int64_t attach_time_ns = 0;
  std::uint64_t generation = 0;
  std::uint64_t sleeping = 0;  // bit 0 asleep on data_wait, bit 1 on space_wait
  Live live = Live::garbage;
};

// A robust mutex of a locked ring, as far as it can be read from its bytes
// (glibc's layout, decoded by the library's lib/mutex_state.hpp).
struct MutexView {
  std::uint64_t holder = 0;      // LockBlock prod_holder / cons_holder (a pid)
  bool holder_alive = false;
  std::uint32_t lock_word = 0;   // __lock: tid | OWNER_DIED | WAITERS
  std::int32_t owner_field = 0;  // __owner
  std::uint32_t tid = 0;
  bool tid_alive = false;
  bool owner_died = false;
  bool waiters = false;
  bool not_recoverable = false;
  bool inconsistent = false;  // EOWNERDEAD handed out, consistent() not yet called (repairing)
  shmring::detail::MutexState state = shmring::detail::MutexState::free;
  std::string summary;        // "free", "held by 123 (alive)", ...
};

struct SlotView {
  std::uint64_t index = 0;
  std::uint64_t word = 0;
  std::uint32_t len = 0;
  std::uint64_t lap = 0;
  std::uint64_t state = 0;
  std::uint64_t owner = 0;
  std::string reason;  // why it is listed as abandoned, or what its live holder is doing
  std::int32_t owner_pid = 0;
  bool owner_alive = false;
  std::uint32_t owner_role = 0;  // 1 producer, 2 consumer, 0 unknown (entry reused or freed)
  bool owner_stopped = false;    // the holder's process is stopped (SIGSTOP) or traced
  bool blocks = false;           // the other side waits for this slot (held at the tickets' front)
  bool steady = false;           // blocks, and a second copy 2 ms later shows the same word (not
                                 // just a record in flight on a busy ring)
};

struct Report {
  std::string name;   // entry name without the slash
  std::string shown;  // "/name"
  Status status = Status::io_error;
  std::string why;    // cause, for any status other than ready
  int open_errno = 0;
  struct stat st {};
  bool have_stat = false;

  // Header (valid when have_header).
  bool have_header = false;   // the first bytes hold our magic and a full header
  shmring::detail::Header hdr{};
  bool geo_ok = false;
  shmring::detail::Geometry geo{};
  bool data_read = false;     // the whole data area was copied
  std::vector<std::byte> bytes;  // the copy (header + data) when data_read

  // Derived.
  std::vector<Peer> peers;
  int live = 0, dead = 0;
  std::uint64_t fill_records = 0;  // prod.records - cons.records (spsc/locked), tail - head (mpmc)
  std::uint64_t fill_bytes = 0;    // tail - head (spsc/locked)
  bool fill_bytes_known = false;
  double fill_pct = 0;
  std::uint64_t walked_records = 0, walked_payload = 0;  // verify's record walk
  bool walked = false;
  MutexView prod_mutex, cons_mutex;
  std::uint32_t sem_data_value = 0, sem_data_waiters = 0, sem_space_value = 0, sem_space_waiters = 0;
  std::vector<SlotView> abandoned;
  std::vector<SlotView> held;  // mpmc: WRITING / READING by a live holder (a snapshot: mid-record on a busy ring)
  std::uint64_t slot_counts[8] = {};  // per state (0..5), [6] unknown
  std::vector<std::string> problems;  // broken invariants
  std::vector<std::string> notes;     // harmless observations
  std::string diagnosis;              // one line
  bool orphaned = false;              // reached through /proc (its name is gone)
  std::vector<pid_t> holders;         // orphaned: processes that still have it open
};

// A ring whose name was removed while processes still have it open (rm
// /dev/shm/*, a tmp cleaner, systemd RemoveIPC=yes): invisible in /dev/shm,
// found through the descriptors in /proc/PID/fd that link to
// "/dev/shm/NAME (deleted)". Only processes whose /proc/PID/fd we may read
// are seen (all of them for root).
struct Orphan {
  std::string name;           // the entry name it had, without the slash
  dev_t dev = 0;
  ino_t ino = 0;
  std::vector<pid_t> pids;    // processes holding a descriptor of it (our PID namespace's numbers)
  std::string fd_path;        // /proc/PID/fd/N of one of them
};
std::vector<Orphan> find_orphans();

// Opens /dev/shm once (O_DIRECTORY). -1 with errno on failure.
int open_shm_dir();

enum class Depth { header, full };
// Reads and analyses one object. Depth::header copies the header page only
// (list, watch); Depth::full copies the whole object up to kMaxRead and
// checks every invariant (inspect, verify). With live peers, a problem seen
// in one copy is re-checked in up to three more copies before it is
// reported (verify reads a live ring racily; see docs/shmtool.md).
Report examine(int dirfd, const std::string& entry, Depth depth);
// The pause between those copies (2 ms). The fuzz targets set 0: their
// "live peers" are pids the input names.
extern int g_recheck_pause_ms;
// Reads one orphan through its fd_path (read-only), like examine().
Report examine_orphan(const Orphan& o, Depth depth);

}  // namespace shmtool
