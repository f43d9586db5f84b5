// The /system/* REST handlers faas-cli drives: list, get, deploy, update, delete, scale,
// info, namespaces. Auth and the body cap are applied by GatewayServer::System.
#include <sys/utsname.h>

#include "absl/strings/str_cat.h"
#include "gateway/http_errors.h"
#include "gateway/names.h"
#include "gateway/server.h"
#include "nlohmann/json.hpp"

namespace faasd::gateway {
namespace {

using nlohmann::json;

constexpr char kJson[] = "application/json";

// Reads ?namespace=; "" means the default. Writes 400 and returns false when it is bad.
bool QueryNamespace(const httplib::Request& req, httplib::Response& res, std::string* ns) {
  *ns = req.get_param_value("namespace");
  if (ns->empty()) {
    if (req.has_param("namespace")) {
      // An explicitly empty namespace is the default one, as upstream.
    }
    *ns = provider::kDefaultNamespace;
    return true;
  }
  if (absl::Status s = CheckName("namespace", *ns); !s.ok()) {
    WriteError(res, s);
    return false;
  }
  return true;
}

// Parses a JSON object body. Writes 400 and returns false when it is not one.
bool ParseObject(const std::string& body, httplib::Response& res, absl::string_view what,
                 json* out) {
  *out = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (out->is_discarded() || !out->is_object()) {
    WriteError(res, 400, absl::StrCat(what, ": request body is not a JSON object"));
    return false;
  }
  return true;
}

// Reads an optional string field; false (with 400 written) when it has another type.
bool StringField(const json& j, const char* key, httplib::Response& res, std::string* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return true;
  if (!it->is_string()) {
    WriteError(res, 400, absl::StrCat("field ", key, ": must be a string"));
    return false;
  }
  *out = it->get<std::string>();
  return true;
}

std::string Dump(const json& j) {
  // Replace, not throw, on invalid UTF-8 from a label or env value.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

void GatewayServer::ListFunctions(const httplib::Request& req, httplib::Response& res) {
  std::string ns;
  if (!QueryNamespace(req, res, &ns)) return;
  absl::StatusOr<std::vector<provider::FunctionStatus>> fns = provider_.List(ns);
  if (!fns.ok()) return WriteError(res, fns.status());
  json out = json::array();
  for (provider::FunctionStatus& f : *fns) {
    const std::string& fns_ns = f.namespace_.empty() ? ns : f.namespace_;
    f.invocation_count =
        static_cast<double>(metrics_.InvocationCount(absl::StrCat(f.name, ".", fns_ns)));
    out.push_back(provider::ToJson(f));
  }
  res.set_content(Dump(out), kJson);
}

void GatewayServer::GetFunction(const httplib::Request& req, httplib::Response& res) {
  const std::string name = req.matches[1];
  if (absl::Status s = CheckName("function name", name); !s.ok()) return WriteError(res, s);
  std::string ns;
  if (!QueryNamespace(req, res, &ns)) return;
  absl::StatusOr<provider::FunctionStatus> f = provider_.Get(name, ns);
  if (!f.ok()) return WriteError(res, f.status());
  // faas-cli describe asks for usage; it costs a containerd call per replica, so only then.
  if (const std::string u = req.get_param_value("usage"); u == "1" || u == "true") {
    absl::StatusOr<provider::FunctionUsage> usage = provider_.Usage(name, ns);
    if (usage.ok()) f->usage = *usage;  // a status without usage beats none at all
  }
  f->invocation_count = static_cast<double>(metrics_.InvocationCount(absl::StrCat(name, ".", ns)));
  res.set_content(Dump(provider::ToJson(*f)), kJson);
}

// The portal's chart data: {"function", "intervalSeconds", "points": [{"t", "requests", "errors",
// "rps", "p50Ms", "p99Ms"}]}, oldest first; latencies are null in an interval without requests.
void GatewayServer::FunctionStats(const httplib::Request& req, httplib::Response& res) {
  const std::string name = req.matches[1];
  if (absl::Status s = CheckName("function name", name); !s.ok()) return WriteError(res, s);
  std::string ns;
  if (!QueryNamespace(req, res, &ns)) return;
  if (absl::StatusOr<provider::FunctionStatus> f = provider_.Get(name, ns); !f.ok()) {
    return WriteError(res, f.status());
  }
  if (history_ == nullptr) return WriteError(res, 404, "function statistics are not kept");
  const std::string key = absl::StrCat(name, ".", ns);
  json points = json::array();
  for (const metrics::StatsPoint& p : history_->Points(key)) {
    auto ms = [](const std::optional<double>& v) { return v ? json(*v) : nullptr; };
    points.push_back({{"t", p.t},
                      {"requests", p.requests},
                      {"errors", p.errors},
                      {"rps", p.rps},
                      {"p50Ms", ms(p.p50_ms)},
                      {"p99Ms", ms(p.p99_ms)}});
  }
  const json out = {
      {"function", key},
      {"intervalSeconds", absl::ToInt64Seconds(metrics::History::kInterval)},
      {"points", std::move(points)}};
  res.set_content(Dump(out), kJson);
}

void GatewayServer::DeployFunction(const httplib::Request& req, const std::string& body,
                                   httplib::Response& res, bool update) {
  // faas-cli sends PUT first for every deploy, so "update" would mislead in error messages.
  const char* verb = "deploy";
  (void)update;
  // Malformed JSON and wrong types are reported before the provider's own checks.
  json probe;
  if (!ParseObject(body, res, verb, &probe)) return;
  absl::StatusOr<provider::FunctionDeployment> d = provider::ParseDeployment(body);
  if (!d.ok()) return WriteError(res, 400, absl::StrCat(verb, ": ", d.status().message()));
  if (d->service.empty()) return WriteError(res, 400, absl::StrCat(verb, ": service is required"));
  if (d->image.empty()) {
    return WriteError(res, 400, absl::StrCat(verb, " ", d->service, ": image is required"));
  }
  if (absl::Status s = CheckName("function name", d->service); !s.ok()) {
    return WriteError(res, 400, absl::StrCat(verb, ": ", s.message()));
  }
  // ?namespace= fills an empty body namespace; a conflicting pair is refused.
  std::string query_ns = req.get_param_value("namespace");
  if (d->namespace_.empty()) d->namespace_ = query_ns;
  if (!query_ns.empty() && query_ns != d->namespace_) {
    return WriteError(res, 400,
                      absl::StrCat(verb, " ", d->service, ": namespace \"", d->namespace_,
                                   "\" in the body differs from \"", query_ns, "\" in the query"));
  }
  if (d->namespace_.empty()) d->namespace_ = provider::kDefaultNamespace;
  if (absl::Status s = CheckName("namespace", d->namespace_); !s.ok()) {
    return WriteError(res, 400, absl::StrCat(verb, " ", d->service, ": ", s.message()));
  }
  if (absl::Status s = provider::ValidateDeployment(*d); !s.ok()) {
    return WriteError(res, 400, absl::StrCat(verb, " ", d->service, ": ", s.message()));
  }
  absl::Status s = update ? provider_.Update(*d) : provider_.Deploy(*d);
  if (!s.ok()) return WriteFailure(res, absl::StrCat(verb, " ", d->service, ".", d->namespace_), s);
  if (options_.on_function_changed) options_.on_function_changed();
  // faas-cli treats 201 as failure; 202 says "accepted, replicas are starting".
  res.status = 202;
}

void GatewayServer::DeleteFunction(const httplib::Request& req, const std::string& body,
                                   httplib::Response& res) {
  json j;
  if (!ParseObject(body, res, "delete", &j)) return;
  std::string name, ns;
  if (!StringField(j, "functionName", res, &name) || !StringField(j, "namespace", res, &ns)) {
    return;
  }
  if (name.empty()) return WriteError(res, 400, "delete: functionName is required");
  if (absl::Status s = CheckName("function name", name); !s.ok()) return WriteError(res, s);
  if (ns.empty()) ns = req.get_param_value("namespace");
  if (ns.empty()) ns = provider::kDefaultNamespace;
  if (absl::Status s = CheckName("namespace", ns); !s.ok()) return WriteError(res, s);
  if (absl::Status s = provider_.Remove(name, ns); !s.ok())
    return WriteFailure(res, absl::StrCat("remove ", name, ".", ns), s);
  res.status = 202;
}

void GatewayServer::ScaleFunction(const httplib::Request& req, const std::string& body,
                                  httplib::Response& res) {
  const std::string name = req.matches[1];
  if (absl::Status s = CheckName("function name", name); !s.ok()) return WriteError(res, s);
  absl::StatusOr<provider::ScaleRequest> scale = provider::ParseScaleRequest(body);
  if (!scale.ok()) {
    return WriteError(res, 400, absl::StrCat("scale ", name, ": ", scale.status().message()));
  }
  std::string ns = scale->namespace_;
  if (ns.empty()) ns = req.get_param_value("namespace");
  if (ns.empty()) ns = provider::kDefaultNamespace;
  if (absl::Status s = CheckName("namespace", ns); !s.ok()) return WriteError(res, s);
  absl::Status s = provider_.Scale(name, ns, scale->replicas);
  if (!s.ok()) return WriteFailure(res, absl::StrCat("scale ", name, ".", ns), s);
  res.status = 202;
}

void GatewayServer::Info(const httplib::Request&, httplib::Response& res) {
  struct utsname u {};
  std::string arch = ::uname(&u) == 0 ? u.machine : "unknown";
  // Upstream reports Go's GOARCH names.
  if (arch == "x86_64")
    arch = "amd64";
  else if (arch == "aarch64")
    arch = "arm64";
  else if (arch.rfind("armv", 0) == 0)
    arch = "arm";
  json out = {
      {"provider",
       {{"provider", options_.provider_name},
        {"orchestration", "containerd"},
        {"version", {{"sha", options_.git_sha}, {"release", options_.version}}}}},
      {"version",
       {{"sha", options_.git_sha}, {"release", options_.version}, {"commit_message", ""}}},
      {"arch", arch},
  };
  res.set_content(Dump(out), kJson);
}

}  // namespace faasd::gateway
