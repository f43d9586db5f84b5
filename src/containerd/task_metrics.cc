// Decoding of the cgroup stats in containerd's task metrics. The payload's type is named by the
// Any's type_url without the "type.googleapis.com/" prefix protobuf's Any::UnpackTo expects
// (containerd's typeurl registers gogo types by their full proto name), so it is matched here.
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "cgroups_stats_v1_metrics.pb.h"
#include "cgroups_v2_stats_metrics.pb.h"
#include "containerd/client.h"

namespace faasd::containerd {
namespace {

namespace cgv1 = ::io::containerd::cgroups::v1;
namespace cgv2 = ::io::containerd::cgroups::v2;

// The kernel's "no limit" is INT64_MAX rounded down to a page on v1 and "max" (read by
// containerd as UINT64_MAX) on v2; no real limit comes near 4 EiB.
constexpr uint64_t kUnlimited = uint64_t{1} << 62;

bool TypeIs(absl::string_view type_url, absl::string_view full_name) {
  return type_url == full_name || absl::EndsWith(type_url, absl::StrCat("/", full_name));
}

uint64_t FloorSub(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

void FromV1(const cgv1::Metrics& in, TaskMetrics* out) {
  out->cgroup_version = 1;
  const cgv1::CPUUsage& cpu = in.cpu().usage();
  out->cpu_usage_ns = cpu.total();
  out->cpu_user_ns = cpu.user();
  out->cpu_system_ns = cpu.kernel();
  out->cpu_throttled_periods = in.cpu().throttling().throttled_periods();
  out->cpu_throttled_ns = in.cpu().throttling().throttled_time();
  const cgv1::MemoryStat& mem = in.memory();
  out->memory_usage_bytes = mem.usage().usage();
  out->memory_working_set_bytes = FloorSub(mem.usage().usage(), mem.total_inactive_file());
  out->memory_max_usage_bytes = mem.usage().max();
  if (mem.has_usage() && mem.usage().limit() < kUnlimited) {
    out->memory_limit_bytes = mem.usage().limit();
  }
  out->memory_failcnt = mem.usage().failcnt();
  out->oom_kills = in.memory_oom_control().oom_kill();
  out->under_oom = in.memory_oom_control().under_oom() != 0;
  out->pids = in.pids().current();
}

void FromV2(const cgv2::Metrics& in, TaskMetrics* out) {
  out->cgroup_version = 2;
  out->cpu_usage_ns = in.cpu().usage_usec() * 1000;
  out->cpu_user_ns = in.cpu().user_usec() * 1000;
  out->cpu_system_ns = in.cpu().system_usec() * 1000;
  out->cpu_throttled_periods = in.cpu().nr_throttled();
  out->cpu_throttled_ns = in.cpu().throttled_usec() * 1000;
  const cgv2::MemoryStat& mem = in.memory();
  out->memory_usage_bytes = mem.usage();
  out->memory_working_set_bytes = FloorSub(mem.usage(), mem.inactive_file());
  if (in.has_memory() && mem.usage_limit() > 0 && mem.usage_limit() < kUnlimited) {
    out->memory_limit_bytes = mem.usage_limit();
  }
  out->memory_failcnt = in.memory_events().max();
  out->oom_kills = in.memory_events().oom_kill();
  out->pids = in.pids().current();
}

}  // namespace

absl::StatusOr<TaskMetrics> DecodeTaskMetrics(const api::types::Metric& metric) {
  TaskMetrics out;
  out.container_id = metric.id();
  out.timestamp = ToTime(metric.timestamp());
  const std::string& type = metric.data().type_url();
  const std::string what = absl::StrCat("tasks.Metrics ", metric.id());
  if (!metric.has_data()) return absl::InternalError(absl::StrCat(what, ": no stats"));
  if (TypeIs(type, cgv1::Metrics::descriptor()->full_name())) {
    cgv1::Metrics v1;
    if (!v1.ParseFromString(metric.data().value())) {
      return absl::InternalError(absl::StrCat(what, ": ", type, " does not parse"));
    }
    FromV1(v1, &out);
  } else if (TypeIs(type, cgv2::Metrics::descriptor()->full_name())) {
    cgv2::Metrics v2;
    if (!v2.ParseFromString(metric.data().value())) {
      return absl::InternalError(absl::StrCat(what, ": ", type, " does not parse"));
    }
    FromV2(v2, &out);
  } else {
    return absl::UnimplementedError(absl::StrCat(what, ": stats of type \"", type,
                                                 "\" are not decoded (only ",
                                                 cgv1::Metrics::descriptor()->full_name(), " and ",
                                                 cgv2::Metrics::descriptor()->full_name(), ")"));
  }
  return out;
}

}  // namespace faasd::containerd
