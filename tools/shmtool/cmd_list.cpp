// list: every shmring ring in /dev/shm, from a pread of each header.
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "commands.hpp"

namespace shmtool {

namespace {

struct Row {
  std::string cells[10];
};

std::string state_cell(const Report& r) {
  if (r.orphaned) return "orphaned";
  switch (r.status) {
    case Status::permission: return "? (permission denied)";
    case Status::empty:
    case Status::initialising: return "initialising";
    case Status::truncated: return "corrupt";
    default: return status_text(r.status);
  }
}

std::string ring_json(const Report& r) {
  Json j(false);
  j.begin_object();
  j.kv("name", r.shown);
  j.kv("state", state_cell(r) == "? (permission denied)" ? std::string("permission_denied") : state_cell(r));
  j.kv("status", status_text(r.status));
  j.kv("orphaned", r.orphaned);
  if (r.orphaned) {
    j.key("held_by").begin_array();
    for (pid_t p : r.holders) j.num(static_cast<std::int64_t>(p));
    j.end_array();
  }
  if (r.have_header) {
    j.kv("kind", kind_text(r.hdr.id.kind));
    j.kv("capacity", r.hdr.id.capacity);
    j.kv("slot_size", r.hdr.id.slot_size);
    j.kv("slot_count", r.hdr.id.slot_count);
    j.kv("wait", wait_text(r.hdr.id.wait));
    j.kv("fill_records", r.fill_records);
    if (r.fill_bytes_known)
      j.kv("fill_bytes", r.fill_bytes);
    else
      j.key("fill_bytes").null();
    j.kv("fill_percent", r.fill_pct);
    j.kv("peers_live", r.live);
    j.kv("peers_dead", r.dead);
    j.key("peers").begin_array();
    for (const Peer& p : r.peers) {
      j.begin_object();
      j.kv("pid", p.pid);
      j.kv("role", p.role == 1 ? "producer" : p.role == 2 ? "consumer" : "?");
      j.kv("liveness", live_text(p.live));
      j.end_object();
    }
    j.end_array();
  } else {
    for (const char* k : {"kind", "capacity", "slot_size", "slot_count", "wait", "fill_records", "fill_bytes",
                          "fill_percent", "peers_live", "peers_dead", "peers"})
      j.key(k).null();
  }
  if (r.have_stat) {
    j.kv("owner", user_name(r.st.st_uid));
    j.kv("uid", static_cast<std::uint64_t>(r.st.st_uid));
    j.kv("mode", octal_mode(r.st.st_mode));
    j.kv("size", static_cast<std::uint64_t>(r.st.st_size));
  }
  j.kv("diagnosis", r.diagnosis);
  j.end_object();
  return j.text();
}

Row ring_row(const Report& r) {
  Row row;
  row.cells[0] = escape_text(r.shown);
  if (r.have_header) {
    const auto& id = r.hdr.id;
    row.cells[1] = kind_text(id.kind);
    row.cells[2] = human_size(id.capacity);
    row.cells[3] = id.kind == 2 ? human_size(id.slot_size) : "-";
    row.cells[4] = wait_text(id.wait);
    char pct[32];
    std::snprintf(pct, sizeof pct, " (%.0f%%)", r.fill_pct);
    // Built with append(): gcc 12 gives a false -Wrestrict on chained operator+.
    row.cells[5].append(std::to_string(r.fill_records)).append(1, '/');
    row.cells[5].append(r.fill_bytes_known ? std::to_string(r.fill_bytes) : std::string("-")).append(pct);
    row.cells[6].append(std::to_string(r.live)).append(1, '/').append(std::to_string(r.dead));
  } else {
    for (int k = 1; k <= 6; ++k) row.cells[k].assign(1, r.status == Status::permission ? '?' : '-');
  }
  row.cells[7] = state_cell(r);
  row.cells[8] = r.have_stat ? escape_text(user_name(r.st.st_uid)) : "?";
  row.cells[9] = r.have_stat ? octal_mode(r.st.st_mode) : "?";
  return row;
}

}  // namespace

int cmd_list(int argc, char** argv) {
  Args a;
  int code = 0;
  if (!parse_command("list", argc, argv, {{"--json", false}}, &a, &code, false)) return code;
  const int dirfd = open_shm_dir();
  if (dirfd < 0) return fail(kExitFailure, "list", kShmDir, std::string("cannot open: ") + std::strerror(errno));
  const int scan_fd = ::dup(dirfd);
  DIR* dir = scan_fd >= 0 ? ::fdopendir(scan_fd) : nullptr;
  if (dir == nullptr) {
    ::close(dirfd);
    return fail(kExitFailure, "list", kShmDir, std::string("cannot read: ") + std::strerror(errno));
  }
  // One compact item per ring (a rendered JSON object or a table row), so a
  // /dev/shm with 100k entries does not hold 100k header copies.
  struct Item {
    std::string name;
    std::string json;
    Row row;
  };
  const bool json_out = a.has("--json");
  std::vector<Item> rings;
  std::uint64_t skipped = 0, vanished = 0;
  errno = 0;
  while (const dirent* de = ::readdir(dir)) {
    const std::string name = de->d_name;
    if (name == "." || name == "..") continue;
    // Only regular files can be rings: others are skipped unopened.
    if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN) {
      ++skipped;
      continue;
    }
    Report r = examine(dirfd, name, Depth::header);
    switch (r.status) {
      case Status::not_found: ++vanished; break;  // removed during the scan
      case Status::foreign:
      case Status::symlink:
      case Status::not_regular:
      case Status::io_error: ++skipped; break;
      default: {
        Item it;
        it.name = r.name;
        if (json_out)
          it.json = ring_json(r);
        else
          it.row = ring_row(r);
        rings.push_back(std::move(it));
      }
    }
    errno = 0;
  }
  const int read_err = errno;
  ::closedir(dir);
  ::close(dirfd);
  if (read_err != 0) return fail(kExitFailure, "list", kShmDir, std::string("readdir: ") + std::strerror(read_err));
  // Rings whose name was removed under running processes: not in the
  // directory any more, found through /proc/PID/fd.
  std::vector<std::string> orphan_notes;
  for (const Orphan& o : find_orphans()) {
    Report r = examine_orphan(o, Depth::header);
    if (!r.have_header) continue;  // some other removed file of /dev/shm
    Item it;
    it.name = r.name;
    if (json_out) {
      it.json = ring_json(r);
    } else {
      it.row = ring_row(r);
      std::string pids;
      for (pid_t p : o.pids) pids += (pids.empty() ? "" : ", ") + std::to_string(p);
      orphan_notes.push_back(escape_text(r.shown) + ": orphaned (its name was removed), still open in process" +
                             (o.pids.size() == 1 ? " " : "es ") + pids);
    }
    rings.push_back(std::move(it));
  }
  std::sort(rings.begin(), rings.end(), [](const Item& x, const Item& y) { return x.name < y.name; });

  if (a.has("--json")) {
    Json j;
    j.begin_object();
    j.kv("schema_version", kSchemaVersion);
    j.kv("directory", kShmDir);
    j.kv("count", static_cast<std::uint64_t>(rings.size()));
    j.kv("skipped_other", skipped);
    j.kv("vanished", vanished);
    j.key("rings").begin_array();
    for (const Item& it : rings) j.raw(it.json);
    j.end_array();
    j.end_object();
    std::fwrite(j.text().data(), 1, j.text().size(), stdout);
    std::fflush(stdout);
    return kExitOk;
  }

  std::vector<Row> rows;
  rows.push_back({{"NAME", "KIND", "CAPACITY", "SLOT", "WAIT", "FILL (REC/BYTES)", "PEERS (LIVE/DEAD)", "STATE", "OWNER",
                   "MODE"}});
  for (const Item& it : rings) rows.push_back(it.row);
  std::size_t width[10] = {};
  for (const Row& row : rows)
    for (int k = 0; k < 10; ++k) width[k] = std::max(width[k], row.cells[k].size());
  std::string out;
  for (const Row& row : rows) {
    std::string line;
    for (int k = 0; k < 10; ++k) {
      line += row.cells[k];
      if (k < 9) line.append(width[k] - row.cells[k].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  out += std::to_string(rings.size()) + (rings.size() == 1 ? " ring" : " rings") + "; " + std::to_string(skipped) +
         (skipped == 1 ? " other object" : " other objects") + " skipped\n";
  for (const std::string& n : orphan_notes) out += n + "\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
  return kExitOk;
}

}  // namespace shmtool
