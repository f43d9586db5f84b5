// The daemon's metrics, exposed in Prometheus text format by prometheus-cpp's TextSerializer
// (no hand-written exposition). Three sources are rendered together:
//  - the invoke path's per-function counters, with the upstream OpenFaaS gateway's names:
//      gateway_function_invocation_total{function_name,code}    counter
//      gateway_functions_seconds{function_name,code}            histogram
//      gateway_function_invocation_started{function_name}       counter
//      gateway_function_invocation_inflight{function_name}      gauge
//    kept as plain atomics so the hot path takes no lock (prometheus-cpp's Histogram locks a
//    mutex per observation); they are turned into prometheus-cpp metric families on render;
//  - a prometheus::Registry that other parts of the daemon (the async queue, the autoscaler)
//    add their own families to;
//  - collectors: callbacks run on each render for values that are read, not counted (replica
//    counts from the routing table, process_* from /proc).
// function_name is "name.namespace". Thread-safe throughout.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"

namespace faasd::metrics {

class Metrics {
 public:
  // Upper bounds in seconds, as Prometheus' default buckets.
  static constexpr std::array<double, 11> kBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                      0.5,   1,    2.5,   5,    10};
  static constexpr int kMaxCode = 600;

  struct CodeStats {
    std::atomic<uint64_t> count{0};
    std::atomic<uint64_t> sum_ns{0};
    std::array<std::atomic<uint64_t>, kBuckets.size()> buckets{};  // non-cumulative
  };
  // One per function. Stable while its function is known: Prune retires those of functions that
  // are gone and frees them on a later Prune once no invocation holds them.
  struct FunctionCounters {
    std::atomic<uint64_t> started{0};
    std::atomic<int64_t> inflight{0};
    std::array<std::atomic<CodeStats*>, kMaxCode> by_code{};
    ~FunctionCounters();
  };
  using Collector = std::function<std::vector<prometheus::MetricFamily>()>;

  Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // The hot path: For() takes a reader lock (a writer lock once, on a name's first sight);
  // Started/Finished are atomics only. Every Started is followed by exactly one Finished.
  FunctionCounters* For(absl::string_view function_name);
  static void Started(FunctionCounters* f);
  static void Finished(FunctionCounters* f, int code, uint64_t duration_ns);

  // Completed invocations of "name.namespace" (all codes); 0 when never invoked.
  uint64_t InvocationCount(absl::string_view function_name) const;
  // Invocations of "name.namespace" started and not yet finished.
  int64_t Inflight(absl::string_view function_name) const;

  // Forgets the counters of every function `keep` says no to (removed, or never deployed: a
  // request for an unknown name counts too), so a daemon that deploys and removes many names,
  // or is sent many made-up ones, does not keep them all. They are retired first and freed by
  // a later call once no invocation in progress holds them; an invocation takes its pointer
  // from For() and calls Started() at once, so calls must be seconds apart (History's 10 s).
  void Prune(const std::function<bool(const std::string&)>& keep);

  // Calls `visit` with every function counted so far, under a reader lock (keep it short).
  void ForEachFunction(
      const std::function<void(const std::string&, const FunctionCounters&)>& visit) const;

  prometheus::Registry& registry() { return *registry_; }
  // Runs `collector` on every Render until RemoveCollector(the id returned), which whoever owns
  // what the collector reads calls before that goes away.
  int AddCollector(Collector collector);
  void RemoveCollector(int id);

  // Everything above, in the text exposition format (version 0.0.4).
  std::string Render() const;

 private:
  std::vector<prometheus::MetricFamily> CollectInvocations() const;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::unique_ptr<FunctionCounters>> functions_
      ABSL_GUARDED_BY(mu_);
  // Counters Prune took out of functions_, kept until no invocation holds them.
  std::vector<std::unique_ptr<FunctionCounters>> retired_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<int, Collector>> collectors_ ABSL_GUARDED_BY(mu_);
  int next_collector_ ABSL_GUARDED_BY(mu_) = 0;
  std::shared_ptr<prometheus::Registry> registry_;
};

// process_cpu_seconds_total, process_resident_memory_bytes, process_virtual_memory_bytes,
// process_open_fds, process_max_fds, process_start_time_seconds and process_threads of this
// process, read from /proc as the Go client's process collector does.
std::vector<prometheus::MetricFamily> CollectProcessMetrics();

// A family of one sample without labels (a counter or a gauge).
prometheus::MetricFamily SingleValueFamily(std::string name, std::string help,
                                           prometheus::MetricType type, double value);

// A one-label gauge family (help, name, and label name → value per metric): the shape most
// collectors produce.
prometheus::MetricFamily GaugeFamily(std::string name, std::string help, const std::string& label,
                                     const std::vector<std::pair<std::string, double>>& values);

}  // namespace faasd::metrics
