// shmtool commands: each takes its arguments after the command word and
// returns the exit status (docs/shmtool.md).
#pragma once

#include <string>

#include "common.hpp"
#include "snapshot.hpp"

namespace shmtool {

int cmd_list(int argc, char** argv);
int cmd_inspect(int argc, char** argv);
int cmd_verify(int argc, char** argv);
int cmd_create(int argc, char** argv);
int cmd_rm(int argc, char** argv);
int cmd_reset(int argc, char** argv);
int cmd_push(int argc, char** argv);
int cmd_pop(int argc, char** argv);
int cmd_watch(int argc, char** argv);

// The whole command line (argv[0] is the program), as main() runs it.
int run(int argc, char** argv);

// One object of the directory dirfd, exactly as `inspect NAME [--json]` and
// `verify NAME` handle it: the report on *out, the error line (if any)
// through fail(), the exit status returned. Used by the batch mode and by the
// fuzz targets.
// stale_is_error (--stale-is-error): a stale ring (every attached peer dead)
// exits kExitPeerDied instead of 0.
int inspect_one(int dirfd, const std::string& arg, bool json, std::string* out, bool stale_is_error = false);
int verify_one(int dirfd, const std::string& arg, std::string* out, bool stale_is_error = false);

// Help text of a command (nullptr: unknown command).
const char* command_help(const std::string& cmd);

// Parses the options of `cmd` and its single NAME; prints help (returns 0
// through *exit_code) or a usage error. True when the command should run.
bool parse_command(const char* cmd, int argc, char** argv, const std::vector<OptSpec>& spec, Args* args,
                   int* exit_code, bool name_required = true);

// Shared renderers.
void report_json(Json& j, const Report& r, bool full);
std::string kind_text(std::uint32_t kind);
std::string wait_text(std::uint32_t wait);

}  // namespace shmtool
