// Decoding of containerd's task metrics: both cgroup versions, the working set as kubelet
// computes it, "no limit", and the errors for stats we cannot read.
#include <string>

#include "absl/strings/match.h"
#include "catch.hpp"
#include "cgroups_stats_v1_metrics.pb.h"
#include "cgroups_v2_stats_metrics.pb.h"
#include "containerd/client.h"

namespace faasd::containerd {
namespace {

api::types::Metric Wrap(const std::string& id, const std::string& type_url,
                        const google::protobuf::Message& stats) {
  api::types::Metric m;
  m.set_id(id);
  m.mutable_timestamp()->set_seconds(1700000000);
  m.mutable_timestamp()->set_nanos(250);
  m.mutable_data()->set_type_url(type_url);
  m.mutable_data()->set_value(stats.SerializeAsString());
  return m;
}

io::containerd::cgroups::v1::Metrics V1(uint64_t usage, uint64_t inactive_file, uint64_t limit) {
  io::containerd::cgroups::v1::Metrics v1;
  v1.mutable_cpu()->mutable_usage()->set_total(5'000'000'000);
  v1.mutable_cpu()->mutable_usage()->set_user(3'000'000'000);
  v1.mutable_cpu()->mutable_usage()->set_kernel(2'000'000'000);
  v1.mutable_cpu()->mutable_throttling()->set_throttled_periods(7);
  v1.mutable_cpu()->mutable_throttling()->set_throttled_time(900);
  v1.mutable_memory()->set_total_inactive_file(inactive_file);
  v1.mutable_memory()->set_inactive_file(1);  // the cgroup's own, not its hierarchy's: unused
  v1.mutable_memory()->mutable_usage()->set_usage(usage);
  v1.mutable_memory()->mutable_usage()->set_limit(limit);
  v1.mutable_memory()->mutable_usage()->set_max(usage + 10);
  v1.mutable_memory()->mutable_usage()->set_failcnt(3);
  v1.mutable_memory_oom_control()->set_oom_kill(2);
  v1.mutable_memory_oom_control()->set_under_oom(1);
  v1.mutable_pids()->set_current(4);
  return v1;
}

TEST_CASE("cgroup v1 stats decode with the working set as usage minus inactive file") {
  auto m = DecodeTaskMetrics(
      Wrap("fn-1", "io.containerd.cgroups.v1.Metrics", V1(100 << 20, 30 << 20, 64 << 20)));
  REQUIRE(m.ok());
  CHECK(m->container_id == "fn-1");
  CHECK(m->timestamp == absl::FromUnixSeconds(1700000000) + absl::Nanoseconds(250));
  CHECK(m->cgroup_version == 1);
  CHECK(m->cpu_usage_ns == 5'000'000'000);
  CHECK(m->cpu_user_ns == 3'000'000'000);
  CHECK(m->cpu_system_ns == 2'000'000'000);
  CHECK(m->cpu_throttled_periods == 7);
  CHECK(m->cpu_throttled_ns == 900);
  CHECK(m->memory_usage_bytes == 100 << 20);
  CHECK(m->memory_working_set_bytes == 70 << 20);
  CHECK(m->memory_max_usage_bytes == (100 << 20) + 10);
  REQUIRE(m->memory_limit_bytes.has_value());
  CHECK(*m->memory_limit_bytes == 64 << 20);
  CHECK(m->memory_failcnt == 3);
  CHECK(m->oom_kills == 2);
  CHECK(m->under_oom);
  CHECK(m->pids == 4);
}

TEST_CASE("the working set never goes below zero and the kernel's unlimited is no limit") {
  // v1 "no limit": INT64_MAX rounded down to a 4 KiB page.
  auto m = DecodeTaskMetrics(Wrap("fn-2", "type.googleapis.com/io.containerd.cgroups.v1.Metrics",
                                  V1(10 << 20, 12 << 20, 0x7FFFFFFFFFFFF000)));
  REQUIRE(m.ok());
  CHECK(m->memory_working_set_bytes == 0);
  CHECK_FALSE(m->memory_limit_bytes.has_value());
}

TEST_CASE("cgroup v2 stats decode, microseconds to nanoseconds") {
  io::containerd::cgroups::v2::Metrics v2;
  v2.mutable_cpu()->set_usage_usec(1500);
  v2.mutable_cpu()->set_user_usec(1000);
  v2.mutable_cpu()->set_system_usec(500);
  v2.mutable_cpu()->set_nr_throttled(9);
  v2.mutable_cpu()->set_throttled_usec(20);
  v2.mutable_memory()->set_usage(50 << 20);
  v2.mutable_memory()->set_inactive_file(20 << 20);
  v2.mutable_memory()->set_usage_limit(128 << 20);
  v2.mutable_memory_events()->set_max(11);
  v2.mutable_memory_events()->set_oom_kill(1);
  v2.mutable_pids()->set_current(3);
  auto m = DecodeTaskMetrics(Wrap("fn-3", "io.containerd.cgroups.v2.Metrics", v2));
  REQUIRE(m.ok());
  CHECK(m->cgroup_version == 2);
  CHECK(m->cpu_usage_ns == 1'500'000);
  CHECK(m->cpu_user_ns == 1'000'000);
  CHECK(m->cpu_system_ns == 500'000);
  CHECK(m->cpu_throttled_periods == 9);
  CHECK(m->cpu_throttled_ns == 20'000);
  CHECK(m->memory_usage_bytes == 50 << 20);
  CHECK(m->memory_working_set_bytes == 30 << 20);
  REQUIRE(m->memory_limit_bytes.has_value());
  CHECK(*m->memory_limit_bytes == 128 << 20);
  CHECK(m->memory_failcnt == 11);
  CHECK(m->oom_kills == 1);
  CHECK_FALSE(m->under_oom);
  CHECK(m->pids == 3);

  v2.mutable_memory()->set_usage_limit(UINT64_MAX);  // "max"
  m = DecodeTaskMetrics(Wrap("fn-3", "io.containerd.cgroups.v2.Metrics", v2));
  REQUIRE(m.ok());
  CHECK_FALSE(m->memory_limit_bytes.has_value());
}

TEST_CASE("stats we cannot read are errors naming the container") {
  io::containerd::cgroups::v1::Metrics v1;
  auto m = DecodeTaskMetrics(Wrap("fn-4", "io.containerd.cgroups.v3.Metrics", v1));
  REQUIRE(m.status().code() == absl::StatusCode::kUnimplemented);
  CHECK(absl::StrContains(m.status().message(), "fn-4"));
  CHECK(absl::StrContains(m.status().message(), "io.containerd.cgroups.v3.Metrics"));

  // A type name that only ends like ours is not ours.
  m = DecodeTaskMetrics(Wrap("fn-4", "evil.io.containerd.cgroups.v1.Metrics", v1));
  CHECK(m.status().code() == absl::StatusCode::kUnimplemented);

  api::types::Metric garbage = Wrap("fn-5", "io.containerd.cgroups.v1.Metrics", v1);
  garbage.mutable_data()->set_value("\xff\xff\xff");
  m = DecodeTaskMetrics(garbage);
  REQUIRE(m.status().code() == absl::StatusCode::kInternal);
  CHECK(absl::StrContains(m.status().message(), "fn-5"));

  api::types::Metric empty;
  empty.set_id("fn-6");
  m = DecodeTaskMetrics(empty);
  REQUIRE(m.status().code() == absl::StatusCode::kInternal);
  CHECK(absl::StrContains(m.status().message(), "fn-6"));
}

}  // namespace
}  // namespace faasd::containerd
