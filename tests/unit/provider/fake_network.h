// An in-memory FunctionNetwork: addresses 10.62.0.2, .3, ... handed out in order, and
// "pinned" namespaces that are plain files at their path (so the provider's look at its netns
// folder sees them) recorded in a set. Attach wants a pinned namespace (or a /proc one), as
// the CNI plugins do. Thread-safe.
#pragma once

#include <map>
#include <set>
#include <string>

#include "absl/synchronization/mutex.h"
#include "provider/network.h"

namespace faasd::provider::testing {

class FakeNetwork final : public FunctionNetwork {
 public:
  absl::StatusOr<std::string> Attach(const std::string& container_id,
                                     const std::string& netns_path) override;
  absl::Status Detach(const std::string& container_id, const std::string& netns_path) override;
  std::optional<std::string> LookupIp(const std::string& container_id) const override;
  std::vector<std::string> AttachedContainers() const override;
  std::string GatewayIp() const override { return "10.62.0.1"; }

  absl::Status CreateNetns(const std::string& path) override;
  absl::Status DeleteNetns(const std::string& path) override;
  bool IsNetns(const std::string& path) const override;

  // ---- what a test reads ----
  size_t Namespaces() const;  // pinned ones
  int Attaches() const;       // successful Attach calls

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, std::string> ips_ ABSL_GUARDED_BY(mu_);  // by container id
  std::set<std::string> netns_ ABSL_GUARDED_BY(mu_);
  int next_host_ ABSL_GUARDED_BY(mu_) = 2;
  int attaches_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace faasd::provider::testing
