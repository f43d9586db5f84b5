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
#include "gateway/http_errors.h"
#include "gateway/names.h"
#include "gateway/server.h"
#include "gateway/worker_pool.h"

namespace faasd::gateway {
namespace {

// Room for 256 keep-alive connections (each holds a worker while open) plus slack.
constexpr int kDefaultWorkers = 264;
constexpr int kListenBacklog = 1024;

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  // Runs over the longer input whatever the contents, so timing reveals at most the length.
  const size_t n = a.size() > b.size() ? a.size() : b.size();
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

bool DecodeBase64(absl::string_view in, std::string* out) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  out->clear();
  // Strict, as Go's StdEncoding is upstream: padded to a multiple of 4, '=' only at the end.
  if (in.size() % 4 != 0) return false;
  size_t pad = in.find('=');
  if (pad != absl::string_view::npos &&
      (in.size() - pad > 2 || in.find_first_not_of('=', pad) != absl::string_view::npos)) {
    return false;
  }
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
    int v = value(c);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return true;
}

std::string SystemBodyLimitMessage() {
  return absl::StrCat("request body over the limit of ", kSystemBodyLimit, " bytes (1 MiB)");
}

}  // namespace

GatewayServer::GatewayServer(GatewayOptions options, provider::FunctionProvider& provider)
    : options_(std::move(options)),
      provider_(provider),
      proxy_(provider.Routes(), metrics_,
             ProxyOptions{options_.max_request_bytes,
                          absl::Seconds(options_.upstream_timeout_seconds > 0
                                            ? options_.upstream_timeout_seconds
                                            : 60)}) {}

GatewayServer::~GatewayServer() { Stop(); }

bool GatewayServer::Authorized(const httplib::Request& req) const {
  const std::string header = req.get_header_value("Authorization");
  if (!absl::StartsWithIgnoreCase(header, "Basic ")) return false;
  std::string decoded;
  if (!DecodeBase64(absl::StripAsciiWhitespace(absl::string_view(header).substr(6)), &decoded)) {
    return false;
  }
  const size_t colon = decoded.find(':');
  if (colon == std::string::npos) return false;
  // Both halves are always compared: no early exit on a wrong user.
  const bool user_ok =
      ConstantTimeEquals(absl::string_view(decoded).substr(0, colon), options_.credentials.user);
  const bool password_ok = ConstantTimeEquals(absl::string_view(decoded).substr(colon + 1),
                                              options_.credentials.password);
  return user_ok & password_ok;
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
  // The proxy first: it is the hot path and httplib tries patterns in order.
  const std::string fn = R"(/function/.*)";
  auto plain = [this](const httplib::Request& req, httplib::Response& res) {
    proxy_.Handle(req, res, nullptr);
  };
  auto streamed = [this](const httplib::Request& req, httplib::Response& res,
                         const httplib::ContentReader& reader) {
    proxy_.Handle(req, res, &reader);
  };
  server_.Get(fn, plain);  // GET and HEAD
  server_.Options(fn, plain);
  server_.Post(fn, streamed).Post(fn, plain);
  server_.Put(fn, streamed).Put(fn, plain);
  server_.Patch(fn, streamed).Patch(fn, plain);
  server_.Delete(fn, streamed).Delete(fn, plain);

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
  server_.Get("/system/info", SystemGet([this](auto& q, auto&, auto& r) { Info(q, r); }));
  server_.Get("/system/namespaces",
              SystemGet([this](auto& q, auto&, auto& r) { Namespaces(q, r); }));
  server_.Get("/system/logs", SystemGet([this](auto& q, auto&, auto& r) { FunctionLogs(q, r); }));

  // Routes of the faas-provider API that later work will fill in. Until then they say so
  // plainly (501) instead of a bare 404 that faas-cli shows as "function not found".
  auto not_yet = [](absl::string_view what) {
    return [what](const httplib::Request&, const std::string&, httplib::Response& res) {
      WriteError(res, 501, absl::StrCat(what, " is not implemented yet in faasd-cpp"));
    };
  };
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
  server_.Post("/system/alert", System(not_yet("alert-driven scaling")));
  server_.Post(R"(/async-function/.*)", [](const httplib::Request&, httplib::Response& res) {
    WriteError(res, 501, "asynchronous invocation is not implemented yet in faasd-cpp");
  });

  server_.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
    absl::Status s = provider_.Healthy();
    if (s.ok()) return res.set_content("OK", "text/plain; charset=utf-8");
    WriteError(res, 503, s.message());
  });
  server_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_.Render(*provider_.Routes().Snapshot()),
                    "text/plain; version=0.0.4; charset=utf-8");
  });
  server_.Get(
      "/", [](const httplib::Request&, httplib::Response& res) { res.set_redirect("/ui/", 307); });

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
  // A few threads idle, up to `workers` under load (each keep-alive connection holds one).
  server_.new_task_queue = [workers] {
    return new ElasticWorkerPool(8, static_cast<size_t>(workers), absl::Seconds(30));
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

  const std::string address = absl::StrCat(options_.listen_host, ":", options_.port);
  if (options_.port == 0) {
    port_ = server_.bind_to_any_port(options_.listen_host);
    if (port_ <= 0) {
      port_ = 0;
      return absl::UnavailableError(absl::StrCat("gateway: bind ", address, ": failed"));
    }
  } else {
    if (!server_.bind_to_port(options_.listen_host, options_.port)) {
      return absl::UnavailableError(
          absl::StrCat("gateway: bind ", address, ": address in use or not available"));
    }
    port_ = options_.port;
  }
  // httplib listens with a backlog of 5; a burst of new connections would see SYN drops.
  ::listen(server_.listening_socket(), kListenBacklog);
  listener_ = std::thread([this] { server_.listen_after_bind(); });
  // stop() is a no-op until the accept loop runs; wait for it so Stop() cannot hang.
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (!server_.is_running() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
  LogInfo("gateway: listening on ", options_.listen_host, ":", port_);
  return absl::OkStatus();
}

void GatewayServer::Stop() {
  if (!listener_.joinable()) return;
  server_.stop();
  listener_.join();
}

Gateway::Gateway(GatewayOptions options, provider::FunctionProvider& provider)
    : server_(std::make_unique<GatewayServer>(std::move(options), provider)) {}
Gateway::~Gateway() = default;
absl::Status Gateway::Start() { return server_->Start(); }
int Gateway::port() const { return server_->port(); }
void Gateway::Stop() { server_->Stop(); }

}  // namespace faasd::gateway
