// The last 15 minutes of each function's invocations, in 10-second points, for the portal's
// charts (no Prometheus needed): requests, errors (5xx), rate and p50/p99 latency estimated from
// the histogram buckets' growth over the interval, as Prometheus' histogram_quantile does.
// Sample() is called every interval, by the daemon's main thread between the signals it waits
// for (a thread of its own would be one more for nothing), or by a test with its own clock.
// Thread-safe.
#pragma once

#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "metrics/metrics.h"

namespace faasd::metrics {

struct StatsPoint {
  int64_t t = 0;  // unix seconds at the end of the interval
  uint64_t requests = 0, errors = 0;
  double rps = 0;
  std::optional<double> p50_ms, p99_ms;  // none without requests
};

// The q-quantile (0..1) in milliseconds of the observations counted by `buckets` (not
// cumulative, Metrics::kBuckets' bounds, plus `beyond` above the last one), by linear
// interpolation inside the bucket it falls in; the last bound when it falls beyond it.
std::optional<double> QuantileMs(const std::array<uint64_t, Metrics::kBuckets.size()>& buckets,
                                 uint64_t beyond, double q);

class History {
 public:
  static constexpr absl::Duration kInterval = absl::Seconds(10);
  static constexpr size_t kPoints = 90;  // 15 minutes

  // `known`: whether a "name.namespace" is a deployed function. Each Sample() first drops the
  // counters (Metrics::Prune) and the points of those that were not at this and the previous
  // Sample(). Sample() is called from one thread at a time.
  History(Metrics& metrics, std::function<bool(const std::string&)> known)
      : metrics_(metrics), known_(std::move(known)) {}
  History(const History&) = delete;
  History& operator=(const History&) = delete;

  // Forgets functions that are no longer known, then adds one point per function counted so
  // far: what changed since the previous Sample().
  void Sample(absl::Time now);
  // Oldest first; empty for a function never sampled.
  std::vector<StatsPoint> Points(const std::string& function_name) const;

 private:
  struct Totals {
    std::array<uint64_t, Metrics::kBuckets.size()> buckets{};
    uint64_t count = 0, errors = 0;
  };
  struct Series {
    Totals last;
    absl::Time last_at;
    std::deque<StatsPoint> points;
  };

  Metrics& metrics_;
  const std::function<bool(const std::string&)> known_;
  absl::flat_hash_set<std::string> missing_;  // unknown at the last Sample (its thread only)
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Series> series_ ABSL_GUARDED_BY(mu_);
};

}  // namespace faasd::metrics
