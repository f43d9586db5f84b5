// Pulls an image into containerd the way containerd's own client does (resolve, fetch, unpack):
// blobs go into the content store with their digests checked, GC reference labels tie the index,
// manifest, config, layers and unpacked snapshots together, the image record is created, and the
// layers are unpacked into the snapshotter under their chain IDs. Everything is done under a
// lease, so a concurrent GC cannot take half a pull away. A second pull of the same image
// downloads nothing: blobs and snapshots already present are skipped.
//
// Thread-safe: concurrent pulls (even of the same image) are fine; containerd arbitrates.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "containerd/client.h"
#include "registry/registry.h"

namespace faasd::image {

enum class PullPolicy { kAlways, kIfNotPresent, kNever };
// "Always", "IfNotPresent", "Never" (also lower-case and dashed forms).
absl::StatusOr<PullPolicy> ParsePullPolicy(std::string_view s);

struct PulledImage {
  std::string name;           // containerd image name: the normalized reference
  std::string target_digest;  // index or manifest digest the image record points at
  registry::ImageConfig config;
  std::string chain_id;     // the top layer's chain ID: parent of container snapshots
  bool downloaded = false;  // false when nothing was fetched from the registry
};

// HTTP status hint for the gateway, attached as a payload to pull errors.
inline constexpr char kHttpStatusPayload[] = "faasd/http-status";

// The default ceiling on what one pull's layers unpack to.
inline constexpr uint64_t kDefaultMaxImageBytes = uint64_t{8} << 30;

class ImagePuller {
 public:
  // `max_image_bytes` bounds the uncompressed size of the layers one pull downloads; a pull past
  // it stops while downloading, before anything is unpacked.
  ImagePuller(containerd::Client& client, registry::RegistryClient& registry, std::string ns,
              registry::Platform platform, uint64_t max_image_bytes = kDefaultMaxImageBytes);

  // Errors carry a kHttpStatusPayload: "400" for a bad reference, an image/tag the registry
  // does not have or refuses us, or a bad image (layers over max_image_bytes, a layer containerd
  // cannot unpack, diff IDs that do not match); "502" when the registry cannot be reached or
  // fails; "507" when the host's disk is full.
  // Into containerd namespace `ns` ("" = the one given at construction).
  absl::StatusOr<PulledImage> Pull(const std::string& image, PullPolicy policy,
                                   const std::string& ns = "");

 private:
  struct Scope;
  absl::StatusOr<PulledImage> FromRegistry(const registry::Reference& ref, Scope& scope);
  absl::StatusOr<PulledImage> FromContentStore(const registry::Reference& ref, Scope& scope);
  absl::StatusOr<std::string> Blob(const registry::Reference& ref, const registry::Descriptor& desc,
                                   Scope& scope, const containerd::Labels& labels,
                                   bool* downloaded);
  absl::Status Unpack(const registry::Manifest& manifest, const registry::ImageConfig& config,
                      Scope& scope);
  // content.Info of a blob, once the pull's lease holds it: a blob found in the store is then
  // kept until the pull ends, though nothing else may reference it (a failed pull's layers).
  absl::StatusOr<containerd::ContentInfo> HeldInfo(Scope& scope, const std::string& digest);
  // "bad image" (400) once the layers counted so far unpack to more than max_image_bytes_.
  absl::Status CheckImageSize(const Scope& scope) const;

  containerd::Client& client_;
  registry::RegistryClient& registry_;
  const std::string ns_;
  const registry::Platform platform_;
  const uint64_t max_image_bytes_;
};

}  // namespace faasd::image
