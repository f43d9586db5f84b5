// CNI networking for function containers: puts each container's network namespace on one
// bridge by exec'ing the standard CNI plugins (bridge, host-local), chaining them as a
// conflist the way the CNI spec (1.0.0) describes, without libcni.
//
// Contract:
// - Create() validates the config, finds every plugin binary, writes the conflist (so the
//   `cni` tools and operators see the same network the daemon uses) and makes sure the
//   subnet's masquerade and forwarding rules exist (once per network, not per container).
// - Attach() runs ADD through the chain and returns the container's IPv4 address. Every ADD is
//   recorded in cache_dir before it starts and completed after it succeeds, so a daemon that
//   crashes mid-ADD still finds the container in AttachedContainers() and can Detach it. A
//   failed ADD is undone with DEL before Attach returns, so it leaks no IP.
// - Detach() runs DEL in reverse order with the cached ADD result as prevResult, then forgets
//   the container. It is idempotent, and works without the namespace (the task may be gone).
// - Errors name the plugin, the verb and the container, and carry the plugin's own message.
//
// Thread-safe: operations on different containers run concurrently; operations on the same
// container are serialised.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace faasd::network {

struct CniConfig {
  std::string network_name = "openfaas-cni-bridge";
  std::string bridge = "openfaas0";
  std::string subnet = "10.62.0.0/16";      // gateway = first host address
  std::string conf_dir = "/etc/cni/net.d";  // conflist written here as conflist_name
  std::string conflist_name = "10-openfaas.conflist";
  std::vector<std::string> plugin_dirs = {"/usr/lib/cni", "/opt/cni/bin"};
  std::string ipam_data_dir = "/var/lib/cni/networks";  // host-local dataDir
  std::string cache_dir = "/var/lib/faasd/cni";         // our ADD results, for DEL and for restart
  std::string ifname = "eth1";
  // Plugins chained after bridge, by type, with no options of their own (e.g. "firewall" for
  // its CNI-ADMIN chain, or "tuning"). None by default: see masquerade.h for why.
  std::vector<std::string> extra_plugins;
  int plugin_timeout_seconds = 30;
};

// The conflist Create() writes for `config` (same checks, no plugin lookup): what
// `faasd install` puts in conf_dir before the daemon first runs.
absl::StatusOr<std::string> RenderConflist(const CniConfig& config);

class CniNetwork {
 public:
  // Validates the subnet, finds every plugin (NotFound naming the plugin and dirs searched),
  // writes the conflist (atomically: tmp + rename), creates dirs.
  static absl::StatusOr<std::unique_ptr<CniNetwork>> Create(CniConfig config);

  // ADD: returns the container's IPv4 address (no prefix). Caches the result in cache_dir.
  // On failure, runs DEL for what was added, so no IP leaks.
  absl::StatusOr<std::string> Attach(const std::string& container_id,
                                     const std::string& netns_path);
  // DEL with the cached result; netns_path may be "" (task already gone). Idempotent: OK when
  // nothing is attached; removes the cache entry.
  absl::Status Detach(const std::string& container_id, const std::string& netns_path);
  // IP recorded for a container (from the cache), for rediscovery after a daemon restart.
  std::optional<std::string> LookupIp(const std::string& container_id) const;
  // Container IDs that have cached attachments, complete or not (so the daemon can clean leaks
  // after a crash).
  std::vector<std::string> AttachedContainers() const;
  std::string GatewayIp() const;  // "10.62.0.1" for the default subnet
  const CniConfig& config() const { return config_; }

 private:
  class ContainerLock;
  CniNetwork(CniConfig config, std::string gateway_ip, std::string conflist_json,
             std::vector<std::string> plugin_paths);
  absl::Status RunDel(const std::string& container_id, const std::string& netns_path,
                      const std::string* prev_result_json);

  const CniConfig config_;
  const std::string gateway_ip_;
  const std::string conflist_json_;
  const std::vector<std::string> plugin_paths_;  // one per conflist plugin, in order

  mutable absl::Mutex mu_;
  absl::flat_hash_set<std::string> busy_ ABSL_GUARDED_BY(mu_);  // containers mid-operation
};

// /etc/hosts content for a function: localhost lines, `<gateway_ip>\tgateway`, and the
// hostname (one or more names separated by spaces) on its own IP if known (`own_ip`); otherwise on 127.0.1.1, as Debian does, because
// runtimes such as the JVM fail when the local hostname does not resolve at all.
std::string HostsFile(std::string_view hostname, std::string_view gateway_ip,
                      std::string_view own_ip = "");

// /etc/resolv.conf content: `nameservers` when non-empty; otherwise the host's file at
// `host_resolv_conf`, minus loopback nameservers (127.x, ::1: unreachable from a container
// netns), keeping search/options lines; if nothing is left, FailedPrecondition telling the
// operator to set --nameserver (never silently invent 8.8.8.8).
absl::StatusOr<std::string> ResolvConf(const std::vector<std::string>& nameservers,
                                       const std::string& host_resolv_conf = "/etc/resolv.conf");

}  // namespace faasd::network
