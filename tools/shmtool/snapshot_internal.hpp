// Internals of shmtool's snapshot (snapshot.hpp), shared by the files that
// implement it: snapshot_liveness.cpp (processes, attach entries),
// snapshot_analyse.cpp (the checks on a header and data copy, the
// diagnosis), snapshot_examine.cpp (opening and copying an object) and
// snapshot_orphans.cpp (rings whose name is gone). Not for the commands.
#pragma once

#include <cstdint>
#include <string>

#include "layout.hpp"
#include "snapshot.hpp"

namespace shmtool::snap {

// /proc/sys/kernel/pid_max (the kernel's upper limit when unreadable).
std::uint64_t pid_max();

// The descriptor of the object being examined (read-only), for the lock
// test; -1 when there is none (then the pid rule below is all we have).
extern int g_object_fd;

// Liveness as the library decides it (lib/liveness.cpp): the entry is alive
// exactly while some process holds the lock on its byte (F_OFD_GETLK works
// on our read-only descriptor: it only asks, it takes nothing). pid, start
// time and PID namespace only refine the text.
Live classify(const shmring::detail::Header& h, std::uint32_t index, std::uint64_t w);

// A pid that names an existing, non-zombie process.
bool pid_alive(std::uint64_t pid);

// Attach entry `index` of h (its state word non-zero) as a Peer, classified,
// appended to r.peers and counted in r.live or r.dead.
Peer add_peer(Report& r, const shmring::detail::Header& h, std::uint32_t index);

// Checks (and derives from) a validated header copy and, with the data area
// copied, the record chain or the slots. head2/tail2: the indices re-read
// after the copy was taken (see the record walk).
void analyse_ring(Report& r, std::uint64_t head2, std::uint64_t tail2);

// The one-line diagnosis of a finished report.
std::string make_diagnosis(const Report& r);

// The rest of examining an object, on an open read-only descriptor (which it
// closes): also used for an orphaned ring reached through /proc/PID/fd/N.
Report examine_descriptor(Report r, int raw, Depth depth);

}  // namespace shmtool::snap
