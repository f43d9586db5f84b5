// The commands that put the appliance on a host and take it off again:
//   `faasd install`  what the package's postinst runs: state dir, basic-auth login, CNI
//                    conflist, IPv4 forwarding, containerd enabled. Idempotent: what exists is
//                    kept (the password is never regenerated).
//   `faasd export`   a faas-cli stack.yml of every deployed function, read from the running
//                    daemon's API, so `faas-cli deploy -f` recreates them on another gateway.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "network/cni_network.h"
#include "nlohmann/json.hpp"

namespace faasd::appliance {

struct InstallOptions {
  std::string state_dir = "/var/lib/faasd";
  network::CniConfig cni;
  std::string sysctl_dropin = "/etc/sysctl.d/60-faasd.conf";
  std::string gateway_url = "http://127.0.0.1:8080";  // for the login hint
};

// Prints what it did, one line a step, and how to log in; 0 or 1 (the error names the step).
int Install(const InstallOptions& options);

struct ExportOptions {
  std::string gateway_url = "http://127.0.0.1:8080";
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string state_dir = "/var/lib/faasd";  // secrets/basic-auth-{user,password}
  std::string ns;                            // "": every namespace
  std::string default_ns = "openfaas-fn";
};

// Writes the stack.yml to stdout; errors (naming the request) to stderr; 0 or 1.
int Export(const ExportOptions& options);

// The stack.yml for `functions` (each one /system/function/NAME answer): provider openfaas at
// `gateway_url`, one entry per function with image, fprocess, environment, labels,
// annotations, secrets (names), constraints, limits, requests, readonly_root_filesystem, and
// namespace when it is not `default_ns`. InvalidArgument when one name is in two namespaces
// (faas-cli keys functions by name).
absl::StatusOr<std::string> RenderStack(const std::vector<nlohmann::json>& functions,
                                        const std::string& gateway_url,
                                        const std::string& default_ns);

}  // namespace faasd::appliance
