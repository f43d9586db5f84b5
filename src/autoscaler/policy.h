// The arithmetic of autoscaling, free of I/O and of the wall clock, so it is unit-tested in
// milliseconds with times the test picks:
//   - AutoscalePolicy: a function's com.openfaas.scale.* labels read into numbers. A bad value
//     never stops anything: it is replaced by its default and named in `warnings`.
//   - FunctionScaler: one function's memory across ticks (its rate window, when it was last
//     busy, its recent recommendations) and the decision of each tick.
//
// The rule (OpenFaaS Pro's): desired = ceil(ready × load per ready replica / (target ×
// target-proportion)), clamped to min..max. ready × load per ready replica is the function's
// total load, so the total is what is measured: requests started per second over the rate
// window (rps), requests in flight now (capacity), or millicores (cpu). Scale up at once; scale
// down to the highest recommendation of the last down.window, and only once the scaler has
// watched the function for that long. min == max turns load scaling off. With zero=true a
// function idle for zero-duration (no request started, none in flight, nothing queued) goes to
// 0; a function at 0 is left alone, since the next request wakes it.
//
// Not thread-safe: the Autoscaler's loop owns its FunctionScalers.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace faasd::autoscaler {

enum class ScaleType { kRps, kCapacity, kCpu };
absl::string_view ScaleTypeName(ScaleType type);

inline constexpr char kLabelPrefix[] = "com.openfaas.scale.";
inline constexpr char kTypeLabel[] = "com.openfaas.scale.type";
inline constexpr char kTargetLabel[] = "com.openfaas.scale.target";
inline constexpr char kProportionLabel[] = "com.openfaas.scale.target-proportion";
inline constexpr char kZeroLabel[] = "com.openfaas.scale.zero";
inline constexpr char kZeroDurationLabel[] = "com.openfaas.scale.zero-duration";
inline constexpr char kDownWindowLabel[] = "com.openfaas.scale.down.window";

struct AutoscalePolicy {
  // The autoscaler drives the function: it has one of the labels above (min, max and factor
  // alone do not count: they already bound manual scaling and alerts), or --autoscale-all.
  bool managed = false;
  ScaleType type = ScaleType::kRps;
  double target = 50;        // load per replica
  double proportion = 0.90;  // of target, where the next replica is added
  uint64_t min = 1;
  uint64_t max = 20;
  bool zero = false;
  absl::Duration zero_duration = absl::Minutes(15);
  absl::Duration down_window = absl::ZeroDuration();
};

// Go's time.ParseDuration syntax: "300ms", "30s", "10m", "1h30m", "1.5h", "0". Negative or
// unitless (but for "0") values are InvalidArgument.
absl::StatusOr<absl::Duration> ParseGoDuration(absl::string_view text);

// Reads the labels. `all`: manage the function even without an autoscaler label. Each bad
// value is ignored (the default is kept) and described in `warnings` ("com.openfaas.scale.
// target=abc: not a positive number; using 50").
AutoscalePolicy ParsePolicy(const std::map<std::string, std::string>& labels, bool all,
                            std::vector<std::string>* warnings);

// ceil(total_load / (target × proportion)) in min..max.
uint64_t DesiredReplicas(double total_load, const AutoscalePolicy& policy);

// What the loop saw of one function at one tick.
struct Observation {
  absl::Time now;
  uint64_t started = 0;       // requests started since the daemon began (a counter)
  uint64_t in_flight = 0;     // requests being served now
  double cpu_millicores = 0;  // summed over replicas; read only for type cpu
  bool busy = false;          // work waits for it elsewhere (the async queue): never idle
  uint64_t replicas = 0;      // wanted now
  uint64_t ready = 0;         // ready replicas now
};

struct Decision {
  bool change = false;
  uint64_t replicas = 0;  // wanted after this tick (== Observation::replicas when no change)
  double load = 0;        // total load measured (rps, in-flight or millicores)
  std::string why;        // for the log: the load and the rule that decided
};

class FunctionScaler {
 public:
  // rate_window: how far back the rps rate looks (30 s by default).
  explicit FunctionScaler(absl::Duration rate_window) : rate_window_(rate_window) {}

  Decision Next(const AutoscalePolicy& policy, const Observation& o);

  // Requests started per second over the rate window, as of the last Next(); 0 before two
  // observations.
  double Rate() const;

 private:
  void Record(const Observation& o);

  const absl::Duration rate_window_;
  std::deque<std::pair<absl::Time, uint64_t>> started_;  // oldest at or before the window start
  absl::Time first_seen_ = absl::InfinitePast();
  absl::Time last_busy_ = absl::InfinitePast();
  std::deque<std::pair<absl::Time, uint64_t>> recommended_;  // within the down window
};

}  // namespace faasd::autoscaler
