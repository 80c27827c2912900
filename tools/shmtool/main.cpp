// shmtool: list, inspect, verify, create, reset, rm, push, pop and watch
// shmring rings. The command set and the exit codes are a fixed contract
// (design.md); docs/shmtool.md is the manual. This file holds the usage
// texts and the dispatch; shmtool.cpp holds main().

#include <cstdio>
#include <cstring>
#include <string>

#include "commands.hpp"
#include "shmring/version.hpp"

namespace shmtool {

namespace {

const char kUsage[] =
    "usage: shmtool COMMAND [OPTIONS] [NAME]\n"
    "\n"
    "Commands:\n"
    "  list [--json]                     every ring in /dev/shm\n"
    "  inspect NAME [--json]             header, indices, peers, locks, slots, diagnosis\n"
    "  verify NAME                       check every invariant (exit 0, or 4 with the problems)\n"
    "  create NAME --kind spsc|mpmc|locked --capacity BYTES\n"
    "         [--slot-size BYTES] [--wait futex|spin|sem] [--mode 0660]\n"
    "  reset NAME [--force]              re-initialise (refuses while a live peer is attached)\n"
    "  rm NAME [--force]                 remove the object (re-checked to be the same one)\n"
    "  push NAME [--binary] [--timeout-ms MS]\n"
    "                                    stdin lines (or length-prefixed frames) -> records\n"
    "  pop NAME [--count N] [--timeout-ms MS] [--binary]\n"
    "                                    records -> stdout lines (or frames)\n"
    "  watch NAME [--interval MS] [--count N]\n"
    "                                    live rate, fill and peers (q or Ctrl-C quits)\n"
    "\n"
    "  --version                         the shmtool and shmring versions\n"
    "\n"
    "`shmtool COMMAND --help` describes a command. Exit status: 0 ok, 1 other failure,\n"
    "2 usage, 3 not found, 4 corrupt or incompatible, 5 permission denied, 6 busy (a live\n"
    "peer is attached), 7 timed out. Manual: docs/shmtool.md.\n";

struct Help {
  const char* cmd;
  const char* text;
};

const Help kHelp[] = {
    {"list",
     "usage: shmtool list [--json]\n"
     "\n"
     "Lists every shmring ring in /dev/shm: name, kind, capacity, slot size, wait strategy,\n"
     "fill (records and bytes), peers (live/dead), state (ready, initialising, stale,\n"
     "corrupt, incompatible), owner and mode, and how many other objects were skipped.\n"
     "Reads each object's header with pread: never maps, locks or writes anything.\n"
     "Unreadable entries are shown as `? (permission denied)`.\n"
     "\n"
     "  --json   machine-readable output (schema_version 1, see docs/shmtool.md)\n"},
    {"inspect",
     "usage: shmtool inspect NAME [--json] [--stale-is-error]\n"
     "\n"
     "Shows everything the object says about itself: the whole header, indices, fill,\n"
     "the attach table with each process's liveness, waiter counts, the robust mutexes\n"
     "of a locked ring, abandoned slots of an mpmc ring, the counters, the problems\n"
     "verify would report, and a one-line diagnosis. Reads a private copy with pread\n"
     "(never maps, locks or writes). Damaged, truncated, foreign and half-initialised\n"
     "objects get a diagnosis and exit 4; a missing name exits 3, an unreadable one 5.\n"
     "\n"
     "  --json             machine-readable output (schema_version 1)\n"
     "  --stale-is-error   exit 8 when the ring is stale (every attached peer dead)\n"},
    {"verify",
     "usage: shmtool verify NAME [--stale-is-error]\n"
     "\n"
     "Checks every invariant that can be checked from outside: the header (magic,\n"
     "version, sizes), indices in range and aligned, the record chain from head to tail\n"
     "(spsc, locked), slot states and laps against the tickets (mpmc), the attach table,\n"
     "role owners, waiter counts and mutex kinds. Prints `ok` and exits 0, or prints one\n"
     "line per problem and exits 4. A live ring is read racily: a problem is reported only\n"
     "if it is still there in four copies taken a few ms apart.\n"
     "  --stale-is-error   exit 8 when the ring is stale (every attached peer dead),\n"
     "                     for cron jobs and health checks\n"},
    {"create",
     "usage: shmtool create NAME --kind spsc|mpmc|locked --capacity BYTES\n"
     "                     [--slot-size BYTES] [--wait futex|spin|sem] [--mode MODE]\n"
     "\n"
     "Creates a ring exclusively (an existing name is never reused: exit 1).\n"
     "  --kind        spsc (1 producer, 1 consumer), mpmc (fixed slots), locked (mutex)\n"
     "  --capacity    data bytes, a power of two from 4096 to 2^40; suffixes k, M, G (x1024)\n"
     "  --slot-size   mpmc only: payload bytes per slot, a multiple of 8\n"
     "  --wait        futex (default), spin or sem\n"
     "  --mode        octal permission bits, default 0600\n"},
    {"reset",
     "usage: shmtool reset NAME [--force]\n"
     "\n"
     "Re-initialises the ring: indices, wait words, slots and the attach table; every\n"
     "record still in it is dropped. Refuses (exit 6, naming the pids) while a live peer\n"
     "is attached.\n"
     "  --force   reset anyway: live peers get SHMRING_ERESET (Errc::reset) on their next\n"
     "            call instead of stale or corrupt data, and must reopen the ring\n"},
    {"rm",
     "usage: shmtool rm NAME [--force]\n"
     "\n"
     "Removes the object from /dev/shm. The object is opened (O_NOFOLLOW) and checked\n"
     "first, and its device and inode are checked again just before the unlink, so a\n"
     "name replaced in between is not removed. Refuses a non-shmring object, and a ring\n"
     "with a live peer attached (exit 6), unless --force. Handles already open keep\n"
     "working on the removed object until they close.\n"
     "  --force   also remove a foreign, damaged or symlinked entry, or a ring in use\n"},
    {"push",
     "usage: shmtool push NAME [--binary] [--timeout-ms MS]\n"
     "\n"
     "Opens the ring as a producer and turns each line of standard input into one record\n"
     "(without its newline; a last line without a newline counts too). Waits while the\n"
     "ring is full.\n"
     "  --binary       stdin is a sequence of frames: 4-byte little-endian length, payload\n"
     "  --timeout-ms   give up (exit 7) when a record cannot be written within MS ms\n"
     "A line longer than the ring's largest record fails with exit 1 (earlier lines stay\n"
     "pushed). Exit 1 also when the ring is full and its consumer closed, 8 when it died.\n"
     "SIGINT, SIGTERM and SIGHUP detach cleanly within 100 ms: exit 128+signal.\n"},
    {"pop",
     "usage: shmtool pop NAME [--count N] [--timeout-ms MS] [--binary]\n"
     "\n"
     "Opens the ring as a consumer and writes each record to standard output followed by\n"
     "a newline. Stops after N records (--count), or at the end of the stream: every\n"
     "producer that attached has gone and the ring is empty (like a FIFO's EOF). A record\n"
     "is released only after it was written out.\n"
     "  --count N      stop after N records\n"
     "  --timeout-ms   stop when no record arrives within MS ms (0: take only what is\n"
     "                 there now): exit 7 if that happens before the first record (or\n"
     "                 before N records with --count), else exit 0\n"
     "  --binary       write frames: 4-byte little-endian length, payload\n"
     "At the end of the stream, exit 0 when the producers closed, 8 when one died.\n"
     "SIGINT, SIGTERM and SIGHUP detach cleanly within 100 ms (exit 128+signal); a\n"
     "closed standard output ends pop with 0. The record being written stays in an\n"
     "spsc or locked ring.\n"},
    {"watch",
     "usage: shmtool watch NAME [--interval MS] [--count N]\n"
     "\n"
     "A live view refreshed in place: records/s and MB/s in and out, fill, peers, waiters.\n"
     "Quits on q or Ctrl-C. When standard output is not a terminal it prints one line per\n"
     "interval instead. Reads the header with pread only.\n"
     "  --interval MS  refresh period in milliseconds (default 1000, at least 50)\n"
     "  --count N      stop after N refreshes\n"},
};

}  // namespace

const char* command_help(const std::string& cmd) {
  for (const auto& h : kHelp)
    if (cmd == h.cmd) return h.text;
  return nullptr;
}

bool parse_command(const char* cmd, int argc, char** argv, const std::vector<OptSpec>& spec, Args* args,
                   int* exit_code, bool name_required) {
  std::string why;
  if (!parse_args(argc, argv, 0, spec, args, &why)) {
    *exit_code = fail(kExitUsage, cmd, "", why + " (see shmtool " + cmd + " --help)");
    return false;
  }
  if (args->help) {
    std::fputs(command_help(cmd), stdout);
    *exit_code = kExitOk;
    return false;
  }
  const std::size_t want = name_required ? 1 : 0;
  if (args->positional.size() != want) {
    *exit_code = fail(kExitUsage, cmd, "",
                      name_required ? (args->positional.empty() ? "a ring NAME is required"
                                                                : "exactly one NAME expected, got " +
                                                                      std::to_string(args->positional.size()))
                                    : "unexpected argument " + args->positional.front());
    return false;
  }
  return true;
}

int run(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return kExitUsage;
  }
  const std::string cmd = argv[1];
  if (cmd == "--version" || cmd == "-V") {
    std::printf("shmtool (shmring) %d.%d.%d\nshared-memory layout version %u\n", shmring::kVersionMajor,
                shmring::kVersionMinor, shmring::kVersionPatch, static_cast<unsigned>(shmring::kLayoutVersion));
    return kExitOk;
  }
  if (cmd == "-h" || cmd == "--help" || cmd == "help") {
    if (cmd == "help" && argc > 2) {
      if (const char* h = command_help(argv[2])) {
        std::fputs(h, stdout);
        return kExitOk;
      }
    }
    std::fputs(kUsage, stdout);
    return kExitOk;
  }
  int sub_argc = argc - 2;
  char** sub_argv = argv + 2;
  if (cmd == "list") return cmd_list(sub_argc, sub_argv);
  if (cmd == "inspect") return cmd_inspect(sub_argc, sub_argv);
  if (cmd == "verify") return cmd_verify(sub_argc, sub_argv);
  if (cmd == "create") return cmd_create(sub_argc, sub_argv);
  if (cmd == "reset") return cmd_reset(sub_argc, sub_argv);
  if (cmd == "rm") return cmd_rm(sub_argc, sub_argv);
  if (cmd == "push") return cmd_push(sub_argc, sub_argv);
  if (cmd == "pop") return cmd_pop(sub_argc, sub_argv);
  if (cmd == "watch") return cmd_watch(sub_argc, sub_argv);
  return fail(kExitUsage, escape_text(cmd), "", "unknown command (see shmtool --help)");
}

}  // namespace shmtool
