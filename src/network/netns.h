// Network namespaces pinned by a bind mount, as `ip netns add` makes them. The daemon creates a
// function's namespace itself, so the CNI ADD can run while containerd creates the task (which
// then joins it by path), and a restarted task keeps its namespace and its address.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace faasd::network {

// Creates a new network namespace and pins it at `path` (the parent dir must exist). Fails with
// AlreadyExists when `path` is already a pinned namespace.
absl::Status CreateNetns(const std::string& path);
// Unpins and removes `path`; OK when it does not exist.
absl::Status DeleteNetns(const std::string& path);
// True when `path` is a pinned namespace (an nsfs mount), false for a leftover plain file (after
// a reboot) or nothing.
bool IsNetns(const std::string& path);

}  // namespace faasd::network
