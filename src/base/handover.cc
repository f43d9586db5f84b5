#include "base/handover.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/fs.h"
#include "base/listen_fds.h"

extern char** environ;

namespace faasd {
namespace {

constexpr int kLifelineFd = kListenFdsStart + 1;
constexpr char kPidVar[] = "FAASD_HANDOVER_PID";
constexpr char kFdVar[] = "FAASD_HANDOVER_FD";

bool IsHandoverVariable(absl::string_view entry) {
  for (absl::string_view name : {"LISTEN_PID=", "LISTEN_FDS=", "LISTEN_FDNAMES=",
                                 "FAASD_HANDOVER_PID=", "FAASD_HANDOVER_FD="}) {
    if (absl::StartsWith(entry, name)) return true;
  }
  return false;
}

// Writes `v` in decimal at `out` (room for 20 digits and the NUL); async-signal-safe, for the
// child between fork and exec.
void FormatPid(pid_t v, char* out) {
  char digits[24];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v > 0);
  while (n > 0) *out++ = digits[--n];
  *out = '\0';
}

int DupAbove(int fd, int floor) { return ::fcntl(fd, F_DUPFD_CLOEXEC, floor); }

}  // namespace

std::string ExecutableOf(pid_t pid) {
  char buf[4096];
  const ssize_t n = ::readlink(absl::StrCat("/proc/", pid, "/exe").c_str(), buf, sizeof(buf) - 1);
  if (n <= 0) return "";
  std::string path(buf, static_cast<size_t>(n));
  constexpr absl::string_view kDeleted = " (deleted)";
  if (absl::EndsWith(path, kDeleted)) path.resize(path.size() - kDeleted.size());
  return path;
}

absl::StatusOr<Successor> StartSuccessor(const std::string& exe,
                                         const std::vector<std::string>& argv, int listen_fd) {
  if (::access(exe.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("successor ", exe, ": ", std::strerror(errno)));
  }
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  // Out of the way of fds 3 and 4, which the child fills from these.
  const int listener = DupAbove(listen_fd, 10);
  const int lifeline_in = DupAbove(pipe_fds[0], 10);
  ::close(pipe_fds[0]);
  if (listener < 0 || lifeline_in < 0) {
    const int err = errno;
    if (listener >= 0) ::close(listener);
    if (lifeline_in >= 0) ::close(lifeline_in);
    ::close(pipe_fds[1]);
    return absl::InternalError(absl::StrCat("dup: ", std::strerror(err)));
  }

  // Everything the child needs is built before fork: after it only async-signal-safe calls.
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (!IsHandoverVariable(*e)) env.emplace_back(*e);
  }
  env.push_back("LISTEN_FDS=1");
  env.push_back(absl::StrCat(kPidVar, "=", ::getpid()));
  env.push_back(absl::StrCat(kFdVar, "=", kLifelineFd));
  std::string listen_pid = "LISTEN_PID=";
  const size_t pid_at = listen_pid.size();
  listen_pid.resize(pid_at + 24, '\0');
  std::vector<char*> envp;
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(listen_pid.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> argp;
  for (std::string& a : args) argp.push_back(a.data());
  argp.push_back(nullptr);

  // exec keeps the signal mask: the successor blocks the same signals in main() anyway.
  const pid_t pid = ::fork();
  if (pid == 0) {
    FormatPid(::getpid(), listen_pid.data() + pid_at);
    if (::dup2(listener, kListenFdsStart) < 0 || ::dup2(lifeline_in, kLifelineFd) < 0) _exit(127);
    // A kept-alive connection leaked into the successor would never end here.
    CloseOnExecFrom(kLifelineFd + 1);
    ::execve(exe.c_str(), argp.data(), envp.data());
    _exit(127);
  }
  const int err = errno;
  ::close(listener);
  ::close(lifeline_in);
  if (pid < 0) {
    ::close(pipe_fds[1]);
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(err)));
  }
  return Successor{pid, pipe_fds[1]};
}

Predecessor TakePredecessor() {
  Predecessor p;
  const char* pid = std::getenv(kPidVar);
  const char* fd = std::getenv(kFdVar);
  int64_t v = 0, f = 0;
  if (fd != nullptr && absl::SimpleAtoi(fd, &f) && f == kLifelineFd &&
      ::fcntl(kLifelineFd, F_GETFD) >= 0) {
    p.lifeline = kLifelineFd;
    ::fcntl(kLifelineFd, F_SETFD, FD_CLOEXEC);
  }
  if (pid != nullptr && absl::SimpleAtoi(pid, &v) && v > 1 && v == ::getppid()) {
    p.pid = static_cast<pid_t>(v);
  }
  ::unsetenv(kPidVar);
  ::unsetenv(kFdVar);
  return p;
}

absl::StatusOr<absl::Duration> RetirePredecessor(const Predecessor& p, absl::Duration wait) {
  const absl::Time start = absl::Now();
  if (p.pid > 1 && ::kill(p.pid, SIGTERM) != 0 && errno != ESRCH) {
    return absl::InternalError(absl::StrCat("kill ", p.pid, ": ", std::strerror(errno)));
  }
  if (p.lifeline < 0) return absl::Now() - start;
  const absl::Time deadline = start + wait;
  for (;;) {
    const int64_t left = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (left <= 0) {
      return absl::DeadlineExceededError(
          absl::StrCat("pid ", p.pid, " still running after ", absl::FormatDuration(wait)));
    }
    pollfd pfd{p.lifeline, POLLIN, 0};
    const int r = ::poll(&pfd, 1, static_cast<int>(std::min<int64_t>(left, 1000)));
    if (r < 0 && errno != EINTR) {
      return absl::InternalError(absl::StrCat("poll: ", std::strerror(errno)));
    }
    if (r > 0) {
      char byte;
      const ssize_t n = ::read(p.lifeline, &byte, 1);
      if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) break;  // the writer is gone
    }
  }
  ::close(p.lifeline);
  return absl::Now() - start;
}

}  // namespace faasd
