// Construction, routing snapshot, locks, and the read verbs (list, get, namespaces, health).
#include "provider/containerd_provider.h"

#include <random>

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "provider/internal.h"

namespace faasd::provider {

using containerd::api::services::containers::v1::Container;
using namespace internal;

ContainerdProvider::ContainerdProvider(ProviderOptions options, containerd::Client& client,
                                       image::ImagePuller& puller, network::CniNetwork& network)
    : options_(std::move(options)),
      secrets_(options_.state_dir + "/function-secrets"),
      client_(client),
      puller_(puller),
      network_(network),
      snapshot_(std::make_shared<RoutingSnapshot>()) {}

ContainerdProvider::~ContainerdProvider() { Stop(); }

containerd::CallScope ContainerdProvider::Call(absl::Duration timeout) const {
  return containerd::CallScope{options_.ns, "", timeout};
}

absl::Status ContainerdProvider::CheckNamespace(const std::string& ns) const {
  if (ns.empty() || ns == options_.ns) return absl::OkStatus();
  absl::Status s = ValidateName("namespace", ns);
  if (!s.ok()) return s;
  return absl::InvalidArgumentError(
      absl::StrCat("namespace \"", ns, "\" is not managed here (only \"", options_.ns, "\")"));
}

std::shared_ptr<absl::Mutex> ContainerdProvider::OpLock(const std::string& name) {
  absl::MutexLock l(&mu_);
  auto& lock = op_locks_[name];
  if (!lock) lock = std::make_shared<absl::Mutex>();
  return lock;
}

std::shared_ptr<const RoutingSnapshot> ContainerdProvider::Snapshot() const {
  return std::atomic_load(&snapshot_);
}

void ContainerdProvider::Publish() {
  auto snap = std::make_shared<RoutingSnapshot>();
  for (const auto& [name, r] : routes_) {
    auto& eps = snap->functions[absl::StrCat(name, ".", options_.ns)];
    if (r.ready && !r.ip.empty()) eps.push_back(Endpoint{r.ip, options_.function_port});
  }
  std::atomic_store(&snapshot_, std::shared_ptr<const RoutingSnapshot>(std::move(snap)));
}

void ContainerdProvider::SetRoute(const std::string& name, std::optional<Replica> replica) {
  absl::MutexLock l(&mu_);
  if (replica) {
    routes_[name] = *replica;
  } else {
    routes_.erase(name);
  }
  Publish();
}

absl::StatusOr<std::vector<ContainerdProvider::Found>> ContainerdProvider::FindFunctions(
    const std::string& only_name) {
  std::string filter = only_name.empty()
                           ? absl::StrCat("labels.\"", kFunctionLabel, "\"")
                           : absl::StrCat("labels.\"", kFunctionLabel, "\"==", only_name);
  absl::StatusOr<std::vector<Container>> containers = client_.containers.List(Call(), filter);
  if (!containers.ok()) return containers.status();
  std::map<std::string, Found> by_name;
  for (auto& c : *containers) {
    auto st = c.labels().find(kStateLabel);
    if (st != c.labels().end() && st->second == kStateRemoving) {
      ScheduleRemoval(c.id());
      continue;
    }
    const std::string& name = c.labels().at(kFunctionLabel);
    Found& f = by_name[name];
    f.name = name;
    if (f.current.id().empty()) {
      f.current = std::move(c);
      continue;
    }
    auto newer = [](const Container& a, const Container& b) {
      return std::make_pair(a.created_at().seconds(), a.created_at().nanos()) >
             std::make_pair(b.created_at().seconds(), b.created_at().nanos());
    };
    if (newer(c, f.current)) std::swap(c, f.current);
    f.stale.push_back(std::move(c));
  }
  std::vector<Found> out;
  for (auto& [name, f] : by_name) {
    auto ext = f.current.extensions().find(kDeploymentExtension);
    if (ext != f.current.extensions().end()) {
      absl::StatusOr<FunctionDeployment> d = ParseDeployment(ext->second.value());
      if (d.ok()) f.deployment = std::move(*d);
    }
    if (f.deployment.service.empty()) {
      f.deployment.service = name;
      f.deployment.image = f.current.image();
    }
    out.push_back(std::move(f));
  }
  return out;
}

absl::StatusOr<std::vector<ContainerdProvider::Found>> ContainerdProvider::FindDeployed(
    const std::string& name) {
  absl::StatusOr<std::vector<Found>> found = FindFunctions(name);
  if (found.ok() && found->empty()) {
    return absl::NotFoundError(absl::StrCat("function \"", name, "\" not found"));
  }
  return found;
}

namespace {

std::string Rfc3339(const google::protobuf::Timestamp& ts) {
  absl::Time t = absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", t, absl::UTCTimeZone());
}

}  // namespace

absl::StatusOr<std::vector<FunctionStatus>> ContainerdProvider::List(const std::string& ns) {
  absl::Status s = CheckNamespace(ns);
  if (!s.ok()) return s;
  absl::StatusOr<std::vector<Found>> found = FindFunctions("");
  if (!found.ok()) return found.status();
  std::vector<FunctionStatus> out;
  absl::MutexLock l(&mu_);
  for (const auto& f : *found) {
    FunctionStatus st = StatusFromDeployment(f.deployment);
    st.namespace_ = options_.ns;
    st.created_at = Rfc3339(f.current.created_at());
    auto rep = f.current.labels().find(kReplicasLabel);
    st.replicas = (rep != f.current.labels().end() && rep->second == "0") ? 0 : 1;
    auto r = routes_.find(f.name);
    st.available_replicas =
        (r != routes_.end() && r->second.ready && r->second.container_id == f.current.id()) ? 1 : 0;
    out.push_back(std::move(st));
  }
  return out;
}

absl::StatusOr<FunctionStatus> ContainerdProvider::Get(const std::string& name,
                                                       const std::string& ns) {
  absl::Status s = ValidateName("function name", name);
  if (!s.ok()) return s;
  absl::StatusOr<std::vector<FunctionStatus>> all = List(ns);
  if (!all.ok()) return all.status();
  for (auto& f : *all) {
    if (f.name == name) return std::move(f);
  }
  return absl::NotFoundError(absl::StrCat("function \"", name, "\" not found"));
}

absl::StatusOr<std::vector<std::string>> ContainerdProvider::Namespaces() {
  return std::vector<std::string>{options_.ns};
}

absl::Status ContainerdProvider::Healthy() {
  absl::StatusOr<std::string> v = client_.version.Version(absl::Seconds(2));
  return v.status();
}

}  // namespace faasd::provider
