// GET /system/services over real loopback HTTP: basic auth, [] without a supervisor, and each
// service's state as the supervisor reports it.
#include "absl/time/time.h"
#include "catch.hpp"
#include "nlohmann/json.hpp"
#include "test_support.h"

namespace faasd::gateway::testing {
namespace {

using nlohmann::json;

class FakeStatuses : public services::StatusSource {
 public:
  std::vector<services::ServiceStatus> Statuses() const override { return statuses; }
  std::vector<services::ServiceStatus> statuses;
};

json GetServices(GatewayFixture& f) {
  auto r = f.client->Get("/system/services");
  REQUIRE(r);
  REQUIRE(r->status == 200);
  CHECK(r->get_header_value("Content-Type") == "application/json");
  return json::parse(r->body);
}

TEST_CASE("services need basic auth and are [] when none are supervised", "[gateway][services]") {
  GatewayFixture f;
  httplib::Client anon("127.0.0.1", f.gateway->port());
  CHECK(anon.Get("/system/services")->status == 401);
  CHECK(GetServices(f) == json::array());

  FakeStatuses none;
  f.gateway->SetServiceStatuses(&none);
  CHECK(GetServices(f) == json::array());
  f.gateway->SetServiceStatuses(nullptr);
  CHECK(GetServices(f) == json::array());
}

TEST_CASE("each service's state, exit and ports as the supervisor knows them",
          "[gateway][services]") {
  GatewayFixture f;
  const absl::Time t0 = absl::FromUnixSeconds(1700000000);
  FakeStatuses fake;
  services::ServiceStatus nats;
  nats.name = "nats";
  nats.image = "docker.io/library/nats:2.9.10";
  nats.restart_policy = "always";
  nats.state = services::ServiceState::kRunning;
  nats.since = t0 + absl::Milliseconds(1500);
  nats.pid = 4242;
  nats.ip = "10.62.0.2";
  nats.restarts = 1;
  nats.last_exit = services::ServiceExit{137, services::ExitReason(137), t0};
  nats.ports.push_back({"127.0.0.1", 4222, 4222, "tcp"});
  services::ServiceStatus web;
  web.name = "web";
  web.image = "web:1";
  web.restart_policy = "on-failure";
  web.state = services::ServiceState::kRestarting;
  web.since = t0;
  web.restart_at = t0 + absl::Seconds(2);
  web.last_exit = services::ServiceExit{std::nullopt, "did not start: pull web:1: not found", t0};
  services::ServiceStatus job;
  job.name = "job";
  job.restart_policy = "no";
  job.state = services::ServiceState::kFailed;
  job.since = t0;
  job.last_exit = services::ServiceExit{3, services::ExitReason(3), t0};
  fake.statuses = {nats, web, job};
  f.gateway->SetServiceStatuses(&fake);

  const json got = GetServices(f);
  REQUIRE(got.size() == 3);
  CHECK(got[0] == json::parse(R"({
    "name": "nats", "image": "docker.io/library/nats:2.9.10", "restartPolicy": "always",
    "state": "running", "since": "2023-11-14T22:13:21.500Z", "pid": 4242, "ip": "10.62.0.2",
    "restarts": 1,
    "lastExit": {"code": 137, "reason": "killed by signal 9", "time": "2023-11-14T22:13:20.000Z"},
    "ports": [{"hostIP": "127.0.0.1", "hostPort": 4222, "containerPort": 4222, "protocol": "tcp"}]
  })"));
  // Restarting: when the restart is due; a start that failed has a reason and no code.
  CHECK(got[1]["state"] == "restarting");
  CHECK(got[1]["restartAt"] == "2023-11-14T22:13:22.000Z");
  CHECK(got[1]["lastExit"] == json::parse(R"({"reason": "did not start: pull web:1: not found",
                                               "time": "2023-11-14T22:13:20.000Z"})"));
  CHECK(!got[1].contains("pid"));
  CHECK(got[1]["ports"] == json::array());
  CHECK(got[2]["state"] == "failed");
  CHECK(got[2]["lastExit"]["reason"] == "exited with status 3");
  CHECK(!got[2].contains("restartAt"));
  f.gateway->SetServiceStatuses(nullptr);  // before `fake` goes
}

}  // namespace
}  // namespace faasd::gateway::testing
