// `faasd export`: a faas-cli stack.yml of what the running daemon serves (see appliance.h).
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "appliance/appliance.h"
#include "gateway/gateway.h"
#include "httplib.h"
#include "yaml-cpp/yaml.h"

namespace faasd::appliance {
namespace {

using nlohmann::json;

void EmitStringMap(YAML::Emitter& out, const char* key, const json& j, const char* field) {
  auto it = j.find(field);
  if (it == j.end() || !it->is_object() || it->empty()) return;
  out << YAML::Key << key << YAML::Value << YAML::BeginMap;
  for (const auto& [k, v] : it->items()) {
    out << YAML::Key << k << YAML::Value << YAML::DoubleQuoted
        << (v.is_string() ? v.get<std::string>() : v.dump());
  }
  out << YAML::EndMap;
}

void EmitStringList(YAML::Emitter& out, const char* key, const json& j, const char* field) {
  auto it = j.find(field);
  if (it == j.end() || !it->is_array() || it->empty()) return;
  out << YAML::Key << key << YAML::Value << YAML::BeginSeq;
  for (const json& v : *it) out << (v.is_string() ? v.get<std::string>() : v.dump());
  out << YAML::EndSeq;
}

// The fields RenderStack reads with value(), each of its type where present: nlohmann's
// value(key, default) throws type_error for a present key of another type.
absl::Status CheckFieldTypes(const json& f) {
  if (!f.is_object()) return absl::InvalidArgumentError("a function that is not a JSON object");
  const std::string name = f.contains("name") && f["name"].is_string() ? f["name"] : "";
  for (const char* key : {"name", "image", "namespace", "envProcess"}) {
    if (auto it = f.find(key); it != f.end() && !it->is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat("function ", name, ": \"", key, "\" is not a string"));
    }
  }
  if (auto it = f.find("readOnlyRootFilesystem"); it != f.end() && !it->is_boolean()) {
    return absl::InvalidArgumentError(
        absl::StrCat("function ", name, ": \"readOnlyRootFilesystem\" is not true or false"));
  }
  return absl::OkStatus();
}

// GET path with basic auth; the body parsed as JSON.
absl::StatusOr<json> GetJson(httplib::Client& client, const std::string& path) {
  httplib::Result res = client.Get(path.c_str());
  if (!res) {
    return absl::UnavailableError(
        absl::StrCat("GET ", path, ": ", httplib::to_string(res.error()), " (is faasd up?)"));
  }
  if (res->status != 200) {
    return absl::FailedPreconditionError(
        absl::StrCat("GET ", path, ": HTTP ", res->status, ": ", res->body));
  }
  json j = json::parse(res->body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InternalError(absl::StrCat("GET ", path, ": not JSON"));
  return j;
}

}  // namespace

absl::StatusOr<std::string> RenderStack(const std::vector<json>& functions,
                                        const std::string& gateway_url,
                                        const std::string& default_ns) {
  std::map<std::string, const json*> by_name;  // sorted: the same deployment, the same file
  for (const json& f : functions) {
    if (absl::Status s = CheckFieldTypes(f); !s.ok()) return s;
    const std::string name = f.value("name", "");
    if (name.empty()) return absl::InvalidArgumentError("a function without a name");
    auto [it, fresh] = by_name.emplace(name, &f);
    if (!fresh) {
      return absl::InvalidArgumentError(absl::StrCat(
          "function ", name, " is in namespaces ", it->second->value("namespace", default_ns),
          " and ", f.value("namespace", default_ns),
          "; a stack.yml names each function once: export each with --namespace"));
    }
  }
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "version" << YAML::Value << "1.0";
  out << YAML::Key << "provider" << YAML::Value << YAML::BeginMap << YAML::Key << "name"
      << YAML::Value << "openfaas" << YAML::Key << "gateway" << YAML::Value << gateway_url
      << YAML::EndMap;
  out << YAML::Key << "functions" << YAML::Value << YAML::BeginMap;
  for (const auto& [name, fp] : by_name) {
    const json& f = *fp;
    out << YAML::Key << name << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "image" << YAML::Value << f.value("image", "");
    if (const std::string ns = f.value("namespace", ""); !ns.empty() && ns != default_ns) {
      out << YAML::Key << "namespace" << YAML::Value << ns;
    }
    if (const std::string fprocess = f.value("envProcess", ""); !fprocess.empty()) {
      out << YAML::Key << "fprocess" << YAML::Value << YAML::DoubleQuoted << fprocess;
    }
    EmitStringMap(out, "environment", f, "envVars");
    EmitStringMap(out, "labels", f, "labels");
    EmitStringMap(out, "annotations", f, "annotations");
    EmitStringList(out, "secrets", f, "secrets");
    EmitStringList(out, "constraints", f, "constraints");
    EmitStringMap(out, "limits", f, "limits");
    EmitStringMap(out, "requests", f, "requests");
    if (f.value("readOnlyRootFilesystem", false)) {
      out << YAML::Key << "readonly_root_filesystem" << YAML::Value << true;
    }
    out << YAML::EndMap;
  }
  out << YAML::EndMap << YAML::EndMap;
  if (!out.good()) return absl::InternalError(absl::StrCat("stack.yml: ", out.GetLastError()));
  return std::string(out.c_str()) + "\n";
}

int Export(const ExportOptions& o) {
  absl::StatusOr<gateway::Credentials> creds =
      gateway::LoadOrCreateCredentials(o.state_dir + "/secrets");
  if (!creds.ok()) {
    std::fprintf(stderr, "faasd export: basic auth: %s\n",
                 std::string(creds.status().message()).c_str());
    return 1;
  }
  httplib::Client client(o.host, o.port);
  client.set_basic_auth(creds->user.c_str(), creds->password.c_str());
  client.set_read_timeout(30, 0);
  auto fail = [](const absl::Status& s) {
    std::fprintf(stderr, "faasd export: %s\n", std::string(s.message()).c_str());
    return 1;
  };
  std::vector<std::string> namespaces = {o.ns};
  if (o.ns.empty()) {
    absl::StatusOr<json> list = GetJson(client, "/system/namespaces");
    if (!list.ok()) return fail(list.status());
    namespaces.clear();
    for (const json& n : *list) {
      if (n.is_string()) namespaces.push_back(n.get<std::string>());
    }
  }
  std::vector<json> functions;
  for (const std::string& ns : namespaces) {
    const std::string query = absl::StrCat("?namespace=", httplib::detail::encode_query_param(ns));
    absl::StatusOr<json> list = GetJson(client, "/system/functions" + query);
    if (!list.ok()) return fail(list.status());
    for (const json& f : *list) {
      // The list may abbreviate; each function's own answer is what deploy took.
      if (absl::Status s = CheckFieldTypes(f); !s.ok()) return fail(s);
      const std::string name = f.value("name", "");
      absl::StatusOr<json> one = GetJson(
          client, absl::StrCat("/system/function/", httplib::detail::encode_query_param(name),
                               query));
      if (!one.ok()) return fail(one.status());
      if (one->is_object() && !one->contains("namespace")) (*one)["namespace"] = ns;
      functions.push_back(*std::move(one));
    }
  }
  absl::StatusOr<std::string> stack = RenderStack(functions, o.gateway_url, o.default_ns);
  if (!stack.ok()) return fail(stack.status());
  std::fputs(stack->c_str(), stdout);
  return 0;
}

}  // namespace faasd::appliance
