#include "network/process.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/fs.h"

namespace faasd::network {
namespace {

// Owns a file descriptor; closes it once.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Reset(); }
  int get() const { return fd_; }
  void Reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

absl::Status ErrnoError(const std::string& what, int err) {
  return absl::InternalError(absl::StrCat(what, ": ", strerror(err)));
}

// Child side between fork and exec: async-signal-safe calls only.
[[noreturn]] void ExecChild(int in_fd, int out_fd, int err_fd, int report_fd, const char* path,
                            char* const argv[], char* const envp[]) {
  // A plugin must not die of a signal disposition the daemon chose for itself.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigaction(SIGPIPE, &dfl, nullptr);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);

  if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0) {
    int err = errno;
    (void)!write(report_fd, &err, sizeof(err));
    _exit(127);
  }
  // Descriptors other threads opened without O_CLOEXEC must not leak into the plugin (a leaked
  // listening socket would outlive the daemon). Marking them close-on-exec rather than closing
  // them keeps report_fd usable until exec.
  CloseOnExecFrom(3, report_fd);
  execve(path, argv, envp);
  int err = errno;
  (void)!write(report_fd, &err, sizeof(err));
  _exit(127);
}

}  // namespace

absl::StatusOr<ProcessOutput> RunProcess(const std::string& path,
                                         const std::vector<std::string>& args,
                                         const std::vector<std::string>& env,
                                         const std::string& stdin_data, absl::Duration timeout) {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(path.c_str()));
  for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const std::string& entry : env) envp.push_back(const_cast<char*>(entry.c_str()));
  envp.push_back(nullptr);

  // stdin is a socket so the parent can write with MSG_NOSIGNAL: a plugin that exits without
  // reading its config must produce an error, not a SIGPIPE that kills the daemon.
  int in_pair[2], out_pipe[2], err_pipe[2], report_pipe[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in_pair) != 0) {
    return ErrnoError(absl::StrCat("exec ", path, ": socketpair"), errno);
  }
  Fd in_parent(in_pair[0]), in_child(in_pair[1]);
  if (pipe2(out_pipe, O_CLOEXEC) != 0)
    return ErrnoError(absl::StrCat("exec ", path, ": pipe"), errno);
  Fd out_parent(out_pipe[0]), out_child(out_pipe[1]);
  if (pipe2(err_pipe, O_CLOEXEC) != 0)
    return ErrnoError(absl::StrCat("exec ", path, ": pipe"), errno);
  Fd err_parent(err_pipe[0]), err_child(err_pipe[1]);
  if (pipe2(report_pipe, O_CLOEXEC) != 0) {
    return ErrnoError(absl::StrCat("exec ", path, ": pipe"), errno);
  }
  Fd report_parent(report_pipe[0]), report_child(report_pipe[1]);

  pid_t pid = fork();
  if (pid < 0) return ErrnoError(absl::StrCat("exec ", path, ": fork"), errno);
  if (pid == 0) {
    ExecChild(in_child.get(), out_child.get(), err_child.get(), report_child.get(), path.c_str(),
              argv.data(), envp.data());
  }
  in_child.Reset();
  out_child.Reset();
  err_child.Reset();
  report_child.Reset();

  // The report pipe carries errno if exec failed; EOF means exec succeeded.
  int exec_errno = 0;
  ssize_t n;
  do {
    n = read(report_parent.get(), &exec_errno, sizeof(exec_errno));
  } while (n < 0 && errno == EINTR);
  if (n == sizeof(exec_errno)) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return absl::Status(
        exec_errno == ENOENT ? absl::StatusCode::kNotFound : absl::StatusCode::kFailedPrecondition,
        absl::StrCat("exec ", path, ": ", strerror(exec_errno)));
  }

  fcntl(in_parent.get(), F_SETFL, O_NONBLOCK);
  fcntl(out_parent.get(), F_SETFL, O_NONBLOCK);
  fcntl(err_parent.get(), F_SETFL, O_NONBLOCK);
  size_t written = 0;
  if (stdin_data.empty()) in_parent.Reset();

  ProcessOutput output;
  absl::Time deadline = absl::Now() + timeout;
  bool timed_out = false;
  while (out_parent.get() >= 0 || err_parent.get() >= 0) {
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      timed_out = true;
      break;
    }
    pollfd fds[3];
    int count = 0;
    auto add = [&](const Fd& fd, short events) {
      if (fd.get() >= 0) fds[count++] = pollfd{fd.get(), events, 0};
    };
    add(in_parent, POLLOUT);
    add(out_parent, POLLIN);
    add(err_parent, POLLIN);
    int wait_ms = static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(left) + 1, 1000));
    int ready = poll(fds, count, wait_ms);
    if (ready < 0 && errno != EINTR) {
      kill(pid, SIGKILL);
      int status;
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      return ErrnoError(absl::StrCat("exec ", path, ": poll"), errno);
    }
    if (ready <= 0) continue;
    for (int i = 0; i < count; ++i) {
      if (fds[i].revents == 0) continue;
      if (fds[i].fd == in_parent.get()) {
        ssize_t sent = send(in_parent.get(), stdin_data.data() + written,
                            stdin_data.size() - written, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (sent > 0) written += static_cast<size_t>(sent);
        // EPIPE (the program did not read its stdin) is the program's business.
        if ((sent < 0 && errno != EAGAIN && errno != EINTR) || written == stdin_data.size()) {
          in_parent.Reset();
        }
        continue;
      }
      bool is_out = fds[i].fd == out_parent.get();
      Fd& fd = is_out ? out_parent : err_parent;
      std::string& sink = is_out ? output.stdout_data : output.stderr_data;
      char buf[16384];
      ssize_t got = read(fd.get(), buf, sizeof(buf));
      if (got > 0) {
        size_t room = kMaxCapturedBytes - std::min(kMaxCapturedBytes, sink.size());
        sink.append(buf, std::min(room, static_cast<size_t>(got)));
      } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
        fd.Reset();
      }
    }
  }

  if (timed_out) kill(pid, SIGKILL);
  // Output is closed, so the program is exiting (or has been killed); waiting is bounded except
  // for a program that closed its stdout and stderr yet keeps running: give it until the
  // deadline, then kill it.
  int status = 0;
  while (true) {
    pid_t done = waitpid(pid, &status, timed_out ? 0 : WNOHANG);
    if (done == pid) break;
    if (done < 0 && errno != EINTR)
      return ErrnoError(absl::StrCat("exec ", path, ": waitpid"), errno);
    if (done == 0) {
      if (absl::Now() >= deadline) {
        timed_out = true;
        kill(pid, SIGKILL);
      } else {
        absl::SleepFor(absl::Milliseconds(5));  // polling a child we own, not synchronising
      }
    }
  }
  if (timed_out) {
    return absl::DeadlineExceededError(
        absl::StrCat("exec ", path, ": killed after ", absl::FormatDuration(timeout)));
  }
  output.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return output;
}

}  // namespace faasd::network
