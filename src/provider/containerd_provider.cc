// Construction, the routing snapshot and the invoke path's calls into it (wait for a ready
// replica, report an unreachable one), locks, and the read verbs (list, get, namespaces,
// health).
#include "provider/containerd_provider.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "provider/internal.h"

namespace faasd::provider {

using containerd::api::services::containers::v1::Container;
using namespace internal;

ContainerdProvider::ContainerdProvider(ProviderOptions options, ContainerRuntime& runtime,
                                       ImageSource& images, FunctionNetwork& network,
                                       ReadinessProbe& probe, const Clock& clock)
    : options_(std::move(options)),
      secrets_(options_.state_dir + "/function-secrets"),
      runtime_(runtime),
      images_(images),
      network_(network),
      probe_(probe),
      clock_(clock),
      snapshot_(std::make_shared<RoutingSnapshot>()) {}

ContainerdProvider::~ContainerdProvider() { Stop(); }

containerd::CallScope ContainerdProvider::Call(const std::string& ns,
                                               absl::Duration timeout) const {
  return containerd::CallScope{ns, "", timeout};
}

namespace {

bool IsFunctionNamespace(const containerd::api::services::namespaces::v1::Namespace& n) {
  auto it = n.labels().find(kNamespaceLabel);
  return it != n.labels().end() && (it->second == "1" || it->second == "true");
}

}  // namespace

absl::StatusOr<std::string> ContainerdProvider::ResolveNamespace(const std::string& ns) {
  if (ns.empty() || ns == options_.ns) return options_.ns;
  absl::Status s = ValidateName("namespace", ns);
  if (!s.ok()) return s;
  absl::StatusOr<containerd::api::services::namespaces::v1::Namespace> n =
      runtime_.GetNamespace(ns);
  if (n.ok() && IsFunctionNamespace(*n)) return ns;
  if (!n.ok() && n.status().code() != absl::StatusCode::kNotFound) return n.status();
  return absl::NotFoundError(absl::StrCat("namespace \"", ns, "\" not found"));
}

absl::StatusOr<std::vector<std::string>> ContainerdProvider::FunctionNamespaces() {
  absl::StatusOr<std::vector<containerd::api::services::namespaces::v1::Namespace>> all =
      runtime_.ListNamespaces();
  if (!all.ok()) return all.status();
  std::vector<std::string> out{options_.ns};
  for (const auto& n : *all) {
    if (n.name() != options_.ns && IsFunctionNamespace(n) &&
        ValidateName("namespace", n.name()).ok())
      out.push_back(n.name());
  }
  std::sort(out.begin() + 1, out.end());
  return out;
}

std::shared_ptr<absl::Mutex> ContainerdProvider::OpLock(const std::string& key, bool noted) {
  absl::MutexLock l(&mu_);
  auto& lock = op_locks_[key];
  if (!lock) lock = std::make_shared<absl::Mutex>();
  if (noted) op_seq_[key] = ++op_counter_;
  return lock;
}

void ContainerdProvider::NoteOp(const std::string& key) {
  absl::MutexLock l(&mu_);
  op_seq_[key] = ++op_counter_;
}

uint64_t ContainerdProvider::OpCounter() {
  absl::MutexLock l(&mu_);
  return op_counter_;
}

bool ContainerdProvider::OpSince(const std::string& key, uint64_t counter) {
  absl::MutexLock l(&mu_);
  auto it = op_seq_.find(key);
  return it != op_seq_.end() && it->second > counter;
}

// ---- routing --------------------------------------------------------------------------------

std::shared_ptr<const RoutingSnapshot> ContainerdProvider::Snapshot() const {
  return std::atomic_load(&snapshot_);
}

void ContainerdProvider::Publish() {
  auto snap = std::make_shared<RoutingSnapshot>();
  for (const auto& [key, route] : routes_) {
    auto& eps = snap->functions[key];
    for (const Replica& r : route.replicas) {
      if (r.ready && !r.ip.empty()) eps.push_back(Endpoint{r.ip, options_.function_port});
    }
  }
  std::atomic_store(&snapshot_, std::shared_ptr<const RoutingSnapshot>(std::move(snap)));
}

ContainerdProvider::Route ContainerdProvider::MakeRoute(const FunctionDeployment& d,
                                                        uint64_t desired, int64_t generation,
                                                        std::vector<Replica> replicas,
                                                        absl::Time created) {
  return Route{d.namespace_, d.service,           desired,
               generation,   std::move(replicas), std::make_shared<const FunctionDeployment>(d),
               created};
}

void ContainerdProvider::SetRoute(const std::string& key, std::optional<Route> route) {
  absl::MutexLock l(&mu_);
  if (route) {
    route->set_at = ++route_seq_;
    routes_[key] = std::move(*route);
  } else {
    routes_.erase(key);
  }
  Publish();
}

void ContainerdProvider::UpdateRoute(const std::string& key, Route route) {
  auto same = [](const Route& a, const Route& b) {
    if (a.desired != b.desired || a.generation != b.generation ||
        a.replicas.size() != b.replicas.size())
      return false;
    for (size_t i = 0; i < a.replicas.size(); ++i) {
      const Replica &x = a.replicas[i], &y = b.replicas[i];
      if (x.container_id != y.container_id || x.ip != y.ip || x.ready != y.ready) return false;
    }
    return true;
  };
  absl::MutexLock l(&mu_);
  auto it = routes_.find(key);
  if (it != routes_.end() && same(it->second, route)) return;  // a pass over a steady function
  route.set_at = ++route_seq_;
  routes_[key] = std::move(route);
  Publish();
}

std::shared_ptr<const RoutingSnapshot> ContainerdProvider::AwaitReady(const std::string& key,
                                                                      absl::Time deadline) {
  auto ready = [&](const std::shared_ptr<const RoutingSnapshot>& snap) {
    auto it = snap->functions.find(key);
    return it != snap->functions.end() && !it->second.empty();
  };
  std::shared_ptr<const RoutingSnapshot> snap = Snapshot();
  if (ready(snap)) return snap;
  bool at_zero = false;
  std::string ns, name;
  {
    absl::MutexLock l(&mu_);
    auto it = routes_.find(key);
    if (it == routes_.end()) return nullptr;
    at_zero = it->second.desired == 0;
    ns = it->second.ns;
    name = it->second.name;
  }
  if (at_zero) {
    WakeFromZero(ns, name);
  } else {
    RequestReconcile(key);  // a replica is being replaced: make sure a pass is under way
  }
  absl::MutexLock l(&mu_);
  auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_.load() || routes_.count(key) == 0 || ready(Snapshot());
  };
  mu_.AwaitWithDeadline(absl::Condition(&done), deadline);
  snap = Snapshot();
  return ready(snap) ? snap : nullptr;
}

void ContainerdProvider::ReportUnreachable(const std::string& key, const Endpoint& endpoint) {
  bool changed = false;
  {
    absl::MutexLock l(&mu_);
    auto it = routes_.find(key);
    if (it != routes_.end()) {
      for (Replica& r : it->second.replicas) {
        if (r.ip == endpoint.ip && r.ready) {
          r.ready = false;  // the reconcile pass probes it again or restarts it
          changed = true;
        }
      }
    }
    if (changed) Publish();
  }
  if (changed) {
    LogInfo("invoke: ", key, " at ", endpoint.ip, " refused a connection; taken out of routing");
    RequestReconcile(key);
  }
}

// ---- what containerd holds ------------------------------------------------------------------

namespace {

int64_t LabelInt(const containerd::api::services::containers::v1::Container& c, const char* key,
                 int64_t fallback) {
  auto it = c.labels().find(key);
  int64_t v = 0;
  return it != c.labels().end() && absl::SimpleAtoi(it->second, &v) ? v : fallback;
}

bool Older(const containerd::api::services::containers::v1::Container& a,
           const containerd::api::services::containers::v1::Container& b) {
  return std::make_tuple(a.created_at().seconds(), a.created_at().nanos(), a.id()) <
         std::make_tuple(b.created_at().seconds(), b.created_at().nanos(), b.id());
}

}  // namespace

std::optional<absl::StatusOr<std::vector<Container>>> ContainerdProvider::IndexedContainers(
    const std::string& ns, const std::string& name) {
  std::vector<std::string> ids;
  {
    absl::MutexLock l(&mu_);
    if (!indexed_ns_.count(ns)) return std::nullopt;
    auto n = index_.find(ns);
    if (n != index_.end()) {
      if (auto f = n->second.find(name); f != n->second.end()) {
        for (const auto& [id, seq] : f->second) ids.push_back(id);
      }
    }
  }
  std::vector<Container> out;
  for (const std::string& id : ids) {
    absl::StatusOr<Container> c = runtime_.GetContainer(Call(ns), id);
    if (c.ok()) {
      auto label = c->labels().find(kFunctionLabel);
      if (label != c->labels().end() && label->second == name) {
        out.push_back(*std::move(c));
        continue;
      }
    } else if (c.status().code() != absl::StatusCode::kNotFound) {
      return c.status();
    }
    UnindexContainer(ns, id);
  }
  return out;
}

void ContainerdProvider::IndexContainer(const std::string& ns, const std::string& name,
                                        const std::string& id) {
  absl::MutexLock l(&mu_);
  index_[ns][name].emplace(id, ++index_seq_);
}

void ContainerdProvider::UnindexContainer(const std::string& ns, const std::string& id) {
  absl::MutexLock l(&mu_);
  auto n = index_.find(ns);
  if (n == index_.end()) return;
  auto drop = [&](std::map<std::string, std::map<std::string, uint64_t>>::iterator f) {
    if (f->second.erase(id) == 0) return false;
    if (f->second.empty()) n->second.erase(f);
    return true;
  };
  // Ids are "<function>-<8 hex>" (NewContainerId); any other is looked for everywhere.
  const size_t dash = id.rfind('-');
  if (dash != std::string::npos) {
    auto f = n->second.find(id.substr(0, dash));
    if (f != n->second.end() && drop(f)) return;
  }
  for (auto f = n->second.begin(); f != n->second.end(); ++f) {
    if (drop(f)) return;
  }
}

void ContainerdProvider::SyncIndex(const std::string& ns, uint64_t before,
                                   const std::vector<Container>& listed) {
  std::set<std::string> ids;
  for (const Container& c : listed) ids.insert(c.id());
  absl::MutexLock l(&mu_);
  auto& functions = index_[ns];
  for (auto f = functions.begin(); f != functions.end();) {
    for (auto c = f->second.begin(); c != f->second.end();) {
      c = c->second <= before && !ids.count(c->first) ? f->second.erase(c) : std::next(c);
    }
    f = f->second.empty() ? functions.erase(f) : std::next(f);
  }
  for (const Container& c : listed) {
    functions[c.labels().at(kFunctionLabel)].emplace(c.id(), ++index_seq_);
  }
  indexed_ns_.insert(ns);
}

absl::StatusOr<std::vector<ContainerdProvider::Found>> ContainerdProvider::FindFunctions(
    const std::string& ns, const std::string& only_name) {
  std::optional<absl::StatusOr<std::vector<Container>>> indexed;
  if (!only_name.empty()) indexed = IndexedContainers(ns, only_name);
  absl::StatusOr<std::vector<Container>> containers = std::vector<Container>();
  if (indexed) {
    containers = *std::move(indexed);
  } else {
    uint64_t before = 0;
    {
      absl::MutexLock l(&mu_);
      before = index_seq_;
    }
    std::string filter = only_name.empty()
                             ? absl::StrCat("labels.\"", kFunctionLabel, "\"")
                             : absl::StrCat("labels.\"", kFunctionLabel, "\"==", only_name);
    containers = runtime_.ListContainers(Call(ns), filter);
    if (containers.ok() && only_name.empty()) SyncIndex(ns, before, *containers);
  }
  if (!containers.ok()) return containers.status();
  std::map<std::string, std::vector<Container>> by_name;
  for (auto& c : *containers) {
    auto st = c.labels().find(kStateLabel);
    if (st != c.labels().end() && st->second == kStateRemoving) {
      ScheduleRemoval(ns, c.id());
      continue;
    }
    by_name[c.labels().at(kFunctionLabel)].push_back(std::move(c));
  }
  std::vector<Found> out;
  for (auto& [name, all] : by_name) {
    std::sort(all.begin(), all.end(), Older);
    Found f;
    f.ns = ns;
    f.name = name;
    // Containers from before generations were labelled count as generation 0.
    for (const auto& c : all)
      f.generation = std::max(f.generation, LabelInt(c, kGenerationLabel, 0));
    int64_t desired = -1;
    for (auto& c : all) {
      if (LabelInt(c, kGenerationLabel, 0) == f.generation) {
        desired = std::max(desired, LabelInt(c, kReplicasLabel, 1));
        f.current.push_back(std::move(c));
      } else {
        f.stale.push_back(std::move(c));
      }
    }
    f.desired = static_cast<uint64_t>(std::max<int64_t>(desired, 0));
    const Container& newest = f.current.back();
    auto ext = newest.extensions().find(kDeploymentExtension);
    if (ext != newest.extensions().end()) {
      absl::StatusOr<FunctionDeployment> d = ParseDeployment(ext->second.value());
      if (d.ok()) f.deployment = std::move(*d);
    }
    if (f.deployment.service.empty()) {
      f.deployment.service = name;
      f.deployment.image = newest.image();
    }
    f.deployment.namespace_ = ns;
    f.created = f.generation > 0 ? absl::FromUnixNanos(f.generation)
                                 : containerd::ToTime(f.current.front().created_at());
    out.push_back(std::move(f));
  }
  return out;
}

absl::StatusOr<ContainerdProvider::Found> ContainerdProvider::FindDeployed(
    const std::string& ns, const std::string& name) {
  absl::StatusOr<std::vector<Found>> found = FindFunctions(ns, name);
  if (!found.ok()) return found.status();
  if (found->empty()) {
    return absl::NotFoundError(absl::StrCat("function \"", name, "\" not found in namespace ", ns));
  }
  return std::move(found->front());
}

// ---- read verbs -----------------------------------------------------------------------------

void ContainerdProvider::FillRuntimeStatus(const std::string& key, FunctionStatus* st) const {
  auto r = routes_.find(key);
  if (r == routes_.end()) return;
  for (const Replica& rep : r->second.replicas) {
    st->available_replicas += rep.ready ? 1 : 0;
    auto e = restarts_.find(rep.container_id);
    if (e != restarts_.end() && e->second.last_exit &&
        (!st->last_exit || e->second.last_exit->exited_at > st->last_exit->exited_at)) {
      st->last_exit = e->second.last_exit;
    }
  }
}

FunctionStatus ContainerdProvider::StatusOf(const std::string& key, const Route& route) const {
  FunctionStatus st = StatusFromDeployment(*route.deployment);
  st.namespace_ = route.ns;
  st.created_at = Rfc3339(route.created);
  st.replicas = route.desired;
  FillRuntimeStatus(key, &st);
  return st;
}

// List and get answer from routing, which holds every deployed function (the daemon's own
// writes set it before they answer; a reconcile pass, at least every interval and at once on a
// task event, sets it from containerd). At 1,000 functions containerd's list of containers,
// specs included, takes 50 ms; this takes well under one.
absl::StatusOr<std::vector<FunctionStatus>> ContainerdProvider::List(const std::string& ns_in) {
  absl::StatusOr<std::string> ns = ResolveNamespace(ns_in);
  if (!ns.ok()) return ns.status();
  std::vector<FunctionStatus> out;
  absl::MutexLock l(&mu_);
  for (const auto& [key, route] : routes_) {
    if (route.ns == *ns && route.deployment) out.push_back(StatusOf(key, route));
  }
  return out;
}

absl::StatusOr<FunctionStatus> ContainerdProvider::Get(const std::string& name,
                                                       const std::string& ns_in) {
  absl::Status s = ValidateName("function name", name);
  if (!s.ok()) return s;
  absl::StatusOr<std::string> ns = ResolveNamespace(ns_in);
  if (!ns.ok()) return ns.status();
  const std::string key = FunctionKey(name, *ns);
  absl::MutexLock l(&mu_);
  auto r = routes_.find(key);
  if (r == routes_.end() || !r->second.deployment) {
    return absl::NotFoundError(
        absl::StrCat("function \"", name, "\" not found in namespace ", *ns));
  }
  return StatusOf(key, r->second);
}

absl::StatusOr<std::vector<std::string>> ContainerdProvider::Namespaces() {
  return FunctionNamespaces();
}

absl::Status ContainerdProvider::Healthy() {
  absl::StatusOr<std::string> v = runtime_.Version(absl::Seconds(2));
  return v.status();
}

}  // namespace faasd::provider
