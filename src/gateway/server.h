// Private to the gateway: the public front end (front_end.h) and, behind it on a loopback
// port, the httplib server with the route table and /system handlers. One instance per
// Gateway; httplib handlers run on the server's worker threads.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gateway/front_end.h"
#include "gateway/gateway.h"
#include "metrics/metrics.h"
#include "httplib.h"

namespace faasd::gateway {

// /system/* JSON bodies are small; bigger ones are refused (413 saying this limit).
inline constexpr size_t kSystemBodyLimit = 1 << 20;
// How far past a body limit an oversized body is still read (and dropped) before the 413
// answer, so the client can read it instead of seeing a reset.
inline constexpr size_t kDrainAllowance = 16 << 20;
inline std::string SystemBodyLimitMessage() {
  return absl::StrCat("request body over the limit of ", kSystemBodyLimit, " bytes (1 MiB)");
}

class GatewayServer {
 public:
  GatewayServer(GatewayOptions options, provider::FunctionProvider& provider,
                metrics::Metrics& metrics, const metrics::History* history);
  ~GatewayServer();

  absl::Status Start();
  int port() const { return port_; }
  int listener_fd() const { return front_ == nullptr ? -1 : front_->listener_fd(); }
  void Drain(absl::Duration grace);
  void Stop();
  void SetServiceStatuses(const services::StatusSource* source) { services_.store(source); }

 private:
  // Exposes httplib's listening socket so the backlog can be raised past the compiled-in 5.
  class Server : public httplib::Server {
   public:
    int listening_socket() const { return svr_sock_; }
  };

  void RegisterRoutes();
  bool Authorized(const httplib::Request& req) const;
  // A /system handler: the request, its body (read by System) and the response.
  using SystemHandler =
      std::function<void(const httplib::Request&, const std::string& body, httplib::Response&)>;
  // Wraps a /system handler with basic auth, checked before any body byte is read, and reads the
  // body itself, up to kSystemBodyLimit, whatever its content type: faas-cli sends JSON as
  // application/json, `curl -d @file` as a form, and both mean JSON.
  httplib::Server::HandlerWithContentReader System(SystemHandler handler);
  // The same for methods without a body (GET).
  httplib::Server::Handler SystemGet(SystemHandler handler);

  void ListFunctions(const httplib::Request& req, httplib::Response& res);
  void GetFunction(const httplib::Request& req, httplib::Response& res);
  void DeployFunction(const httplib::Request& req, const std::string& body, httplib::Response& res,
                      bool update);
  void DeleteFunction(const httplib::Request& req, const std::string& body, httplib::Response& res);
  void ScaleFunction(const httplib::Request& req, const std::string& body, httplib::Response& res);
  void ListSecrets(const httplib::Request& req, httplib::Response& res);
  void WriteSecret(const httplib::Request& req, const std::string& body, httplib::Response& res,
                   bool create);
  void DeleteSecret(const httplib::Request& req, const std::string& body, httplib::Response& res);
  void Info(const httplib::Request& req, httplib::Response& res);
  void FunctionStats(const httplib::Request& req, httplib::Response& res);
  void Namespaces(const httplib::Request& req, httplib::Response& res);
  void GetNamespace(const httplib::Request& req, httplib::Response& res);
  void WriteNamespace(const httplib::Request& req, const std::string& body, httplib::Response& res,
                      bool create);
  void DeleteNamespace(const httplib::Request& req, const std::string& body,
                       httplib::Response& res);
  void FunctionLogs(const httplib::Request& req, httplib::Response& res);  // logs_api.cc
  // alert_api.cc: Alertmanager's webhook, and one alert's step for one function.
  void Alert(const httplib::Request& req, const std::string& body, httplib::Response& res);
  absl::Status ApplyAlert(bool firing, const std::string& function);
  void ServeUi(const httplib::Request& req, httplib::Response& res);       // ui_api.cc
  void Services(const httplib::Request& req, httplib::Response& res);      // services_api.cc

  const GatewayOptions options_;
  provider::FunctionProvider& provider_;
  metrics::Metrics& metrics_;
  const metrics::History* history_;  // may be null
  std::atomic<const services::StatusSource*> services_{nullptr};
  int service_count_collector_ = 0;  // gateway_service_count from the routing table
  Server server_;  // internal: 127.0.0.1, reached through front_
  std::thread listener_;
  std::unique_ptr<FrontEnd> front_;
  int port_ = 0;
};

}  // namespace faasd::gateway
