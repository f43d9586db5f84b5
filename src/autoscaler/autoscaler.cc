#include "autoscaler/autoscaler.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "base/thread_name.h"

namespace faasd::autoscaler {

Autoscaler::Autoscaler(AutoscalerOptions options, provider::FunctionProvider& provider,
                       const LoadSource& load, const provider::Clock& clock)
    : options_(options), provider_(provider), load_(load), clock_(clock) {}

Autoscaler::~Autoscaler() { Stop(); }

void Autoscaler::Start() {
  absl::MutexLock l(&mu_);
  stop_ = false;
  started_ = true;
  StartThreadLocked();
}

void Autoscaler::StartThreadLocked() {
  if (awake_) return;
  // One that left Loop() holds mu_ no more: joined here, it returns at once.
  if (thread_.joinable()) thread_.join();
  awake_ = true;
  thread_ = std::thread([this] { Loop(); });
}

void Autoscaler::Loop() {
  NameThisThread("faasd-autoscale");
  while (true) {
    {
      absl::MutexLock l(&mu_);
      const absl::Time until = absl::Now() + options_.interval;
      while (!stop_ && absl::Now() < until) mu_.AwaitWithDeadline(absl::Condition(&stop_), until);
      if (stop_) break;
      woken_ = false;
    }
    const bool complete = Tick();
    absl::MutexLock l(&mu_);
    // Nothing to manage, known for sure: sleep until Wake().
    if (complete && functions_.empty() && !woken_) break;
  }
  absl::MutexLock l(&mu_);
  awake_ = false;
}

void Autoscaler::Wake() {
  absl::MutexLock l(&mu_);
  woken_ = true;
  if (started_ && !stop_) StartThreadLocked();
}

bool Autoscaler::Awake() const {
  absl::MutexLock l(&mu_);
  return awake_;
}

void Autoscaler::Stop() {
  std::thread thread;
  {
    absl::MutexLock l(&mu_);
    stop_ = true;
    started_ = false;
    thread = std::move(thread_);
  }
  if (thread.joinable()) thread.join();
}

std::map<std::string, uint64_t> Autoscaler::Desired() const {
  absl::MutexLock l(&mu_);
  return desired_;
}

bool Autoscaler::Tick() {
  absl::StatusOr<std::vector<std::string>> namespaces = provider_.Namespaces();
  if (!namespaces.ok()) {
    LogWarning("autoscale: list namespaces: ", namespaces.status().message());
    return false;  // keep what is known; the next tick tries again
  }
  const std::map<std::string, InvocationLoad> loads = load_.Loads();
  std::map<std::string, uint64_t> desired;
  std::set<std::string> seen;
  for (const std::string& ns : *namespaces) {
    absl::StatusOr<std::vector<provider::FunctionStatus>> list = provider_.List(ns);
    if (!list.ok()) {
      LogWarning("autoscale: list functions in ", ns, ": ", list.status().message());
      return false;
    }
    for (const provider::FunctionStatus& f : *list) {
      const std::string key = absl::StrCat(f.name, ".", ns);
      seen.insert(key);
      auto load = loads.find(key);
      Scan(f, ns, load == loads.end() ? InvocationLoad{} : load->second, &desired);
    }
  }
  for (auto it = functions_.begin(); it != functions_.end();) {
    it = seen.count(it->first) > 0 ? std::next(it) : functions_.erase(it);  // removed
  }
  absl::MutexLock l(&mu_);
  desired_ = std::move(desired);
  return true;
}

void Autoscaler::Scan(const provider::FunctionStatus& f, const std::string& ns,
                      const InvocationLoad& load, std::map<std::string, uint64_t>* desired) {
  const std::string key = absl::StrCat(f.name, ".", ns);
  std::vector<std::string> warnings;
  const AutoscalePolicy policy = ParsePolicy(f.labels, options_.all, &warnings);
  auto it = functions_.find(key);
  if (!policy.managed) {
    if (it != functions_.end()) functions_.erase(it);  // its labels changed: hands off
    for (const std::string& w : warnings) LogWarning("autoscale ", key, ": label ", w);
    return;
  }
  if (it == functions_.end()) {
    it = functions_
             .emplace(key,
                      std::make_unique<Managed>(Managed{FunctionScaler(options_.rate_window), {}}))
             .first;
  }
  Managed& m = *it->second;
  for (const std::string& w : warnings) {
    if (m.warned.insert(w).second) LogWarning("autoscale ", key, ": label ", w);
  }

  Observation o;
  o.now = clock_.Now();
  o.started = load.started;
  o.in_flight = load.in_flight;
  o.busy = veto_ != nullptr && veto_->Busy(key);
  o.replicas = f.replicas;
  o.ready = f.available_replicas;
  if (policy.type == ScaleType::kCpu && f.replicas > 0) {
    absl::StatusOr<provider::FunctionUsage> usage = provider_.Usage(f.name, ns);
    if (!usage.ok()) {
      LogWarning("autoscale ", key, ": usage: ", usage.status().message());
      (*desired)[key] = f.replicas;
      return;
    }
    o.cpu_millicores = usage->cpu;
  }
  const Decision d = m.scaler.Next(policy, o);
  (*desired)[key] = d.replicas;
  if (!d.change) return;
  absl::Status s = provider_.Scale(f.name, ns, d.replicas);
  if (!s.ok()) {
    LogWarning("autoscale ", key, ": ", f.replicas, " -> ", d.replicas, " for ", d.why, ": ",
               s.message());
    (*desired)[key] = f.replicas;
    return;
  }
  LogInfo("autoscale ", key, ": ", f.replicas, " -> ", d.replicas, " for ", d.why);
}

}  // namespace faasd::autoscaler
