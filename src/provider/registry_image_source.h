// The ImageSource on image::ImagePuller: images pulled from their registry (or found in
// containerd's content store, by policy) and unpacked into containerd. Thread-safe; borrows the
// puller.
#pragma once

#include "image/puller.h"
#include "provider/image_source.h"

namespace faasd::provider {

class RegistryImageSource final : public ImageSource {
 public:
  explicit RegistryImageSource(image::ImagePuller& puller) : puller_(puller) {}

  absl::StatusOr<image::PulledImage> Pull(const std::string& image, image::PullPolicy policy,
                                          const std::string& ns) override {
    return puller_.Pull(image, policy, ns);
  }

 private:
  image::ImagePuller& puller_;
};

}  // namespace faasd::provider
