#include "provider/types.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "provider/quantity.h"

namespace faasd::provider {
namespace {

using nlohmann::json;

absl::Status ReadString(const json& j, const char* key, std::string* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_string())
    return absl::InvalidArgumentError(absl::StrCat("\"", key, "\" must be a string"));
  *out = it->get<std::string>();
  return absl::OkStatus();
}

absl::Status ReadStringMap(const json& j, const char* key,
                           std::map<std::string, std::string>* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_object())
    return absl::InvalidArgumentError(absl::StrCat("\"", key, "\" must be an object of strings"));
  for (const auto& [k, v] : it->items()) {
    if (!v.is_string()) {
      return absl::InvalidArgumentError(absl::StrCat("\"", key, ".", k, "\" must be a string"));
    }
    (*out)[k] = v.get<std::string>();
  }
  return absl::OkStatus();
}

absl::Status ReadStringList(const json& j, const char* key, std::vector<std::string>* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_array())
    return absl::InvalidArgumentError(absl::StrCat("\"", key, "\" must be an array of strings"));
  for (const auto& v : *it) {
    if (!v.is_string())
      return absl::InvalidArgumentError(absl::StrCat("\"", key, "\" must hold strings"));
    out->push_back(v.get<std::string>());
  }
  return absl::OkStatus();
}

absl::Status ReadResources(const json& j, const char* key, std::optional<FunctionResources>* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_object())
    return absl::InvalidArgumentError(absl::StrCat("\"", key, "\" must be an object"));
  FunctionResources r;
  absl::Status s = ReadString(*it, "memory", &r.memory);
  if (s.ok()) s = ReadString(*it, "cpu", &r.cpu);
  if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat(key, ": ", s.message()));
  if (!r.empty()) *out = r;
  return absl::OkStatus();
}

json ResourcesJson(const FunctionResources& r) {
  json j = json::object();
  if (!r.memory.empty()) j["memory"] = r.memory;
  if (!r.cpu.empty()) j["cpu"] = r.cpu;
  return j;
}

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

bool HasControl(absl::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return true;
  }
  return false;
}

// containerd refuses a label whose key and value together exceed 4096 bytes; annotations are
// stored as labels under a prefix, so they count it too.
constexpr size_t kMaxLabelBytes = 4096 - 64;

absl::Status ValidateLabel(const char* field, const std::string& key, const std::string& value) {
  if (key.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": a key is empty"));
  if (HasControl(key)) {
    return absl::InvalidArgumentError(absl::StrCat(field, " key \"", absl::CEscape(key),
                                                   "\" has a newline or control character"));
  }
  if (key.size() + value.size() > kMaxLabelBytes) {
    return absl::InvalidArgumentError(absl::StrCat(field, " \"", key.substr(0, 63),
                                                   "\": key and value are over ", kMaxLabelBytes,
                                                   " bytes together"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<FunctionDeployment> ParseDeployment(std::string_view body) {
  json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("request body is not valid JSON");
  if (!j.is_object()) return absl::InvalidArgumentError("request body must be a JSON object");
  FunctionDeployment d;
  absl::Status s = ReadString(j, "service", &d.service);
  if (s.ok()) s = ReadString(j, "image", &d.image);
  if (s.ok()) s = ReadString(j, "namespace", &d.namespace_);
  if (s.ok()) s = ReadString(j, "envProcess", &d.env_process);
  if (s.ok()) s = ReadStringMap(j, "envVars", &d.env_vars);
  if (s.ok()) s = ReadStringList(j, "constraints", &d.constraints);
  if (s.ok()) s = ReadStringList(j, "secrets", &d.secrets);
  if (s.ok()) s = ReadStringMap(j, "labels", &d.labels);
  if (s.ok()) s = ReadStringMap(j, "annotations", &d.annotations);
  if (s.ok()) s = ReadResources(j, "limits", &d.limits);
  if (s.ok()) s = ReadResources(j, "requests", &d.requests);
  if (!s.ok()) return s;
  auto ro = j.find("readOnlyRootFilesystem");
  if (ro != j.end() && !ro->is_null()) {
    if (!ro->is_boolean())
      return absl::InvalidArgumentError("\"readOnlyRootFilesystem\" must be a boolean");
    d.read_only_root_filesystem = ro->get<bool>();
  }
  return d;
}

absl::StatusOr<FunctionNamespace> ParseNamespace(std::string_view body) {
  json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("request body is not valid JSON");
  if (!j.is_object()) return absl::InvalidArgumentError("request body must be a JSON object");
  FunctionNamespace ns;
  absl::Status s = ReadString(j, "name", &ns.name);
  if (s.ok()) s = ReadStringMap(j, "labels", &ns.labels);
  if (s.ok()) s = ReadStringMap(j, "annotations", &ns.annotations);
  if (!s.ok()) return s;
  return ns;
}

json ToJson(const FunctionNamespace& ns) {
  json j = {{"name", ns.name}, {"labels", ns.labels}};
  if (!ns.annotations.empty()) j["annotations"] = ns.annotations;
  return j;
}

absl::StatusOr<Secret> ParseSecret(std::string_view body) {
  json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("request body is not valid JSON");
  if (!j.is_object()) return absl::InvalidArgumentError("request body must be a JSON object");
  Secret s;
  std::string raw;
  absl::Status st = ReadString(j, "name", &s.name);
  if (st.ok()) st = ReadString(j, "namespace", &s.namespace_);
  if (st.ok()) st = ReadString(j, "value", &s.value);
  if (st.ok()) st = ReadString(j, "rawValue", &raw);
  if (!st.ok()) return st;
  // Go encodes []byte as standard base64 with padding.
  if (!raw.empty() && !absl::Base64Unescape(raw, &s.raw_value)) {
    return absl::InvalidArgumentError("\"rawValue\" is not base64");
  }
  return s;
}

absl::StatusOr<ScaleRequest> ParseScaleRequest(std::string_view body) {
  json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("request body is not a JSON object");
  }
  ScaleRequest r;
  if (absl::Status s = ReadString(j, "namespace", &r.namespace_); !s.ok()) return s;
  auto it = j.find("replicas");
  // Values past INT64_MAX read as negative here, so they are refused too.
  if (it == j.end() || !it->is_number_integer() || it->get<int64_t>() < 0) {
    return absl::InvalidArgumentError("replicas must be a non-negative integer");
  }
  r.replicas = it->get<uint64_t>();
  return r;
}

absl::Status ValidateName(std::string_view what_sv, std::string_view name_sv) {
  // Debian's Abseil has its own string_view type, distinct from std::string_view.
  absl::string_view what(what_sv.data(), what_sv.size());
  absl::string_view name(name_sv.data(), name_sv.size());
  if (name.empty()) return absl::InvalidArgumentError(absl::StrCat(what, " is empty"));
  if (name.size() > 63) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " \"", name.substr(0, 63), "...\" is longer than 63 characters"));
  }
  bool ok = IsLowerAlnum(name.front()) && IsLowerAlnum(name.back());
  for (char c : name) ok = ok && (IsLowerAlnum(c) || c == '-');
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " \"", name,
        "\" is invalid: use lower-case letters, digits and '-', starting and ending with a "
        "letter or digit"));
  }
  return absl::OkStatus();
}

absl::Status ValidateDeployment(const FunctionDeployment& d) {
  if (d.service.empty()) return absl::InvalidArgumentError("\"service\" is required");
  absl::Status s = ValidateName("function name", d.service);
  if (!s.ok()) return s;
  if (!d.namespace_.empty()) {
    s = ValidateName("namespace", d.namespace_);
    if (!s.ok()) return s;
  }
  if (d.image.empty()) return absl::InvalidArgumentError("\"image\" is required");
  for (char c : d.image) {
    if (c <= ' ' || c == 0x7f) {
      return absl::InvalidArgumentError(
          absl::StrCat("image \"", d.image, "\" has whitespace or control characters"));
    }
  }
  for (const auto& [k, v] : d.env_vars) {
    if (k.empty() || k.find('=') != std::string::npos || HasControl(k)) {
      return absl::InvalidArgumentError(
          absl::StrCat("envVars name \"", absl::CEscape(k),
                       "\" is invalid: it must be non-empty, without '=' or control characters"));
    }
  }
  for (const auto& [field, map] :
       {std::pair{"labels", &d.labels}, {"annotations", &d.annotations}}) {
    for (const auto& [k, v] : *map) {
      s = ValidateLabel(field, k, v);
      if (!s.ok()) return s;
    }
  }
  for (const auto* r : {&d.limits, &d.requests}) {
    if (!r->has_value()) continue;
    const char* which = r == &d.limits ? "limits" : "requests";
    if (!(*r)->memory.empty()) {
      absl::StatusOr<int64_t> m = ParseMemoryQuantity((*r)->memory);
      if (!m.ok())
        return absl::InvalidArgumentError(absl::StrCat(which, ".", m.status().message()));
      if (r == &d.limits && *m > 0 && *m < kMinMemoryLimit) {
        return absl::InvalidArgumentError(
            absl::StrCat("limits.memory ", (*r)->memory, " is below the minimum of 4Mi"));
      }
    }
    if (!(*r)->cpu.empty()) {
      absl::StatusOr<int64_t> c = ParseCpuQuantity((*r)->cpu);
      if (!c.ok())
        return absl::InvalidArgumentError(absl::StrCat(which, ".", c.status().message()));
      // The kernel's CFS quota is at least 1 ms per period; ours is 100 ms.
      if (r == &d.limits && *c > 0 && *c < kMinCpuLimitMillis) {
        return absl::InvalidArgumentError(absl::StrCat(
            "limits.cpu ", (*r)->cpu,
            " is below the minimum of 10m (the kernel's 1 ms of CPU per 100 ms period)"));
      }
    }
  }
  for (const auto& secret : d.secrets) {
    s = ValidateName("secret name", secret);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

json ToJson(const FunctionDeployment& d) {
  json j = json::object();
  j["service"] = d.service;
  j["image"] = d.image;
  if (!d.namespace_.empty()) j["namespace"] = d.namespace_;
  if (!d.env_process.empty()) j["envProcess"] = d.env_process;
  if (!d.env_vars.empty()) j["envVars"] = d.env_vars;
  if (!d.constraints.empty()) j["constraints"] = d.constraints;
  if (!d.secrets.empty()) j["secrets"] = d.secrets;
  if (!d.labels.empty()) j["labels"] = d.labels;
  if (!d.annotations.empty()) j["annotations"] = d.annotations;
  if (d.limits) j["limits"] = ResourcesJson(*d.limits);
  if (d.requests) j["requests"] = ResourcesJson(*d.requests);
  if (d.read_only_root_filesystem) j["readOnlyRootFilesystem"] = true;
  return j;
}

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", t, absl::UTCTimeZone());
}

json ToJson(const FunctionStatus& s) {
  json j = json::object();
  j["name"] = s.name;
  j["image"] = s.image;
  if (!s.namespace_.empty()) j["namespace"] = s.namespace_;
  if (!s.env_process.empty()) j["envProcess"] = s.env_process;
  if (!s.env_vars.empty()) j["envVars"] = s.env_vars;
  if (!s.constraints.empty()) j["constraints"] = s.constraints;
  if (!s.secrets.empty()) j["secrets"] = s.secrets;
  if (!s.labels.empty()) j["labels"] = s.labels;
  if (!s.annotations.empty()) j["annotations"] = s.annotations;
  if (s.limits) j["limits"] = ResourcesJson(*s.limits);
  if (s.requests) j["requests"] = ResourcesJson(*s.requests);
  if (s.read_only_root_filesystem) j["readOnlyRootFilesystem"] = true;
  // Go encodes a whole float64 without a fraction ("2", not "2.0"); so do we.
  if (s.invocation_count == static_cast<double>(static_cast<uint64_t>(s.invocation_count))) {
    j["invocationCount"] = static_cast<uint64_t>(s.invocation_count);
  } else {
    j["invocationCount"] = s.invocation_count;
  }
  j["replicas"] = s.replicas;
  j["availableReplicas"] = s.available_replicas;
  if (!s.created_at.empty()) j["createdAt"] = s.created_at;
  if (s.usage) {
    j["usage"] = {{"cpu", s.usage->cpu}, {"totalMemoryBytes", s.usage->total_memory_bytes}};
  }
  if (s.last_exit) {
    const ReplicaExit& e = *s.last_exit;
    j["lastExit"] = {{"instance", e.instance},
                     {"exitCode", e.exit_code},
                     {"reason", e.oom_killed ? "OOMKilled" : e.exit_code == 0 ? "Completed" : "Error"},
                     {"exitedAt", Rfc3339(e.exited_at)},
                     {"restartsInARow", e.restarts_in_a_row}};
  }
  return j;
}

FunctionStatus StatusFromDeployment(const FunctionDeployment& d) {
  FunctionStatus s;
  s.name = d.service;
  s.image = d.image;
  s.namespace_ = d.namespace_.empty() ? kDefaultNamespace : d.namespace_;
  s.env_process = d.env_process;
  s.env_vars = d.env_vars;
  s.constraints = d.constraints;
  s.secrets = d.secrets;
  s.labels = d.labels;
  s.annotations = d.annotations;
  s.limits = d.limits;
  s.requests = d.requests;
  s.read_only_root_filesystem = d.read_only_root_filesystem;
  return s;
}

}  // namespace faasd::provider
