// The ReadinessProbe over HTTP: one GET with a 200 ms connect and a 1 s read timeout.
// Stateless, so thread-safe.
#pragma once

#include "provider/readiness_probe.h"

namespace faasd::provider {

class HttpReadinessProbe final : public ReadinessProbe {
 public:
  bool Ready(const std::string& ip, int port, const std::string& path) override;
  std::string WhyNotReady(const std::string& ip, int port, const std::string& path) override;
};

}  // namespace faasd::provider
