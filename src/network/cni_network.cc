#include "network/cni_network.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "base/log.h"
#include "network/cni_protocol.h"
#include "network/masquerade.h"
#include "network/process.h"
#include "network/subnet.h"
#include "nlohmann/json.hpp"

namespace faasd::network {
namespace {

using nlohmann::json;

constexpr char kCacheSuffix[] = ".json";
constexpr char kStateAdding[] = "adding";
constexpr char kStateAttached[] = "attached";

absl::Status MakeDirs(const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError("mkdir: empty path");
  std::string partial;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    partial = path.substr(0, pos);
    if (partial.empty()) continue;
    if (mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST) {
      return absl::InternalError(absl::StrCat("mkdir ", partial, ": ", strerror(errno)));
    }
  }
  struct stat st {};
  if (stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(path, " is not a directory"));
  }
  return absl::OkStatus();
}

// Writes via a temporary file and rename so readers (and a crash) see the old or the new
// content, never half of it.
absl::Status WriteFileAtomically(const std::string& path, const std::string& content, mode_t mode) {
  std::string tmp = absl::StrCat(path, ".tmp.", getpid(), ".", gettid());
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return absl::InternalError(absl::StrCat("write ", tmp, ": ", strerror(errno)));
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      close(fd);
      unlink(tmp.c_str());
      return absl::InternalError(absl::StrCat("write ", tmp, ": ", strerror(err)));
    }
    done += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    int err = errno;
    unlink(tmp.c_str());
    return absl::InternalError(absl::StrCat("write ", tmp, ": ", strerror(err)));
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    unlink(tmp.c_str());
    return absl::InternalError(absl::StrCat("rename ", tmp, " to ", path, ": ", strerror(err)));
  }
  return absl::OkStatus();
}

// NotFound when the file does not exist.
absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat(path, ": no such file"));
    return absl::InternalError(absl::StrCat("read ", path, ": ", strerror(errno)));
  }
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

std::string PathEnv() {
  const char* path = std::getenv("PATH");
  return path != nullptr && *path != '\0'
             ? path
             : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
}

}  // namespace

// Serialises operations on one container while letting other containers proceed.
class CniNetwork::ContainerLock {
 public:
  ContainerLock(CniNetwork* network, std::string id) : network_(network), id_(std::move(id)) {
    absl::MutexLock lock(&network_->mu_);
    network_->mu_.Await(absl::Condition(this, &ContainerLock::Free));
    network_->busy_.insert(id_);
  }
  ~ContainerLock() {
    absl::MutexLock lock(&network_->mu_);
    network_->busy_.erase(id_);
  }
  ContainerLock(const ContainerLock&) = delete;
  ContainerLock& operator=(const ContainerLock&) = delete;

 private:
  bool Free() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(network_->mu_) {
    return !network_->busy_.contains(id_);
  }
  CniNetwork* const network_;
  const std::string id_;
};

namespace {

std::string CachePath(const CniConfig& config, const std::string& container_id) {
  return absl::StrCat(config.cache_dir, "/", container_id, kCacheSuffix);
}

struct CacheEntry {
  std::string state;
  std::string netns;
  std::string ip;
  std::optional<json> result;
};

// NotFound when there is no entry; DataLoss when the file is unreadable JSON.
absl::StatusOr<CacheEntry> ReadCache(const CniConfig& config, const std::string& container_id) {
  std::string path = CachePath(config, container_id);
  absl::StatusOr<std::string> text = ReadWholeFile(path);
  if (!text.ok()) return text.status();
  json doc = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return absl::DataLossError(absl::StrCat(path, ": not a JSON object"));
  CacheEntry entry;
  auto text_field = [&doc](const char* key) {
    return doc.contains(key) && doc[key].is_string() ? doc[key].get<std::string>() : "";
  };
  entry.state = text_field("state");
  entry.netns = text_field("netns");
  entry.ip = text_field("ip");
  if (doc.contains("result") && doc["result"].is_object()) entry.result = doc["result"];
  return entry;
}

absl::Status WriteCache(const CniConfig& config, const std::string& container_id,
                        const CacheEntry& entry) {
  json doc = {{"containerId", container_id},
              {"network", config.network_name},
              {"ifname", config.ifname},
              {"state", entry.state},
              {"netns", entry.netns}};
  if (!entry.ip.empty()) doc["ip"] = entry.ip;
  if (entry.result) doc["result"] = *entry.result;
  return WriteFileAtomically(CachePath(config, container_id), doc.dump(2) + "\n", 0600);
}

absl::Status RemoveCache(const CniConfig& config, const std::string& container_id) {
  std::string path = CachePath(config, container_id);
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return absl::InternalError(absl::StrCat("remove ", path, ": ", strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace

CniNetwork::CniNetwork(CniConfig config, std::string gateway_ip, std::string conflist_json,
                       std::vector<std::string> plugin_paths)
    : config_(std::move(config)),
      gateway_ip_(std::move(gateway_ip)),
      conflist_json_(std::move(conflist_json)),
      plugin_paths_(std::move(plugin_paths)) {}

namespace {

// The checks of Create() that need no plugin, and the conflist they allow.
absl::StatusOr<json> CheckedConflist(const CniConfig& config) {
  absl::StatusOr<Ipv4Subnet> subnet = Ipv4Subnet::Parse(config.subnet);
  if (!subnet.ok())
    return absl::InvalidArgumentError(absl::StrCat("CNI network: ", subnet.status().message()));
  if (config.network_name.empty())
    return absl::InvalidArgumentError("CNI network: empty network_name");
  // Linux interface names are at most 15 bytes (IFNAMSIZ - 1).
  if (config.bridge.empty() || config.bridge.size() > 15 ||
      config.bridge.find_first_of("/ \t\n") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("CNI network: bridge name \"", config.bridge,
                                                   "\": want 1-15 chars, no '/' or spaces"));
  }
  if (config.ifname.empty() || config.ifname.size() > 15) {
    return absl::InvalidArgumentError(
        absl::StrCat("CNI network: ifname \"", config.ifname, "\": want 1-15 chars"));
  }
  if (config.plugin_timeout_seconds <= 0) {
    return absl::InvalidArgumentError("CNI network: plugin_timeout_seconds must be positive");
  }
  if (config.conflist_name.empty() || config.conflist_name.find('/') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("CNI network: conflist name \"",
                                                   config.conflist_name, "\" is not a file name"));
  }

  return BuildConflist(config, *subnet);
}

}  // namespace

absl::StatusOr<std::string> RenderConflist(const CniConfig& config) {
  absl::StatusOr<json> conflist = CheckedConflist(config);
  if (!conflist.ok()) return conflist.status();
  return conflist->dump(2) + "\n";
}

absl::StatusOr<std::unique_ptr<CniNetwork>> CniNetwork::Create(CniConfig config) {
  absl::StatusOr<json> checked = CheckedConflist(config);
  if (!checked.ok()) return checked.status();
  json& conflist = *checked;
  absl::StatusOr<Ipv4Subnet> subnet = Ipv4Subnet::Parse(config.subnet);
  std::vector<std::string> plugin_paths;
  for (const json& plugin : conflist["plugins"]) {
    absl::StatusOr<std::string> path =
        FindPlugin(plugin["type"].get<std::string>(), config.plugin_dirs);
    if (!path.ok()) return path.status();
    plugin_paths.push_back(*std::move(path));
    // The main plugin execs its IPAM plugin through CNI_PATH; find it now rather than on the
    // first deploy.
    if (plugin.contains("ipam")) {
      absl::StatusOr<std::string> ipam =
          FindPlugin(plugin["ipam"]["type"].get<std::string>(), config.plugin_dirs);
      if (!ipam.ok()) return ipam.status();
    }
  }

  for (const std::string* dir : {&config.conf_dir, &config.cache_dir, &config.ipam_data_dir}) {
    if (absl::Status status = MakeDirs(*dir); !status.ok()) {
      return absl::Status(status.code(), absl::StrCat("CNI network: ", status.message()));
    }
  }
  std::string conflist_json = conflist.dump(2) + "\n";
  std::string conflist_path = absl::StrCat(config.conf_dir, "/", config.conflist_name);
  if (absl::Status status = WriteFileAtomically(conflist_path, conflist_json, 0644); !status.ok()) {
    return absl::Status(status.code(), absl::StrCat("CNI network: ", status.message()));
  }
  if (absl::Status status =
          EnsureSubnetRules(config.network_name, subnet->ToString(), PathEnv(),
                            absl::Seconds(config.plugin_timeout_seconds));
      !status.ok()) {
    return absl::Status(status.code(), absl::StrCat("CNI network: ", status.message()));
  }
  std::string gateway = FormatIpv4(subnet->FirstHost());
  return std::unique_ptr<CniNetwork>(new CniNetwork(
      std::move(config), std::move(gateway), std::move(conflist_json), std::move(plugin_paths)));
}

namespace {

// A plugin that cannot be started (removed or made unrunnable since the daemon started) is the
// host's fault, not the request's: Internal whatever errno exec gave (ENOENT is no "function
// not found"). The message names the plugin's path.
absl::Status PluginRunError(absl::string_view what, const absl::Status& exec) {
  return absl::InternalError(
      absl::StrCat(what, ": ", exec.message(), " (a CNI plugin of --cni-bin-dir)"));
}

struct ChainStep {
  std::string what;  // "cni bridge ADD container abc"
  std::string stdin_data;
  std::vector<std::string> env;
};

}  // namespace

absl::StatusOr<std::string> CniNetwork::Attach(const std::string& container_id,
                                               const std::string& netns_path) {
  if (absl::Status status = ValidateContainerId(container_id); !status.ok()) return status;
  if (netns_path.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cni ADD container ", container_id, ": empty netns path"));
  }
  ContainerLock lock(this, container_id);

  absl::StatusOr<CacheEntry> cached = ReadCache(config_, container_id);
  if (cached.ok() && cached->state == kStateAttached && cached->netns == netns_path &&
      !cached->ip.empty()) {
    return cached->ip;  // Already done: a second ADD would allocate a second address.
  }
  if (!absl::IsNotFound(cached.status())) {
    // A stale attachment (other netns, half-done ADD, unreadable entry): release it first so
    // the container never holds two addresses.
    const std::string* prev = nullptr;
    std::string prev_json;
    if (cached.ok() && cached->result) {
      prev_json = cached->result->dump();
      prev = &prev_json;
    }
    // Without the old netns path: that task is gone, and a /proc/<pid>/ns/net path may by now
    // name an unrelated process's namespace. The masquerade cleanup in RunDel covers what the
    // bridge plugin skips without it.
    if (absl::Status status = RunDel(container_id, "", prev); !status.ok()) {
      return absl::Status(status.code(),
                          absl::StrCat("cni ADD container ", container_id,
                                       ": releasing stale attachment: ", status.message()));
    }
  }

  // Our own text, written by Create(); parsed per call so the header need not expose JSON.
  json conflist = json::parse(conflist_json_, nullptr, /*allow_exceptions=*/false);
  if (!conflist.is_object()) return absl::InternalError("cni: stored conflist is not JSON");

  // Record intent before touching anything, so a crash mid-ADD is visible to the next start.
  if (absl::Status status = WriteCache(config_, container_id, {kStateAdding, netns_path, "", {}});
      !status.ok()) {
    return absl::Status(status.code(),
                        absl::StrCat("cni ADD container ", container_id, ": ", status.message()));
  }

  PluginCall call{"ADD", container_id, netns_path, config_.ifname, config_.plugin_dirs, ""};
  std::vector<std::string> env = PluginEnv(call, PathEnv());
  absl::Duration timeout = absl::Seconds(config_.plugin_timeout_seconds);
  std::optional<json> result;
  absl::Status failure;
  const json& plugins = conflist["plugins"];
  for (size_t i = 0; i < plugins.size(); ++i) {
    std::string what = absl::StrCat("cni ", plugins[i]["type"].get<std::string>(),
                                    " ADD container ", container_id);
    std::string in = PluginStdin(conflist, plugins[i], result ? &*result : nullptr).dump();
    absl::StatusOr<ProcessOutput> out = RunProcess(plugin_paths_[i], {}, env, in, timeout);
    if (!out.ok()) {
      failure = PluginRunError(what, out.status());
      break;
    }
    if (failure = PluginExitStatus(what, *out); !failure.ok()) break;
    absl::StatusOr<json> parsed = ParseAddResult(what, out->stdout_data);
    if (!parsed.ok()) {
      failure = parsed.status();
      break;
    }
    result = *std::move(parsed);
  }

  std::string ip;
  if (failure.ok()) {
    absl::StatusOr<std::string> found = ContainerIpv4(*result);
    if (!found.ok()) {
      failure = absl::InternalError(
          absl::StrCat("cni ADD container ", container_id, ": ", found.status().message()));
    } else {
      ip = *found;
      failure = WriteCache(config_, container_id, {kStateAttached, netns_path, ip, result});
    }
  }
  if (failure.ok()) {
    LogInfo("cni: attached container ", container_id, " at ", ip, " on ", config_.bridge);
    return ip;
  }

  // Undo whatever part of the chain ran. DEL must tolerate plugins that never ran ADD (spec),
  // so run the whole chain in reverse.
  std::string prev_json = result ? result->dump() : "";
  absl::Status undo = RunDel(container_id, netns_path, result ? &prev_json : nullptr);
  if (undo.ok()) {
    if (absl::Status removed = RemoveCache(config_, container_id); !removed.ok()) {
      LogWarning("cni: ", removed.message());
    }
    return failure;
  }
  // The "adding" entry stays, so AttachedContainers() offers it for cleanup later.
  LogError("cni: undoing failed ADD for container ", container_id, ": ", undo.message());
  return absl::Status(failure.code(),
                      absl::StrCat(failure.message(), "; undo failed: ", undo.message()));
}

absl::Status CniNetwork::RunDel(const std::string& container_id, const std::string& netns_path,
                                const std::string* prev_result_json) {
  json conflist = json::parse(conflist_json_, nullptr, /*allow_exceptions=*/false);
  if (!conflist.is_object()) return absl::InternalError("cni: stored conflist is not JSON");
  json prev;
  if (prev_result_json != nullptr) {
    prev = json::parse(*prev_result_json, nullptr, /*allow_exceptions=*/false);
    if (prev.is_discarded()) prev = nullptr;
  }
  PluginCall call{"DEL", container_id, netns_path, config_.ifname, config_.plugin_dirs, ""};
  std::vector<std::string> env = PluginEnv(call, PathEnv());
  absl::Duration timeout = absl::Seconds(config_.plugin_timeout_seconds);
  const json& plugins = conflist["plugins"];
  // Keep going after a failure so one broken plugin does not leave the others' state behind
  // (the IP above all); report the first error.
  absl::Status first_error;
  for (size_t i = plugins.size(); i-- > 0;) {
    std::string what = absl::StrCat("cni ", plugins[i]["type"].get<std::string>(),
                                    " DEL container ", container_id);
    std::string in = PluginStdin(conflist, plugins[i], prev.is_null() ? nullptr : &prev).dump();
    absl::StatusOr<ProcessOutput> out = RunProcess(plugin_paths_[i], {}, env, in, timeout);
    absl::Status status = out.ok() ? PluginExitStatus(what, *out) : PluginRunError(what, out.status());
    if (!status.ok() && first_error.ok()) first_error = status;
  }
  if (first_error.ok()) {
    // After the plugins, so that a bridge plugin which did clean up leaves nothing to find.
    first_error = RemoveMasqueradeLeftovers(config_.network_name, container_id, PathEnv(), timeout);
    if (!first_error.ok()) {
      first_error = absl::Status(
          first_error.code(), absl::StrCat("cni DEL container ", container_id,
                                           ": removing masquerade rules: ", first_error.message()));
    }
  }
  return first_error;
}

absl::Status CniNetwork::Detach(const std::string& container_id, const std::string& netns_path) {
  if (absl::Status status = ValidateContainerId(container_id); !status.ok()) return status;
  ContainerLock lock(this, container_id);
  absl::StatusOr<CacheEntry> cached = ReadCache(config_, container_id);
  if (absl::IsNotFound(cached.status())) return absl::OkStatus();
  std::string prev_json;
  if (cached.ok() && cached->result) prev_json = cached->result->dump();
  if (!cached.ok()) {
    LogWarning("cni: ", cached.status().message(), "; running DEL without prevResult");
  }
  absl::Status status = RunDel(container_id, netns_path, prev_json.empty() ? nullptr : &prev_json);
  if (!status.ok()) return status;
  if (absl::Status removed = RemoveCache(config_, container_id); !removed.ok()) return removed;
  LogInfo("cni: detached container ", container_id);
  return absl::OkStatus();
}

std::optional<std::string> CniNetwork::LookupIp(const std::string& container_id) const {
  if (!ValidateContainerId(container_id).ok()) return std::nullopt;
  absl::StatusOr<CacheEntry> cached = ReadCache(config_, container_id);
  if (!cached.ok() || cached->state != kStateAttached || cached->ip.empty()) return std::nullopt;
  return cached->ip;
}

std::vector<std::string> CniNetwork::AttachedContainers() const {
  std::vector<std::string> ids;
  DIR* dir = opendir(config_.cache_dir.c_str());
  if (dir == nullptr) {
    LogWarning("cni: list ", config_.cache_dir, ": ", strerror(errno));
    return ids;
  }
  while (dirent* entry = readdir(dir)) {
    absl::string_view name = entry->d_name;
    if (!absl::ConsumeSuffix(&name, kCacheSuffix)) continue;  // skips *.tmp.* leftovers too
    if (ValidateContainerId(name).ok()) ids.emplace_back(name);
  }
  closedir(dir);
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::string CniNetwork::GatewayIp() const { return gateway_ip_; }

namespace {

// portmap as one more plugin of this network, with the mappings as its runtimeConfig (the
// `portMappings` capability a runtime fills in).
json PortmapStdin(const json& conflist, const std::vector<PortMapping>& ports,
                  const json* prev_result) {
  json plugin = {{"type", "portmap"}, {"capabilities", {{"portMappings", true}}}, {"snat", true}};
  json in = PluginStdin(conflist, plugin, prev_result);
  json mappings = json::array();
  for (const PortMapping& p : ports) {
    mappings.push_back({{"hostPort", p.host_port},
                        {"containerPort", p.container_port},
                        {"protocol", p.protocol},
                        {"hostIP", p.host_ip}});
  }
  in["runtimeConfig"] = {{"portMappings", mappings}};
  return in;
}

}  // namespace

absl::Status CniNetwork::MapPorts(const std::string& container_id, const std::string& netns_path,
                                  const std::vector<PortMapping>& ports) {
  if (absl::Status status = ValidateContainerId(container_id); !status.ok()) return status;
  if (ports.empty()) return absl::OkStatus();
  const std::string what = absl::StrCat("cni portmap ADD container ", container_id);
  absl::StatusOr<std::string> plugin = FindPlugin("portmap", config_.plugin_dirs);
  if (!plugin.ok()) return plugin.status();
  ContainerLock lock(this, container_id);
  absl::StatusOr<CacheEntry> cached = ReadCache(config_, container_id);
  if (!cached.ok() || cached->state != kStateAttached || !cached->result) {
    return absl::FailedPreconditionError(absl::StrCat(what, ": not attached to the network"));
  }
  json conflist = json::parse(conflist_json_, nullptr, /*allow_exceptions=*/false);
  PluginCall call{"ADD", container_id, netns_path, config_.ifname, config_.plugin_dirs, ""};
  absl::StatusOr<ProcessOutput> out =
      RunProcess(*plugin, {}, PluginEnv(call, PathEnv()),
                 PortmapStdin(conflist, ports, &*cached->result).dump(),
                 absl::Seconds(config_.plugin_timeout_seconds));
  if (!out.ok())
    return absl::Status(out.status().code(), absl::StrCat(what, ": ", out.status().message()));
  return PluginExitStatus(what, *out);
}

absl::Status CniNetwork::UnmapPorts(const std::string& container_id, const std::string& netns_path,
                                    const std::vector<PortMapping>& ports) {
  if (ports.empty()) return absl::OkStatus();
  if (absl::Status status = ValidateContainerId(container_id); !status.ok()) return status;
  const std::string what = absl::StrCat("cni portmap DEL container ", container_id);
  absl::StatusOr<std::string> plugin = FindPlugin("portmap", config_.plugin_dirs);
  if (!plugin.ok()) return plugin.status();
  ContainerLock lock(this, container_id);
  absl::StatusOr<CacheEntry> cached = ReadCache(config_, container_id);
  const json* prev = cached.ok() && cached->result ? &*cached->result : nullptr;
  json conflist = json::parse(conflist_json_, nullptr, /*allow_exceptions=*/false);
  PluginCall call{"DEL", container_id, netns_path, config_.ifname, config_.plugin_dirs, ""};
  absl::StatusOr<ProcessOutput> out = RunProcess(*plugin, {}, PluginEnv(call, PathEnv()),
                                                 PortmapStdin(conflist, ports, prev).dump(),
                                                 absl::Seconds(config_.plugin_timeout_seconds));
  if (!out.ok())
    return absl::Status(out.status().code(), absl::StrCat(what, ": ", out.status().message()));
  return PluginExitStatus(what, *out);
}

}  // namespace faasd::network
