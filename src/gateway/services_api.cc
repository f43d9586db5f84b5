// GET /system/services: the service containers the daemon supervises (NATS, Prometheus, an
// operator's own) and their state, from services::StatusSource. [] when none are supervised
// (--services=off). Ours: upstream has no such route (faasd's services are systemd's concern).
//
// One object a service, times RFC3339 UTC, fields without a value left out:
//   {"name", "image", "restartPolicy", "state", "since", "pid", "ip", "restarts",
//    "restartAt" (restarting only), "lastExit": {"code", "reason", "time"},
//    "ports": [{"hostIP", "hostPort", "containerPort", "protocol"}]}
#include "absl/time/time.h"
#include "gateway/server.h"
#include "nlohmann/json.hpp"

namespace faasd::gateway {
namespace {

using nlohmann::json;

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone());
}

json ServiceJson(const services::ServiceStatus& s) {
  json ports = json::array();
  for (const services::PublishedPort& p : s.ports) {
    ports.push_back({{"hostIP", p.host_ip},
                     {"hostPort", p.host_port},
                     {"containerPort", p.container_port},
                     {"protocol", p.protocol}});
  }
  json j = {{"name", s.name},
            {"image", s.image},
            {"restartPolicy", s.restart_policy},
            {"state", services::StateName(s.state)},
            {"since", Rfc3339(s.since)},
            {"restarts", s.restarts},
            {"ports", std::move(ports)}};
  if (s.pid != 0) j["pid"] = s.pid;
  if (!s.ip.empty()) j["ip"] = s.ip;
  if (s.restart_at != absl::InfiniteFuture()) {
    j["restartAt"] = Rfc3339(s.restart_at);
  }
  if (s.last_exit) {
    json exit = {{"reason", s.last_exit->reason}, {"time", Rfc3339(s.last_exit->at)}};
    if (s.last_exit->code) exit["code"] = *s.last_exit->code;
    j["lastExit"] = std::move(exit);
  }
  return j;
}

}  // namespace

void GatewayServer::Services(const httplib::Request&, httplib::Response& res) {
  json out = json::array();
  if (const services::StatusSource* source = services_.load()) {
    for (const services::ServiceStatus& s : source->Statuses()) out.push_back(ServiceJson(s));
  }
  res.set_content(out.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

}  // namespace faasd::gateway
