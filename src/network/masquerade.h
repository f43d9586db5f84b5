// Cleanup for the bridge plugin's IP masquerade state. The bridge plugin (1.1.x) removes its
// per-container POSTROUTING rule and CNI-<hash> chain only when it can still see the container's
// interface: with the namespace gone (CNI_NETNS empty or stale, the usual case once a task has
// died) it frees the IP but leaves both behind, one pair per function restart. The plugin tags
// them with the comment `name: "<network>" id: "<container>"`, which is how we find them.
// Private to src/network.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace faasd::network {

// Splits one `iptables -S` line into arguments, undoing its double quotes and \" escapes.
std::vector<std::string> SplitIptablesRule(absl::string_view line);

struct MasqueradeLeftover {
  std::vector<std::string> rule;  // the POSTROUTING rule as `-D POSTROUTING ...` arguments
  std::string chain;              // the CNI-<hash> chain it jumps to ("" when none)
};

// Picks the rules tagged for (network, container) out of `iptables -t nat -S POSTROUTING`.
std::vector<MasqueradeLeftover> FindMasqueradeLeftovers(absl::string_view postrouting,
                                                        absl::string_view network_name,
                                                        absl::string_view container_id);

// Lists nat POSTROUTING and deletes what FindMasqueradeLeftovers picks, with their chains.
// `path_env` is searched for iptables; without iptables there is nothing to clean (OK).
absl::Status RemoveMasqueradeLeftovers(absl::string_view network_name,
                                       absl::string_view container_id, absl::string_view path_env,
                                       absl::Duration timeout);

}  // namespace faasd::network
