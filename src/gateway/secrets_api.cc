// /system/secrets: list (names only), create (POST), update (PUT), delete. Values pass through
// to the provider and are never echoed or logged.
#include "absl/strings/str_cat.h"
#include "gateway/http_errors.h"
#include "gateway/names.h"
#include "gateway/server.h"
#include "nlohmann/json.hpp"

namespace faasd::gateway {
namespace {

using nlohmann::json;

// The namespace from the body, else ?namespace=, else the default; both given must agree.
bool SecretNamespace(const httplib::Request& req, std::string* ns, httplib::Response& res) {
  const std::string query = req.get_param_value("namespace");
  if (ns->empty()) *ns = query;
  if (!query.empty() && query != *ns) {
    WriteError(res, 400,
               absl::StrCat("secret: namespace \"", *ns, "\" in the body differs from \"", query,
                            "\" in the query"));
    return false;
  }
  if (ns->empty()) *ns = provider::kDefaultNamespace;
  if (absl::Status s = CheckName("namespace", *ns); !s.ok()) {
    WriteError(res, s);
    return false;
  }
  return true;
}

}  // namespace

void GatewayServer::ListSecrets(const httplib::Request& req, httplib::Response& res) {
  std::string ns;
  if (!SecretNamespace(req, &ns, res)) return;
  absl::StatusOr<std::vector<std::string>> names = provider_.ListSecrets(ns);
  if (!names.ok()) return WriteError(res, names.status());
  json out = json::array();
  for (const std::string& n : *names) out.push_back({{"name", n}, {"namespace", ns}});
  res.set_content(out.dump(), "application/json");
}

void GatewayServer::WriteSecret(const httplib::Request& req, const std::string& body,
                                httplib::Response& res, bool create) {
  absl::StatusOr<provider::Secret> secret = provider::ParseSecret(body);
  if (!secret.ok()) {
    return WriteError(res, 400, absl::StrCat("secret: ", secret.status().message()));
  }
  if (secret->name.empty()) return WriteError(res, 400, "secret: name is required");
  if (absl::Status s = CheckName("secret name", secret->name); !s.ok()) return WriteError(res, s);
  if (!SecretNamespace(req, &secret->namespace_, res)) return;
  if (secret->bytes().size() > provider::kMaxSecretBytes) {
    return WriteError(
        res, 413,
        absl::StrCat("secret \"", secret->name, "\": ", secret->bytes().size(),
                     " bytes, over the limit of ", provider::kMaxSecretBytes, " bytes (512 KiB)"));
  }
  absl::Status s = create ? provider_.CreateSecret(*secret) : provider_.UpdateSecret(*secret);
  if (!s.ok()) {
    return WriteFailure(res,
                        absl::StrCat(create ? "create" : "update", " secret ", secret->name, ".",
                                     secret->namespace_),
                        s);
  }
  res.status = create ? 201 : 200;
}

void GatewayServer::DeleteSecret(const httplib::Request& req, const std::string& body,
                                 httplib::Response& res) {
  // faas-cli sends the namespace in the body, faasd reads only the query: take either.
  provider::Secret secret;
  if (!body.empty()) {
    absl::StatusOr<provider::Secret> parsed = provider::ParseSecret(body);
    if (!parsed.ok()) {
      return WriteError(res, 400, absl::StrCat("secret: ", parsed.status().message()));
    }
    secret = std::move(*parsed);
  }
  if (secret.name.empty()) secret.name = req.get_param_value("name");
  if (secret.name.empty()) return WriteError(res, 400, "secret: name is required");
  if (absl::Status s = CheckName("secret name", secret.name); !s.ok()) return WriteError(res, s);
  if (!SecretNamespace(req, &secret.namespace_, res)) return;
  absl::Status s = provider_.DeleteSecret(secret.name, secret.namespace_);
  if (!s.ok()) {
    return WriteFailure(res, absl::StrCat("delete secret ", secret.name, ".", secret.namespace_),
                        s);
  }
  res.status = 200;
}

}  // namespace faasd::gateway
