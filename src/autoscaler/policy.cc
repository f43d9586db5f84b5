#include "autoscaler/policy.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "provider/replicas.h"

namespace faasd::autoscaler {
namespace {

// A ratio computed in floating point lands a hair above a whole number (9 / 4.5 = 2.0000001):
// that must not buy a replica.
constexpr double kCeilSlack = 1e-9;

const std::string* Find(const std::map<std::string, std::string>& labels, const char* key) {
  auto it = labels.find(key);
  return it == labels.end() ? nullptr : &it->second;
}

void Warn(std::vector<std::string>* warnings, const char* key, const std::string& value,
          absl::string_view why, absl::string_view fallback) {
  if (warnings != nullptr) {
    warnings->push_back(absl::StrCat(key, "=\"", value, "\": ", why, "; using ", fallback));
  }
}

void ReadPositive(const std::map<std::string, std::string>& labels, const char* key, double max,
                  std::vector<std::string>* warnings, double* out) {
  const std::string* v = Find(labels, key);
  if (v == nullptr) return;
  double d = 0;
  if (!absl::SimpleAtod(*v, &d) || !std::isfinite(d) || d <= 0 || d > max) {
    Warn(warnings, key, *v, absl::StrCat("not a number over 0 and at most ", max),
         absl::StrFormat("%g", *out));
    return;
  }
  *out = d;
}

void ReadDuration(const std::map<std::string, std::string>& labels, const char* key,
                  std::vector<std::string>* warnings, absl::Duration* out) {
  const std::string* v = Find(labels, key);
  if (v == nullptr) return;
  absl::StatusOr<absl::Duration> d = ParseGoDuration(*v);
  if (!d.ok()) {
    Warn(warnings, key, *v, d.status().message(), absl::FormatDuration(*out));
    return;
  }
  *out = *d;
}

}  // namespace

absl::string_view ScaleTypeName(ScaleType type) {
  switch (type) {
    case ScaleType::kCapacity:
      return "capacity";
    case ScaleType::kCpu:
      return "cpu";
    case ScaleType::kRps:
      break;
  }
  return "rps";
}

absl::StatusOr<absl::Duration> ParseGoDuration(absl::string_view text) {
  const std::string t(absl::StripAsciiWhitespace(text));
  absl::Duration d;
  // absl's syntax is Go's, plus "inf"; a bare number other than 0 has no unit in either.
  if (t.empty() || t.find("inf") != std::string::npos || !absl::ParseDuration(t, &d)) {
    return absl::InvalidArgumentError("not a duration like 30s, 10m or 1h30m");
  }
  if (d < absl::ZeroDuration()) return absl::InvalidArgumentError("a negative duration");
  return d;
}

AutoscalePolicy ParsePolicy(const std::map<std::string, std::string>& labels, bool all,
                            std::vector<std::string>* warnings) {
  AutoscalePolicy p;
  for (const char* key : {kTypeLabel, kTargetLabel, kProportionLabel, kZeroLabel,
                          kZeroDurationLabel, kDownWindowLabel}) {
    p.managed = p.managed || labels.count(key) > 0;
  }
  p.managed = p.managed || all;

  if (const std::string* v = Find(labels, kTypeLabel)) {
    const std::string t = absl::AsciiStrToLower(absl::StripAsciiWhitespace(*v));
    if (t == "rps") {
      p.type = ScaleType::kRps;
    } else if (t == "capacity") {
      p.type = ScaleType::kCapacity;
    } else if (t == "cpu") {
      p.type = ScaleType::kCpu;
    } else {
      Warn(warnings, kTypeLabel, *v, "not rps, capacity or cpu", "rps");
    }
  }
  ReadPositive(labels, kTargetLabel, 1e9, warnings, &p.target);
  ReadPositive(labels, kProportionLabel, 1, warnings, &p.proportion);
  if (const std::string* v = Find(labels, kZeroLabel)) {
    const std::string z = absl::AsciiStrToLower(absl::StripAsciiWhitespace(*v));
    if (z == "true" || z == "1") {
      p.zero = true;
    } else if (z != "false" && z != "0") {
      Warn(warnings, kZeroLabel, *v, "not true or false", "false");
    }
  }
  ReadDuration(labels, kZeroDurationLabel, warnings, &p.zero_duration);
  ReadDuration(labels, kDownWindowLabel, warnings, &p.down_window);

  // The provider refuses to deploy a bad range, so this holds only for a record written by
  // hand; scaling it would fail anyway.
  absl::StatusOr<provider::ScaleRange> range = provider::ParseScaleRange(labels);
  if (!range.ok()) {
    if (warnings != nullptr && p.managed) {
      warnings->push_back(absl::StrCat(range.status().message(), "; not autoscaled"));
    }
    p.managed = false;
    return p;
  }
  p.min = range->min;
  p.max = range->max;
  return p;
}

uint64_t DesiredReplicas(double total_load, const AutoscalePolicy& policy) {
  const double per_replica = policy.target * policy.proportion;
  double want = per_replica > 0 ? std::ceil(total_load / per_replica - kCeilSlack) : 0;
  if (!std::isfinite(want) || want < 0) want = 0;
  const uint64_t n =
      want >= static_cast<double>(policy.max) ? policy.max : static_cast<uint64_t>(want);
  return std::clamp<uint64_t>(n, policy.min, policy.max);
}

void FunctionScaler::Record(const Observation& o) {
  if (first_seen_ == absl::InfinitePast()) {
    first_seen_ = o.now;
    last_busy_ = o.now;  // a fresh daemon gives every function its full zero-duration
  }
  const bool started_more = !started_.empty() && o.started != started_.back().second;
  if (started_more || o.in_flight > 0 || o.busy) last_busy_ = o.now;
  if (!started_.empty() && o.started < started_.back().second) started_.clear();  // new counter
  started_.emplace_back(o.now, o.started);
  // Keep one sample at or before the window's start, so the rate spans the whole window.
  while (started_.size() > 2 && started_[1].first <= o.now - rate_window_) started_.pop_front();
}

double FunctionScaler::Rate() const {
  if (started_.size() < 2) return 0;
  const auto& [t0, n0] = started_.front();
  const auto& [t1, n1] = started_.back();
  const double seconds = absl::ToDoubleSeconds(t1 - t0);
  return seconds > 0 ? static_cast<double>(n1 - n0) / seconds : 0;
}

Decision FunctionScaler::Next(const AutoscalePolicy& policy, const Observation& o) {
  const bool first = first_seen_ == absl::InfinitePast();
  Record(o);
  Decision d;
  d.replicas = o.replicas;
  if (o.replicas == 0) {
    // The next request wakes it; what came before says nothing about what comes after.
    recommended_.clear();
    return d;
  }
  if (policy.zero && o.now - last_busy_ >= policy.zero_duration) {
    recommended_.clear();
    d.change = true;
    d.replicas = 0;
    d.why = absl::StrCat("idle for ",
                         absl::FormatDuration(absl::Trunc(o.now - last_busy_, absl::Seconds(1))),
                         " (zero-duration ", absl::FormatDuration(policy.zero_duration), ")");
    return d;
  }
  if (policy.min == policy.max || first) return d;  // off, or no rate yet

  switch (policy.type) {
    case ScaleType::kRps:
      d.load = Rate();
      break;
    case ScaleType::kCapacity:
      d.load = static_cast<double>(o.in_flight);
      break;
    case ScaleType::kCpu:
      d.load = o.cpu_millicores;
      break;
  }
  const uint64_t want = DesiredReplicas(d.load, policy);
  recommended_.emplace_back(o.now, want);
  while (!recommended_.empty() && recommended_.front().first < o.now - policy.down_window) {
    recommended_.pop_front();
  }
  const double per_ready = d.load / static_cast<double>(std::max<uint64_t>(o.ready, 1));
  const std::string load = absl::StrFormat("%s %.4g (%.4g per ready replica of %d; target %g x %g)",
                                           ScaleTypeName(policy.type), d.load, per_ready, o.ready,
                                           policy.target, policy.proportion);
  if (want > o.replicas) {
    d.change = true;
    d.replicas = want;
    d.why = load;
    return d;
  }
  if (want == o.replicas || o.now - first_seen_ < policy.down_window) return d;
  uint64_t allowed = 0;
  for (const auto& [at, n] : recommended_) allowed = std::max(allowed, n);
  if (allowed >= o.replicas) return d;
  d.change = true;
  d.replicas = allowed;
  d.why = policy.down_window > absl::ZeroDuration()
              ? absl::StrCat(load, ", the most wanted over the down window of ",
                             absl::FormatDuration(policy.down_window))
              : load;
  return d;
}

}  // namespace faasd::autoscaler
