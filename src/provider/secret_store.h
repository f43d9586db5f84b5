// Function secrets on disk, one file per secret: <root>/<namespace>/<name>, directories 0700
// and files 0400, owned by the daemon's user (root). Writes are atomic (temporary file, fsync,
// rename, fsync of the directory), so a reader sees the old value or the new one, never a part.
// Values never leave this class except through Materialize, and are never logged.
//
// A function gets only the secrets it names: Materialize copies them into a directory of its
// own (one per container), owned by the function's user, which the container mounts read-only
// at /var/openfaas/secrets. Refresh rewrites such a copy when the secret changes.
//
// Thread-safe: one mutex orders the writers; files are only replaced by rename.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace faasd::provider {

class SecretStore {
 public:
  explicit SecretStore(std::string root);

  // Creates the root (0700) or checks an existing one: a real directory (not a symlink) owned
  // by us (else FailedPrecondition naming it and the cause), group and others without access
  // (their bits are removed, with a warning).
  absl::Status Init();

  // Names in `ns`, sorted; an empty list when the namespace holds none.
  absl::StatusOr<std::vector<std::string>> List(const std::string& ns) const;
  bool Exists(const std::string& ns, const std::string& name) const;
  // AlreadyExists when present. InvalidArgument over kMaxSecretBytes.
  absl::Status Create(const std::string& ns, const std::string& name, const std::string& value);
  // NotFound when absent.
  absl::Status Update(const std::string& ns, const std::string& name, const std::string& value);
  // NotFound when absent. Removes the namespace's folder once it is empty.
  absl::Status Delete(const std::string& ns, const std::string& name);

  // Writes the named secrets of `ns` into `dir` (created, or emptied of other files), each
  // 0400 and the folder 0500, all owned by uid:gid. NotFound names a missing secret.
  absl::Status Materialize(const std::string& ns, const std::vector<std::string>& names,
                           const std::string& dir, uint32_t uid, uint32_t gid) const;
  // Replaces `name` in a folder Materialize made, keeping the folder's owner.
  absl::Status Refresh(const std::string& ns, const std::string& name,
                       const std::string& dir) const;

 private:
  absl::Status Write(const std::string& ns, const std::string& name, const std::string& value,
                     bool must_exist) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::string> Read(const std::string& ns, const std::string& name) const;
  std::string Path(const std::string& ns, const std::string& name) const;

  const std::string root_;
  mutable absl::Mutex mu_;
};


}  // namespace faasd::provider
