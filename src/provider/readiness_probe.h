// Whether a replica serves yet: one request to it, answered at once. HttpReadinessProbe is the
// real one (HTTP over TCP); the unit tests hold one they set ready or not.
//
// Contract: Ready asks `path` of the replica at ip:port. `path` "" means /_/health, where any
// answer but 503 counts (the watchdogs answer 503 until the function is ready; other servers
// may have no /_/health); a path the function names must answer 2xx. No answer is "not ready",
// never an error. It returns within about a second. Implementations are thread-safe.
#pragma once

#include <string>

namespace faasd::provider {

class ReadinessProbe {
 public:
  virtual ~ReadinessProbe() = default;
  virtual bool Ready(const std::string& ip, int port, const std::string& path) = 0;
  // Why the replica is not ready, for the operator's log: asks once more and describes the
  // answer ("GET /_/health on 10.62.0.5:8080: Connection" or "... answered 404"). "" when the
  // implementation cannot tell.
  virtual std::string WhyNotReady(const std::string& /*ip*/, int /*port*/,
                                  const std::string& /*path*/) {
    return "";
  }
};

}  // namespace faasd::provider
