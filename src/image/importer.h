// Imports images from an OCI image layout directory (oci-layout, index.json, blobs/sha256/...)
// into containerd, so the daemon finds them with pull policy IfNotPresent or Never and never asks
// a registry: blobs go into the content store (containerd checks each digest), with the same GC
// reference labels a pull sets (manifest -> config and layers, config -> unpacked snapshot), the
// image record is created or retargeted, and the layers are unpacked into the snapshotter under
// their chain IDs. All of it happens under a lease, so GC cannot take a half-import away.
//
// Each manifest in index.json becomes an image named by its `io.containerd.image.name`
// annotation, else by its `org.opencontainers.image.ref.name` normalized like a pull would
// ("echo:latest" -> "docker.io/library/echo:latest"). Only single-platform manifests are
// imported (not nested indexes). Thread-safe as containerd::Client is.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "containerd/client.h"

namespace faasd::image {

struct ImportedImage {
  std::string name;             // containerd image name
  std::string manifest_digest;  // what the image record points at
  std::string chain_id;         // the unpacked top snapshot
};

// Errors name the layout and the blob ("import /tmp/oci: blob sha256:ab..: not found").
absl::StatusOr<std::vector<ImportedImage>> ImportOciLayout(containerd::Client& client,
                                                           const std::string& ns,
                                                           const std::string& layout_dir);

// An oci-archive (a tar of an OCI image layout, as `skopeo copy ... oci-archive:FILE` and
// `faasd build --archive` write) imported as above: unpacked into a fresh folder under
// `scratch_dir` (created if needed), which is removed afterwards. Only folders and regular files
// are taken, and only below that folder (no absolute paths, no "..", no links). Errors name the
// archive.
absl::StatusOr<std::vector<ImportedImage>> ImportOciArchive(containerd::Client& client,
                                                            const std::string& ns,
                                                            const std::string& archive_path,
                                                            const std::string& scratch_dir);

}  // namespace faasd::image
