#include "provider/http_readiness_probe.h"

#include "httplib.h"

namespace faasd::provider {

bool HttpReadinessProbe::Ready(const std::string& ip, int port, const std::string& path) {
  httplib::Client cli(ip, port);
  cli.set_connection_timeout(0, 200000);
  cli.set_read_timeout(1, 0);
  auto res = cli.Get(path.empty() ? "/_/health" : path);
  if (!res) return false;
  // A path the function names must answer 2xx. By default any answer but 503 means the
  // process listens: the watchdogs answer 503 until ready, other servers may have no /_/health.
  return path.empty() ? res->status != 503 : res->status >= 200 && res->status < 300;
}

}  // namespace faasd::provider
