// What the service supervisor knows of each service it runs, as the gateway's
// GET /system/services shows it. Pure types, no containerd: the gateway reads them through
// StatusSource without linking the supervisor (services.h's ServiceSupervisor is the real one).
//
// The states, and what moves a service between them:
//   starting    listed in services.yaml; its container is being made, replaced or adopted
//               (or it waits for what it depends_on)
//   running     its task runs (started, or adopted from before a daemon restart)
//   restarting  its task exited, or did not start, and a restart is due at restart_at
//   stopped     its task exited with status 0 and its policy (on-failure, no) says no restart
//   failed      its task exited with another status and its policy (no) says no restart
// `since` is when it entered the state as this daemon saw it: for an adopted task, the
// adoption, not the task's start.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace faasd::services {

enum class ServiceState { kStarting, kRunning, kRestarting, kStopped, kFailed };

inline const char* StateName(ServiceState s) {
  // In ServiceState's order.
  constexpr const char* kNames[] = {"starting", "running", "restarting", "stopped", "failed"};
  return kNames[static_cast<int>(s)];
}

// How a task ended, or why it did not start.
struct ServiceExit {
  std::optional<uint32_t> code;  // the task's exit status; none when it did not start
  std::string reason;  // "exited with status 1", "killed by signal 9", "did not start: …"
  absl::Time at;
};

struct PublishedPort {
  std::string host_ip;
  int host_port = 0;
  int container_port = 0;
  std::string protocol;  // tcp | udp
};

struct ServiceStatus {
  std::string name;
  std::string image;           // as services.yaml names it
  std::string restart_policy;  // always | on-failure | no
  ServiceState state = ServiceState::kStarting;
  absl::Time since;
  uint32_t pid = 0;  // of the running task; 0 when none
  std::string ip;    // on the functions' bridge; "" before the first start
  int restarts = 0;  // since its container was made
  absl::Time restart_at = absl::InfiniteFuture();  // when restarting: the restart is due then
  std::optional<ServiceExit> last_exit;            // since this daemon started
  std::vector<PublishedPort> ports;
};

// A task's exit status as people read it: runc reports a task killed by signal N as 128 + N.
inline std::string ExitReason(uint32_t status) {
  if (status > 128 && status < 128 + 65) return "killed by signal " + std::to_string(status - 128);
  return "exited with status " + std::to_string(status);
}

// The services in name order. Thread-safe: called from the gateway's threads.
class StatusSource {
 public:
  virtual ~StatusSource() = default;
  virtual std::vector<ServiceStatus> Statuses() const = 0;
};

}  // namespace faasd::services
