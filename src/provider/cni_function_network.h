// The FunctionNetwork on CNI: addresses from network::CniNetwork (the bridge's plugins and
// their cache), namespaces pinned by bind mounts (network/netns.h). Root only. Thread-safe;
// borrows the CniNetwork.
#pragma once

#include "network/cni_network.h"
#include "provider/network.h"

namespace faasd::provider {

class CniFunctionNetwork final : public FunctionNetwork {
 public:
  explicit CniFunctionNetwork(network::CniNetwork& cni) : cni_(cni) {}

  absl::StatusOr<std::string> Attach(const std::string& container_id,
                                     const std::string& netns_path) override;
  absl::Status Detach(const std::string& container_id, const std::string& netns_path) override;
  std::optional<std::string> LookupIp(const std::string& container_id) const override;
  std::vector<std::string> AttachedContainers() const override;
  std::string GatewayIp() const override;

  absl::Status CreateNetns(const std::string& path) override;
  absl::Status DeleteNetns(const std::string& path) override;
  bool IsNetns(const std::string& path) const override;

 private:
  network::CniNetwork& cni_;
};

}  // namespace faasd::provider
