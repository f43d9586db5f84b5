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

// One published port: host_ip:host_port on the host to container_port in the container.
struct PortMapping {
  std::string host_ip = "127.0.0.1";
  int host_port = 0;
  int container_port = 0;
  std::string protocol = "tcp";  // tcp | udp
};

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

  // Publishes ports of an attached container on the host with the CNI `portmap` plugin (DNAT
  // in the kernel, no user-space copy), chained after this network's ADD result from the cache.
  // A host address of 127.0.0.1 works too: portmap sets route_localnet on the bridge and
  // masquerades the loopback source. FailedPrecondition when the container is not attached;
  // NotFound when the plugin is not in plugin_dirs.
  absl::Status MapPorts(const std::string& container_id, const std::string& netns_path,
                        const std::vector<PortMapping>& ports);
  // portmap DEL for the container (given the ports it published, as some portmap versions skip
  // a DEL without them): its DNAT rules go. Idempotent.
  absl::Status UnmapPorts(const std::string& container_id, const std::string& netns_path,
                          const std::vector<PortMapping>& ports);
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

// /etc/hosts content for a function: localhost lines, `<gateway_ip>\tgateway`, the shared
// block `services` (see below), and the hostname (one or more names separated by spaces) on its
// own IP if known (`own_ip`); otherwise on 127.0.1.1, as Debian does, because runtimes such as
// the JVM fail when the local hostname does not resolve at all.
std::string HostsFile(std::string_view hostname, std::string_view gateway_ip,
                      std::string_view own_ip = "", std::string_view services = "");

// Writes a container's /etc/hosts or /etc/resolv.conf (mode 0644) in place, not tmp + rename:
// the file is bind-mounted into a running container, and a bind mount pins the inode.
absl::Status WriteEtcFile(const std::string& path, std::string_view content);

// The names every container on the bridge resolves besides its own: the service supervisor
// keeps them ("<ip>\t<name>" lines) in SharedHostsPath(state_dir), and each container's hosts
// file carries a copy between two marker lines, so a changed address can be put into a running
// container's file in place (ReplaceSharedHosts) without touching its own lines.
std::string SharedHostsPath(std::string_view state_dir);
// The shared lines now; "" when there are none (or no file yet).
std::string ReadSharedHosts(std::string_view state_dir);
// `hosts_file` with its shared block (if any, else inserted before the last line) replaced by
// `services`.
std::string ReplaceSharedHosts(std::string_view hosts_file, std::string_view services);

// /etc/resolv.conf content: `nameservers` when non-empty; otherwise the host's file at
// `host_resolv_conf`, minus loopback nameservers (127.x, ::1: unreachable from a container
// netns), keeping search/options lines; if nothing is left, FailedPrecondition telling the
// operator to set --nameserver (never silently invent 8.8.8.8).
absl::StatusOr<std::string> ResolvConf(const std::vector<std::string>& nameservers,
                                       const std::string& host_resolv_conf = "/etc/resolv.conf");

}  // namespace faasd::network
