// Where a function's image comes from: Pull makes the image (its record, content and unpacked
// snapshots) present in a containerd namespace, by policy, and says what it is: its name, its
// config (entrypoint, cmd, env, user, working dir) and the chain id a container's snapshot
// starts from. RegistryImageSource is the real one (image::ImagePuller); the unit tests hold
// one that pulls nothing.
//
// Contract: errors name the image and the cause and may carry image::kHttpStatusPayload
// (400 for a bad or missing image, 502 for a registry that fails). Implementations are
// thread-safe.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "image/puller.h"

namespace faasd::provider {

class ImageSource {
 public:
  virtual ~ImageSource() = default;
  // Into containerd namespace `ns`.
  virtual absl::StatusOr<image::PulledImage> Pull(const std::string& image,
                                                  image::PullPolicy policy,
                                                  const std::string& ns) = 0;
};

}  // namespace faasd::provider
