// The network a function's replicas join: each container gets a network namespace pinned at a
// path the provider chooses, and an address on the functions' bridge inside it.
// CniFunctionNetwork is the real one (CNI plugins and bind-mounted namespaces, root only); the
// unit tests hold one that hands out addresses from memory.
//
// Contract: Attach returns the container's IPv4 address (no prefix) and leaks nothing when it
// fails; Detach is idempotent and works without the namespace (netns_path ""); LookupIp and
// AttachedContainers answer from what was recorded, so they survive a daemon restart.
// CreateNetns fails with AlreadyExists when `path` is pinned already; DeleteNetns is OK when
// there is nothing at `path`. Implementations are thread-safe.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace faasd::provider {

class FunctionNetwork {
 public:
  virtual ~FunctionNetwork() = default;

  virtual absl::StatusOr<std::string> Attach(const std::string& container_id,
                                             const std::string& netns_path) = 0;
  virtual absl::Status Detach(const std::string& container_id, const std::string& netns_path) = 0;
  virtual std::optional<std::string> LookupIp(const std::string& container_id) const = 0;
  virtual std::vector<std::string> AttachedContainers() const = 0;
  // The bridge's own address: the functions' way to the host ("gateway" in /etc/hosts).
  virtual std::string GatewayIp() const = 0;

  // Network namespaces pinned at a path (the parent folder exists).
  virtual absl::Status CreateNetns(const std::string& path) = 0;
  virtual absl::Status DeleteNetns(const std::string& path) = 0;
  // True when `path` is a pinned namespace (not a leftover plain file, not nothing).
  virtual bool IsNetns(const std::string& path) const = 0;
};

}  // namespace faasd::provider
