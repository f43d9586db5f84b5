// The OpenFaaS provider types, with the exact JSON field names faas-cli and the UI speak
// (see shared/openfaas-api.md). Pure data: no I/O, safe to copy between threads.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace faasd::provider {

inline constexpr char kDefaultNamespace[] = "openfaas-fn";

struct FunctionResources {
  std::string memory;  // Kubernetes quantity: "128Mi", "1G"
  std::string cpu;     // Kubernetes quantity: "500m", "2"
  bool empty() const { return memory.empty() && cpu.empty(); }
};

struct FunctionDeployment {
  std::string service;
  std::string image;
  std::string namespace_;  // "" means kDefaultNamespace
  std::string env_process;
  std::map<std::string, std::string> env_vars;
  std::vector<std::string> constraints;
  std::vector<std::string> secrets;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  std::optional<FunctionResources> limits;
  std::optional<FunctionResources> requests;
  bool read_only_root_filesystem = false;
};

// A function namespace as the API carries it (FunctionNamespace upstream).
struct FunctionNamespace {
  std::string name;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
};
// Parses a FunctionNamespace body. InvalidArgument names a field of the wrong type.
absl::StatusOr<FunctionNamespace> ParseNamespace(std::string_view body);
nlohmann::json ToJson(const FunctionNamespace& ns);

// A function secret as the API carries it. `raw_value` (JSON "rawValue", base64 on the wire)
// wins over `value` when non-empty, as upstream.
struct Secret {
  std::string name;
  std::string namespace_;  // "" means kDefaultNamespace
  std::string value;
  std::string raw_value;
  const std::string& bytes() const { return raw_value.empty() ? value : raw_value; }
};

// The most a secret may hold.
inline constexpr size_t kMaxSecretBytes = 512 * 1024;

// Parses a Secret request body (POST/PUT/DELETE /system/secrets). InvalidArgument names the bad
// field: a non-string value, rawValue that is not base64. Names are checked by ValidateName.
absl::StatusOr<Secret> ParseSecret(std::string_view body);

// A scale request body (ScaleServiceRequest upstream: {"serviceName", "namespace",
// "replicas"}; the function's name comes from the path).
struct ScaleRequest {
  std::string namespace_;  // "" means: the query's, else kDefaultNamespace
  uint64_t replicas = 0;
};
// InvalidArgument for a body that is not a JSON object, a non-string namespace, or replicas
// missing or not a non-negative integer.
absl::StatusOr<ScaleRequest> ParseScaleRequest(std::string_view body);

struct FunctionUsage {
  double cpu = 0;
  double total_memory_bytes = 0;
};

// The most recent exit of one of a function's replicas while the daemon ran (kept in memory:
// a restart of the daemon forgets it). JSON "lastExit", beside the upstream fields.
struct ReplicaExit {
  std::string instance;  // the replica's container id
  uint32_t exit_code = 0;
  bool oom_killed = false;  // the kernel's OOM killer, over limits.memory
  absl::Time exited_at;
  int restarts_in_a_row = 0;
};

struct FunctionStatus {
  std::string name;
  std::string image;
  std::string namespace_;
  std::string env_process;
  std::map<std::string, std::string> env_vars;
  std::vector<std::string> constraints;
  std::vector<std::string> secrets;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  std::optional<FunctionResources> limits;
  std::optional<FunctionResources> requests;
  bool read_only_root_filesystem = false;
  double invocation_count = 0;
  uint64_t replicas = 0;
  uint64_t available_replicas = 0;
  std::string created_at;  // RFC3339
  std::optional<FunctionUsage> usage;
  std::optional<ReplicaExit> last_exit;
};

// Parses a FunctionDeployment request body. InvalidArgument names the bad field.
// Does not validate names or images: see ValidateDeployment.
absl::StatusOr<FunctionDeployment> ParseDeployment(std::string_view body);

inline constexpr int64_t kMinMemoryLimit = 4 << 20;
inline constexpr int64_t kMinCpuLimitMillis = 10;
// Checks service name, namespace, image, env names (no '=', newline or control character),
// label and annotation keys (non-empty, no control character, key + value within containerd's
// label size), quantities and their kernel bounds (limits.memory >= 4Mi, limits.cpu >= 10m),
// secret names. InvalidArgument names the field and the cause.
absl::Status ValidateDeployment(const FunctionDeployment& d);
// DNS-label rule shared by functions, secrets and namespaces: [a-z0-9]([-a-z0-9]*[a-z0-9])?,
// at most 63 characters. `what` names the thing in the error ("function name").
absl::Status ValidateName(std::string_view what, std::string_view name);

// A time as the API writes it: RFC 3339 in UTC, with as many fraction digits as it has
// ("2026-11-29T05:24:37.5Z").
std::string Rfc3339(absl::Time t);

nlohmann::json ToJson(const FunctionDeployment& d);
nlohmann::json ToJson(const FunctionStatus& s);  // omits empty/zero fields, as upstream
FunctionStatus StatusFromDeployment(const FunctionDeployment& d);

}  // namespace faasd::provider
