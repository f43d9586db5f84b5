// Socket activation: the listening socket systemd (faasd.socket) or a test passes to the
// daemon, so connections queue in it while the daemon restarts.
//
// This is sd_listen_fds(3)'s protocol, written out here rather than linked from libsystemd:
// Debian ships libsystemd only as a shared library, and faasd links statically what it can.
// The protocol: LISTEN_PID is our pid, LISTEN_FDS the number of sockets, which start at fd 3
// (SD_LISTEN_FDS_START); LISTEN_FDNAMES (optional) names them. faasd takes exactly one.
#pragma once

#include <sys/types.h>

#include "absl/status/statusor.h"

namespace faasd {

inline constexpr int kListenFdsStart = 3;

// The inherited fd from the variables' values (nullptr when unset) for process `self`: -1 when
// the variables are absent or meant for another process; InvalidArgument when malformed or
// when they pass other than one socket.
absl::StatusOr<int> ParseListenFds(const char* listen_pid, const char* listen_fds, pid_t self);

// ParseListenFds on this process's environment; then unsets LISTEN_PID, LISTEN_FDS and
// LISTEN_FDNAMES (children must not take the socket for theirs) and marks the fd close-on-exec.
absl::StatusOr<int> TakeListenFd();

}  // namespace faasd
