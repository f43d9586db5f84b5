// Usage: CPU and memory of a function's running replicas from containerd's task metrics.
#include "absl/strings/str_cat.h"
#include "provider/containerd_provider.h"
#include "provider/internal.h"

namespace faasd::provider {

using namespace internal;

absl::StatusOr<FunctionUsage> ContainerdProvider::Usage(const std::string& name,
                                                        const std::string& ns_in) {
  absl::Status s = ValidateName("function name", name);
  if (!s.ok()) return s;
  absl::StatusOr<std::string> ns = ResolveNamespace(ns_in);
  if (!ns.ok()) return ns.status();
  absl::StatusOr<Found> f = FindDeployed(*ns, name);
  if (!f.ok()) return f.status();
  std::vector<std::string> ids;
  for (const Container& c : f->current) ids.push_back(c.id());
  auto sample = [&]() { return runtime_.TaskMetrics(Call(*ns), ids); };
  absl::StatusOr<std::vector<containerd::TaskMetrics>> now = sample();
  if (!now.ok()) return now.status();
  // CPU is a rate: against the oldest sample of the last minute; with none a second old, a
  // second sample a quarter second later (the first `faas-cli describe` pays that once).
  const absl::Time window_start = absl::Now() - absl::Minutes(1);
  bool have_history = !now->empty();
  {
    absl::MutexLock l(&mu_);
    for (const containerd::TaskMetrics& m : *now) {
      auto it = cpu_samples_.find(m.container_id);
      if (it == cpu_samples_.end() || it->second.empty() ||
          m.timestamp - it->second.front().first < absl::Seconds(1)) {
        have_history = false;
      }
    }
  }
  if (!have_history && !now->empty()) {
    {
      absl::MutexLock l(&mu_);
      for (const containerd::TaskMetrics& m : *now)
        cpu_samples_[m.container_id].emplace_back(m.timestamp, m.cpu_usage_ns);
    }
    absl::SleepFor(absl::Milliseconds(250));
    now = sample();
    if (!now.ok()) return now.status();
  }
  FunctionUsage usage;
  absl::MutexLock l(&mu_);
  for (const containerd::TaskMetrics& m : *now) {
    usage.total_memory_bytes += static_cast<double>(m.memory_working_set_bytes);
    auto& samples = cpu_samples_[m.container_id];
    // Keep the last minute (and at least the newest sample before it, for the window's start).
    while (samples.size() > 1 && samples[1].first <= window_start) samples.erase(samples.begin());
    if (!samples.empty() && m.timestamp > samples.front().first &&
        m.cpu_usage_ns >= samples.front().second) {
      const double seconds = absl::ToDoubleSeconds(m.timestamp - samples.front().first);
      usage.cpu +=
          static_cast<double>(m.cpu_usage_ns - samples.front().second) / 1e9 / seconds * 1000.0;
    }
    samples.emplace_back(m.timestamp, m.cpu_usage_ns);
    if (samples.size() > 64) samples.erase(samples.begin());
  }
  // Replicas that are gone take their samples with them.
  for (auto it = cpu_samples_.begin(); it != cpu_samples_.end();) {
    if (it->second.empty() || it->second.back().first < window_start) {
      it = cpu_samples_.erase(it);
    } else {
      ++it;
    }
  }
  return usage;
}

}  // namespace faasd::provider
