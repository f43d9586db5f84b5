// Restart without refusing a connection, where no systemd holds the socket for us (the way
// nginx and HAProxy upgrade a running binary): on SIGUSR2 the daemon starts its successor — the
// binary now at its own path, with its own arguments — and hands it the listening socket as
// socket activation does (LISTEN_FDS, fd 3). Both accept from that one socket while the
// successor starts. Once it serves, the successor sends its predecessor SIGTERM; the
// predecessor closes its copy of the listener, finishes the requests it holds (the shutdown
// grace) and exits. Connections that arrive meanwhile queue in the socket, so none is refused.
//
// The successor learns who to retire from FAASD_HANDOVER_PID and gets the read end of a pipe
// (FAASD_HANDOVER_FD, fd 4) whose write end only the predecessor holds: end of file there means
// the predecessor is gone, zombie or not, so the successor starts its background work (service
// supervisor, autoscaler) only then and never runs it twice over.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace faasd {

// Process `pid`'s executable path as the kernel knows it, without the " (deleted)" suffix an
// upgraded binary leaves; "" when unreadable. For this process: the path the successor runs
// (read it early, before an upgrade replaces the file).
std::string ExecutableOf(pid_t pid);

struct Successor {
  pid_t pid = -1;
  int lifeline = -1;  // write end of the pipe: held open until this process exits
};

// Forks and execs `exe` with `argv` and this process's environment, `listen_fd` passed as fd 3
// (LISTEN_FDS=1, LISTEN_PID the child's pid) and the lifeline's read end as fd 4. The
// successor is a child of this process: reap it with waitpid(pid, WNOHANG) on SIGCHLD.
absl::StatusOr<Successor> StartSuccessor(const std::string& exe,
                                         const std::vector<std::string>& argv, int listen_fd);

struct Predecessor {
  pid_t pid = -1;  // -1: this process was not started by a handover
  int lifeline = -1;
};

// The handover variables of this process's environment (unset afterwards, so children never
// see them). A pid that is not our parent is ignored: the variables were not meant for us.
Predecessor TakePredecessor();

// Sends the predecessor SIGTERM and waits, at most `wait`, for it to exit. Returns how long it
// took; DeadlineExceeded when it is still there after `wait`.
absl::StatusOr<absl::Duration> RetirePredecessor(const Predecessor& p, absl::Duration wait);

}  // namespace faasd
