// Reads a few small files (/etc/passwd, /etc/group) out of a container's prepared snapshot by
// mounting it briefly, so image users given by name ("USER app") resolve to uid/gid as Docker
// does. Needs root (mount(2)); the mount is private to a fresh temp dir and always undone.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "containerd/client.h"

namespace faasd::provider {

// Missing files (also behind a symlink loop) map to "". Paths resolve as inside the container
// (symlinks and ".." cannot leave the rootfs). A file that is not a regular file (FIFO, device,
// directory) or is over 1 MiB is InvalidArgument naming it. The temporary mount is read-only and
// undone on every path.
absl::StatusOr<std::map<std::string, std::string>> ReadRootfsFiles(
    const containerd::Mounts& mounts, const std::vector<std::string>& paths,
    const std::string& scratch_dir);

}  // namespace faasd::provider
