// Fuzz target: shmtool inspect (text and --json), verify and the header-only
// read of list/watch over an arbitrary file.
//
// The input becomes one object in /dev/shm (the private one when the target
// runs as root); inspect_one and verify_one are exactly what
// `shmtool inspect NAME [--json]` and `shmtool verify NAME` run. Their
// output is checked for the contract's shape: an exit status from the
// fixed table, and JSON output starting with '{'.
#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "commands.hpp"
#include "fuzz_common.hpp"
#include "snapshot.hpp"

namespace {
int g_dirfd = -1;
volatile std::size_t g_sink = 0;

void check_exit(int code) {
  if (code < shmtool::kExitOk || code > shmtool::kExitTimeout) __builtin_trap();
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  shmring::fuzz::enter_private_shm();
  shmring::fuzz::silence_stdout();
  shmtool::g_recheck_pause_ms = 0;
  g_dirfd = shmtool::open_shm_dir();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (g_dirfd < 0 || size > (std::size_t{1} << 20)) return 0;
  static const std::string name = shmring::fuzz::ring_name("tool");
  if (!shmring::fuzz::write_object(name, data, size)) return 0;
  const std::string entry = name.substr(1);

  std::string errors;
  shmtool::capture_errors(&errors);
  std::string out;
  check_exit(shmtool::inspect_one(g_dirfd, entry, false, &out));
  g_sink = g_sink + out.size();
  out.clear();
  check_exit(shmtool::inspect_one(g_dirfd, entry, true, &out));
  if (out.empty() || out.front() != '{') __builtin_trap();
  out.clear();
  check_exit(shmtool::verify_one(g_dirfd, entry, &out));
  g_sink = g_sink + out.size();
  const shmtool::Report r = shmtool::examine(g_dirfd, entry, shmtool::Depth::header);
  shmtool::Json j;
  shmtool::report_json(j, r, false);
  g_sink = g_sink + j.text().size() + errors.size();
  shmtool::capture_errors(nullptr);

  ::shm_unlink(name.c_str());
  return 0;
}
