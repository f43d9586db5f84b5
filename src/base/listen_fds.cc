#include "base/listen_fds.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace faasd {

absl::StatusOr<int> ParseListenFds(const char* listen_pid, const char* listen_fds, pid_t self) {
  if (listen_pid == nullptr || listen_fds == nullptr) return -1;
  int64_t pid = 0, n = 0;
  if (!absl::SimpleAtoi(listen_pid, &pid) || pid <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("LISTEN_PID=", listen_pid, ": not a pid"));
  }
  if (pid != self) return -1;  // meant for the process that exec'd us, not for us
  if (!absl::SimpleAtoi(listen_fds, &n) || n < 0) {
    return absl::InvalidArgumentError(absl::StrCat("LISTEN_FDS=", listen_fds, ": not a count"));
  }
  if (n == 0) return -1;
  if (n != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("LISTEN_FDS=", n, ": faasd serves one socket (faasd.socket has one)"));
  }
  return kListenFdsStart;
}

absl::StatusOr<int> TakeListenFd() {
  absl::StatusOr<int> fd =
      ParseListenFds(std::getenv("LISTEN_PID"), std::getenv("LISTEN_FDS"), ::getpid());
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_FDNAMES");
  if (fd.ok() && *fd >= 0) {
    const int flags = ::fcntl(*fd, F_GETFD);
    if (flags < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("LISTEN_FDS: fd ", *fd, " is not open"));
    }
    ::fcntl(*fd, F_SETFD, flags | FD_CLOEXEC);
  }
  return fd;
}

}  // namespace faasd
