// ipc_compare: iceoryx (placeholder until the iceoryx case lands).
#include "harness.hpp"

namespace ipc {

bool iceoryx_available(std::string* why) {
  *why = "iceoryx support not built (libiceoryx-posh-dev missing at configure time)";
  return false;
}

void run_iceoryx(benchmark::State& st, const Case&) { fail(st, "iceoryx support not built"); }

}  // namespace ipc
