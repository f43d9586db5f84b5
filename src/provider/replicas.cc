#include "provider/replicas.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace faasd::provider {

absl::StatusOr<ScaleRange> ParseScaleRange(const std::map<std::string, std::string>& labels) {
  ScaleRange r;
  for (auto [key, out] : {std::pair{kScaleMinLabel, &r.min}, {kScaleMaxLabel, &r.max}}) {
    auto it = labels.find(key);
    if (it == labels.end()) continue;
    if (!absl::SimpleAtoi(it->second, out)) {
      return absl::InvalidArgumentError(
          absl::StrCat("label ", key, "=\"", it->second, "\" is not a whole number"));
    }
  }
  if (r.max > kScaleHardMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("label ", kScaleMaxLabel, "=", r.max, " is over ", kScaleHardMax));
  }
  if (r.max == 0) r.max = 1;
  if (r.min == 0) r.min = 1;
  if (r.min > r.max) {
    return absl::InvalidArgumentError(absl::StrCat("label ", kScaleMinLabel, "=", r.min,
                                                   " is over ", kScaleMaxLabel, "=", r.max));
  }
  return r;
}

absl::Status CheckReplicas(const std::string& function, uint64_t replicas,
                           const ScaleRange& range) {
  if (replicas == 0 || (replicas >= range.min && replicas <= range.max)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("scale ", function, ": replicas must be 0 or ", range.min, "..", range.max,
                   " (labels ", kScaleMinLabel, " and ", kScaleMaxLabel, "), not ", replicas));
}

absl::StatusOr<uint64_t> ParseScaleFactor(const std::map<std::string, std::string>& labels) {
  auto it = labels.find(kScaleFactorLabel);
  if (it == labels.end()) return kDefaultScaleFactor;
  uint64_t factor = 0;
  if (!absl::SimpleAtoi(it->second, &factor) || factor > 100) {
    return absl::InvalidArgumentError(absl::StrCat("label ", kScaleFactorLabel, "=\"", it->second,
                                                   "\" is not a whole number in 0..100"));
  }
  return factor;
}

uint64_t AlertReplicas(bool firing, uint64_t current, const ScaleRange& range, uint64_t factor) {
  if (!firing) return current == 0 ? 0 : range.min;
  const uint64_t step = (range.max * factor + 99) / 100;
  if (step == 0) return current;
  return std::clamp(current + step, range.min, range.max);
}

ReplicaPlan PlanReplicas(uint64_t desired, const std::vector<ReplicaState>& replicas) {
  ReplicaPlan plan;
  if (desired == 0) {
    for (size_t i = 0; i < replicas.size(); ++i) {
      const ReplicaState& r = replicas[i];
      if (i == 0) {
        if (r.has_task && r.may_pause && r.running) {
          plan.pause.push_back(r.id);
        } else if (r.has_task && !(r.may_pause && r.paused)) {
          plan.stop.push_back(r.id);
        }
      } else {
        plan.retire.push_back(replicas[i].id);
      }
    }
    return plan;
  }
  // Keep the best `desired`: ready ones first, then the oldest.
  std::vector<size_t> order(replicas.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return replicas[a].ready > replicas[b].ready; });
  std::vector<bool> keep(replicas.size(), false);
  for (size_t k = 0; k < order.size() && k < desired; ++k) keep[order[k]] = true;
  for (size_t i = 0; i < replicas.size(); ++i) {
    const ReplicaState& r = replicas[i];
    if (!keep[i]) {
      plan.retire.push_back(r.id);
    } else if (r.paused) {
      plan.resume.push_back(r.id);
    } else if (!r.running && !r.backing_off) {
      plan.start.push_back(r.id);
    }
  }
  if (replicas.size() < desired) plan.create = desired - replicas.size();
  return plan;
}

absl::Duration RestartDelay(int consecutive_restarts) {
  if (consecutive_restarts <= 0) return absl::ZeroDuration();
  absl::Duration d = absl::Milliseconds(250);
  for (int i = 1; i < consecutive_restarts && d < absl::Minutes(5); ++i) d *= 2;
  return std::min(d, absl::Minutes(5));
}

}  // namespace faasd::provider
