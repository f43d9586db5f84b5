// Secrets: create, update, delete and list; values live in the SecretStore, and each container
// gets a copy of only the secrets its function names.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/log.h"
#include "provider/containerd_provider.h"

namespace faasd::provider {

std::string ContainerdProvider::SecretsDir(const std::string& container_id) const {
  return absl::StrCat(options_.state_dir, "/run/", container_id, "/secrets");
}

absl::Status ContainerdProvider::CheckSecret(const Secret& secret, std::string* ns) {
  absl::StatusOr<std::string> resolved = ResolveNamespace(secret.namespace_);
  if (!resolved.ok()) return resolved.status();
  *ns = *resolved;
  absl::Status s = ValidateName("secret name", secret.name);
  if (s.ok() && secret.bytes().size() > kMaxSecretBytes) {
    s = absl::InvalidArgumentError(absl::StrCat("secret \"", secret.name,
                                                "\": ", secret.bytes().size(),
                                                " bytes, over the limit of ", kMaxSecretBytes));
  }
  return s;
}

absl::StatusOr<std::vector<std::string>> ContainerdProvider::ListSecrets(const std::string& ns) {
  absl::StatusOr<std::string> resolved = ResolveNamespace(ns);
  if (!resolved.ok()) return resolved.status();
  return secrets_.List(*resolved);
}

absl::Status ContainerdProvider::CreateSecret(const Secret& secret) {
  std::string ns;
  absl::Status s = CheckSecret(secret, &ns);
  if (!s.ok()) return s;
  s = secrets_.Create(ns, secret.name, secret.bytes());
  if (s.ok()) LogInfo("secret ", secret.name, " created in ", ns);
  return s;
}

absl::Status ContainerdProvider::UpdateSecret(const Secret& secret) {
  std::string ns;
  absl::Status s = CheckSecret(secret, &ns);
  if (!s.ok()) return s;
  s = secrets_.Update(ns, secret.name, secret.bytes());
  if (!s.ok()) return s;
  // Running functions that name it see the new value at once: their copies are replaced.
  absl::StatusOr<std::vector<Found>> found = FindFunctions(ns, "");
  if (!found.ok()) return found.status();
  for (const Found& f : *found) {
    const auto& names = f.deployment.secrets;
    if (std::find(names.begin(), names.end(), secret.name) == names.end()) continue;
    std::vector<std::string> ids;
    for (const auto& c : f.current) ids.push_back(c.id());
    for (const auto& c : f.stale) ids.push_back(c.id());  // still serving during an update
    for (const std::string& id : ids) {
      absl::Status r = secrets_.Refresh(ns, secret.name, SecretsDir(id));
      if (!r.ok()) LogWarning("secret ", secret.name, ": refresh for ", id, ": ", r.message());
    }
  }
  LogInfo("secret ", secret.name, " updated in ", ns);
  return absl::OkStatus();
}

absl::Status ContainerdProvider::DeleteSecret(const std::string& name, const std::string& ns_in) {
  absl::StatusOr<std::string> resolved = ResolveNamespace(ns_in);
  if (!resolved.ok()) return resolved.status();
  const std::string& ns = *resolved;
  absl::Status s = ValidateName("secret name", name);
  if (!s.ok()) return s;
  absl::StatusOr<std::vector<Found>> found = FindFunctions(ns, "");
  if (!found.ok()) return found.status();
  std::vector<std::string> users;
  for (const Found& f : *found) {
    const auto& names = f.deployment.secrets;
    if (std::find(names.begin(), names.end(), name) != names.end()) users.push_back(f.name);
  }
  if (!users.empty()) {
    return absl::AbortedError(absl::StrCat(
        "secret \"", name, "\" is used by function", users.size() > 1 ? "s " : " ",
        absl::StrJoin(users, ", "), " in namespace ", ns, "; remove or update them first"));
  }
  s = secrets_.Delete(ns, name);
  if (s.ok()) LogInfo("secret ", name, " deleted from ", ns);
  return s;
}

}  // namespace faasd::provider
