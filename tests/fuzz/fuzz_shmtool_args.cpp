// Fuzz target: shmtool's command line.
//
// The input is split at NUL bytes into at most 16 arguments after
// "shmtool"; shmtool::run() (main() without the SIGPIPE setting) gets them.
// Commands that only read or that act on /dev/shm (list, inspect, verify,
// create, reset, rm, help) run for real inside the target's private
// /dev/shm, which is emptied after every input; push, pop and watch would
// wait on standard input or a ring, so they run only when a -h/--help
// argument makes them print help and return. Without a private /dev/shm
// (not root) only help and unknown commands run. Before each input the
// private /dev/shm gets two rings to act on: /r (spsc) and /m (mpmc). The exit status must be
// one of the contract's (0..7).
#include <dirent.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "commands.hpp"
#include "fuzz_common.hpp"
#include "shmring/ring.hpp"

namespace {
bool g_private = false;

void empty_private_shm() {
  DIR* d = ::opendir("/dev/shm");
  if (d == nullptr) return;
  while (dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n != "." && n != "..") ::unlinkat(::dirfd(d), n.c_str(), 0);
  }
  ::closedir(d);
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_private = shmring::fuzz::enter_private_shm();
  shmring::fuzz::silence_stdout();
  shmtool::g_recheck_pause_ms = 0;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::string> args{"shmtool"};
  std::string cur;
  for (std::size_t i = 0; i < size && args.size() <= 16; ++i) {
    if (data[i] == 0) {
      args.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(static_cast<char>(data[i]));
    }
  }
  if (args.size() <= 16 && !cur.empty()) args.push_back(cur);

  bool help = false;
  for (std::size_t i = 2; i < args.size(); ++i) help = help || args[i] == "-h" || args[i] == "--help";
  const std::string cmd = args.size() > 1 ? args[1] : "";
  const bool acts = cmd == "list" || cmd == "inspect" || cmd == "verify" || cmd == "create" || cmd == "reset" ||
                    cmd == "rm";
  const bool waits = cmd == "push" || cmd == "pop" || cmd == "watch";
  if ((acts && !g_private) || (waits && !help)) return 0;

  if (g_private && acts) {
    shmring::Config cfg;
    cfg.capacity = 4096;
    (void)shmring::create("/r", cfg);
    cfg.kind = shmring::Kind::mpmc;
    cfg.slot_size = 32;
    (void)shmring::create("/m", cfg);
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::string errors;
  shmtool::capture_errors(&errors);
  const int code = shmtool::run(static_cast<int>(args.size()), argv.data());
  shmtool::capture_errors(nullptr);
  if (code < shmtool::kExitOk || code > shmtool::kExitTimeout) __builtin_trap();
  // Every failure explains itself in one line.
  if (code != shmtool::kExitOk && errors.empty() && args.size() > 1) __builtin_trap();
  if (g_private) empty_private_shm();
  return 0;
}
