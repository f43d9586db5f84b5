// Scale: the wanted number of replicas, 0..max; and the wake of a function at zero when a
// request comes for it.
#include <future>

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "provider/containerd_provider.h"
#include "provider/internal.h"

namespace faasd::provider {

using namespace internal;

absl::Status ContainerdProvider::SetDesired(const Found& f, uint64_t desired) {
  for (const Container& c : f.current) {
    containerd::Labels labels(c.labels().begin(), c.labels().end());
    labels[kReplicasLabel] = absl::StrCat(desired);
    absl::Status s = runtime_.SetContainerLabels(Call(f.ns), c.id(), labels);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status ContainerdProvider::Scale(const std::string& name, const std::string& ns_in,
                                       uint64_t replicas) {
  absl::Status s = ValidateName("function name", name);
  if (!s.ok()) return s;
  absl::StatusOr<std::string> ns = ResolveNamespace(ns_in);
  if (!ns.ok()) return ns.status();
  const std::string key = FunctionKey(name, *ns);
  OpGuard guard(*this, key);
  absl::StatusOr<Found> f = FindDeployed(*ns, name);
  if (!f.ok()) return f.status();
  absl::StatusOr<ScaleRange> range = ParseScaleRange(f->deployment.labels);
  if (!range.ok()) return range.status();
  s = CheckReplicas(name, replicas, *range);
  if (!s.ok()) return s;
  if (replicas == f->desired) return absl::OkStatus();
  s = SetDesired(*f, replicas);
  if (!s.ok()) return s;
  LogInfo("scale ", key, ": ", f->desired, " -> ", replicas);
  {
    absl::MutexLock l(&mu_);
    auto it = routes_.find(key);
    if (it != routes_.end()) {
      it->second.desired = replicas;
      if (replicas == 0) {
        for (Replica& r : it->second.replicas) r.ready = false;
        Publish();
      }
    }
  }
  // The reconcile pass makes or retires replicas and starts or stops tasks; run it now.
  RequestReconcile(key);
  return absl::OkStatus();
}

bool ContainerdProvider::MayPause(const std::string& id, bool paused_now, absl::Time now) {
  if (options_.max_paused == 0) return false;
  auto it = paused_.find(id);
  if (!paused_now) {
    if (it != paused_.end()) paused_.erase(it);  // stopped or running again
    return true;                                 // it would be the newest paused task
  }
  if (it == paused_.end()) it = paused_.emplace(id, now).first;  // paused before a restart
  if (now - it->second >= options_.paused_ttl) return false;
  size_t newer = 0;
  for (const auto& [other, at] : paused_) newer += at > it->second ? 1 : 0;
  return newer < options_.max_paused;
}

void ContainerdProvider::PauseTask(const std::string& ns, const std::string& id) {
  absl::Status s = runtime_.PauseTask(Call(ns), id);
  if (!s.ok()) {
    LogWarning("scale to zero ", id, ": pause: ", s.message(), "; stopping it");
    StopTask(ns, id);
    return;
  }
  // The oldest paused task past the cap: its function's pass stops it.
  std::string evict;
  {
    absl::MutexLock l(&mu_);
    paused_[id] = clock_.Now();
    if (paused_.size() > options_.max_paused) {
      auto oldest =
          std::min_element(paused_.begin(), paused_.end(),
                           [](const auto& a, const auto& b) { return a.second < b.second; });
      evict = oldest->first;
    }
  }
  if (!evict.empty()) {
    const std::string key = KeyOfReplica(evict);
    if (key.empty()) {
      RequestReconcile();
    } else {
      RequestReconcile(key);
    }
  }
}

absl::StatusOr<ContainerdProvider::Replica> ContainerdProvider::ResumeTask(const std::string& ns,
                                                                           const std::string& id) {
  {
    absl::MutexLock l(&mu_);
    if (paused_.erase(id) == 0) return absl::NotFoundError(absl::StrCat(id, " is not paused"));
  }
  absl::Status s = runtime_.ResumeTask(Call(ns), id);
  if (!s.ok()) return s;
  std::optional<std::string> ip = network_.LookupIp(id);
  if (!ip) return absl::NotFoundError(absl::StrCat(id, " has no address"));
  return Replica{id, *ip, false};
}

void ContainerdProvider::WakeFromZero(const std::string& ns, const std::string& name) {
  const std::string key = FunctionKey(name, ns);
  {
    absl::MutexLock l(&mu_);
    if (!waking_.insert(key).second) return;  // one start serves every waiting request
  }
  RunInBackground([this, ns, name, key] {
    const absl::Time t0 = absl::Now();
    {
      OpGuard guard(*this, key);
      const absl::Time t_locked = absl::Now();
      absl::StatusOr<Found> f = FindDeployed(ns, name);
      if (f.ok() && f->desired == 0) {
        const absl::Time t_found = absl::Now();
        // The record (faasd.replicas=1) is written while the task starts: a request waits on
        // both, and each takes milliseconds.
        std::future<absl::Status> labelled =
            std::async(std::launch::async, [this, &f] { return SetDesired(*f, 1); });
        Route route = MakeRoute(f->deployment, 1, f->generation, {}, f->created);
        const Container& kept = f->current.front();
        // Paused at zero: thawed in tens of milliseconds. Else a task left from before, if
        // any, goes (killed, waited for and deleted: one still exiting — a replica retired
        // with SIGTERM moments ago — would make the new task's create fail with "already
        // exists"), and a new one starts.
        absl::StatusOr<Replica> r = ResumeTask(ns, kept.id());
        if (!r.ok()) {
          StopTask(ns, kept.id());
          r = StartTask(ns, kept.id(), name);
        }
        const absl::Time t_started = absl::Now();
        if (absl::Status s = labelled.get(); !s.ok()) {
          // Still recorded at zero: the task must not outlive this (reconcile would stop it).
          if (r.ok()) StopTask(ns, kept.id());
          r = s;
        }
        if (r.ok()) {
          r->ready = WaitReady(*r, ReadyPath(f->deployment), options_.update_ready_wait);
          LogDebug("wake ", key, ": lock ", absl::FormatDuration(t_locked - t0), ", find ",
                   absl::FormatDuration(t_found - t_locked), ", label+task ",
                   absl::FormatDuration(t_started - t_found), ", ready ",
                   absl::FormatDuration(absl::Now() - t_started));
          route.replicas.push_back(*r);
          SetRoute(key, route);
          LogInfo("scale ", key, ": 0 -> 1 for a request (ready after ",
                  absl::FormatDuration(absl::Now() - t0), ")");
        } else {
          LogWarning("scale ", key, ": 0 -> 1 for a request: ", r.status().message());
        }
      }
    }
    absl::MutexLock l(&mu_);
    waking_.erase(key);
  });
  RequestReconcile(key);  // whatever else the function needs (more replicas) follows
}

}  // namespace faasd::provider
