#include "network/cni_protocol.h"

#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"

namespace faasd::network {
namespace {

using nlohmann::json;

// CNI spec "Error" section: well-known codes 1-11; 100+ are plugin-specific.
absl::StatusCode CodeForCniError(int64_t code) {
  switch (code) {
    case 1:  // incompatible CNI version
      return absl::StatusCode::kFailedPrecondition;
    case 2:  // unsupported field in network configuration
    case 4:  // invalid necessary environment variables
    case 6:  // failed to decode content
    case 7:  // invalid network config
      return absl::StatusCode::kInvalidArgument;
    case 3:  // container unknown or does not exist
      return absl::StatusCode::kNotFound;
    case 11:  // try again later
      return absl::StatusCode::kUnavailable;
    default:  // 5 (I/O failure) and plugin-specific codes
      return absl::StatusCode::kInternal;
  }
}

std::string Tail(absl::string_view text, size_t max) {
  text = absl::StripAsciiWhitespace(text);
  if (text.size() <= max) return std::string(text);
  return absl::StrCat("...", text.substr(text.size() - max));
}

}  // namespace

json BuildConflist(const CniConfig& config, const Ipv4Subnet& subnet) {
  json ipam = {
      {"type", "host-local"},
      {"ranges", json::array({json::array({{{"subnet", subnet.ToString()},
                                            {"gateway", FormatIpv4(subnet.FirstHost())}}})})},
      {"routes", json::array({{{"dst", "0.0.0.0/0"}}})},
      {"dataDir", config.ipam_data_dir},
  };
  // Masquerade and forwarding are subnet-wide rules (EnsureSubnetRules), not per container.
  json bridge = {
      {"type", "bridge"}, {"bridge", config.bridge}, {"isGateway", true},
      {"ipMasq", false},  {"hairpinMode", true},     {"ipam", std::move(ipam)},
  };
  json plugins = json::array({std::move(bridge)});
  for (const std::string& type : config.extra_plugins) plugins.push_back({{"type", type}});
  return json{
      {"cniVersion", kCniVersion},
      {"name", config.network_name},
      {"plugins", std::move(plugins)},
  };
}

json PluginStdin(const json& conflist, const json& plugin, const json* prev_result) {
  json in = plugin;
  in["name"] = conflist.at("name");
  in["cniVersion"] = conflist.at("cniVersion");
  if (prev_result != nullptr) in["prevResult"] = *prev_result;
  return in;
}

std::vector<std::string> PluginEnv(const PluginCall& call, absl::string_view path_env) {
  std::vector<std::string> env = {
      absl::StrCat("CNI_COMMAND=", call.command),
      absl::StrCat("CNI_CONTAINERID=", call.container_id),
      absl::StrCat("CNI_IFNAME=", call.ifname),
      absl::StrCat("CNI_PATH=", absl::StrJoin(call.plugin_dirs, ":")),
      absl::StrCat("PATH=", path_env),
  };
  if (!call.netns.empty()) env.push_back(absl::StrCat("CNI_NETNS=", call.netns));
  if (!call.cni_args.empty()) env.push_back(absl::StrCat("CNI_ARGS=", call.cni_args));
  return env;
}

absl::Status PluginExitStatus(absl::string_view what, const ProcessOutput& output) {
  if (output.exit_code == 0) return absl::OkStatus();
  json error = json::parse(output.stdout_data, nullptr, /*allow_exceptions=*/false);
  if (error.is_object() && error.contains("msg") && error["msg"].is_string()) {
    // "code" may be missing or of another type (a plugin's own error JSON): then 0. Never
    // operator[] on a missing key here: it inserts null, and get<int64_t>() of null throws.
    const auto code_it = error.find("code");
    const int64_t code =
        code_it != error.end() && code_it->is_number_integer() ? code_it->get<int64_t>() : 0;
    std::string message = absl::StrCat(what, ": ", error["msg"].get<std::string>());
    if (error.contains("details") && error["details"].is_string() &&
        !error["details"].get<std::string>().empty()) {
      absl::StrAppend(&message, ": ", error["details"].get<std::string>());
    }
    absl::StrAppend(&message, " (CNI error code ", code, ")");
    return absl::Status(CodeForCniError(code), message);
  }
  std::string detail = Tail(output.stderr_data, 512);
  if (detail.empty()) detail = Tail(output.stdout_data, 512);
  if (detail.empty()) detail = "no output";
  return absl::InternalError(absl::StrCat(what, ": exit status ", output.exit_code, ": ", detail));
}

absl::StatusOr<json> ParseAddResult(absl::string_view what, absl::string_view stdout_data) {
  json result = json::parse(stdout_data, nullptr, /*allow_exceptions=*/false);
  if (!result.is_object()) {
    return absl::InternalError(
        absl::StrCat(what, ": result is not a JSON object: \"", Tail(stdout_data, 200), "\""));
  }
  return result;
}

absl::StatusOr<std::string> ContainerIpv4(const json& result) {
  const json* ips = result.is_object() && result.contains("ips") ? &result["ips"] : nullptr;
  if (ips == nullptr || !ips->is_array()) {
    return absl::NotFoundError("CNI result has no \"ips\"");
  }
  const json empty = json::array();
  const json& interfaces = result.contains("interfaces") && result["interfaces"].is_array()
                               ? result["interfaces"]
                               : empty;
  std::optional<std::string> first_v4;
  for (const json& ip : *ips) {
    if (!ip.is_object() || !ip.contains("address") || !ip["address"].is_string()) continue;
    std::string address = ip["address"].get<std::string>();
    std::string bare = address.substr(0, address.find('/'));
    if (!ParseIpv4(bare).ok()) continue;  // IPv6 (or garbage): not what we route to.
    if (!first_v4) first_v4 = bare;
    if (ip.contains("interface") && ip["interface"].is_number_integer()) {
      int64_t index = ip["interface"].get<int64_t>();
      if (index >= 0 && static_cast<size_t>(index) < interfaces.size()) {
        const json& iface = interfaces[static_cast<size_t>(index)];
        if (iface.is_object() && iface.contains("sandbox") && iface["sandbox"].is_string() &&
            !iface["sandbox"].get<std::string>().empty()) {
          return bare;
        }
      }
    }
  }
  if (first_v4) return *first_v4;
  return absl::NotFoundError(
      absl::StrCat("CNI result has no IPv4 address: ", Tail(result.dump(), 200)));
}

absl::Status ValidateContainerId(absl::string_view container_id) {
  bool ok = !container_id.empty() && container_id.size() <= 256 &&
            absl::ascii_isalnum(static_cast<unsigned char>(container_id[0]));
  for (char c : container_id) {
    if (!ok) break;
    ok = absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  }
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "container id \"", container_id, "\": want letters, digits, '_', '.', '-' (max 256)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> FindPlugin(absl::string_view type,
                                       const std::vector<std::string>& dirs) {
  if (type.empty() || type.find('/') != absl::string_view::npos || type == "." || type == "..") {
    return absl::InvalidArgumentError(absl::StrCat("CNI plugin type \"", type, "\" is not a name"));
  }
  for (const std::string& dir : dirs) {
    std::string path = absl::StrCat(dir, "/", type);
    struct stat st {};
    if (stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(path.c_str(), X_OK) == 0) {
      return path;
    }
  }
  return absl::NotFoundError(absl::StrCat("CNI plugin \"", type, "\" not found in ",
                                          dirs.empty() ? "(no dirs)" : absl::StrJoin(dirs, ", "),
                                          "; install containernetworking-plugins"));
}

}  // namespace faasd::network
