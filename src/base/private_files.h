// Files and folders only the daemon may read: secrets (function secrets, the gateway's
// basic-auth credentials). A folder is accepted only when it is a real directory owned by the
// daemon's uid; a file is written atomically through a new temporary name in the same folder,
// created with O_EXCL|O_NOFOLLOW, so nothing planted there (a symlink, a stale temp file from a
// crashed run) is ever followed or written through. Thread-safe; no state.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace faasd {

// Creates `path` with `mode`, or checks an existing one: FailedPrecondition naming it when it
// is a symbolic link, not a directory, or owned by another uid than ours; group or other bits
// beyond `mode` are removed (with a warning).
absl::Status EnsurePrivateDir(const std::string& path, mode_t mode);

// Writes `data` to dir/name atomically with `mode` and owner uid:gid (new temporary file in the
// same folder, fsync, rename, fsync of the folder). Never follows a symlink at dir/name or at a
// temporary name.
absl::Status WriteFileAtomic(const std::string& dir, const std::string& name,
                             const std::string& data, uint32_t mode, uint32_t uid, uint32_t gid);

}  // namespace faasd
