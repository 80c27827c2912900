#include "snapshot.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "common.hpp"
#include "endpoint.hpp"  // mpmc_stride
#include "mutex_state.hpp"
#include "records.hpp"

namespace shmtool {

namespace sd = shmring::detail;
using shmring::Errc;
using shmring::Kind;
using shmring::WaitStrategy;

const char* status_text(Status s) noexcept {
  switch (s) {
    case Status::not_found: return "not_found";
    case Status::permission: return "permission_denied";
    case Status::io_error: return "io_error";
    case Status::symlink: return "symlink";
    case Status::not_regular: return "not_regular";
    case Status::empty: return "initialising";
    case Status::truncated: return "truncated";
    case Status::foreign: return "foreign";
    case Status::initialising: return "initialising";
    case Status::incompatible: return "incompatible";
    case Status::corrupt: return "corrupt";
    case Status::ready: return "ready";
    case Status::stale: return "stale";
  }
  return "unknown";
}

int status_exit(Status s) noexcept {
  switch (s) {
    case Status::ready:
    case Status::stale: return kExitOk;
    case Status::not_found: return kExitNotFound;
    case Status::permission: return kExitPermission;
    case Status::io_error: return kExitFailure;
    default: return kExitCorrupt;
  }
}

const char* live_text(Live l) noexcept {
  switch (l) {
    case Live::alive: return "alive";
    case Live::alive_unverified: return "alive (unverified: /proc hidden)";
    case Live::attaching: return "attaching";
    case Live::dead: return "dead";
    case Live::dead_reused: return "dead (reused pid)";
    case Live::dead_zombie: return "dead (zombie)";
    case Live::alive_other_ns: return "alive (pid in another PID namespace)";
    case Live::garbage: return "garbage entry";
  }
  return "unknown";
}

bool is_alive(Live l) noexcept {
  return l == Live::alive || l == Live::alive_unverified || l == Live::attaching || l == Live::alive_other_ns;
}

namespace {
std::unordered_map<pid_t, ProcInfo>& proc_cache() {
  static std::unordered_map<pid_t, ProcInfo> cache;
  return cache;
}
}  // namespace

void forget_processes() { proc_cache().clear(); }

ProcInfo proc_info(pid_t pid) {
  auto& cache = proc_cache();
  if (pid <= 0) return {};
  if (auto it = cache.find(pid); it != cache.end()) return it->second;
  ProcInfo info;
  char path[48];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == EACCES) {
      // hidepid: kill(pid, 0) says whether it exists (EPERM: it does, another user's).
      info.exists = ::kill(pid, 0) == 0 || errno == EPERM;
      info.hidden = info.exists;
    }
  } else {
    char buf[1024];
    const ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n > 0) {
      buf[n] = '\0';
      // comm (field 2) may contain spaces and ')': parse from the last ')'.
      const char* p = std::strrchr(buf, ')');
      if (p != nullptr && p[1] == ' ') {
        p += 2;
        info.exists = true;
        info.state = *p;
        info.zombie = *p == 'Z' || *p == 'X' || *p == 'x';
        int field = 3;
        while (field < 22 && p != nullptr) {
          p = std::strchr(p, ' ');
          if (p != nullptr) ++p;
          ++field;
        }
        if (p != nullptr) info.start = std::strtoull(p, nullptr, 10);
      }
    }
  }
  cache.emplace(pid, info);
  return info;
}

namespace {

std::uint64_t pid_max() {
  static std::uint64_t v = [] {
    std::uint64_t m = 4194304;  // the kernel's upper limit (PID_MAX_LIMIT on 64-bit)
    if (FILE* f = std::fopen("/proc/sys/kernel/pid_max", "re")) {
      unsigned long long x = 0;
      if (std::fscanf(f, "%llu", &x) == 1 && x > 0) m = x;
      std::fclose(f);
    }
    return m;
  }();
  return v;
}

const char* kind_name(std::uint32_t k) {
  switch (k) {
    case 1: return "spsc";
    case 2: return "mpmc";
    case 3: return "locked";
    default: return "?";
  }
}

const char* role_name(std::uint32_t r) {
  return r == 1 ? "producer" : r == 2 ? "consumer" : "?";
}

std::string type_of(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISLNK(m)) return "a symbolic link";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  return "not a regular file";
}

// The descriptor of the object being examined (read-only), for the lock
// test; -1 when there is none (then the pid rule below is all we have).
int g_object_fd = -1;

std::uint64_t own_pid_ns() {
  static const std::uint64_t v = sd::own_pid_namespace();
  return v;
}

// Liveness as the library decides it (lib/liveness.cpp): the entry is alive
// exactly while some process holds the lock on its byte (F_OFD_GETLK works
// on our read-only descriptor: it only asks, it takes nothing). pid, start
// time and PID namespace only refine the text.
Live classify(const sd::Header& h, std::uint32_t index, std::uint64_t w) {
  const sd::AttachEntry& e = h.attach[index & 31];
  const std::int32_t pid = sd::attach_word_pid(w);
  const std::uint32_t role = sd::attach_word_role(w);
  const std::uint64_t phase = sd::attach_word_phase(w);
  if (pid <= 0 || static_cast<std::uint64_t>(pid) > pid_max() || (role != 1 && role != 2) ||
      (phase != sd::kPhaseClaiming && phase != sd::kPhaseAttached))
    return Live::garbage;
  const bool other_ns = e.pid_ns != 0 && own_pid_ns() != 0 && e.pid_ns != own_pid_ns();
  if (g_object_fd >= 0) {
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = sd::lock_offset(index & 31);
    fl.l_len = 1;
    if (::fcntl(g_object_fd, F_OFD_GETLK, &fl) == 0) {
      if (fl.l_type != F_UNLCK) {
        if (phase == sd::kPhaseClaiming) return Live::attaching;
        return other_ns ? Live::alive_other_ns : Live::alive;
      }
      if (other_ns) return Live::dead;  // its pid means nothing here
      const ProcInfo pi = proc_info(pid);
      if (pi.exists && pi.zombie) return Live::dead_zombie;
      if (pi.exists && !pi.hidden && pi.start != e.start_time) return Live::dead_reused;
      return Live::dead;
    }
  }
  // No descriptor (or no lock support): the pid and start time, in our own
  // PID namespace only.
  if (other_ns) return Live::dead;
  const ProcInfo pi = proc_info(pid);
  if (!pi.exists) return Live::dead;
  if (pi.zombie) return Live::dead_zombie;
  if (phase == sd::kPhaseClaiming) return Live::attaching;
  if (pi.hidden) return Live::alive_unverified;
  // Same rule as the library (lib/liveness.cpp): pid AND start time.
  return e.start_time == pi.start ? Live::alive : Live::dead_reused;
}

bool pid_alive(std::uint64_t pid) {
  if (pid == 0 || pid > pid_max()) return false;
  const ProcInfo pi = proc_info(static_cast<pid_t>(pid));
  return pi.exists && !pi.zombie;
}

MutexView view_mutex(const unsigned char* m, std::uint64_t holder) {
  MutexView v;
  v.holder = holder;
  v.holder_alive = pid_alive(holder);
  // The library's decoding (lib/mutex_state.hpp), shared with lib/locked.cpp.
  const sd::MutexBits b = sd::decode_mutex_bytes(m);
  v.lock_word = b.lock_word;
  v.owner_field = b.owner;
  v.tid = b.tid;
  v.owner_died = b.owner_died;
  v.waiters = b.waiters;
  v.state = b.state;
  v.not_recoverable = b.state == sd::MutexState::not_recoverable;
  v.inconsistent = b.state == sd::MutexState::repairing;
  if (v.tid != 0) v.tid_alive = pid_alive(v.tid);
  std::string holder_txt = holder != 0 ? std::to_string(holder) + (v.holder_alive ? " (alive)" : " (dead)") : "";
  auto held_by = [&] {
    if (holder != 0 && holder == v.tid) return "held by " + holder_txt;
    return "held by tid " + std::to_string(v.tid) + (v.tid_alive ? " (alive)" : " (dead)") +
           (holder != 0 ? ", holder pid " + holder_txt : "");
  };
  switch (b.state) {
    case sd::MutexState::not_recoverable:
      v.summary = "not recoverable (unlocked without being made consistent); only shmtool reset clears it";
      break;
    case sd::MutexState::repairing:
      v.summary = held_by() + ": repair in progress (EOWNERDEAD handed out, not yet consistent)";
      if (!v.tid_alive) v.summary += "; the repairer is gone, the next locker repairs it";
      break;
    case sd::MutexState::held:
      v.summary = held_by();
      if (!v.tid_alive) v.summary += "; the next locker gets EOWNERDEAD only if the kernel marked it";
      break;
    case sd::MutexState::owner_died:
      v.summary = holder != 0 ? "held by " + holder_txt + ": owner died, the next locker repairs it"
                              : "owner died; the next locker repairs it";
      break;
    case sd::MutexState::free: v.summary = "free"; break;
  }
  return v;
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

// Checks (and derives from) a validated header copy and, with the data area
// copied, the record chain or the slots. head2/tail2: the indices re-read
// after the copy was taken (see the record walk below).
void analyse_ring(Report& r, std::uint64_t head2, std::uint64_t tail2) {
  const sd::Header& h = r.hdr;
  const sd::Geometry& g = r.geo;
  auto problem = [&](std::string s) { r.problems.push_back(std::move(s)); };

  // Indices and fill.
  const std::uint64_t tail = h.prod.tail, head = h.cons.head;
  if (g.kind == Kind::mpmc) {
    const auto d = static_cast<std::int64_t>(tail - head);
    if (d < 0 || static_cast<std::uint64_t>(d) > g.slot_count) {
      problem("tickets out of range: producer ticket " + std::to_string(tail) + ", consumer ticket " +
              std::to_string(head) + " (" + std::to_string(d) + " apart, " + std::to_string(g.slot_count) +
              " slots)");
    } else {
      r.fill_records = static_cast<std::uint64_t>(d);
      r.fill_pct = 100.0 * static_cast<double>(d) / static_cast<double>(g.slot_count);
    }
  } else {
    const sd::RingArea area{nullptr, g.capacity, g.max_record};
    if (!sd::indices_sane(area, head, tail)) {
      problem("indices out of range: head " + std::to_string(head) + ", tail " + std::to_string(tail) +
              " (tail - head must be within the capacity " + std::to_string(g.capacity) +
              " and both multiples of 8)");
    } else {
      r.fill_bytes = tail - head;
      r.fill_bytes_known = true;
      r.fill_pct = 100.0 * static_cast<double>(tail - head) / static_cast<double>(g.capacity);
      const std::uint64_t pr = h.prod.records, cr = h.cons.records;
      r.fill_records = pr >= cr ? pr - cr : 0;
      if (pr < cr || r.fill_records > (tail - head) / 8) {
        // Statistics only (never trusted): each record takes at least 8
        // bytes, so the indices bound the count.
        r.notes.push_back("record counters (published " + std::to_string(pr) + ", released " + std::to_string(cr) +
                          ") disagree with the indices; fill shown from the indices");
        r.fill_records = std::min(r.fill_records, (tail - head) / 8);
      }
    }
  }

  // Attach table.
  const auto pmax = pid_max();
  for (std::uint32_t i = 0; i < sd::kAttachEntries; ++i) {
    const sd::AttachEntry& e = h.attach[i];
    const std::uint64_t w = e.state;
    if (w == 0) continue;
    Peer p;
    p.index = i;
    p.word = w;
    p.pid = sd::attach_word_pid(w);
    p.role = sd::attach_word_role(w);
    p.phase = sd::attach_word_phase(w);
    p.entry_pid = e.pid;
    p.entry_role = e.role;
    p.start_time = e.start_time;
    p.attach_time_ns = e.attach_time_ns;
    p.generation = e.generation;
    p.sleeping = e.sleeping;
    p.live = classify(h, i, w);
    if (p.live == Live::garbage) {
      problem("attach entry " + std::to_string(i) + ": state word 0x" + [&] {
        char b[24];
        std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(w));
        return std::string(b);
      }() + " (pid " + std::to_string(p.pid) + ", role " + std::to_string(p.role) + ", phase " +
              std::to_string(p.phase) + ") is not a valid entry (pid 1.." + std::to_string(pmax) +
              ", role 1-2, phase 1-2)");
    } else if (p.phase == sd::kPhaseAttached) {
      if (e.pid != p.pid || e.role != p.role)
        problem("attach entry " + std::to_string(i) + ": fields (pid " + std::to_string(e.pid) + ", role " +
                std::to_string(e.role) + ") disagree with its state word (pid " + std::to_string(p.pid) +
                ", role " + std::to_string(p.role) + ")");
      if (e.start_time == 0) problem("attach entry " + std::to_string(i) + ": start time 0");
    }
    if (is_alive(p.live))
      ++r.live;
    else
      ++r.dead;
    r.peers.push_back(p);
  }
  if (r.dead > 0)
    r.notes.push_back(std::to_string(r.dead) + " dead attach entr" + (r.dead == 1 ? "y" : "ies") +
                      " (reclaimed by the next process that attaches)");

  // Role owner words: spsc only.
  for (int k = 0; k < 2; ++k) {
    const std::uint64_t o = h.roles.owner[k];
    if (o == 0) continue;
    const std::uint64_t idx = (o & 0xffffffffu);
    if (g.kind != Kind::spsc) {
      problem(std::string("role owner word of the ") + role_name(k + 1) + " set in a " + kind_name(h.id.kind) +
              " ring (only spsc rings have exclusive roles)");
    } else if (idx == 0 || idx > sd::kAttachEntries || sd::attach_word_pid(o) <= 0) {
      problem(std::string("role owner word of the ") + role_name(k + 1) + " names entry " +
              std::to_string(static_cast<std::int64_t>(idx) - 1) + " / pid " +
              std::to_string(sd::attach_word_pid(o)) + ": out of range");
    }
  }

  // Waiter counts: a killed waiter leaves one behind (harmless, an extra
  // wake-up call); an impossible count is damage.
  for (auto [label, line] : {std::pair{"data", &h.data_wait}, std::pair{"space", &h.space_wait}}) {
    if (line->waiters > (1u << 22))
      problem(std::string(label) + " waiter count " + std::to_string(line->waiters) + " is impossible");
    else if (line->waiters > 0 && r.live == 0)
      r.notes.push_back(std::string(label) + " waiter count " + std::to_string(line->waiters) +
                        " with no live peer: left by a killed waiter (harmless)");
  }

  // Semaphores (wait strategy sem): glibc's 64-bit sem_t keeps the value in
  // the low 32 bits and the waiter count in the high 32 bits.
  if (g.wait == WaitStrategy::sem) {
    std::uint64_t d = 0, s = 0;
    std::memcpy(&d, h.sems.data_sem, 8);
    std::memcpy(&s, h.sems.space_sem, 8);
    r.sem_data_value = static_cast<std::uint32_t>(d);
    r.sem_data_waiters = static_cast<std::uint32_t>(d >> 32);
    r.sem_space_value = static_cast<std::uint32_t>(s);
    r.sem_space_waiters = static_cast<std::uint32_t>(s >> 32);
  }

  // Locks (locked kind).
  if (g.kind == Kind::locked) {
    r.prod_mutex = view_mutex(h.lock.prod_mutex, h.lock.prod_holder);
    r.cons_mutex = view_mutex(h.lock.cons_mutex, h.lock.cons_holder);
    for (auto [label, m, raw] : {std::tuple{"producer", &r.prod_mutex, h.lock.prod_mutex},
                                 std::tuple{"consumer", &r.cons_mutex, h.lock.cons_mutex}}) {
      int kind = 0;
      std::memcpy(&kind, raw + 16, 4);  // __kind
      // PTHREAD_MUTEX_ROBUST_NORMAL_NP (16) | PTHREAD_MUTEX_PSHARED_BIT (128)
      if ((kind & 0x7f) != 16)
        problem(std::string(label) + " mutex kind " + std::to_string(kind) +
                " is not a robust normal mutex (damaged lock)");
      if (m->holder > pmax)
        problem(std::string(label) + " lock holder pid " + std::to_string(m->holder) + " is impossible");
      if (m->not_recoverable) problem(std::string(label) + " mutex is not recoverable");
    }
  } else if (h.lock.prod_holder != 0 || h.lock.cons_holder != 0) {
    problem("lock holder fields set in a " + std::string(kind_name(h.id.kind)) + " ring");
  }

  if (!r.data_read) return;
  const std::byte* data = r.bytes.data() + g.data_offset;

  if (g.kind == Kind::mpmc) {
    // Slots: known states; laps within [lap(head) - 1, lap(tail) + 1]; a
    // published length within the slot.
    const std::uint64_t stride = sd::mpmc_stride(g.slot_size);
    const unsigned shift = static_cast<unsigned>(__builtin_ctzll(g.slot_count));
    const std::uint64_t lo = ((head >> shift) - 1) & sd::kLapMask;
    const std::uint64_t hi = ((tail2 >> shift) + 1) & sd::kLapMask;
    const std::int64_t span = sd::lap_diff(hi, lo);
    int reported = 0;
    for (std::uint64_t i = 0; i < g.slot_count; ++i) {
      sd::SlotHeader sh;
      std::memcpy(&sh, data + i * stride, sizeof sh);
      SlotView v;
      v.index = i;
      v.word = sh.word;
      v.len = sh.len;
      v.lap = sd::word_lap(sh.word);
      v.state = sd::word_state(sh.word);
      v.owner = sd::word_owner(sh.word);
      ++r.slot_counts[v.state <= 5 ? v.state : 6];
      std::string bad;
      if (v.state > sd::kSlotAbandonedReleased) {
        bad = "unknown state " + std::to_string(v.state);
      } else {
        const std::int64_t d = sd::lap_diff(v.lap, lo);
        // A quarantined slot keeps the lap of its revoked claim while the
        // rings laps on (until its claimer acknowledges or dies): only its
        // upper bound is checked.
        const bool quarantined = v.state == sd::kSlotAbandoned || v.state == sd::kSlotAbandonedReleased;
        if (span < 0 || (d < 0 && !quarantined) || d > span)
          bad = "lap " + std::to_string(v.lap) + " outside [" + std::to_string(lo) + ", " + std::to_string(hi) +
                "] (the laps of the tickets)";
        else if ((v.state == sd::kSlotFull || v.state == sd::kSlotReading) && v.len > g.slot_size)
          bad = "length " + std::to_string(v.len) + " beyond the slot size " + std::to_string(g.slot_size);
        else if ((v.state == sd::kSlotEmpty || v.state == sd::kSlotFull) && v.owner != 0)
          bad = "owner bits set in an " + std::string(v.state == sd::kSlotEmpty ? "empty" : "full") + " slot";
      }
      if (!bad.empty()) {
        if (reported++ < 16)
          problem("slot " + std::to_string(i) + ": " + bad);
        else if (reported == 17)
          problem("... more bad slots not listed");
        continue;
      }
      // The holder named by the owner bits (WRITING, READING, ABANDONED*):
      // the attach entry, if it still carries the same generation.
      const bool has_owner = v.state != sd::kSlotEmpty && v.state != sd::kSlotFull;
      if (has_owner) {
        const sd::AttachEntry& e = h.attach[v.owner & 31];
        const bool same = e.state != 0 && (e.generation & 0x7ff) == (v.owner >> 5);
        v.owner_pid = same ? sd::attach_word_pid(e.state) : 0;
        v.owner_alive = same && is_alive(classify(h, static_cast<std::uint32_t>(v.owner & 31), e.state));
        v.owner_role = same ? sd::attach_word_role(e.state) : 0;
        if (v.owner_alive) {
          const char ps = proc_info(v.owner_pid).state;
          v.owner_stopped = ps == 'T' || ps == 't';
        }
      }
      // Abandoned: quarantined (a revoked claim or a revoked hold), or held
      // by an entry whose process is dead.
      if (v.state == sd::kSlotAbandoned || v.state == sd::kSlotAbandonedReleased) {
        const char* who = v.owner_role == 1   ? "claim revoked from a stalled producer"
                          : v.owner_role == 2 ? "hold revoked from a stalled consumer, record dropped"
                                              : "revoked from a stalled producer or consumer";
        v.reason = std::string(who) + (v.state == sd::kSlotAbandoned ? "" : "; acknowledged");
        r.abandoned.push_back(v);
      } else if (v.state == sd::kSlotWriting || v.state == sd::kSlotReading) {
        if (!v.owner_alive) {
          v.reason = v.state == sd::kSlotWriting ? "claimed by a dead producer (consumers skip it)"
                                                 : "held by a dead consumer (the next producer reclaims it)";
          r.abandoned.push_back(v);
        } else {
          // Held by a live process. It blocks the other side when it sits
          // at the front: a record being written at the consumer ticket, or
          // a record being read in the slot the producer ticket needs next
          // (one lap behind it).
          if (v.state == sd::kSlotWriting)
            v.blocks = i == (head & (g.slot_count - 1)) && sd::lap_diff(v.lap, (head >> shift) & sd::kLapMask) == 0;
          else
            v.blocks = i == (tail & (g.slot_count - 1)) && sd::lap_diff(v.lap, (tail >> shift) & sd::kLapMask) == -1;
          v.reason = v.state == sd::kSlotWriting ? "being written by a producer" : "being read by a consumer";
          if (v.owner_stopped) v.reason += "; its process is stopped";
          if (v.blocks) v.reason += v.state == sd::kSlotWriting ? "; consumers wait for it" : "; producers wait for it";
          // The ring keeps no time stamp per slot (one more store per
          // record): how long it has been held is not known.
          if (v.blocks || v.owner_stopped)
            v.reason += "; revoked once the other side has waited " + std::to_string(10 * std::uint64_t{h.id.liveness_ms}) +
                        " ms for it (hold time not recorded)";
          r.held.push_back(v);
        }
      }
    }
    return;
  }

  // spsc / locked: walk the record chain. The copy is racy on a live ring,
  // so the walk starts at the consumer index re-read after the copy (head2):
  // while head stayed <= head2 the producer could not write into
  // [head2, tail), so that part of the copy is intact.
  if (!sd::indices_sane(sd::RingArea{nullptr, g.capacity, g.max_record}, head, tail)) return;
  std::uint64_t pos = head;
  if (head2 != head) {
    const auto moved = static_cast<std::int64_t>(head2 - head);
    if (moved < 0) {
      problem("consumer index moved backwards while being read (" + std::to_string(head) + " -> " +
              std::to_string(head2) + ")");
      return;
    }
    if (static_cast<std::uint64_t>(moved) > tail - head) {
      r.notes.push_back("the consumer passed the copied tail while it was read: record chain not walked");
      return;
    }
    pos = head2;
  }
  sd::RingArea area{const_cast<std::byte*>(data), g.capacity, g.max_record};
  std::uint64_t count = 0, payload = 0;
  const std::uint64_t limit = g.capacity / 8 + 2;
  for (std::uint64_t step = 0; step < limit; ++step) {
    std::uint32_t len = 0;
    std::string why;
    const Errc e = sd::find_record(area, &pos, tail, &len, &why);
    if (e == Errc::would_block) {
      r.walked = true;
      r.walked_records = count;
      r.walked_payload = payload;
      return;
    }
    if (e != Errc::ok) {
      problem("record chain: " + why + " (after " + std::to_string(count) + " records from index " +
              std::to_string(head) + ")");
      return;
    }
    ++count;
    payload += len;
    pos += sd::record_footprint(len);
  }
  problem("record chain does not end at the tail");
}

Report examine_descriptor(Report r, int raw, Depth depth);

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
  return examine_descriptor(std::move(r), raw, depth);
}

// The rest of examine_once, on an open read-only descriptor (which it closes):
// also used for an orphaned ring reached through /proc/PID/fd/N.
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
      for (std::uint32_t i = 0; i < sd::kAttachEntries; ++i) {
        const std::uint64_t w = r.hdr.attach[i].state;
        if (w == 0) continue;
        Peer p;
        p.index = i;
        p.word = w;
        p.pid = sd::attach_word_pid(w);
        p.role = sd::attach_word_role(w);
        p.phase = sd::attach_word_phase(w);
        p.entry_pid = r.hdr.attach[i].pid;
        p.entry_role = r.hdr.attach[i].role;
        p.start_time = r.hdr.attach[i].start_time;
        p.attach_time_ns = r.hdr.attach[i].attach_time_ns;
        p.generation = r.hdr.attach[i].generation;
        p.sleeping = r.hdr.attach[i].sleeping;
        p.live = classify(r.hdr, i, w);
        if (is_alive(p.live)) ++r.live; else ++r.dead;
        r.peers.push_back(p);
      }
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

std::string make_diagnosis(const Report& r) {
  switch (r.status) {
    case Status::ready:
    case Status::stale: {
      std::string d = r.status == Status::ready ? "ok: ready" : "stale: no live peer";
      d += std::string(", ") + kind_name(r.hdr.id.kind);
      char pct[32];
      std::snprintf(pct, sizeof pct, "%.1f%%", r.fill_pct);
      d += ", " + std::to_string(r.fill_records) + " records waiting (" + pct + " full)";
      d += ", " + std::to_string(r.live) + " live / " + std::to_string(r.dead) + " dead peers";
      if (!r.abandoned.empty()) d += ", " + std::to_string(r.abandoned.size()) + " abandoned slots";
      // A held slot is normal mid-record; it is news when its holder is
      // stopped or the other side has been waiting for it across two
      // copies ("0 records waiting" while the producers are stuck behind a
      // reader).
      for (const SlotView& v : r.held)
        if (v.steady || v.owner_stopped)
          d += ", slot " + std::to_string(v.index) + (v.state == sd::kSlotWriting ? " being written" : " being read") +
               " by pid " + std::to_string(v.owner_pid) + (v.owner_stopped ? " (stopped)" : "") +
               (!v.blocks                     ? ""
                : v.state == sd::kSlotWriting ? ", consumers wait for it"
                                              : ", producers wait for it");
      if (r.geo.kind == Kind::locked) {
        for (auto [label, m] : {std::pair{"producer lock", &r.prod_mutex}, std::pair{"consumer lock", &r.cons_mutex}})
          if (m->summary != "free") d += std::string(", ") + label + " " + m->summary;
      }
      if (r.status == Status::stale) d += "; `shmtool reset` re-initialises it, `shmtool rm` removes it";
      return d;
    }
    default: return std::string(status_text(r.status)) + ": " + r.why;
  }
}

}  // namespace

std::vector<Orphan> find_orphans() {
  std::vector<Orphan> out;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return out;
  static constexpr std::string_view kPrefix = "/dev/shm/";
  static constexpr std::string_view kSuffix = " (deleted)";
  while (const dirent* pe = ::readdir(proc)) {
    char* end = nullptr;
    const long pid = std::strtol(pe->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    const std::string fd_dir = std::string("/proc/") + pe->d_name + "/fd";
    DIR* fds = ::opendir(fd_dir.c_str());
    if (fds == nullptr) continue;  // gone, or not ours to read
    while (const dirent* fe = ::readdir(fds)) {
      if (fe->d_name[0] == '.') continue;
      const std::string link = fd_dir + "/" + fe->d_name;
      char target[512];
      const ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
      if (n <= 0) continue;
      const std::string_view t(target, static_cast<std::size_t>(n));
      if (t.size() <= kPrefix.size() + kSuffix.size() || t.substr(0, kPrefix.size()) != kPrefix ||
          t.substr(t.size() - kSuffix.size()) != kSuffix)
        continue;
      const std::string name(t.substr(kPrefix.size(), t.size() - kPrefix.size() - kSuffix.size()));
      if (name.find('/') != std::string::npos) continue;
      struct stat st {};
      if (::stat(link.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
      auto it = std::find_if(out.begin(), out.end(),
                             [&](const Orphan& o) { return o.dev == st.st_dev && o.ino == st.st_ino; });
      if (it == out.end()) {
        Orphan o;
        o.name = name;
        o.dev = st.st_dev;
        o.ino = st.st_ino;
        o.fd_path = link;
        out.push_back(o);
        it = out.end() - 1;
      }
      if (std::find(it->pids.begin(), it->pids.end(), static_cast<pid_t>(pid)) == it->pids.end())
        it->pids.push_back(static_cast<pid_t>(pid));
    }
    ::closedir(fds);
  }
  ::closedir(proc);
  for (Orphan& o : out) std::sort(o.pids.begin(), o.pids.end());
  std::sort(out.begin(), out.end(), [](const Orphan& a, const Orphan& b) { return a.name < b.name; });
  return out;
}

Report examine_orphan(const Orphan& o, Depth depth) {
  Report r;
  r.name = o.name;
  r.shown = "/" + o.name;
  r.orphaned = true;
  r.holders = o.pids;
  // Through the /proc magic link: the object itself, whatever its name.
  const int raw = ::open(o.fd_path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (raw < 0) {
    r.open_errno = errno;
    r.status = errno == ENOENT ? Status::not_found : Status::permission;
    r.why = std::string("open ") + o.fd_path + ": " + std::strerror(errno);
  } else {
    r = examine_descriptor(std::move(r), raw, depth);
  }
  r.diagnosis = make_diagnosis(r);
  return r;
}

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
  r.diagnosis = make_diagnosis(r);
  return r;
}

}  // namespace shmtool
