// stack.yml parsing with yaml-cpp. yaml-cpp reports errors by throwing; every exception stops
// here and becomes InvalidArgument naming the file and the place.
#include <sys/stat.h>

#include <climits>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "builder/builder.h"
#include "yaml-cpp/yaml.h"

namespace faasd::builder {
namespace {

const std::set<std::string> kTopKeys = {"version", "provider", "functions", "configuration"};
// faas-cli's function fields (it ignores the ones it does not know; we name them instead, because
// a misspelt `environment` would otherwise silently build a broken image), plus build_command.
const std::set<std::string> kFunctionKeys = {
    "lang",        "handler",    "image",         "fprocess",      "environment",
    "secrets",     "labels",     "annotations",   "limits",        "requests",
    "constraints", "build_args", "build_options", "build_secrets", "readonly_root_filesystem",
    "skip_build",  "namespace",  "platforms",     "build_command", "environment_file",
};

bool ValidName(const std::string& n) {
  if (n.empty() || n.size() > 63) return false;
  for (size_t i = 0; i < n.size(); ++i) {
    char c = n[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!alnum && !(c == '-' && i != 0 && i + 1 != n.size())) return false;
  }
  return true;
}

struct Ctx {
  std::string file;
  absl::Status Err(const std::string& where, const std::string& what) const {
    return absl::InvalidArgumentError(absl::StrCat(file, ": ", where, ": ", what));
  }
};

absl::StatusOr<std::string> Scalar(const Ctx& ctx, const YAML::Node& n, const std::string& where) {
  if (n.IsNull()) return std::string();
  if (!n.IsScalar()) return ctx.Err(where, "must be a string");
  return n.Scalar();
}

absl::Status StringMap(const Ctx& ctx, const YAML::Node& n, const std::string& where,
                       std::map<std::string, std::string>* out) {
  if (n.IsNull()) return absl::OkStatus();
  if (!n.IsMap()) return ctx.Err(where, "must be a map of strings");
  for (const auto& kv : n) {
    if (!kv.first.IsScalar()) return ctx.Err(where, "keys must be strings");
    std::string key = kv.first.Scalar();
    absl::StatusOr<std::string> v = Scalar(ctx, kv.second, absl::StrCat(where, ".", key));
    if (!v.ok()) return v.status();
    (*out)[key] = *v;
  }
  return absl::OkStatus();
}

absl::StatusOr<FunctionSpec> ParseFunction(const Ctx& ctx, const std::string& name,
                                           const YAML::Node& n, const std::string& dir) {
  const std::string where = "function " + name;
  if (!ValidName(name))
    return ctx.Err(where, "name must be lower-case letters, digits and '-' (at most 63)");
  if (!n.IsMap()) return ctx.Err(where, "must be a map");
  FunctionSpec fn;
  fn.name = name;
  for (const auto& kv : n) {
    std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "";
    if (!kFunctionKeys.count(key)) return ctx.Err(where, absl::StrCat("unknown key `", key, "`"));
  }
  auto scalar = [&](const char* key, std::string* out) -> absl::Status {
    if (!n[key]) return absl::OkStatus();
    absl::StatusOr<std::string> v = Scalar(ctx, n[key], absl::StrCat(where, ".", key));
    if (!v.ok()) return v.status();
    *out = *v;
    return absl::OkStatus();
  };
  std::string handler;
  for (auto [key, out] :
       std::vector<std::pair<const char*, std::string*>>{{"lang", &fn.lang},
                                                         {"handler", &handler},
                                                         {"image", &fn.image},
                                                         {"fprocess", &fn.fprocess},
                                                         {"build_command", &fn.build_command}}) {
    absl::Status s = scalar(key, out);
    if (!s.ok()) return s;
  }
  for (auto [key, out] : std::vector<std::pair<const char*, std::map<std::string, std::string>*>>{
           {"environment", &fn.environment},
           {"labels", &fn.labels},
           {"annotations", &fn.annotations}}) {
    if (!n[key]) continue;
    absl::Status s = StringMap(ctx, n[key], absl::StrCat(where, ".", key), out);
    if (!s.ok()) return s;
  }
  if (n["environment_file"])
    return ctx.Err(where, "environment_file is not supported by faasd build; use environment");
  if (fn.lang == "dockerfile")
    return ctx.Err(where, "lang dockerfile needs Docker; faasd build packs a handler folder");
  if (fn.image.empty()) return ctx.Err(where, "`image` is required");
  if (auto ref = registry::Reference::Parse(fn.image); !ref.ok())
    return ctx.Err(where + ".image", std::string(ref.status().message()));
  if (handler.empty()) return ctx.Err(where, "`handler` (a folder) is required");
  // The handler is packed into the image: it must be a folder of the stack's own, or a cloned
  // repository could put any host directory (/etc, ~/.ssh) into an image that is then pushed.
  if (handler.front() == '/')
    return ctx.Err(where + ".handler",
                   absl::StrCat("\"", handler, "\" must be a folder inside ", dir,
                                " (a relative path), not an absolute path"));
  fn.handler = handler;
  return fn;
}

absl::StatusOr<Stack> Parse(const Ctx& ctx, const YAML::Node& root, const std::string& dir) {
  if (!root.IsMap()) return ctx.Err("top level", "must be a map with `functions`");
  for (const auto& kv : root) {
    std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "";
    if (!kTopKeys.count(key)) return ctx.Err("top level", absl::StrCat("unknown key `", key, "`"));
  }
  Stack stack;
  stack.dir = dir;
  if (const YAML::Node p = root["provider"]; p && p.IsMap() && p["gateway"]) {
    absl::StatusOr<std::string> gw = Scalar(ctx, p["gateway"], "provider.gateway");
    if (!gw.ok()) return gw.status();
    stack.provider_gateway = *gw;
  }
  const YAML::Node fns = root["functions"];
  if (!fns || !fns.IsMap() || fns.size() == 0)
    return ctx.Err("functions", "must be a non-empty map of function name to definition");
  for (const auto& kv : fns) {
    std::string name = kv.first.IsScalar() ? kv.first.Scalar() : "";
    absl::StatusOr<FunctionSpec> fn = ParseFunction(ctx, name, kv.second, dir);
    if (!fn.ok()) return fn.status();
    stack.functions.push_back(std::move(*fn));
  }
  return stack;
}

}  // namespace

absl::StatusOr<Stack> ParseStack(std::string_view yaml, const std::string& dir,
                                 const std::string& file_name) {
  Ctx ctx{file_name};
  try {
    YAML::Node root = YAML::Load(std::string(yaml));
    return Parse(ctx, root, dir);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(file_name, ": ", e.what()));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(file_name, ": ", e.what()));
  }
}

absl::StatusOr<Stack> LoadStack(const std::string& path) {
  std::string file = path;
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    file = path + "/stack.yml";
    if (::stat(file.c_str(), &st) != 0 && ::stat((path + "/stack.yaml").c_str(), &st) == 0)
      file = path + "/stack.yaml";
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(file, ": cannot read"));
  std::ostringstream text;
  text << in.rdbuf();
  std::string dir =
      file.substr(0, file.find_last_of('/') == std::string::npos ? 0 : file.find_last_of('/'));
  if (file.find('/') == std::string::npos) dir = ".";
  char real[PATH_MAX];
  if (::realpath(dir.c_str(), real) != nullptr) dir = real;
  return ParseStack(text.str(), dir, file);
}

}  // namespace faasd::builder
