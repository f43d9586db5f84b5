// The gateway's front end: the one public listening port. A fixed set of event loops (one per
// core, Boost.Asio over epoll, HTTP/1.1 framing by Boost.Beast) serves the hot routes itself:
//   /function/NAME[.NS][/path]  proxied to a ready replica over pooled keep-alive connections
//   /async-function/...         POST: 501 (not implemented yet)
//   /healthz, /metrics
// Everything else (/system/*, /, /ui/ ...) is relayed the same way to the gateway's internal
// cpp-httplib server on a loopback port; /system/* is refused (401) before that when its basic
// auth is wrong, before any body byte is read.
//
// Hostile input: a head over kMaxHeadBytes → 431; a malformed head or body framing → 400; both
// close the connection. A head not complete within head_timeout of its first byte drops the
// connection; an idle keep-alive connection is closed after idle_timeout. Past max_connections
// open client connections a new one gets 503 and is closed.
//
// Thread-safety: Start() and Stop() from one owning thread. Each connection lives on one loop;
// nothing on a loop blocks: waits for a replica go through ReplicaWaiter, provider health
// checks (containerd) run on a helper thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gateway/gateway.h"
#include "metrics/metrics.h"
#include "provider/provider.h"

namespace faasd::gateway {

struct FrontEndOptions {
  std::string host = "0.0.0.0";
  int port = 8080;  // 0: any free port
  int loops = 0;    // 0: one per core
  size_t max_connections = 10000;
  absl::Duration head_timeout = absl::Seconds(10);
  absl::Duration idle_timeout = absl::Seconds(60);
  absl::Duration upstream_timeout = absl::Seconds(60);
  absl::Duration connect_timeout = absl::Seconds(5);
  size_t max_request_bytes = 32 << 20;
  Credentials credentials;
  int internal_port = 0;  // the cpp-httplib server on 127.0.0.1
};

class FrontEnd {
 public:
  FrontEnd(FrontEndOptions options, provider::FunctionProvider& provider,
           metrics::Metrics& metrics);
  ~FrontEnd();
  FrontEnd(const FrontEnd&) = delete;
  FrontEnd& operator=(const FrontEnd&) = delete;

  // Binds (the error names the address and the cause) and starts the loops.
  absl::Status Start();
  int port() const { return port_; }
  // Closes the listener and every connection, joins the loops. Idempotent.
  void Stop();

 private:
  struct State;  // loops, acceptor, helpers: private to front_end.cc
  std::unique_ptr<State> state_;
  int port_ = 0;
};

}  // namespace faasd::gateway
