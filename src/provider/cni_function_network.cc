#include "provider/cni_function_network.h"

#include "network/netns.h"

namespace faasd::provider {

absl::StatusOr<std::string> CniFunctionNetwork::Attach(const std::string& container_id,
                                                       const std::string& netns_path) {
  return cni_.Attach(container_id, netns_path);
}

absl::Status CniFunctionNetwork::Detach(const std::string& container_id,
                                        const std::string& netns_path) {
  return cni_.Detach(container_id, netns_path);
}

std::optional<std::string> CniFunctionNetwork::LookupIp(const std::string& container_id) const {
  return cni_.LookupIp(container_id);
}

std::vector<std::string> CniFunctionNetwork::AttachedContainers() const {
  return cni_.AttachedContainers();
}

std::string CniFunctionNetwork::GatewayIp() const { return cni_.GatewayIp(); }

absl::Status CniFunctionNetwork::CreateNetns(const std::string& path) {
  return network::CreateNetns(path);
}

absl::Status CniFunctionNetwork::DeleteNetns(const std::string& path) {
  return network::DeleteNetns(path);
}

bool CniFunctionNetwork::IsNetns(const std::string& path) const { return network::IsNetns(path); }

}  // namespace faasd::provider
