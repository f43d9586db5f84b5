#include "provider/http_readiness_probe.h"

#include "absl/strings/str_cat.h"
#include "httplib.h"

namespace faasd::provider {

namespace {

const char* ProbePath(const std::string& path) { return path.empty() ? "/_/health" : path.c_str(); }

httplib::Result Ask(const std::string& ip, int port, const std::string& path) {
  httplib::Client cli(ip, port);
  cli.set_connection_timeout(0, 200000);
  cli.set_read_timeout(1, 0);
  return cli.Get(ProbePath(path));
}

// A path the function names must answer 2xx. By default any answer but 503 means the process
// listens: the watchdogs answer 503 until ready, other servers may have no /_/health.
bool Accepted(const std::string& path, int status) {
  return path.empty() ? status != 503 : status >= 200 && status < 300;
}

}  // namespace

bool HttpReadinessProbe::Ready(const std::string& ip, int port, const std::string& path) {
  auto res = Ask(ip, port, path);
  return res && Accepted(path, res->status);
}

std::string HttpReadinessProbe::WhyNotReady(const std::string& ip, int port,
                                            const std::string& path) {
  auto res = Ask(ip, port, path);
  const std::string what = absl::StrCat("GET ", ProbePath(path), " on ", ip, ":", port);
  if (!res) return absl::StrCat(what, ": no answer (", httplib::to_string(res.error()), ")");
  if (Accepted(path, res->status)) return absl::StrCat(what, ": ready now");
  return absl::StrCat(what, ": answered ", res->status,
                      path.empty() ? " (503: not ready)" : " (a ready path must answer 2xx)");
}

}  // namespace faasd::provider
