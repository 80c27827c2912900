// shmtool's snapshot: the analysis of a private copy of a ring. Fill,
// peers, role owners, waiters, semaphores, locks, then the slots (mpmc) or
// the record chain (spsc, locked); and the one-line diagnosis.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <tuple>
#include <utility>

#include "endpoint.hpp"  // mpmc_stride
#include "mutex_state.hpp"
#include "records.hpp"
#include "snapshot.hpp"
#include "snapshot_internal.hpp"

namespace shmtool::snap {

namespace sd = shmring::detail;
using shmring::Errc;
using shmring::Kind;
using shmring::WaitStrategy;

namespace {

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

}  // namespace

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
    const Peer p = add_peer(r, h, i);
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

}  // namespace shmtool::snap
