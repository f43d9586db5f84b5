#include "watchdog/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"

namespace faasd::watchdog {
namespace {

void CloseFd(int* fd) {
  if (*fd >= 0) ::close(*fd);
  *fd = -1;
}

std::string TimePrefix() {
  char out[32];
  time_t now = ::time(nullptr);
  struct tm tm;
  ::localtime_r(&now, &tm);
  size_t n = std::strftime(out, sizeof(out), "%Y/%m/%d %H:%M:%S ", &tm);
  return std::string(out, n);
}

void WriteStderr(absl::string_view line) {
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    p += n;
    left -= static_cast<size_t>(n);
  }
}

}  // namespace

void WatchdogLog(absl::string_view message) {
  WriteStderr(absl::StrCat(TimePrefix(), message, "\n"));
}

void LineLogger::Emit(absl::string_view line) {
  if (prefix_) {
    WriteStderr(absl::StrCat(TimePrefix(), stream_, ": ", line, "\n"));
  } else {
    WriteStderr(absl::StrCat(line, "\n"));
  }
}

void LineLogger::Feed(absl::string_view data) {
  while (!data.empty()) {
    size_t nl = data.find('\n');
    if (nl == absl::string_view::npos) {
      pending_.append(data.data(), data.size());
      while (pending_.size() >= max_) {
        Emit(absl::string_view(pending_).substr(0, max_));
        pending_.erase(0, max_);
      }
      return;
    }
    pending_.append(data.data(), nl);
    data.remove_prefix(nl + 1);
    absl::string_view all = pending_;
    while (all.size() > max_) {
      Emit(all.substr(0, max_));
      all.remove_prefix(max_);
    }
    Emit(all);
    pending_.clear();
  }
}

void LineLogger::Flush() {
  if (!pending_.empty()) Emit(pending_);
  pending_.clear();
}

std::vector<std::string> SplitProcess(const std::string& fprocess) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < fprocess.size()) {
    size_t j = fprocess.find(' ', i);
    if (j == std::string::npos) j = fprocess.size();
    if (j > i) out.push_back(fprocess.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exit status ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    const char* name = sig == SIGKILL ? "killed" : ::strsignal(sig);
    return absl::StrCat("signal: ", name != nullptr ? name : std::to_string(sig).c_str());
  }
  return absl::StrCat("wait status ", status);
}

Child::~Child() {
  CloseStdin();
  CloseStdout();
  CloseStderr();
  if (pid_ > 0 && !reaped_) {
    // Never leave a zombie or an orphan group behind.
    KillGroup(SIGKILL);
    int status;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  CloseFd(&pidfd_);
}

void Child::CloseStdin() { CloseFd(&stdin_fd_); }
void Child::CloseStdout() { CloseFd(&stdout_fd_); }
void Child::CloseStderr() { CloseFd(&stderr_fd_); }

void Child::KillGroup(int sig) const {
  if (pid_ <= 0 || reaped_) return;
  if (::kill(-pid_, sig) < 0) ::kill(pid_, sig);
}

std::optional<int> Child::Wait(Clock::time_point deadline) {
  if (reaped_) return status_;
  while (true) {
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      status_ = status;
      return status;
    }
    if (r < 0 && errno != EINTR) {
      reaped_ = true;  // not our child any more (should not happen)
      status_ = 0;
      return status_;
    }
    if (r < 0) continue;
    int timeout_ms = -1;
    if (deadline != kNoDeadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return std::nullopt;
      timeout_ms = static_cast<int>(std::min<int64_t>(left.count() + 1, 1 << 30));
    }
    if (pidfd_ >= 0) {
      pollfd p{pidfd_, POLLIN, 0};
      ::poll(&p, 1, timeout_ms);
    } else {
      // No pidfd (old kernel): bounded short waits until the deadline.
      struct timespec ts {
        0, 2 * 1000 * 1000
      };
      ::nanosleep(&ts, nullptr);
    }
  }
}

absl::StatusOr<std::unique_ptr<Child>> SpawnChild(const SpawnOptions& options) {
  if (options.argv.empty()) return absl::InvalidArgumentError("spawn: empty command");
  auto child = std::make_unique<Child>();
  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
  auto close_all = [&] {
    for (int* fd : {&in[0], &in[1], &out[0], &out[1], &err[0], &err[1]}) CloseFd(fd);
  };
  if ((options.pipe_stdin && ::pipe2(in, O_CLOEXEC) < 0) || ::pipe2(out, O_CLOEXEC) < 0 ||
      (!options.merge_stderr && ::pipe2(err, O_CLOEXEC) < 0)) {
    std::string why = std::strerror(errno);
    close_all();
    return absl::InternalError(absl::StrCat("spawn ", options.argv[0], ": pipe: ", why));
  }

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (options.pipe_stdin) {
    posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
  } else {
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  }
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, options.merge_stderr ? out[1] : err[1], STDERR_FILENO);

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);  // we ignore it; the function must not inherit that
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGINT);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);  // own group: exec_timeout kills the whole tree
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_USEVFORK);

  std::vector<char*> argv, envp;
  for (const std::string& a : options.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const std::string& e : options.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, argv[0], &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    close_all();
    return absl::FailedPreconditionError(
        absl::StrCat("spawn ", options.argv[0], ": ", std::strerror(rc)));
  }
  CloseFd(&in[0]);
  CloseFd(&out[1]);
  CloseFd(&err[1]);
  child->pid_ = pid;
  child->stdin_fd_ = in[1];
  child->stdout_fd_ = out[0];
  child->stderr_fd_ = err[0];
  child->pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (child->pidfd_ >= 0) ::fcntl(child->pidfd_, F_SETFD, FD_CLOEXEC);
  return child;
}

}  // namespace faasd::watchdog
