// inspect and verify: a private pread copy of one object, analysed.
#include <unistd.h>

#include <cstdio>
#include <string>

#include "commands.hpp"

namespace shmtool {

namespace sd = shmring::detail;

std::string kind_text(std::uint32_t kind) {
  switch (kind) {
    case 1: return "spsc";
    case 2: return "mpmc";
    case 3: return "locked";
    default: return "unknown(" + std::to_string(kind) + ")";
  }
}

std::string wait_text(std::uint32_t wait) {
  switch (wait) {
    case 1: return "futex";
    case 2: return "spin";
    case 3: return "sem";
    default: return "unknown(" + std::to_string(wait) + ")";
  }
}

namespace {

const char* role_text(std::uint32_t r) { return r == 1 ? "producer" : r == 2 ? "consumer" : "?"; }
const char* phase_text(std::uint64_t p) { return p == 1 ? "claiming" : p == 2 ? "attached" : "?"; }
const char* slot_state_text(std::uint64_t s) {
  static const char* const k[] = {"empty", "writing", "full", "reading", "abandoned", "abandoned_released"};
  return s <= 5 ? k[s] : "unknown";
}

std::string printable_magic(const char* m) {
  std::string s;
  for (int i = 0; i < 8 && m[i] != '\0'; ++i) s += m[i];
  return escape_text(s);
}

void mutex_json(Json& j, const MutexView& m) {
  j.begin_object();
  j.kv("state", m.summary);
  j.kv("holder_pid", m.holder);
  j.kv("holder_alive", m.holder_alive);
  j.kv("lock_word", static_cast<std::uint64_t>(m.lock_word));
  j.kv("tid", static_cast<std::uint64_t>(m.tid));
  j.kv("tid_alive", m.tid_alive);
  j.kv("owner_died", m.owner_died);
  j.kv("waiters", m.waiters);
  j.kv("not_recoverable", m.not_recoverable);
  j.kv("repair_in_progress", m.inconsistent);
  j.kv("condition", shmring::detail::to_string(m.state));
  j.end_object();
}

}  // namespace

void report_json(Json& j, const Report& r, bool full) {
  j.begin_object();
  j.kv("name", r.shown);
  j.kv("status", status_text(r.status));
  j.kv("exit_code", status_exit(r.status));
  j.kv("diagnosis", r.diagnosis);
  j.kv("orphaned", r.orphaned);
  if (r.orphaned) {
    j.key("held_by").begin_array();
    for (pid_t p : r.holders) j.num(static_cast<std::int64_t>(p));
    j.end_array();
  }
  if (r.have_stat) {
    j.key("object").begin_object();
    j.kv("path", std::string(kShmDir) + "/" + r.name);
    j.kv("size", static_cast<std::uint64_t>(r.st.st_size));
    j.kv("uid", static_cast<std::uint64_t>(r.st.st_uid));
    j.kv("owner", user_name(r.st.st_uid));
    j.kv("gid", static_cast<std::uint64_t>(r.st.st_gid));
    j.kv("mode", octal_mode(r.st.st_mode));
    j.kv("inode", static_cast<std::uint64_t>(r.st.st_ino));
    j.end_object();
  }
  if (!r.have_header) {
    j.end_object();
    return;
  }
  const sd::IdentityBlock& id = r.hdr.id;
  j.kv("kind", kind_text(id.kind));
  j.kv("wait", wait_text(id.wait));
  j.kv("capacity", id.capacity);
  j.kv("slot_size", id.slot_size);
  j.kv("slot_count", id.slot_count);
  j.kv("max_record", id.max_record);
  j.key("fill").begin_object();
  j.kv("records", r.fill_records);
  if (r.fill_bytes_known)
    j.kv("bytes", r.fill_bytes);
  else
    j.key("bytes").null();
  j.kv("percent", r.fill_pct);
  j.end_object();
  j.key("peers").begin_object();
  j.kv("live", r.live);
  j.kv("dead", r.dead);
  j.end_object();
  if (!full) {
    j.end_object();
    return;
  }
  j.key("header").begin_object();
  j.kv("magic", printable_magic(id.magic));
  j.kv("layout_version", id.layout_version);
  j.kv("header_size", id.header_size);
  j.kv("kind", id.kind);
  j.kv("wait", id.wait);
  j.kv("capacity", id.capacity);
  j.kv("slot_size", id.slot_size);
  j.kv("slot_count", id.slot_count);
  j.kv("data_offset", id.data_offset);
  j.kv("total_size", id.total_size);
  j.kv("max_record", id.max_record);
  j.kv("create_time_ns", id.create_time_ns);
  j.kv("create_time", iso_time(id.create_time_ns));
  j.kv("creator_pid", id.creator_pid);
  j.kv("mode", octal_mode(id.mode));
  j.kv("init_state", id.init_state);
  j.kv("reset_gen", id.reset_gen);
  j.kv("attach_capacity", id.attach_capacity);
  j.kv("flags", id.flags);
  j.kv("abi_mutex_size", id.abi_mutex_size);
  j.kv("abi_sem_size", id.abi_sem_size);
  j.kv("liveness_ms", id.liveness_ms);
  j.end_object();
  j.key("indices").begin_object();
  j.kv("tail", r.hdr.prod.tail);
  j.kv("head", r.hdr.cons.head);
  j.end_object();
  j.key("counters").begin_object();
  j.kv("published", r.hdr.prod.records);
  j.kv("released", r.hdr.cons.records);
  j.kv("producer_attaches", r.hdr.roles.attaches[0]);
  j.kv("consumer_attaches", r.hdr.roles.attaches[1]);
  j.kv("abandoned_claims", r.hdr.roles.abandoned_claims);
  j.kv("dropped_reads", r.hdr.roles.dropped_reads);
  j.kv("fenced_claims", r.hdr.roles.fenced_claims);
  j.kv("fenced_reads", r.hdr.roles.fenced_reads);
  j.kv("lock_recoveries", r.hdr.lock.recoveries);
  j.kv("producers_closed", r.hdr.departures.closed[0]);
  j.kv("producers_died", r.hdr.departures.died[0]);
  j.kv("consumers_closed", r.hdr.departures.closed[1]);
  j.kv("consumers_died", r.hdr.departures.died[1]);
  j.end_object();
  j.key("waiters").begin_object();
  j.kv("data", r.hdr.data_wait.waiters);
  j.kv("data_seq", r.hdr.data_wait.seq);
  j.kv("space", r.hdr.space_wait.waiters);
  j.kv("space_seq", r.hdr.space_wait.seq);
  j.end_object();
  if (r.geo_ok && r.geo.wait == shmring::WaitStrategy::sem) {
    j.key("semaphores").begin_object();
    j.kv("data_value", r.sem_data_value);
    j.kv("data_waiters", r.sem_data_waiters);
    j.kv("space_value", r.sem_space_value);
    j.kv("space_waiters", r.sem_space_waiters);
    j.end_object();
  }
  if (r.geo_ok && r.geo.kind == shmring::Kind::locked) {
    j.key("locks").begin_object();
    j.key("producer");
    mutex_json(j, r.prod_mutex);
    j.key("consumer");
    mutex_json(j, r.cons_mutex);
    j.kv("recoveries", r.hdr.lock.recoveries);
    j.end_object();
  }
  j.key("roles").begin_object();
  for (int k = 0; k < 2; ++k) {
    const std::uint64_t o = r.hdr.roles.owner[k];
    j.key(k == 0 ? "producer_owner" : "consumer_owner");
    if (o == 0) {
      j.null();
    } else {
      j.begin_object();
      j.kv("pid", sd::attach_word_pid(o));
      j.kv("entry", static_cast<std::int64_t>(o & 0xffffffffu) - 1);
      j.end_object();
    }
  }
  j.end_object();
  j.key("attach").begin_array();
  for (const Peer& p : r.peers) {
    j.begin_object();
    j.kv("entry", p.index);
    j.kv("pid", p.pid);
    j.kv("role", role_text(p.role));
    j.kv("phase", phase_text(p.phase));
    j.kv("liveness", live_text(p.live));
    j.kv("alive", is_alive(p.live));
    j.kv("start_time", p.start_time);
    j.kv("attach_time_ns", p.attach_time_ns);
    j.kv("attach_time", iso_time(p.attach_time_ns));
    j.kv("generation", p.generation);
    j.kv("asleep_on_data", (p.sleeping & 1) != 0);
    j.kv("asleep_on_space", (p.sleeping & 2) != 0);
    j.end_object();
  }
  j.end_array();
  if (r.geo_ok && r.geo.kind == shmring::Kind::mpmc && r.data_read) {
    j.key("slots").begin_object();
    j.kv("count", r.geo.slot_count);
    for (int s = 0; s <= 5; ++s) j.kv(slot_state_text(static_cast<std::uint64_t>(s)), r.slot_counts[s]);
    j.kv("unknown", r.slot_counts[6]);
    // The fields every listed slot has, then those of its list.
    const auto slot_fields = [&j](const SlotView& v) {
      j.kv("slot", v.index);
      j.kv("lap", v.lap);
      j.kv("state", slot_state_text(v.state));
      j.kv("owner_entry", v.owner & 31);
      j.kv("owner_pid", v.owner_pid);
    };
    j.key("abandoned_slots").begin_array();
    for (const SlotView& v : r.abandoned) {
      j.begin_object();
      slot_fields(v);
      j.kv("owner_alive", v.owner_alive);
      j.kv("reason", v.reason);
      j.end_object();
    }
    j.end_array();
    // Slots a live process is writing or reading right now (mid-record on
    // a busy ring; news when blocks or owner_stopped).
    j.key("held_slots").begin_array();
    for (const SlotView& v : r.held) {
      j.begin_object();
      slot_fields(v);
      j.kv("owner_stopped", v.owner_stopped);
      j.kv("blocks", v.blocks);
      j.kv("steady", v.steady);
      j.kv("reason", v.reason);
      j.end_object();
    }
    j.end_array();
    j.end_object();
  }
  if (r.walked) {
    j.key("records").begin_object();
    j.kv("walked", r.walked_records);
    j.kv("payload_bytes", r.walked_payload);
    j.end_object();
  }
  j.kv("data_examined", r.data_read);
  j.key("problems").begin_array();
  for (const auto& p : r.problems) j.str(p);
  j.end_array();
  j.key("notes").begin_array();
  for (const auto& n : r.notes) j.str(n);
  j.end_array();
  j.end_object();
}

namespace {

std::string render_text(const Report& r) {
  std::string o;
  auto line = [&](const std::string& label, const std::string& text) {
    char b[16];
    std::snprintf(b, sizeof b, "%-11s", label.c_str());
    o += b;
    o += text;
    o += '\n';
  };
  o += escape_text(r.shown) + ": " + escape_text(r.diagnosis) + "\n";
  if (r.orphaned) {
    std::string pids;
    for (pid_t p : r.holders) pids += (pids.empty() ? "" : ", ") + std::to_string(p);
    line("orphaned", "its name was removed; still open in process" + std::string(r.holders.size() == 1 ? " " : "es ") +
                         pids + " (nobody can open it by name; it goes when they close it)");
  }
  if (r.have_stat) {
    line("object", escape_text(std::string(kShmDir) + "/" + r.name) + "  size " + std::to_string(r.st.st_size) +
                       "  owner " + escape_text(user_name(r.st.st_uid)) + " (" + std::to_string(r.st.st_uid) +
                       ")  mode " + octal_mode(r.st.st_mode) + "  inode " + std::to_string(r.st.st_ino));
  }
  if (r.have_header) {
    const sd::IdentityBlock& id = r.hdr.id;
    line("identity", "magic " + printable_magic(id.magic) + "  layout " + std::to_string(id.layout_version) +
                         "  kind " + kind_text(id.kind) + "  wait " + wait_text(id.wait) + "  init_state " +
                         std::to_string(id.init_state) + (id.init_state == 1 ? " (ready)" : "") + "  reset_gen " +
                         std::to_string(id.reset_gen));
    line("geometry", "capacity " + std::to_string(id.capacity) + " (" + human_size(id.capacity) + ")  slot_size " +
                         std::to_string(id.slot_size) + "  slot_count " + std::to_string(id.slot_count) +
                         "  data_offset " + std::to_string(id.data_offset) + "  total_size " +
                         std::to_string(id.total_size) + "  max_record " + std::to_string(id.max_record));
    line("created", iso_time(id.create_time_ns) + " by pid " + std::to_string(id.creator_pid) + "  mode " +
                        octal_mode(id.mode) + "  liveness " + std::to_string(id.liveness_ms) + " ms  flags " +
                        std::to_string(id.flags) + "  abi mutex " + std::to_string(id.abi_mutex_size) + " sem " +
                        std::to_string(id.abi_sem_size) + "  header_size " + std::to_string(id.header_size) +
                        "  attach_capacity " + std::to_string(id.attach_capacity));
    const bool mpmc = id.kind == 2;
    char pct[32];
    std::snprintf(pct, sizeof pct, "%.1f%%", r.fill_pct);
    line("indices", std::string(mpmc ? "producer ticket " : "tail ") + std::to_string(r.hdr.prod.tail) +
                        (mpmc ? "  consumer ticket " : "  head ") + std::to_string(r.hdr.cons.head));
    std::string held_note;
    for (const SlotView& v : r.held)
      if (v.steady)
        held_note += std::string(v.state == sd::kSlotReading ? ", producers wait for slot " : ", consumers wait for slot ") +
                     std::to_string(v.index) + " held by pid " + std::to_string(v.owner_pid);
    line("fill", std::to_string(r.fill_records) + " records" +
                     (r.fill_bytes_known ? ", " + std::to_string(r.fill_bytes) + " bytes" : "") + " (" + pct + ")" +
                     held_note);
    line("counters", (mpmc ? std::string("published/released: see the tickets") :
                              "published " + std::to_string(r.hdr.prod.records) + "  released " +
                                  std::to_string(r.hdr.cons.records)) + "  attaches producer " +
                         std::to_string(r.hdr.roles.attaches[0]) + " consumer " +
                         std::to_string(r.hdr.roles.attaches[1]));
    line("departures", "producers closed " + std::to_string(r.hdr.departures.closed[0]) + " died " +
                           std::to_string(r.hdr.departures.died[0]) + "  consumers closed " +
                           std::to_string(r.hdr.departures.closed[1]) + " died " +
                           std::to_string(r.hdr.departures.died[1]) + " (died: counted when reclaimed)");
    line("waiters", "data " + std::to_string(r.hdr.data_wait.waiters) + " (seq " +
                        std::to_string(r.hdr.data_wait.seq) + ")  space " +
                        std::to_string(r.hdr.space_wait.waiters) + " (seq " + std::to_string(r.hdr.space_wait.seq) +
                        ")");
    if (r.geo_ok && r.geo.wait == shmring::WaitStrategy::sem)
      line("semaphores", "data value " + std::to_string(r.sem_data_value) + " waiters " +
                             std::to_string(r.sem_data_waiters) + "  space value " +
                             std::to_string(r.sem_space_value) + " waiters " + std::to_string(r.sem_space_waiters));
    if (r.geo_ok && r.geo.kind == shmring::Kind::locked) {
      line("locks", "producer lock: " + r.prod_mutex.summary);
      line("", "consumer lock: " + r.cons_mutex.summary);
      line("", "recoveries " + std::to_string(r.hdr.lock.recoveries));
    }
    if (mpmc) {
      line("recovery", "abandoned_claims " + std::to_string(r.hdr.roles.abandoned_claims) + "  dropped_reads " +
                           std::to_string(r.hdr.roles.dropped_reads) + "  fenced_claims " +
                           std::to_string(r.hdr.roles.fenced_claims) + "  fenced_reads " +
                           std::to_string(r.hdr.roles.fenced_reads));
      if (r.data_read) {
        std::string s = std::to_string(r.geo.slot_count) + " slots:";
        for (int k = 0; k <= 5; ++k)
          if (r.slot_counts[k] != 0)
            s += std::string(" ") + slot_state_text(static_cast<std::uint64_t>(k)) + " " +
                 std::to_string(r.slot_counts[k]);
        if (r.slot_counts[6] != 0) s += " unknown " + std::to_string(r.slot_counts[6]);
        line("slots", s);
        line("abandoned", "abandoned_slots=" + std::to_string(r.abandoned.size()));
        for (const SlotView& v : r.abandoned)
          line("", "slot " + std::to_string(v.index) + " lap " + std::to_string(v.lap) + " " +
                       slot_state_text(v.state) + " owner=" +
                       (v.owner_pid > 0 ? std::to_string(v.owner_pid) + (v.owner_alive ? " (alive)" : " (dead)")
                                        : std::string("? (entry reused or freed)")) +
                       " entry " + std::to_string(v.owner & 31) + ": " + v.reason);
        line("held", "held_slots=" + std::to_string(r.held.size()));
        for (const SlotView& v : r.held)
          line("", "slot " + std::to_string(v.index) + " lap " + std::to_string(v.lap) + " " +
                       slot_state_text(v.state) + " by pid " + std::to_string(v.owner_pid) +
                       (v.owner_stopped ? " (alive, stopped)" : " (alive)") + " entry " +
                       std::to_string(v.owner & 31) + ": " + v.reason);
      }
    }
    if (id.kind == 1) {
      std::string s;
      for (int k = 0; k < 2; ++k) {
        const std::uint64_t ow = r.hdr.roles.owner[k];
        s += std::string(k == 0 ? "producer " : "  consumer ") +
             (ow == 0 ? std::string("none")
                      : "pid " + std::to_string(sd::attach_word_pid(ow)) + " (entry " +
                            std::to_string(static_cast<std::int64_t>(ow & 0xffffffffu) - 1) + ")");
      }
      line("roles", s);
    }
    line("peers", std::to_string(r.live) + " live, " + std::to_string(r.dead) + " dead");
    for (const Peer& p : r.peers) {
      char b[256];
      std::snprintf(b, sizeof b, "entry %-2u pid %-8d %-8s %-8s %-28s started %llu, attached %s%s", p.index, p.pid,
                    role_text(p.role), phase_text(p.phase), live_text(p.live),
                    static_cast<unsigned long long>(p.start_time), iso_time(p.attach_time_ns).c_str(),
                    (p.sleeping & 3) == 0 ? "" : (p.sleeping & 1) != 0 ? ", asleep (waiting for data)"
                                                                        : ", asleep (waiting for space)");
      line("", b);
    }
    if (r.walked)
      line("records", "walked " + std::to_string(r.walked_records) + " records (" +
                          std::to_string(r.walked_payload) + " payload bytes) from head to tail");
  }
  if (!r.problems.empty()) {
    line("problems", r.problems.front());
    for (std::size_t i = 1; i < r.problems.size(); ++i) line("", r.problems[i]);
  }
  if (!r.notes.empty()) {
    line("notes", r.notes.front());
    for (std::size_t i = 1; i < r.notes.size(); ++i) line("", r.notes[i]);
  }
  return o;
}

// The exit status and stderr line for a report that is not a usable ring
// (or, with stale_is_error, a stale one).
int report_failure(const char* cmd, const Report& r, bool stale_is_error) {
  if (stale_is_error && r.status == Status::stale)
    return fail(kExitPeerDied, cmd, r.shown,
                "stale: no live peer, " + std::to_string(r.dead) + " dead attach entr" + (r.dead == 1 ? "y" : "ies") +
                    " (--stale-is-error)");
  const int code = status_exit(r.status);
  if (code == kExitOk) return code;
  return fail(code, cmd, r.shown, r.why);
}

bool resolve(const char* cmd, const std::string& arg, std::string* entry, int* code) {
  std::string why;
  if (!entry_name(arg, entry, &why)) {
    *code = fail(kExitUsage, cmd, arg, why);
    return false;
  }
  return true;
}

}  // namespace

int inspect_one(int dirfd, const std::string& arg, bool json, std::string* out, bool stale_is_error) {
  std::string entry;
  int code = 0;
  if (!resolve("inspect", arg, &entry, &code)) return code;
  Report r = examine(dirfd, entry, Depth::full);
  // Rings that once had this name and were removed under running processes.
  std::vector<Report> orphans;
  for (const Orphan& o : find_orphans()) {
    if (o.name != entry) continue;
    Report orr = examine_orphan(o, Depth::full);
    if (orr.have_header) orphans.push_back(std::move(orr));
  }
  for (const Report& orr : orphans) {
    std::string pids;
    for (pid_t p : orr.holders) pids += (pids.empty() ? "" : ", ") + std::to_string(p);
    const std::string note = "an orphaned ring once named " + r.shown + " (its name was removed) is still open in process" +
                             (orr.holders.size() == 1 ? " " : "es ") + pids;
    if (r.status == Status::not_found)
      r.why += "; but " + note;
    else
      r.notes.push_back(note + "; it is another ring than this one");
  }
  if (!json && r.status == Status::not_found)
    for (const Report& orr : orphans) *out += render_text(orr);
  if (json) {
    Json j;
    j.begin_object();
    j.kv("schema_version", kSchemaVersion);
    j.key("ring");
    report_json(j, r, true);
    j.key("orphans").begin_array();
    for (const Report& orr : orphans) report_json(j, orr, true);
    j.end_array();
    j.end_object();
    *out = j.text();
  } else if (r.status != Status::not_found && r.status != Status::permission) {
    *out = render_text(r);
  }
  return report_failure("inspect", r, stale_is_error);
}

int verify_one(int dirfd, const std::string& arg, std::string* out, bool stale_is_error) {
  std::string entry;
  int code = 0;
  if (!resolve("verify", arg, &entry, &code)) return code;
  const Report r = examine(dirfd, entry, Depth::full);
  std::string& o = *out;
  if (r.status == Status::ready || r.status == Status::stale) {
    o = "ok: " + escape_text(r.shown) + " is consistent (" + kind_text(r.hdr.id.kind);
    if (r.walked) o += ", " + std::to_string(r.walked_records) + " records walked";
    if (r.geo.kind == shmring::Kind::mpmc && r.data_read) o += ", " + std::to_string(r.geo.slot_count) + " slots checked";
    if (!r.data_read) o += ", data area not examined";
    o += ")\n";
    for (const SlotView& v : r.held)
      if (v.steady || v.owner_stopped)
        o += "held: slot " + std::to_string(v.index) + " " + slot_state_text(v.state) + " by pid " +
             std::to_string(v.owner_pid) + " entry " + std::to_string(v.owner & 31) + ": " + escape_text(v.reason) +
             "\n";
    for (const auto& n : r.notes) o += "note: " + escape_text(n) + "\n";
  } else if (!r.problems.empty()) {
    for (const auto& p : r.problems) o += "problem: " + escape_text(p) + "\n";
  } else if (r.status != Status::not_found && r.status != Status::permission && r.status != Status::io_error) {
    o += "problem: " + escape_text(r.why) + "\n";
  }
  if (status_exit(r.status) == kExitCorrupt && !r.problems.empty()) {
    return fail(kExitCorrupt, "verify", r.shown,
                std::to_string(r.problems.size()) + " problem" + (r.problems.size() == 1 ? "" : "s") +
                    ", first: " + r.problems.front());
  }
  return report_failure("verify", r, stale_is_error);
}

namespace {

// The hidden test mode `--batch-stdin` (docs/shmtool.md, "Testing hooks"):
// one NAME per stdin line, each run through exactly the code of a single
// run; per object it prints "@@ <exit> <stdout bytes> <stderr bytes>\n",
// then that stdout and stderr. Lets the robustness test run 10,000 objects
// without 10,000 process start-ups.
int run_batch(int dirfd, bool verify, bool json) {
  char* line = nullptr;
  std::size_t cap = 0;
  ssize_t len = 0;
  std::string err;
  while ((len = ::getline(&line, &cap, stdin)) > 0) {
    std::string name(line, static_cast<std::size_t>(len));
    if (name.back() == '\n') name.pop_back();
    std::string out;
    err.clear();
    capture_errors(&err);
    const int code = verify ? verify_one(dirfd, name, &out) : inspect_one(dirfd, name, json, &out);
    capture_errors(nullptr);
    std::string rec = "@@ " + std::to_string(code) + " " + std::to_string(out.size()) + " " +
                      std::to_string(err.size()) + "\n";
    rec += out;
    rec += err;
    std::fwrite(rec.data(), 1, rec.size(), stdout);
    std::fflush(stdout);
  }
  std::free(line);
  return kExitOk;
}

int single(const char* cmd, int argc, char** argv, bool verify) {
  Args a;
  int code = 0;
  std::vector<OptSpec> spec = {{"--batch-stdin", false}, {"--stale-is-error", false}};
  if (!verify) spec.push_back({"--json", false});
  // NAME is optional only in batch mode.
  bool batch = false;
  for (int i = 0; i < argc; ++i) batch = batch || std::string(argv[i]) == "--batch-stdin";
  if (!parse_command(cmd, argc, argv, spec, &a, &code, !batch)) return code;
  const int dirfd = open_shm_dir();
  if (dirfd < 0) return fail(kExitFailure, cmd, batch ? "" : a.positional[0], "cannot open /dev/shm");
  if (batch) {
    code = run_batch(dirfd, verify, a.has("--json"));
  } else {
    std::string out;
    const bool stale_is_error = a.has("--stale-is-error");
    code = verify ? verify_one(dirfd, a.positional[0], &out, stale_is_error)
                  : inspect_one(dirfd, a.positional[0], a.has("--json"), &out, stale_is_error);
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
  }
  ::close(dirfd);
  return code;
}

}  // namespace

int cmd_inspect(int argc, char** argv) { return single("inspect", argc, argv, false); }
int cmd_verify(int argc, char** argv) { return single("verify", argc, argv, true); }

}  // namespace shmtool
