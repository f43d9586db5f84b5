#include "image/puller.h"

#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "base/log.h"
#include "image/gc_labels.h"
#include "image/uncompressed.h"

namespace faasd::image {
namespace {

constexpr int64_t kMaxManifestBytes = 8 << 20;
constexpr int64_t kChunkLimit = 1 << 20;
// On a layer blob we downloaded: what it unpacks to, so a later pull reusing it can count it.
constexpr char kUncompressedSizeLabel[] = "faasd.uncompressed-size";

std::string RandomHex(int bytes) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string out;
  const char* hex = "0123456789abcdef";
  for (int i = 0; i < bytes; ++i) {
    unsigned v = rng() & 0xff;
    out += hex[v >> 4];
    out += hex[v & 0xf];
  }
  return out;
}

absl::Status WithHttp(absl::Status s, std::string_view code) {
  if (!s.ok())
    s.SetPayload(kHttpStatusPayload, absl::Cord(absl::string_view(code.data(), code.size())));
  return s;
}

// Registry failures the user can fix (bad name, missing tag, credentials) are 400; the rest
// (network, registry 5xx, corrupt data) are 502, as a proxy in front of the registry.
absl::Status RegistryError(absl::Status s) {
  switch (s.code()) {
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kFailedPrecondition:
      return WithHttp(s, "400");
    default:
      return WithHttp(s, "502");
  }
}

containerd::api::types::Descriptor ToProto(const registry::Descriptor& d) {
  containerd::api::types::Descriptor p;
  p.set_media_type(d.media_type);
  p.set_digest(d.digest);
  p.set_size(d.size);
  return p;
}

// A layer containerd's diff service refuses (a hard link out of the layer, a broken tar) is the
// image's fault; containerd unreachable or the disk full is not.
absl::Status UnpackError(const std::string& what, const registry::Descriptor& layer,
                         const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kCancelled:
      return s;
    default:
      break;
  }
  if (absl::StrContains(s.message(), "no space left on device")) {
    return WithHttp(absl::ResourceExhaustedError(
                        absl::StrCat(what, ": unpack layer ", layer.digest, ": ", s.message())),
                    "507");
  }
  return WithHttp(absl::InvalidArgumentError(absl::StrCat(what, ": bad image: layer ", layer.digest,
                                                          " cannot be unpacked: ", s.message())),
                  "400");
}

}  // namespace

absl::StatusOr<PullPolicy> ParsePullPolicy(std::string_view s) {
  std::string v = absl::AsciiStrToLower(absl::string_view(s.data(), s.size()));
  v = absl::StrReplaceAll(v, {{"-", ""}, {"_", ""}});
  if (v == "always") return PullPolicy::kAlways;
  if (v == "ifnotpresent" || v == "missing") return PullPolicy::kIfNotPresent;
  if (v == "never") return PullPolicy::kNever;
  return absl::InvalidArgumentError(
      absl::StrCat("pull policy \"", std::string(s), "\" is not Always, IfNotPresent or Never"));
}

struct ImagePuller::Scope {
  containerd::CallScope call;
  std::string what;           // "pull 127.0.0.1:5000/echo:latest"
  uint64_t uncompressed = 0;  // what the layers seen so far unpack to
};

ImagePuller::ImagePuller(containerd::Client& client, registry::RegistryClient& registry,
                         std::string ns, registry::Platform platform, uint64_t max_image_bytes)
    : client_(client),
      registry_(registry),
      ns_(std::move(ns)),
      platform_(std::move(platform)),
      max_image_bytes_(max_image_bytes) {}

absl::StatusOr<PulledImage> ImagePuller::Pull(const std::string& image, PullPolicy policy,
                                              const std::string& ns_in) {
  const std::string& ns = ns_in.empty() ? ns_ : ns_in;
  absl::StatusOr<registry::Reference> ref = registry::Reference::Parse(image);
  if (!ref.ok()) {
    return WithHttp(
        absl::InvalidArgumentError(absl::StrCat("image \"", image, "\": ", ref.status().message())),
        "400");
  }
  Scope scope;
  scope.what = absl::StrCat("pull ", ref->String());
  scope.call.ns = ns;
  scope.call.timeout = absl::Minutes(10);
  containerd::CallScope lease_scope{ns, "", absl::Seconds(10)};
  absl::StatusOr<std::string> lease = client_.leases.Create(lease_scope, absl::Hours(1));
  if (!lease.ok()) return lease.status();
  scope.call.lease = *lease;

  absl::StatusOr<PulledImage> result;
  if (policy != PullPolicy::kAlways) {
    result = FromContentStore(*ref, scope);
    if (!result.ok() && policy == PullPolicy::kNever) {
      result = WithHttp(absl::FailedPreconditionError(absl::StrCat(
                            "image ", ref->String(), " is not present and pull policy is Never (",
                            result.status().message(), ")")),
                        "400");
    }
  }
  if (policy == PullPolicy::kAlways || (!result.ok() && policy == PullPolicy::kIfNotPresent)) {
    result = FromRegistry(*ref, scope);
  }
  absl::Status del = client_.leases.Delete(lease_scope, *lease);
  if (!del.ok()) LogWarning(scope.what, ": ", del.message());
  return result;
}

absl::StatusOr<containerd::ContentInfo> ImagePuller::HeldInfo(Scope& scope,
                                                              const std::string& digest) {
  absl::Status held = client_.leases.HoldContent(scope.call, digest);
  if (!held.ok()) return held;
  return client_.content.Info(scope.call, digest);
}

absl::StatusOr<std::string> ImagePuller::Blob(const registry::Reference& ref,
                                              const registry::Descriptor& desc, Scope& scope,
                                              const containerd::Labels& labels, bool* downloaded) {
  absl::StatusOr<containerd::ContentInfo> info = HeldInfo(scope, desc.digest);
  bool small = desc.size <= kMaxManifestBytes && !absl::StrContains(desc.media_type, "layer");
  if (info.ok()) {
    if (!small) {
      // Counted when it was downloaded; content imported by an operator carries no count.
      uint64_t size = 0;
      auto it = info->labels.find(kUncompressedSizeLabel);
      if (it != info->labels.end() && absl::SimpleAtoi(it->second, &size)) {
        scope.uncompressed += size;
        if (absl::Status s = CheckImageSize(scope); !s.ok()) return s;
      }
    }
    absl::Status s = client_.content.AddLabels(scope.call, desc.digest, labels);
    if (!s.ok()) return s;
    if (!small) return std::string();
    return client_.content.ReadAll(scope.call, desc.digest, kMaxManifestBytes);
  }
  if (info.status().code() != absl::StatusCode::kNotFound) return info.status();
  std::string kept;
  const uint64_t before = scope.uncompressed;
  absl::Status bad_image;  // the image's fault: returned as it is, not as the registry's
  auto fetch = [&](containerd::ContentWriter& writer, containerd::Labels* commit_labels) {
    UncompressedCounter counter;
    absl::Status written = registry_.FetchBlob(ref, desc, [&](std::string_view chunk) {
      if (small) {
        kept.append(chunk.data(), chunk.size());
      } else {
        absl::Status s = counter.Feed(chunk, max_image_bytes_);
        if (!s.ok()) {
          bad_image =
              WithHttp(absl::InvalidArgumentError(absl::StrCat(scope.what, ": bad image: layer ",
                                                               desc.digest, ": ", s.message())),
                       "400");
          return bad_image;
        }
        scope.uncompressed = before + counter.total();
        bad_image = CheckImageSize(scope);
        if (!bad_image.ok()) return bad_image;
      }
      // Large chunks are split so one gRPC message stays well under its size limit.
      for (size_t off = 0; off < chunk.size(); off += kChunkLimit) {
        absl::Status s = writer.Write(chunk.substr(off, kChunkLimit));
        if (!s.ok()) return s;
      }
      return absl::OkStatus();
    });
    if (!bad_image.ok()) return bad_image;
    if (!written.ok()) return RegistryError(written);
    if (!small) (*commit_labels)[kUncompressedSizeLabel] = absl::StrCat(counter.total());
    return absl::OkStatus();
  };
  absl::StatusOr<bool> fetched =
      client_.content.Ingest(scope.call, absl::StrCat("faasd-", desc.digest, "-", RandomHex(4)),
                             desc.digest, desc.size, labels, fetch);
  if (!fetched.ok()) return fetched.status();
  if (!*fetched) {
    // A concurrent pull stored it, or containerd had it for another namespace.
    if (!small) return std::string();
    return client_.content.ReadAll(scope.call, desc.digest, kMaxManifestBytes);
  }
  *downloaded = true;
  return kept;
}

absl::Status ImagePuller::CheckImageSize(const Scope& scope) const {
  if (scope.uncompressed <= max_image_bytes_) return absl::OkStatus();
  return WithHttp(absl::InvalidArgumentError(absl::StrCat(
                      scope.what, ": bad image: its layers unpack to more than ", max_image_bytes_,
                      " bytes (the limit set by --max-image-bytes)")),
                  "400");
}

absl::StatusOr<PulledImage> ImagePuller::FromRegistry(const registry::Reference& ref,
                                                      Scope& scope) {
  PulledImage out;
  out.name = ref.String();
  absl::StatusOr<registry::Descriptor> top = registry_.Resolve(ref);
  if (!top.ok()) {
    return RegistryError(top.status());  // the registry client names the pull already
  }
  // The top-level manifest or index: read from the content store when we already hold it.
  std::string top_body;
  absl::StatusOr<containerd::ContentInfo> have = HeldInfo(scope, top->digest);
  if (have.ok()) {
    absl::StatusOr<std::string> body =
        client_.content.ReadAll(scope.call, top->digest, kMaxManifestBytes);
    if (!body.ok()) return body.status();
    top_body = std::move(*body);
  } else {
    auto fetched = registry_.FetchManifest(ref, top->digest);
    if (!fetched.ok()) {
      return RegistryError(fetched.status());
    }
    top_body = std::move(fetched->second);
    if (top->media_type.empty()) top->media_type = fetched->first.media_type;
    top->size = static_cast<int64_t>(top_body.size());
    out.downloaded = true;
  }
  out.target_digest = top->digest;

  registry::Descriptor manifest_desc = *top;
  std::string manifest_body = top_body;
  std::optional<std::pair<int, registry::Descriptor>> index_child;
  if (registry::IsIndexMediaType(top->media_type)) {
    absl::StatusOr<registry::Index> index = registry::ParseIndex(top_body);
    if (!index.ok())
      return WithHttp(absl::Status(index.status().code(),
                                   absl::StrCat(scope.what, ": ", index.status().message())),
                      "502");
    absl::StatusOr<registry::Descriptor> chosen = registry::SelectPlatform(*index, platform_);
    if (!chosen.ok())
      return WithHttp(absl::Status(chosen.status().code(),
                                   absl::StrCat(scope.what, ": ", chosen.status().message())),
                      "400");
    manifest_desc = *chosen;
    for (size_t i = 0; i < index->manifests.size(); ++i) {
      if (index->manifests[i].digest == chosen->digest)
        index_child.emplace(static_cast<int>(i), *chosen);
    }
    absl::StatusOr<containerd::ContentInfo> have_m = HeldInfo(scope, chosen->digest);
    if (have_m.ok()) {
      absl::StatusOr<std::string> body =
          client_.content.ReadAll(scope.call, chosen->digest, kMaxManifestBytes);
      if (!body.ok()) return body.status();
      manifest_body = std::move(*body);
    } else {
      auto fetched = registry_.FetchManifest(ref, chosen->digest);
      if (!fetched.ok()) {
        return RegistryError(fetched.status());
      }
      manifest_body = std::move(fetched->second);
      out.downloaded = true;
    }
  }
  absl::StatusOr<registry::Manifest> manifest = registry::ParseManifest(manifest_body);
  if (!manifest.ok())
    return WithHttp(absl::Status(manifest.status().code(),
                                 absl::StrCat(scope.what, ": ", manifest.status().message())),
                    "502");

  // Config first: its diff IDs name the layers' uncompressed digests and chain IDs.
  absl::StatusOr<std::string> config_body = Blob(ref, manifest->config, scope, {}, &out.downloaded);
  if (!config_body.ok()) return config_body.status();
  absl::StatusOr<registry::ImageConfig> config = registry::ParseImageConfig(*config_body);
  if (!config.ok())
    return WithHttp(absl::Status(config.status().code(),
                                 absl::StrCat(scope.what, ": config: ", config.status().message())),
                    "502");
  if (config->diff_ids.size() != manifest->layers.size()) {
    return WithHttp(absl::InvalidArgumentError(absl::StrCat(
                        scope.what, ": manifest has ", manifest->layers.size(),
                        " layers but config has ", config->diff_ids.size(), " diff IDs")),
                    "502");
  }
  for (size_t i = 0; i < manifest->layers.size(); ++i) {
    absl::StatusOr<std::string> layer =
        Blob(ref, manifest->layers[i], scope, {{"containerd.io/uncompressed", config->diff_ids[i]}},
             &out.downloaded);
    if (!layer.ok()) return layer.status();
  }
  absl::Status s = Unpack(*manifest, *config, scope);
  if (!s.ok()) return s;
  std::vector<std::string> chain = registry::ChainIds(config->diff_ids);
  out.chain_id = chain.empty() ? "" : chain.back();

  // GC labels, children before parents: config -> top snapshot, manifest -> config and layers,
  // index -> the manifest we chose. The manifest and index are written now if they are new.
  s = client_.content.AddLabels(scope.call, manifest->config.digest,
                                ConfigGcLabels(client_.snapshots.snapshotter(), out.chain_id));
  if (!s.ok()) return s;
  const containerd::Labels manifest_labels = ManifestGcLabels(*manifest);
  auto put_small = [&](const registry::Descriptor& d, const std::string& body,
                       const containerd::Labels& labels) -> absl::Status {
    return client_.content
        .Ingest(scope.call, absl::StrCat("faasd-", d.digest, "-", RandomHex(4)), d.digest,
                static_cast<int64_t>(body.size()), labels,
                [&](containerd::ContentWriter& w, containerd::Labels*) { return w.Write(body); })
        .status();
  };
  registry::Descriptor md = manifest_desc;
  md.size = static_cast<int64_t>(manifest_body.size());
  s = put_small(md, manifest_body, manifest_labels);
  if (!s.ok()) return s;
  registry::Descriptor target = *top;
  target.size = static_cast<int64_t>(top_body.size());
  if (index_child) {
    s = put_small(target, top_body,
                  {{absl::StrCat("containerd.io/gc.ref.content.m.", index_child->first),
                    index_child->second.digest}});
    if (!s.ok()) return s;
  }
  containerd::api::services::images::v1::Image record;
  record.set_name(out.name);
  *record.mutable_target() = ToProto(target);
  s = client_.images.Put(scope.call, record);
  if (!s.ok()) return s;
  out.config = std::move(*config);
  return out;
}

absl::StatusOr<PulledImage> ImagePuller::FromContentStore(const registry::Reference& ref,
                                                          Scope& scope) {
  absl::StatusOr<containerd::api::services::images::v1::Image> record =
      client_.images.Get(scope.call, ref.String());
  if (!record.ok()) return record.status();
  PulledImage out;
  out.name = ref.String();
  out.target_digest = record->target().digest();
  absl::StatusOr<std::string> body =
      client_.content.ReadAll(scope.call, out.target_digest, kMaxManifestBytes);
  if (!body.ok()) return body.status();
  std::string manifest_body = *body;
  if (registry::IsIndexMediaType(record->target().media_type())) {
    absl::StatusOr<registry::Index> index = registry::ParseIndex(*body);
    if (!index.ok()) return index.status();
    absl::StatusOr<registry::Descriptor> chosen = registry::SelectPlatform(*index, platform_);
    if (!chosen.ok()) return chosen.status();
    absl::StatusOr<std::string> m =
        client_.content.ReadAll(scope.call, chosen->digest, kMaxManifestBytes);
    if (!m.ok()) return m.status();
    manifest_body = *m;
  }
  absl::StatusOr<registry::Manifest> manifest = registry::ParseManifest(manifest_body);
  if (!manifest.ok()) return manifest.status();
  absl::StatusOr<std::string> config_body =
      client_.content.ReadAll(scope.call, manifest->config.digest, kMaxManifestBytes);
  if (!config_body.ok()) return config_body.status();
  absl::StatusOr<registry::ImageConfig> config = registry::ParseImageConfig(*config_body);
  if (!config.ok()) return config.status();
  std::vector<std::string> chain = registry::ChainIds(config->diff_ids);
  out.chain_id = chain.empty() ? "" : chain.back();
  if (!out.chain_id.empty()) {
    absl::Status s = client_.snapshots.Stat(scope.call, out.chain_id);
    if (!s.ok()) {
      // Content present but not unpacked (e.g. imported, or snapshots pruned): unpack it now.
      for (const auto& layer : manifest->layers) {
        absl::StatusOr<containerd::ContentInfo> info =
            client_.content.Info(scope.call, layer.digest);
        if (!info.ok()) return info.status();
      }
      s = Unpack(*manifest, *config, scope);
      if (!s.ok()) return s;
    }
  }
  out.config = std::move(*config);
  return out;
}

absl::Status ImagePuller::Unpack(const registry::Manifest& manifest,
                                 const registry::ImageConfig& config, Scope& scope) {
  std::vector<std::string> chain = registry::ChainIds(config.diff_ids);
  for (size_t i = 0; i < manifest.layers.size(); ++i) {
    // Held before it is looked at, as blobs are (HeldInfo): the next layer is unpacked onto it.
    absl::Status held =
        client_.leases.HoldSnapshot(scope.call, client_.snapshots.snapshotter(), chain[i]);
    if (!held.ok()) return held;
    if (client_.snapshots.Stat(scope.call, chain[i]).ok()) continue;
    std::string key = absl::StrCat("extract-", RandomHex(6), "-", chain[i]);
    std::string parent = i == 0 ? "" : chain[i - 1];
    absl::StatusOr<containerd::Mounts> mounts = client_.snapshots.Prepare(
        scope.call, key, parent, {{"containerd.io/snapshot.ref", chain[i]}});
    if (!mounts.ok()) return mounts.status();
    absl::StatusOr<containerd::api::types::Descriptor> applied =
        client_.diff.Apply(scope.call, ToProto(manifest.layers[i]), *mounts);
    absl::Status s = applied.ok() ? absl::OkStatus()
                                  : UnpackError(scope.what, manifest.layers[i], applied.status());
    if (s.ok() && applied->digest() != config.diff_ids[i]) {
      s = WithHttp(
          absl::InvalidArgumentError(absl::StrCat(
              scope.what, ": bad image: layer ", manifest.layers[i].digest, " unpacked to ",
              applied->digest(), ", its config says ", config.diff_ids[i])),
          "400");
    }
    if (s.ok()) {
      s = client_.snapshots.Commit(scope.call, chain[i], key, {});
      if (s.code() == absl::StatusCode::kAlreadyExists)
        s = absl::OkStatus();  // a concurrent unpack won
    }
    if (!s.ok()) {
      (void)client_.snapshots.Remove(scope.call, key);
      return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace faasd::image
