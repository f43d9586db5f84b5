// Gateway lifecycle and the route table; /system handlers live in system_api.cc.
#include "gateway/gateway.h"

#include <sys/socket.h>

#include <functional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/log.h"
#include "base/thread_name.h"
#include "gateway/basic_auth.h"
#include "gateway/http_errors.h"
#include "gateway/names.h"
#include "gateway/server.h"
#include "gateway/worker_pool.h"

namespace faasd::gateway {
namespace {

// The internal server sees only what the front end relays there (/system/*, /, /ui/): a few
// concurrent requests, one per followed log stream.
constexpr int kDefaultWorkers = 64;
constexpr int kListenBacklog = 1024;

}  // namespace

GatewayServer::GatewayServer(GatewayOptions options, provider::FunctionProvider& provider,
                             metrics::Metrics& metrics, const metrics::History* history)
    : options_(std::move(options)), provider_(provider), metrics_(metrics), history_(history) {
  service_count_collector_ = metrics_.AddCollector([this] {
    std::vector<std::pair<std::string, double>> ready;
    for (const auto& [name, endpoints] : provider_.Routes().Snapshot()->functions) {
      ready.emplace_back(name, static_cast<double>(endpoints.size()));
    }
    return std::vector<prometheus::MetricFamily>{metrics::GaugeFamily(
        "gateway_service_count", "Current count of replicas for function", "function_name",
        ready)};
  });
}

GatewayServer::~GatewayServer() {
  Stop();
  metrics_.RemoveCollector(service_count_collector_);
}

bool GatewayServer::Authorized(const httplib::Request& req) const {
  return BasicAuthorized(req.get_header_value("Authorization"), options_.credentials);
}

httplib::Server::HandlerWithContentReader GatewayServer::System(SystemHandler handler) {
  return [this, handler = std::move(handler)](const httplib::Request& req, httplib::Response& res,
                                              const httplib::ContentReader& reader) {
    const bool authorized = Authorized(req);  // before any byte of the body is read
    std::string body;
    bool over = false;
    reader([&](const char* data, size_t len) {
      // An unauthorized or oversized body is read to the limit and dropped, so the client can
      // read our answer instead of a reset; past the limit the connection is closed.
      if (body.size() + len > kSystemBodyLimit) {
        over = true;
        return false;
      }
      if (authorized) body.append(data, len);
      return true;
    });
    if (over) res.set_header("Connection", "close");
    if (!authorized) {
      res.set_header("WWW-Authenticate", "Basic realm=\"Restricted\"");
      return WriteError(res, 401, "invalid credentials");
    }
    if (over) return WriteError(res, 413, SystemBodyLimitMessage());
    handler(req, body, res);
  };
}

httplib::Server::Handler GatewayServer::SystemGet(SystemHandler handler) {
  return [this, handler = std::move(handler)](const httplib::Request& req, httplib::Response& res) {
    if (!Authorized(req)) {
      res.set_header("WWW-Authenticate", "Basic realm=\"Restricted\"");
      return WriteError(res, 401, "invalid credentials");
    }
    handler(req, req.body, res);
  };
}

void GatewayServer::RegisterRoutes() {
  using namespace std::placeholders;
  server_.Get("/system/functions",
              SystemGet([this](auto& q, auto&, auto& r) { ListFunctions(q, r); }));
  server_.Post("/system/functions",
               System([this](auto& q, auto& b, auto& r) { DeployFunction(q, b, r, false); }));
  server_.Put("/system/functions",
              System([this](auto& q, auto& b, auto& r) { DeployFunction(q, b, r, true); }));
  server_.Delete("/system/functions",
                 System([this](auto& q, auto& b, auto& r) { DeleteFunction(q, b, r); }));
  server_.Get(R"(/system/function/([^/]+))",
              SystemGet([this](auto& q, auto&, auto& r) { GetFunction(q, r); }));
  server_.Post(R"(/system/scale-function/([^/]+))",
               System([this](auto& q, auto& b, auto& r) { ScaleFunction(q, b, r); }));
  server_.Get(R"(/system/function-stats/([^/]+))",
              SystemGet([this](auto& q, auto&, auto& r) { FunctionStats(q, r); }));
  server_.Get("/system/info", SystemGet([this](auto& q, auto&, auto& r) { Info(q, r); }));
  server_.Get("/system/services", SystemGet([this](auto& q, auto&, auto& r) { Services(q, r); }));
  server_.Get("/system/namespaces",
              SystemGet([this](auto& q, auto&, auto& r) { Namespaces(q, r); }));
  server_.Get("/system/logs", SystemGet([this](auto& q, auto&, auto& r) { FunctionLogs(q, r); }));

  server_.Get("/system/secrets", SystemGet([this](auto& q, auto&, auto& r) { ListSecrets(q, r); }));
  server_.Post("/system/secrets",
               System([this](auto& q, auto& b, auto& r) { WriteSecret(q, b, r, true); }));
  server_.Put("/system/secrets",
              System([this](auto& q, auto& b, auto& r) { WriteSecret(q, b, r, false); }));
  server_.Delete("/system/secrets",
                 System([this](auto& q, auto& b, auto& r) { DeleteSecret(q, b, r); }));
  server_.Get(R"(/system/namespace/([^/]+))",
              SystemGet([this](auto& q, auto&, auto& r) { GetNamespace(q, r); }));
  server_.Post(R"(/system/namespace/?)",
               System([this](auto& q, auto& b, auto& r) { WriteNamespace(q, b, r, true); }));
  server_.Post(R"(/system/namespace/([^/]+))",
               System([this](auto& q, auto& b, auto& r) { WriteNamespace(q, b, r, true); }));
  server_.Put(R"(/system/namespace/([^/]+))",
              System([this](auto& q, auto& b, auto& r) { WriteNamespace(q, b, r, false); }));
  server_.Delete(R"(/system/namespace/([^/]+))",
                 System([this](auto& q, auto& b, auto& r) { DeleteNamespace(q, b, r); }));
  server_.Post("/system/alert", System([this](auto& q, auto& b, auto& r) { Alert(q, b, r); }));
  server_.Post(R"(/async-function/.*)", [](const httplib::Request&, httplib::Response& res) {
    WriteError(res, 501, "asynchronous invocation is not implemented yet in faasd-cpp");
  });

  server_.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
    absl::Status s = provider_.Healthy();
    if (s.ok()) return res.set_content("OK", "text/plain; charset=utf-8");
    WriteError(res, 503, s.message());
  });
  server_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_.Render(),
                    "text/plain; version=0.0.4; charset=utf-8");
  });
  server_.Get(
      "/", [](const httplib::Request&, httplib::Response& res) { res.set_redirect("/ui/", 307); });
  server_.Get(R"(/ui(/.*)?)", SystemGet([this](auto& q, auto&, auto& r) { ServeUi(q, r); }));

  // Far oversized /system bodies are refused before they are read; moderately oversized ones
  // are read and dropped by System() so the client sees the 413 rather than a reset.
  server_.set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!absl::StartsWith(req.path, "/system/")) return httplib::Server::HandlerResponse::Unhandled;
    uint64_t length = 0;
    if (absl::SimpleAtoi(req.get_header_value("Content-Length"), &length) &&
        length > kSystemBodyLimit + kDrainAllowance) {
      WriteError(res, 413, SystemBodyLimitMessage());
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // Errors httplib answers itself (a body past its payload limit, a malformed request) come
  // without a body; say what went wrong.
  server_.set_error_handler(httplib::Server::HandlerWithResponse(
      [this](const httplib::Request& req, httplib::Response& res) {
        // A function's own answer (it carries our X-Call-Id) or one of ours passes untouched.
        if (!res.body.empty() || !res.headers.empty())
          return httplib::Server::HandlerResponse::Unhandled;
        if (res.status == 413) {
          WriteError(res, 413,
                     absl::StartsWith(req.path, "/system/")
                         ? SystemBodyLimitMessage()
                         : absl::StrCat("request body over the limit of ",
                                        options_.max_request_bytes, " bytes"));
        } else {
          WriteError(res, res.status, absl::StrCat("HTTP ", res.status));
        }
        return httplib::Server::HandlerResponse::Handled;
      }));
  server_.set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr) {
        LogError("gateway: ", req.method, " ", req.path, ": unexpected exception");
        WriteError(res, 500, "internal error");
      });
}

absl::Status GatewayServer::Start() {
  if (listener_.joinable()) return absl::FailedPreconditionError("gateway: already started");
  const int workers = options_.worker_threads > 0 ? options_.worker_threads : kDefaultWorkers;
  // None while idle (a /system request then pays one thread start, tens of microseconds), up
  // to `workers` while /system connections are open (each holds one); a worker leaves 10 s
  // after its last connection (kept alive up to 5 s) closed.
  server_.new_task_queue = [workers] {
    return new ElasticWorkerPool(0, static_cast<size_t>(workers), absl::Seconds(10),
                                 "faasd-system-w");
  };
  server_.set_keep_alive_max_count(10000);
  server_.set_keep_alive_timeout(5);
  server_.set_read_timeout(30);
  server_.set_write_timeout(30);
  server_.set_tcp_nodelay(true);
  // The proxy and /system handlers enforce their own limits; this bound only stops httplib
  // from reading without end (see kDrainAllowance).
  server_.set_payload_max_length(options_.max_request_bytes + kDrainAllowance);
  // httplib's default also sets SO_REUSEPORT, which would let a second daemon share the port.
  server_.set_socket_options([](int sock) {
    int one = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  });
  RegisterRoutes();

  // Loopback only, any free port: the front end relays to it; it never faces clients.
  const int internal_port = server_.bind_to_any_port("127.0.0.1");
  if (internal_port <= 0) {
    return absl::UnavailableError("gateway: bind 127.0.0.1 (internal /system server): failed");
  }
  // httplib listens with a backlog of 5; a burst of new connections would see SYN drops.
  ::listen(server_.listening_socket(), kListenBacklog);
  listener_ = std::thread([this] {
    NameThisThread("faasd-system");
    server_.listen_after_bind();
  });
  // stop() is a no-op until the accept loop runs; wait for it so Stop() cannot hang.
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (!server_.is_running() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));

  FrontEndOptions fo;
  fo.host = options_.listen_host;
  fo.port = options_.port;
  fo.loops = options_.event_loops;
  fo.max_connections = options_.max_connections;
  fo.head_timeout = absl::Seconds(options_.head_timeout_seconds);
  fo.idle_timeout = absl::Seconds(options_.idle_timeout_seconds);
  fo.tunnel_idle_timeout = absl::Seconds(options_.tunnel_idle_timeout_seconds);
  fo.upstream_timeout =
      absl::Seconds(options_.upstream_timeout_seconds > 0 ? options_.upstream_timeout_seconds : 60);
  fo.max_request_bytes = options_.max_request_bytes;
  fo.credentials = options_.credentials;
  fo.queue = options_.async_queue;
  fo.internal_port = internal_port;
  fo.listen_fd = options_.listen_fd;
  front_ = std::make_unique<FrontEnd>(std::move(fo), provider_, metrics_);
  if (absl::Status s = front_->Start(); !s.ok()) {
    front_.reset();
    server_.stop();
    listener_.join();
    return s;
  }
  port_ = front_->port();
  LogInfo("gateway: listening on ", options_.listen_host, ":", port_,
          " (internal /system server on 127.0.0.1:", internal_port, ")");
  return absl::OkStatus();
}

void GatewayServer::Drain(absl::Duration grace) {
  if (front_ != nullptr) front_->Drain(grace);
}

void GatewayServer::Stop() {
  if (!listener_.joinable()) return;
  if (front_ != nullptr) front_->Stop();
  server_.stop();
  listener_.join();
}

Gateway::Gateway(GatewayOptions options, provider::FunctionProvider& provider,
                 metrics::Metrics& metrics, const metrics::History* history)
    : server_(std::make_unique<GatewayServer>(std::move(options), provider, metrics, history)) {}
Gateway::~Gateway() = default;
absl::Status Gateway::Start() { return server_->Start(); }
int Gateway::port() const { return server_->port(); }
int Gateway::listener_fd() const { return server_->listener_fd(); }
void Gateway::Drain(absl::Duration grace) { server_->Drain(grace); }
void Gateway::Stop() { server_->Stop(); }
void Gateway::SetServiceStatuses(const services::StatusSource* source) {
  server_->SetServiceStatuses(source);
}

}  // namespace faasd::gateway
