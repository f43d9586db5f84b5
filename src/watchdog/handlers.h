// The per-mode request handlers behind fwatchdog's HTTP server. Private to src/watchdog.
// Handlers are shared by all connection threads: Serve must be thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "watchdog/http_io.h"
#include "watchdog/watchdog.h"

namespace faasd::watchdog {

struct RequestContext {
  const MessageHead& head;
  Socket& client;
  BodyReader& body;
  ResponseWriter& writer;
  Clock::time_point start;
};

class Handler {
 public:
  virtual ~Handler() = default;
  // Starts background work (http mode: the upstream process). on_ready runs once, when the
  // handler can serve; the server writes the lock file then.
  virtual absl::Status Start(std::function<void()> on_ready) {
    on_ready();
    return absl::OkStatus();
  }
  // After the drain: stops background work (terminates the upstream process group).
  virtual void Stop() {}
  virtual void Serve(RequestContext& ctx) = 0;
};

std::unique_ptr<Handler> MakeForkHandler(const Config& config);  // classic/streaming/serializing
std::unique_ptr<Handler> MakeHttpProxyHandler(const Config& config);  // http
std::unique_ptr<Handler> MakeStaticHandler(const Config& config);     // static

// Process env plus the CGI variables for one request (upstream names).
std::vector<std::string> CgiEnvironment(const Config& config, const MessageHead& head);
// Go's canonical MIME header key: "content-type" -> "Content-Type".
std::string CanonicalHeaderKey(absl::string_view name);
// Classic marshal_request: {"header":{"Name":["v"]},"body":{"raw":"<base64>"}}.
std::string MarshalRequestJson(const MessageHead& head, absl::string_view body);
// Sends "100 Continue" when the client waits for it before its body.
void ContinueIfExpected(RequestContext& ctx);

}  // namespace faasd::watchdog
