// The arithmetic of replicas, free of any I/O so it is unit-tested in milliseconds: the range a
// function may be scaled in (its scale labels), what a reconcile pass must do to bring what
// runs to what is wanted, and the back-off of a replica that keeps crashing.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace faasd::provider {

// com.openfaas.scale.min / .max (defaults 1 and 20). Zero is always allowed: it is scale to
// zero, not a replica count the function runs with.
struct ScaleRange {
  uint64_t min = 1;
  uint64_t max = 20;
};
inline constexpr char kScaleMinLabel[] = "com.openfaas.scale.min";
inline constexpr char kScaleMaxLabel[] = "com.openfaas.scale.max";
inline constexpr uint64_t kScaleHardMax = 1000;

// Reads the range from a function's labels. InvalidArgument names a label that is not a whole
// number, a max over kScaleHardMax or a min over max.
absl::StatusOr<ScaleRange> ParseScaleRange(const std::map<std::string, std::string>& labels);
// OK for 0 and for min..max; InvalidArgument saying the range otherwise (never a clamp).
absl::Status CheckReplicas(const std::string& function, uint64_t replicas, const ScaleRange& range);

// What an Alertmanager alert (POST /system/alert, as the CE gateway) does to a function:
// firing adds ceil(max × factor / 100) replicas up to max (factor 0: nothing); resolved goes to
// min, but a function at zero stays there (its next request wakes it). factor is the label
// com.openfaas.scale.factor, a percentage 0..100 (default 20).
inline constexpr char kScaleFactorLabel[] = "com.openfaas.scale.factor";
inline constexpr uint64_t kDefaultScaleFactor = 20;
// InvalidArgument naming the label when it is not a whole number in 0..100.
absl::StatusOr<uint64_t> ParseScaleFactor(const std::map<std::string, std::string>& labels);
uint64_t AlertReplicas(bool firing, uint64_t current, const ScaleRange& range, uint64_t factor);

// One replica (a container of the function's current generation) as a reconcile pass sees it.
struct ReplicaState {
  std::string id;
  bool has_task = false;  // a task exists (running or exited)
  bool running = false;
  bool ready = false;
  bool backing_off = false;  // exited and not due for a restart yet
  bool paused = false;       // its task is frozen (kept at zero)
  bool may_pause = false;    // at zero, its task may be (or stay) paused instead of stopped
};

// What a pass does to a function wanting `desired` replicas. Replicas are kept in the order
// given (oldest first); surplus ones are retired not-ready first, then newest first. At zero,
// one container is kept as the function's record: its task paused when it may be, else none.
struct ReplicaPlan {
  uint64_t create = 0;              // new replicas to make
  std::vector<std::string> retire;  // containers to stop and remove
  std::vector<std::string> start;   // containers whose task must be (re)started now
  std::vector<std::string> stop;    // tasks to stop, containers kept (scaled to zero)
  std::vector<std::string> pause;   // running tasks to freeze (scaled to zero)
  std::vector<std::string> resume;  // paused tasks to thaw (scaled up from zero)
};
ReplicaPlan PlanReplicas(uint64_t desired, const std::vector<ReplicaState>& replicas);

// Delay before the n-th consecutive restart of a crashing replica: 0 for the first, then
// 250 ms doubling to 5 min. A replica that ran for kBackoffReset counts from zero again.
absl::Duration RestartDelay(int consecutive_restarts);
inline constexpr absl::Duration kBackoffReset = absl::Minutes(1);

}  // namespace faasd::provider
