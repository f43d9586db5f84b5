// The OCI runtime spec for a function container: containerd's default Linux spec (namespaces,
// mounts, masked paths, default capabilities + CAP_NET_RAW as faasd grants), filled from the
// image config and the FunctionDeployment. Pure functions: unit-tested without containerd.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "provider/types.h"

namespace faasd::provider {

struct ProcessUser {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> additional_gids;
};

// Resolves an image's "user" field ("", "1000", "1000:1000", "app", "app:app") against the
// rootfs's /etc/passwd and /etc/group contents. NotFound names the missing user or group.
absl::StatusOr<ProcessUser> ResolveUser(std::string_view user, std::string_view passwd,
                                        std::string_view group);

// Image env, then deployment envVars (override by name), then fprocess=envProcess.
// A PATH is added when neither sets one.
std::vector<std::string> MergeEnv(const std::vector<std::string>& image_env,
                                  const FunctionDeployment& d);

// A host path bind-mounted into the container (a service's `volumes:` entry).
struct BindMount {
  std::string source;       // host path
  std::string destination;  // path in the container
  bool read_only = false;
};

struct SpecInputs {
  std::string cgroups_path;  // "/openfaas-fn/echo-1a2b3c4d"
  std::string hostname;
  std::vector<std::string> args;  // entrypoint + cmd, already resolved
  std::vector<std::string> env;
  std::string cwd = "/";
  ProcessUser user;
  std::string hosts_file;        // host path bind-mounted read-only at /etc/hosts
  std::string resolv_conf_file;  // host path bind-mounted read-only at /etc/resolv.conf
  std::string secrets_dir;  // host dir bind-mounted read-only at /var/openfaas/secrets; "" none
  int64_t memory_limit_bytes = 0;  // 0 = none
  int64_t cpu_limit_millis = 0;    // 0 = none
  int64_t cpu_request_millis = 0;  // 0 = default shares
  bool read_only_rootfs = false;   // also mounts a tmpfs on /tmp
  std::string netns_path;          // join this network namespace; "" = a new one
  uint64_t nofile_limit = 1024;    // RLIMIT_NOFILE soft = hard; must not exceed the daemon's hard
  std::vector<BindMount> binds;    // after the mounts above
  std::vector<std::string> extra_capabilities;  // "CAP_NET_ADMIN": beside the default set
};

// The spec as JSON, ready for containerd's Container.spec (type
// "types.containerd.io/opencontainers/runtime-spec/1/Spec").
absl::StatusOr<std::string> BuildRuntimeSpec(const SpecInputs& in);

// Entrypoint + cmd of the image; InvalidArgument when both are empty.
absl::StatusOr<std::vector<std::string>> ProcessArgs(const std::vector<std::string>& entrypoint,
                                                     const std::vector<std::string>& cmd);

}  // namespace faasd::provider
