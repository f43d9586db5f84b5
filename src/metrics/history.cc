#include "metrics/history.h"

#include <cmath>

#include "absl/container/flat_hash_set.h"

namespace faasd::metrics {

std::optional<double> QuantileMs(const std::array<uint64_t, Metrics::kBuckets.size()>& buckets,
                                 uint64_t beyond, double q) {
  uint64_t total = beyond;
  for (uint64_t b : buckets) total += b;
  if (total == 0) return std::nullopt;
  const double rank = q * static_cast<double>(total);
  double below = 0, lower_bound = 0;
  for (size_t i = 0; i < buckets.size(); ++i) {
    const double in = static_cast<double>(buckets[i]);
    if (in > 0 && below + in >= rank) {
      const double upper = Metrics::kBuckets[i];
      return 1000 * (lower_bound + (upper - lower_bound) * (rank - below) / in);
    }
    below += in;
    lower_bound = Metrics::kBuckets[i];
  }
  return 1000 * Metrics::kBuckets.back();
}

void History::Sample(absl::Time now) {
  // A function must be unknown at two samples in a row to be forgotten: a moment between two
  // routing snapshots (an update swapping replicas) must not reset its counters.
  absl::flat_hash_set<std::string> missing;
  metrics_.Prune([&](const std::string& name) {
    if (known_(name)) return true;
    missing.insert(name);
    return !missing_.contains(name);
  });
  missing_.swap(missing);
  std::vector<std::pair<std::string, Totals>> totals;
  metrics_.ForEachFunction([&totals](const std::string& name, const Metrics::FunctionCounters& f) {
    Totals t;
    for (int code = 0; code < Metrics::kMaxCode; ++code) {
      const Metrics::CodeStats* s = f.by_code[code].load(std::memory_order_acquire);
      if (s == nullptr) continue;
      const uint64_t n = s->count.load(std::memory_order_relaxed);
      t.count += n;
      if (code >= 500) t.errors += n;
      for (size_t i = 0; i < t.buckets.size(); ++i) {
        t.buckets[i] += s->buckets[i].load(std::memory_order_relaxed);
      }
    }
    totals.emplace_back(name, t);
  });

  absl::MutexLock lock(&mu_);
  // Series of functions Prune dropped go too (those counted are exactly the ones left).
  absl::flat_hash_set<std::string> counted;
  for (const auto& [name, t] : totals) counted.insert(name);
  for (auto it = series_.begin(); it != series_.end();) {
    if (counted.contains(it->first)) {
      ++it;
    } else {
      series_.erase(it++);
    }
  }
  for (auto& [name, now_totals] : totals) {
    auto [it, fresh] = series_.try_emplace(name);
    Series& s = it->second;
    // Counters start at zero when a function is first invoked: what a new one shows happened
    // within the last interval.
    if (fresh) s.last_at = now - kInterval;
    StatsPoint p;
    p.t = absl::ToUnixSeconds(now);
    p.requests = now_totals.count - s.last.count;
    p.errors = now_totals.errors - s.last.errors;
    const double seconds = absl::ToDoubleSeconds(now - s.last_at);
    p.rps = seconds > 0 ? static_cast<double>(p.requests) / seconds : 0;
    std::array<uint64_t, Metrics::kBuckets.size()> grown{};
    uint64_t in_buckets = 0;
    for (size_t i = 0; i < grown.size(); ++i) {
      grown[i] = now_totals.buckets[i] - s.last.buckets[i];
      in_buckets += grown[i];
    }
    // Buckets and counts are read one by one: never let "beyond" go negative.
    const uint64_t beyond = p.requests > in_buckets ? p.requests - in_buckets : 0;
    p.p50_ms = QuantileMs(grown, beyond, 0.5);
    p.p99_ms = QuantileMs(grown, beyond, 0.99);
    s.points.push_back(p);
    while (s.points.size() > kPoints) s.points.pop_front();
    s.last = now_totals;
    s.last_at = now;
  }
}

std::vector<StatsPoint> History::Points(const std::string& function_name) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = series_.find(function_name);
  if (it == series_.end()) return {};
  return {it->second.points.begin(), it->second.points.end()};
}

}  // namespace faasd::metrics
