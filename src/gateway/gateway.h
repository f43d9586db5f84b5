// The embedded OpenFaaS gateway: the REST API faas-cli speaks (/system/*, behind HTTP Basic
// auth), the portal (/ui/, same auth; files from ui/assets.h), the invoke proxy
// (/function/NAME[.NS][/path]), /healthz and Prometheus /metrics.
//
// The gateway talks only to provider::FunctionProvider (lifecycle) and its RoutingTable
// (where ready replicas listen), and reads services::StatusSource (what the service supervisor
// knows, GET /system/services). Errors map to HTTP in one place: http_errors.h.
//
// One public port: an event-driven front end (front_end.h; one loop per core) serves the
// invoke path, /healthz and /metrics itself and relays the rest to the /system server on a
// loopback port. The invoke path never calls the provider's lifecycle methods: it reads the
// routing snapshot, forwards over per-loop keep-alive upstream connections, and counts
// invocations with atomics. Bodies stream both ways in pieces of at most 64 KiB; responses are
// relayed as they arrive (events, NDJSON, chunked); a WebSocket upgrade the function accepts is
// tunnelled both ways until either side closes.
//
// Thread-safety: Start() and Stop() are called from one owning thread. The provider must
// outlive the Gateway.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "metrics/history.h"
#include "metrics/metrics.h"
#include "provider/provider.h"
#include "queue/queue.h"
#include "services/status.h"

namespace faasd::gateway {

struct Credentials {
  std::string user, password;
};

// Reads <dir>/basic-auth-user (default "admin" if absent, then written) and
// <dir>/basic-auth-password (if absent: 40 random characters from /dev/urandom in a url-safe
// alphabet, written mode 0600; the dir is created mode 0700). Values are whitespace-trimmed.
// An existing but empty password file is an error: it would let anyone in. An existing dir
// must be a real directory owned by our uid (else FailedPrecondition naming it and the cause);
// group and other bits are removed. Files are written through a fresh O_EXCL|O_NOFOLLOW
// temporary name, so a symlink planted in the dir is never written through.
absl::StatusOr<Credentials> LoadOrCreateCredentials(const std::string& secrets_dir);

struct GatewayOptions {
  std::string listen_host = "0.0.0.0";
  int port = 8080;  // 0 = pick a free port (tests); see Gateway::port()
  Credentials credentials;
  size_t max_request_bytes = 32 << 20;  // invoke bodies; /system/* bodies are capped at 1 MiB
  int upstream_timeout_seconds = 60;    // exec timeout for /function/ (504 after)
  int worker_threads = 0;               // /system server threads at most; 0 = 64
  int event_loops = 0;                  // front end threads; 0 = one per core
  size_t max_connections = 10000;       // open client connections; past it 503 and close
  int head_timeout_seconds = 10;        // from a request's first byte to the end of its head
  int idle_timeout_seconds = 60;        // keep-alive connections without a request
  int tunnel_idle_timeout_seconds = 600;  // WebSocket tunnels with no traffic (front_end.h)
  int listen_fd = -1;  // an inherited listening socket (socket activation) instead of binding
  std::string provider_name = "faasd-cpp", version, git_sha;
  // Borrowed, must outlive the Gateway; null: /async-function/ answers 501.
  queue::AsyncQueue* async_queue = nullptr;
  // Called (on a /system thread) after each deploy or update the provider accepted.
  std::function<void()> on_function_changed;
};

class GatewayServer;  // private: the httplib server and the route handlers

class Gateway {
 public:
  // `metrics` (shared with other parts of the daemon) and `history` (the portal's charts,
  // GET /system/function-stats/NAME; without it that route is a 404) must outlive the Gateway.
  Gateway(GatewayOptions options, provider::FunctionProvider& provider,
          metrics::Metrics& metrics, const metrics::History* history = nullptr);
  ~Gateway();  // stops if still running
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Binds (the error names the address) and serves on background threads.
  absl::Status Start();
  // The bound port (useful with port 0); 0 before Start().
  int port() const;
  // The listening socket, for a successor to share (base/handover.h); -1 when not serving.
  int listener_fd() const;
  // Stops accepting and waits, up to `grace`, for the requests in progress (FrontEnd::Drain).
  void Drain(absl::Duration grace);
  // Stops accepting, finishes the listening thread and joins it. Idempotent.
  void Stop();

  // GET /system/services lists what `source` knows (the service supervisor, made after the
  // gateway serves: it needs the port). Borrowed; it must stay until Stop(). Null, as before the
  // first call: the list is empty. Thread-safe.
  void SetServiceStatuses(const services::StatusSource* source);

 private:
  std::unique_ptr<GatewayServer> server_;
};

}  // namespace faasd::gateway
