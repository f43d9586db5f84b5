// /system/namespaces (list) and /system/namespace/{ns} (get, create, update, delete), as
// faas-cli's `namespace` commands and go-sdk drive them.
#include "absl/strings/str_cat.h"
#include "gateway/http_errors.h"
#include "gateway/names.h"
#include "gateway/server.h"
#include "nlohmann/json.hpp"

namespace faasd::gateway {

void GatewayServer::Namespaces(const httplib::Request&, httplib::Response& res) {
  absl::StatusOr<std::vector<std::string>> ns = provider_.Namespaces();
  if (!ns.ok()) return WriteError(res, ns.status());
  res.set_content(nlohmann::json(*ns).dump(), "application/json");
}

void GatewayServer::GetNamespace(const httplib::Request& req, httplib::Response& res) {
  const std::string name = req.matches[1];
  if (absl::Status s = CheckName("namespace", name); !s.ok()) return WriteError(res, s);
  absl::StatusOr<provider::FunctionNamespace> ns = provider_.GetNamespace(name);
  if (!ns.ok()) return WriteError(res, ns.status());
  res.set_content(
      provider::ToJson(*ns).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
      "application/json");
}

void GatewayServer::WriteNamespace(const httplib::Request& req, const std::string& body,
                                   httplib::Response& res, bool create) {
  absl::StatusOr<provider::FunctionNamespace> ns = provider::ParseNamespace(body);
  if (!ns.ok()) return WriteError(res, 400, absl::StrCat("namespace: ", ns.status().message()));
  const std::string path_name = req.matches.size() > 1 ? std::string(req.matches[1]) : "";
  if (ns->name.empty()) ns->name = path_name;
  if (ns->name.empty()) return WriteError(res, 400, "namespace: name is required");
  if (!path_name.empty() && path_name != ns->name) {
    return WriteError(res, 400,
                      absl::StrCat("namespace: \"", ns->name, "\" in the body differs from \"",
                                   path_name, "\" in the path"));
  }
  if (absl::Status s = CheckName("namespace", ns->name); !s.ok()) return WriteError(res, s);
  absl::Status s = create ? provider_.CreateNamespace(*ns) : provider_.UpdateNamespace(*ns);
  if (!s.ok()) {
    return WriteFailure(res, absl::StrCat(create ? "create" : "update", " namespace ", ns->name),
                        s);
  }
  res.status = create ? 201 : 202;
}

void GatewayServer::DeleteNamespace(const httplib::Request& req, const std::string& body,
                                    httplib::Response& res) {
  const std::string name = req.matches[1];
  if (absl::Status s = CheckName("namespace", name); !s.ok()) return WriteError(res, s);
  if (!body.empty()) {
    absl::StatusOr<provider::FunctionNamespace> ns = provider::ParseNamespace(body);
    if (!ns.ok()) return WriteError(res, 400, absl::StrCat("namespace: ", ns.status().message()));
    if (!ns->name.empty() && ns->name != name) {
      return WriteError(res, 400,
                        absl::StrCat("namespace: \"", ns->name, "\" in the body differs from \"",
                                     name, "\" in the path"));
    }
  }
  absl::Status s = provider_.DeleteNamespace(name);
  if (!s.ok()) return WriteFailure(res, absl::StrCat("delete namespace ", name), s);
  res.status = 202;
}

}  // namespace faasd::gateway
