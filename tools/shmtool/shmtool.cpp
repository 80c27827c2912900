// shmtool's main(): everything else lives in the shmtool_core library, which
// the fuzz targets (tests/fuzz) link as well.
#include <signal.h>

#include "commands.hpp"

int main(int argc, char** argv) {
  // A closed stdout (shmtool pop | head) is an error return, not a signal.
  ::signal(SIGPIPE, SIG_IGN);
  return shmtool::run(argc, argv);
}
