// Function namespaces: containerd namespaces labelled openfaas=1 (or true). Their labels are
// the namespace's labels; annotations ride along as labels under a prefix.
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/log.h"
#include "provider/containerd_provider.h"
#include "provider/internal.h"

namespace faasd::provider {

using namespace internal;

namespace {

containerd::Labels ToLabels(const FunctionNamespace& ns) {
  containerd::Labels labels(ns.labels.begin(), ns.labels.end());
  for (const auto& [k, v] : ns.annotations) labels[kNamespaceAnnotationPrefix + k] = v;
  labels[kNamespaceLabel] = "1";
  return labels;
}

absl::Status CheckKeys(const FunctionNamespace& ns) {
  for (const auto& [field, map] :
       {std::pair{"labels", &ns.labels}, {"annotations", &ns.annotations}}) {
    for (const auto& [k, v] : *map) {
      if (k.empty() || k.find_first_of("\n\r\t", 0) != std::string::npos || k.size() > 253)
        return absl::InvalidArgumentError(
            absl::StrCat("namespace ", ns.name, ": ", field, " key \"", k, "\" is invalid"));
      if (k.size() + v.size() > 4000)
        return absl::InvalidArgumentError(
            absl::StrCat("namespace ", ns.name, ": ", field, " \"", k, "\" is over 4000 bytes"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<FunctionNamespace> ContainerdProvider::GetNamespace(const std::string& name) {
  absl::StatusOr<std::string> ns = ResolveNamespace(name);
  if (!ns.ok()) return ns.status();
  absl::StatusOr<containerd::api::services::namespaces::v1::Namespace> n =
      runtime_.GetNamespace(*ns);
  FunctionNamespace out;
  out.name = *ns;
  if (!n.ok()) {
    if (*ns == options_.ns) return out;  // the default one before its first use
    return n.status();
  }
  for (const auto& [k, v] : n->labels()) {
    if (absl::StartsWith(k, kNamespaceAnnotationPrefix)) {
      out.annotations[k.substr(sizeof(kNamespaceAnnotationPrefix) - 1)] = v;
    } else {
      out.labels[k] = v;
    }
  }
  return out;
}

absl::Status ContainerdProvider::CreateNamespace(const FunctionNamespace& ns) {
  absl::Status s = ValidateName("namespace", ns.name);
  if (s.ok()) s = CheckKeys(ns);
  if (!s.ok()) return s;
  s = runtime_.CreateNamespace(ns.name, ToLabels(ns));
  if (s.code() == absl::StatusCode::kAlreadyExists) {
    return absl::AlreadyExistsError(absl::StrCat("namespace \"", ns.name, "\" already exists"));
  }
  if (s.ok()) LogInfo("namespace ", ns.name, " created");
  return s;
}

absl::Status ContainerdProvider::UpdateNamespace(const FunctionNamespace& ns) {
  absl::Status s = ValidateName("namespace", ns.name);
  if (s.ok()) s = CheckKeys(ns);
  if (!s.ok()) return s;
  absl::StatusOr<std::string> resolved = ResolveNamespace(ns.name);
  if (!resolved.ok()) return resolved.status();
  if (*resolved == options_.ns) {
    s = runtime_.EnsureNamespace(options_.ns, {{kNamespaceLabel, "true"}});
    if (!s.ok()) return s;
  }
  s = runtime_.SetNamespaceLabels(ns.name, ToLabels(ns));
  if (s.ok()) LogInfo("namespace ", ns.name, " updated");
  return s;
}

absl::Status ContainerdProvider::DeleteNamespace(const std::string& name) {
  absl::StatusOr<std::string> ns = ResolveNamespace(name);
  if (!ns.ok()) return ns.status();
  if (*ns == options_.ns) {
    return absl::InvalidArgumentError(
        absl::StrCat("namespace \"", *ns, "\" is the default namespace; it cannot be deleted"));
  }
  absl::StatusOr<std::vector<Found>> functions = FindFunctions(*ns, "");
  if (!functions.ok()) return functions.status();
  absl::StatusOr<std::vector<std::string>> secrets = secrets_.List(*ns);
  if (!secrets.ok()) return secrets.status();
  if (!functions->empty() || !secrets->empty()) {
    std::vector<std::string> names;
    for (const Found& f : *functions) names.push_back(f.name);
    std::string what;
    if (!names.empty()) absl::StrAppend(&what, "functions ", absl::StrJoin(names, ", "));
    if (!secrets->empty()) {
      absl::StrAppend(&what, names.empty() ? "" : " and ", "secrets ",
                      absl::StrJoin(*secrets, ", "));
    }
    return absl::AbortedError(
        absl::StrCat("namespace \"", *ns, "\" still holds ", what, "; remove them first"));
  }
  // Images pulled for its functions stay in it; containerd deletes a namespace only once empty.
  absl::StatusOr<std::vector<containerd::api::services::images::v1::Image>> images =
      runtime_.ListImages(Call(*ns));
  if (!images.ok()) return images.status();
  for (const auto& img : *images) {
    absl::Status s = runtime_.DeleteImage(Call(*ns, absl::Minutes(2)), img.name());
    if (!s.ok() && s.code() != absl::StatusCode::kNotFound) return s;
  }
  absl::Status s = runtime_.DeleteNamespace(*ns);
  if (!s.ok()) {
    return absl::AbortedError(
        absl::StrCat("namespace \"", *ns, "\" could not be deleted: ", s.message()));
  }
  LogInfo("namespace ", *ns, " deleted");
  return absl::OkStatus();
}

}  // namespace faasd::provider
