// The garbage-collection reference labels containerd's own pull sets, so content and snapshots
// stay alive exactly as long as an image refers to them. Shared by pull and import.
#pragma once

#include <string>

#include "absl/strings/str_cat.h"
#include "containerd/client.h"
#include "registry/registry.h"

namespace faasd::image {

// On the config blob: the unpacked top snapshot in `snapshotter`.
inline containerd::Labels ConfigGcLabels(const std::string& snapshotter,
                                         const std::string& chain_id) {
  containerd::Labels labels;
  if (!chain_id.empty()) labels["containerd.io/gc.ref.snapshot." + snapshotter] = chain_id;
  return labels;
}

// On the manifest blob: its config and each layer.
inline containerd::Labels ManifestGcLabels(const registry::Manifest& manifest) {
  containerd::Labels labels{{"containerd.io/gc.ref.content.config", manifest.config.digest}};
  for (size_t i = 0; i < manifest.layers.size(); ++i) {
    labels[absl::StrCat("containerd.io/gc.ref.content.l.", i)] = manifest.layers[i].digest;
  }
  return labels;
}

}  // namespace faasd::image
