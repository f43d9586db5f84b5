// Invocation metrics for the invoke proxy, rendered in Prometheus text exposition format with
// the upstream OpenFaaS gateway's names:
//   gateway_function_invocation_total{function_name,code}   counter
//   gateway_functions_seconds{function_name,code}           histogram
//   gateway_function_invocation_started{function_name}      counter
//   gateway_service_count{function_name}                    gauge (ready replicas)
// function_name is "name.namespace". Thread-safe. The hot path takes only a reader lock to find
// a function's counters (a writer lock once, on first sight of a name) and then uses atomics.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "provider/provider.h"

namespace faasd::gateway {

class InvocationMetrics {
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
  // One per function; never freed while the metrics object lives, so pointers are stable.
  struct FunctionCounters {
    std::atomic<uint64_t> started{0};
    std::array<std::atomic<CodeStats*>, kMaxCode> by_code{};
    ~FunctionCounters();
  };

  InvocationMetrics() = default;
  InvocationMetrics(const InvocationMetrics&) = delete;
  InvocationMetrics& operator=(const InvocationMetrics&) = delete;

  FunctionCounters* For(absl::string_view function_name);
  static void Started(FunctionCounters* f) { f->started.fetch_add(1, std::memory_order_relaxed); }
  static void Finished(FunctionCounters* f, int code, uint64_t duration_ns);

  // Completed invocations of "name.namespace" (all codes); 0 when never invoked.
  uint64_t InvocationCount(absl::string_view function_name) const;

  std::string Render(const provider::RoutingSnapshot& routes) const;

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::unique_ptr<FunctionCounters>> functions_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace faasd::gateway
