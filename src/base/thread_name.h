// Names the calling thread, as top -H, ps -L and /proc/PID/task/*/comm show it (at most 15
// bytes are kept), so that the daemon's own threads can be told from gRPC's and counted by role.
#pragma once

#include <sys/prctl.h>

namespace faasd {

inline void NameThisThread(const char* name) { ::prctl(PR_SET_NAME, name, 0, 0, 0); }

}  // namespace faasd
