#include "run.hpp"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

extern char** environ;

namespace shmtool_test {

namespace {

std::int64_t now_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1'000'000;
}

}  // namespace

int ToolRun::stderr_lines() const {
  int n = 0;
  for (char c : err) n += c == '\n';
  if (!err.empty() && err.back() != '\n') ++n;
  return n;
}

std::string ToolRun::describe() const {
  std::string s = timed_out ? "timed out" : signal != 0 ? "killed by signal " + std::to_string(signal)
                                                        : "exit " + std::to_string(code);
  s += "\n--- stdout ---\n" + out.substr(0, 4000) + "\n--- stderr ---\n" + err.substr(0, 2000);
  return s;
}

const std::string& tool_path() {
  static const std::string p = SHMTOOL_PATH;
  return p;
}

ToolRun run_tool(const std::vector<std::string>& args, const RunOptions& opts) {
  ToolRun r;
  const std::int64_t start = now_ms();
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    r.err = "pipe failed";
    return r;
  }
  std::vector<std::string> argv_s;
  argv_s.push_back(tool_path());
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s;
  for (char** e = environ; *e != nullptr; ++e) env_s.emplace_back(*e);
  env_s.insert(env_s.end(), opts.env.begin(), opts.env.end());
  std::vector<char*> envp;
  for (auto& s : env_s) envp.push_back(s.data());
  envp.push_back(nullptr);

  pid_t pid = -1;
  if (opts.as_uid < 0) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    const int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) pid = -1;
  } else {
    pid = ::fork();
    if (pid == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::dup2(err[1], 2);
      const auto id = static_cast<uid_t>(opts.as_uid);
      if (::setgroups(0, nullptr) != 0 || ::setgid(id) != 0 || ::setuid(id) != 0) {
        const char m[] = "setuid failed\n";
        (void)!::write(2, m, sizeof m - 1);
        ::_exit(126);
      }
      ::execve(argv[0], argv.data(), envp.data());
      const char m[] = "exec failed\n";
      (void)!::write(2, m, sizeof m - 1);
      ::_exit(127);
    }
  }
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  if (pid < 0) {
    ::close(in[1]);
    ::close(out[0]);
    ::close(err[0]);
    r.err = "spawn failed";
    return r;
  }
  int in_fd = in[1];
  ::fcntl(in_fd, F_SETFL, O_NONBLOCK);
  std::size_t in_off = 0;
  if (opts.input.empty()) {
    ::close(in_fd);
    in_fd = -1;
  }
  int out_fd = out[0], err_fd = err[0];
  const std::int64_t deadline = start + opts.timeout_ms;
  char buf[65536];
  while (out_fd >= 0 || err_fd >= 0) {
    const std::int64_t left = deadline - now_ms();
    if (left <= 0) {
      r.timed_out = true;
      ::kill(pid, SIGKILL);
      break;
    }
    pollfd p[3] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}, {in_fd, POLLOUT, 0}};
    const int n = ::poll(p, 3, static_cast<int>(left));
    if (n < 0 && errno != EINTR) break;
    if (n <= 0) continue;
    for (int k = 0; k < 2; ++k) {
      if (p[k].fd < 0 || p[k].revents == 0) continue;
      const ssize_t got = ::read(p[k].fd, buf, sizeof buf);
      if (got > 0) {
        (k == 0 ? r.out : r.err).append(buf, static_cast<std::size_t>(got));
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        ::close(p[k].fd);
        (k == 0 ? out_fd : err_fd) = -1;
      }
    }
    if (in_fd >= 0 && p[2].revents != 0) {
      const ssize_t w = ::write(in_fd, opts.input.data() + in_off, opts.input.size() - in_off);
      if (w > 0) in_off += static_cast<std::size_t>(w);
      if (w < 0 && errno != EAGAIN && errno != EINTR) in_off = opts.input.size();
      if (in_off >= opts.input.size()) {
        ::close(in_fd);
        in_fd = -1;
      }
    }
  }
  for (int fd : {in_fd, out_fd, err_fd})
    if (fd >= 0) ::close(fd);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) r.code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  if (r.timed_out) r.code = -1;
  r.seconds = static_cast<double>(now_ms() - start) / 1000.0;
  return r;
}

}  // namespace shmtool_test
