// The CNI wire protocol, as pure functions so it can be tested without plugins: the conflist we
// write, the stdin and environment each plugin gets, how a plugin's error JSON becomes an
// absl::Status, and how the container's address is read from a result. Private to src/network.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "network/cni_network.h"
#include "network/process.h"
#include "network/subnet.h"
#include "nlohmann/json.hpp"

namespace faasd::network {

inline constexpr char kCniVersion[] = "1.0.0";

// The conflist for `config`: bridge (gateway, hairpin; no per-container masquerade: see
// masquerade.h) with host-local IPAM over the whole subnet, then config.extra_plugins.
nlohmann::json BuildConflist(const CniConfig& config, const Ipv4Subnet& subnet);

// What a plugin reads on stdin: its own entry of the conflist plus the list's `name` and
// `cniVersion`, and `prevResult` when there is one (ADD after the first plugin, every DEL with
// a cached result).
nlohmann::json PluginStdin(const nlohmann::json& conflist, const nlohmann::json& plugin,
                           const nlohmann::json* prev_result);

struct PluginCall {
  std::string command;  // ADD, DEL, CHECK
  std::string container_id;
  std::string netns;  // may be empty for DEL
  std::string ifname;
  std::vector<std::string> plugin_dirs;  // becomes CNI_PATH
  std::string cni_args;                  // optional CNI_ARGS
};

// The plugin's whole environment. `path_env` is passed through as PATH because bridge and
// firewall exec iptables by name.
std::vector<std::string> PluginEnv(const PluginCall& call, absl::string_view path_env);

// Turns a plugin's exit into a Status. Exit 0 is OK. Otherwise the error JSON
// {code, msg, details} on stdout gives the message, falling back to stderr when stdout is not
// JSON. `what` names the call, e.g. "cni bridge ADD container abc".
absl::Status PluginExitStatus(absl::string_view what, const ProcessOutput& output);

// Parses a successful ADD's stdout; an empty stdout is an error for ADD.
absl::StatusOr<nlohmann::json> ParseAddResult(absl::string_view what,
                                              absl::string_view stdout_data);

// The container's IPv4 address (no prefix) from an ADD result of CNI 0.4.0 or 1.0.0: the first
// IPv4 entry of `ips` that belongs to an interface inside the sandbox, else the first IPv4 entry.
absl::StatusOr<std::string> ContainerIpv4(const nlohmann::json& result);

// CNI container IDs are alphanumerics plus `_.-`, starting with an alphanumeric; we also use them
// as file names in cache_dir, so anything else is refused.
absl::Status ValidateContainerId(absl::string_view container_id);

// Finds `type` as an executable in `dirs`, in order. NotFound names the plugin and the dirs.
absl::StatusOr<std::string> FindPlugin(absl::string_view type,
                                       const std::vector<std::string>& dirs);

}  // namespace faasd::network
