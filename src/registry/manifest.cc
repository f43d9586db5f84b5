// Manifest, index and image-config documents, and platform selection from an index.
#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "registry/auth.h"
#include "registry/json_fields.h"
#include "registry/registry.h"

namespace faasd::registry {
namespace {

using nlohmann::json;

// String arrays and maps where JSON may also carry null (Docker writes "Cmd": null); single
// strings through GetString (json_fields.h).
std::vector<std::string> GetStrings(const json& j, const char* key) {
  std::vector<std::string> out;
  auto it = j.find(key);
  if (it == j.end() || !it->is_array()) return out;
  for (const json& v : *it) {
    if (v.is_string()) out.push_back(v.get<std::string>());
  }
  return out;
}

std::map<std::string, std::string> GetStringMap(const json& j, const char* key) {
  std::map<std::string, std::string> out;
  auto it = j.find(key);
  if (it == j.end() || !it->is_object()) return out;
  for (auto& [k, v] : it->items()) {
    if (v.is_string()) out[k] = v.get<std::string>();
  }
  return out;
}

absl::StatusOr<Descriptor> ParseDescriptor(const json& j, std::string_view what) {
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(Av(what), ": not an object"));
  Descriptor d;
  d.media_type = GetString(j, "mediaType");
  d.digest = GetString(j, "digest");
  if (!IsValidDigest(d.digest)) {
    return absl::InvalidArgumentError(absl::StrCat(Av(what), ": bad digest \"", d.digest, "\""));
  }
  auto size = j.find("size");
  if (size == j.end() || !size->is_number_integer() || size->get<int64_t>() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(Av(what), " ", d.digest, ": missing or bad size"));
  }
  d.size = size->get<int64_t>();
  if (auto p = j.find("platform"); p != j.end() && p->is_object()) {
    Platform platform;
    platform.os = GetString(*p, "os");
    platform.architecture = GetString(*p, "architecture");
    platform.variant = GetString(*p, "variant");
    d.platform = platform;
  }
  d.annotations = GetStringMap(j, "annotations");
  return d;
}

absl::StatusOr<json> ParseObject(std::string_view body, std::string_view what) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(Av(what), ": not a JSON object"));
  }
  return j;
}

// Containerd's comparable variant: arm64 "" is v8, arm "" is v7 (what unvariant images run on).
std::string EffectiveVariant(const std::string& arch, const std::string& variant) {
  if (variant.empty()) {
    if (arch == "arm64") return "v8";
    if (arch == "arm") return "v7";
  }
  return variant;
}

// Higher is better; -1 means not runnable on `want`.
int Score(const Platform& have, const Platform& want) {
  if (absl::AsciiStrToLower(have.os) != absl::AsciiStrToLower(want.os)) return -1;
  if (have.architecture != want.architecture) return -1;
  if (have.variant == want.variant) return 1000;
  std::string hv = EffectiveVariant(have.architecture, have.variant);
  std::string wv = EffectiveVariant(want.architecture, want.variant);
  if (hv == wv) return 900;
  if (want.architecture == "amd64") return 500;  // v2/v3 microarchitecture levels: any runs
  if (want.architecture == "arm") {
    // An armv7 core runs v6 and v5 code: prefer the newest the host supports.
    auto level = [](const std::string& v) {
      return v.size() == 2 && v[0] == 'v' && v[1] >= '5' && v[1] <= '8' ? v[1] - '0' : -1;
    };
    int h = level(hv), w = level(wv);
    if (h > 0 && w > 0 && h < w) return 100 + h;
  }
  return -1;
}

}  // namespace

bool IsIndexMediaType(std::string_view media_type) {
  return media_type == kMediaTypeOciIndex || media_type == kMediaTypeDockerManifestList;
}

bool IsManifestMediaType(std::string_view media_type) {
  return media_type == kMediaTypeOciManifest || media_type == kMediaTypeDockerManifest;
}

absl::StatusOr<Manifest> ParseManifest(std::string_view body) {
  absl::StatusOr<json> j = ParseObject(body, "manifest");
  if (!j.ok()) return j.status();
  if (IsSchema1(*j)) {
    return absl::InvalidArgumentError(
        "manifest: Docker schema1 manifests are not supported (deprecated); re-push the image "
        "with a current docker/buildah/skopeo");
  }
  std::string media_type = GetString(*j, "mediaType");
  if (IsIndexMediaType(media_type) || (media_type.empty() && j->contains("manifests"))) {
    return absl::InvalidArgumentError("manifest: document is an index, not an image manifest");
  }
  if (!media_type.empty() && !IsManifestMediaType(media_type)) {
    return absl::InvalidArgumentError(
        absl::StrCat("manifest: unsupported media type \"", media_type, "\""));
  }
  auto config = j->find("config");
  if (config == j->end()) return absl::InvalidArgumentError("manifest: no config");
  absl::StatusOr<Descriptor> config_desc = ParseDescriptor(*config, "manifest config");
  if (!config_desc.ok()) return config_desc.status();
  Manifest m;
  m.config = *std::move(config_desc);
  auto layers = j->find("layers");
  if (layers == j->end() || !layers->is_array()) {
    return absl::InvalidArgumentError("manifest: no layers array");
  }
  for (const json& layer : *layers) {
    absl::StatusOr<Descriptor> d = ParseDescriptor(layer, "manifest layer");
    if (!d.ok()) return d.status();
    m.layers.push_back(*std::move(d));
  }
  return m;
}

absl::StatusOr<Index> ParseIndex(std::string_view body) {
  absl::StatusOr<json> j = ParseObject(body, "index");
  if (!j.ok()) return j.status();
  std::string media_type = GetString(*j, "mediaType");
  if (!media_type.empty() && !IsIndexMediaType(media_type)) {
    return absl::InvalidArgumentError(
        absl::StrCat("index: media type \"", media_type, "\" is not an index"));
  }
  auto manifests = j->find("manifests");
  if (manifests == j->end() || !manifests->is_array()) {
    return absl::InvalidArgumentError("index: no manifests array");
  }
  Index index;
  for (const json& entry : *manifests) {
    absl::StatusOr<Descriptor> d = ParseDescriptor(entry, "index entry");
    if (!d.ok()) return d.status();
    index.manifests.push_back(*std::move(d));
  }
  return index;
}

absl::StatusOr<Descriptor> SelectPlatform(const Index& index, const Platform& want) {
  const Descriptor* best = nullptr;
  int best_score = -1;
  std::vector<std::string> offered;
  for (const Descriptor& d : index.manifests) {
    if (!d.platform) continue;
    // Attestations (buildx "unknown/unknown") and other artifacts are not runnable images.
    if (!d.media_type.empty() && !IsManifestMediaType(d.media_type)) continue;
    offered.push_back(d.platform->String());
    int score = Score(*d.platform, want);
    if (score > best_score) {
      best = &d;
      best_score = score;
    }
  }
  if (best == nullptr) {
    return absl::NotFoundError(absl::StrCat(
        "no image for platform ", want.String(),
        " in index; it offers: ", offered.empty() ? "no platforms" : absl::StrJoin(offered, ", ")));
  }
  return *best;
}

absl::StatusOr<ImageConfig> ParseImageConfig(std::string_view body) {
  absl::StatusOr<json> j = ParseObject(body, "image config");
  if (!j.ok()) return j.status();
  ImageConfig c;
  c.os = GetString(*j, "os");
  c.architecture = GetString(*j, "architecture");
  c.variant = GetString(*j, "variant");
  if (auto cfg = j->find("config"); cfg != j->end() && cfg->is_object()) {
    c.env = GetStrings(*cfg, "Env");
    c.entrypoint = GetStrings(*cfg, "Entrypoint");
    c.cmd = GetStrings(*cfg, "Cmd");
    c.working_dir = GetString(*cfg, "WorkingDir");
    c.user = GetString(*cfg, "User");
    c.labels = GetStringMap(*cfg, "Labels");
    if (auto ports = cfg->find("ExposedPorts"); ports != cfg->end() && ports->is_object()) {
      for (auto& [port, unused] : ports->items()) c.exposed_ports.push_back(port);
    }
  }
  auto rootfs = j->find("rootfs");
  if (rootfs == j->end() || !rootfs->is_object()) {
    return absl::InvalidArgumentError("image config: no rootfs");
  }
  c.diff_ids = GetStrings(*rootfs, "diff_ids");
  for (const std::string& id : c.diff_ids) {
    if (!IsValidDigest(id)) {
      return absl::InvalidArgumentError(absl::StrCat("image config: bad diff_id \"", id, "\""));
    }
  }
  return c;
}

}  // namespace faasd::registry
