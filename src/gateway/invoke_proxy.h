// The invoke proxy: /function/NAME[.NS][/path][?query] → one ready replica of the function.
// Reads the routing snapshot (no provider calls, no locks beyond the metrics' reader lock),
// forwards over this thread's keep-alive upstream connections, and answers 404 unknown
// function, 502 upstream failure, 504 upstream timeout. A known function with no ready replica
// (scaled to zero, or its only replica being replaced) is waited for (RoutingTable::AwaitReady)
// until the request's deadline, then 503. A replica that refuses the connection is reported and
// the request goes to another (or waits for its replacement): nothing of it was sent.
// Thread-safe: one InvokeProxy serves all worker threads.
#pragma once

#include <cstddef>

#include "absl/time/time.h"
#include "gateway/metrics.h"
#include "gateway/upstream.h"
#include "httplib.h"
#include "provider/provider.h"

namespace faasd::gateway {

// How far past max_request_bytes an oversized body is still read (and dropped) before the
// 413 answer, so the client can read it instead of seeing a reset.
inline constexpr size_t kDrainAllowance = 16 << 20;

struct ProxyOptions {
  size_t max_request_bytes = 32 << 20;
  absl::Duration timeout = absl::Seconds(60);
  absl::Duration connect_timeout = absl::Seconds(5);
};

class InvokeProxy {
 public:
  InvokeProxy(provider::RoutingTable& routes, InvocationMetrics& metrics, ProxyOptions options)
      : routes_(routes), metrics_(metrics), options_(options) {}

  // `reader` is null when httplib already read the body into req.body.
  void Handle(const httplib::Request& req, httplib::Response& res,
              const httplib::ContentReader* reader) const;

 private:
  provider::RoutingTable& routes_;
  InvocationMetrics& metrics_;
  const ProxyOptions options_;
  mutable UpstreamPool pool_;
};

}  // namespace faasd::gateway
