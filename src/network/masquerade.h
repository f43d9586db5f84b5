// The iptables state of the function network.
//
// Masquerade and forwarding are set up once per network, for the whole subnet, by
// EnsureSubnetRules: a chain FAASD-<8 hex of the network name> in nat (traffic from the subnet
// to anywhere but the subnet or multicast is masqueraded) and in filter (forwarding from the
// subnet, and back for established connections), with one jump from POSTROUTING and one from
// FORWARD. The conflist therefore runs the bridge plugin without ipMasq and no firewall plugin:
// with iptables-nft each of their per-container rules costs several iptables runs, each of
// which reads the whole ruleset. Measured on this 2-core box: a CNI ADD took 330-500 ms with
// ipMasq + firewall and 60-80 ms without (bench/provider-results.md has the effect on deploy
// time at 1,000 functions).
//
// Cleanup for the bridge plugin's IP masquerade state left by earlier versions, which ran it
// with ipMasq. The bridge plugin (1.1.x) removes its
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

// "FAASD-" + 8 hex digits (FNV-1a of the network name): the chain of the network's rules.
std::string SubnetChainName(absl::string_view network_name);

// Makes sure the network's masquerade and forwarding rules exist (see above); adds only what
// is missing, so it is cheap and idempotent at every start. `path_env` is searched for
// iptables; FailedPrecondition when there is none (functions could not reach past the host).
absl::Status EnsureSubnetRules(absl::string_view network_name, absl::string_view subnet,
                               absl::string_view path_env, absl::Duration timeout);

// Lists nat POSTROUTING and deletes what FindMasqueradeLeftovers picks, with their chains.
// `path_env` is searched for iptables; without iptables there is nothing to clean (OK).
absl::Status RemoveMasqueradeLeftovers(absl::string_view network_name,
                                       absl::string_view container_id, absl::string_view path_env,
                                       absl::Duration timeout);

}  // namespace faasd::network
