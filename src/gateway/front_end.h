// The gateway's front end: the one public listening port. A fixed set of event loops (one per
// core, Boost.Asio over epoll, HTTP/1.1 framing by Boost.Beast) serves the hot routes itself:
//   /function/NAME[.NS][/path]  proxied to a ready replica over pooled keep-alive connections;
//                               a WebSocket upgrade the replica accepts (101) becomes a tunnel
//   /async-function/NAME[.NS][/path]  POST: queued on JetStream (queue/), 202 + X-Call-Id
//   /async-function/CALL-ID           DELETE: cancels a queued call
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
#include "queue/queue.h"

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
  // A pooled keep-alive connection to a replica unused this long is closed (nginx's upstream
  // keepalive_timeout is 60 s): what a burst opened does not stay open for good.
  absl::Duration upstream_idle_timeout = absl::Seconds(30);
  size_t max_request_bytes = 32 << 20;
  // A WebSocket tunnel with no byte moving either way this long is closed. Generous on purpose:
  // browsers send no pings of their own and libraries ping every 20 to 60 s or not at all, so
  // a quiet but live socket (a chat, a dashboard) must outlast any of those intervals; ten
  // minutes still frees, within minutes, the two sockets of a peer that vanished without a FIN
  // (a laptop put to sleep, a NAT entry dropped). Not upstream_timeout: that bounds one
  // invocation's answer, and a tunnel is open for as long as its two ends talk.
  absl::Duration tunnel_idle_timeout = absl::Minutes(10);
  Credentials credentials;
  int internal_port = 0;  // the cpp-httplib server on 127.0.0.1
  queue::AsyncQueue* queue = nullptr;  // borrowed; null: /async-function/ answers 501
  // A listening TCP socket to serve instead of binding host:port (socket activation: systemd
  // or a test holds it, so connections queue in it across a restart). The front end owns it.
  int listen_fd = -1;
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
  // The listening socket, for a successor to share (base/handover.h); -1 when not running.
  int listener_fd() const { return listener_fd_; }
  // Graceful stop, first half: closes the listener (connections not yet accepted stay queued
  // in it for whoever holds it too), answers every further response with Connection: close,
  // and returns once no request is in progress or `grace` has passed. Stop() follows.
  void Drain(absl::Duration grace);
  // Closes the listener and every connection, joins the loops. Idempotent.
  void Stop();

 private:
  struct State;  // loops, acceptor, helpers: private to front_end.cc
  std::unique_ptr<State> state_;
  int port_ = 0;
  int listener_fd_ = -1;
};

}  // namespace faasd::gateway
