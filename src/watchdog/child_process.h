// Child processes for fwatchdog: spawn `fprocess` in its own process group with piped stdio,
// wait for it with a deadline (pidfd), kill the whole group, and turn its output into log
// lines. Private to src/watchdog.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "watchdog/http_io.h"

namespace faasd::watchdog {

struct SpawnOptions {
  std::vector<std::string> argv;
  std::vector<std::string> env;  // full environment (KEY=VALUE)
  bool pipe_stdin = true;        // else /dev/null
  bool merge_stderr = false;     // stderr into the stdout pipe
};

// A running child. Pipe fds are non-blocking only where noted; all are close-on-exec in the
// parent so concurrently spawned children never inherit each other's pipes.
class Child {
 public:
  Child() = default;
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  int stdin_fd() const { return stdin_fd_; }
  int stdout_fd() const { return stdout_fd_; }
  int stderr_fd() const { return stderr_fd_; }
  int pidfd() const { return pidfd_; }
  void CloseStdin();
  void CloseStdout();
  void CloseStderr();

  // SIGKILL (or sig) to the child's whole process group.
  void KillGroup(int sig) const;
  // Waits for exit until the deadline; returns the wait status, or nullopt at the deadline.
  std::optional<int> Wait(Clock::time_point deadline);
  bool exited() const { return reaped_; }

 private:
  friend absl::StatusOr<std::unique_ptr<Child>> SpawnChild(const SpawnOptions& options);
  pid_t pid_ = -1;
  int pidfd_ = -1;
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  int stderr_fd_ = -1;
  bool reaped_ = false;
  int status_ = 0;
};

absl::StatusOr<std::unique_ptr<Child>> SpawnChild(const SpawnOptions& options);

// Splits fprocess on spaces (empty pieces dropped), as upstream's strings.Split.
std::vector<std::string> SplitProcess(const std::string& fprocess);

// "exit status 3" / "signal: killed", as Go's exec.ExitError reads.
std::string DescribeWaitStatus(int status);

// Cuts a byte stream into lines and logs each as "<time> <stream>: line" (or the bare line when
// prefix is false). Lines longer than max are split. Not thread-safe: one per stream.
class LineLogger {
 public:
  LineLogger(const char* stream, bool prefix, size_t max)
      : stream_(stream), prefix_(prefix), max_(max) {}
  ~LineLogger() { Flush(); }
  void Feed(absl::string_view data);
  void Flush();

 private:
  void Emit(absl::string_view line);
  const char* stream_;
  bool prefix_;
  size_t max_;
  std::string pending_;
};

// The watchdog's own log line, Go log style: "2006/01/02 15:04:05 message".
void WatchdogLog(absl::string_view message);

}  // namespace faasd::watchdog
