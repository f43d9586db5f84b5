// Fakes for the gateway tests: a FunctionProvider over an in-memory map, a routing table the
// test edits, and a real httplib echo upstream on 127.0.0.1.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gateway/gateway.h"
#include "httplib.h"
#include "provider/provider.h"

namespace faasd::gateway::testing {

// A routing table the test edits. AwaitReady waits (up to its deadline) for Set to give the
// function an endpoint and counts the waits; ReportUnreachable removes the endpoint and records
// it.
class FakeRoutes : public provider::RoutingTable {
 public:
  std::shared_ptr<const provider::RoutingSnapshot> Snapshot() const override;
  std::shared_ptr<const provider::RoutingSnapshot> AwaitReady(const std::string& key,
                                                              absl::Time deadline) override;
  void ReportUnreachable(const std::string& key, const provider::Endpoint& endpoint) override;
  void Set(const std::string& key, std::vector<provider::Endpoint> endpoints);

  std::atomic<int> awaits{0};
  std::vector<std::string> unreachable;  // "key ip:port", guarded by mu_

 private:
  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::shared_ptr<const provider::RoutingSnapshot> snap_ =
      std::make_shared<provider::RoutingSnapshot>();
};

// One function's log in the fake provider: messages a test appends; followers are woken through
// a pipe (one follower at a time).
struct FakeLog {
  FakeLog();
  ~FakeLog();
  void Append(provider::LogMessage m);

  std::mutex mu;
  std::vector<provider::LogMessage> messages;
  int wake[2] = {-1, -1};
};

class FakeProvider : public provider::FunctionProvider {
 public:
  absl::StatusOr<std::vector<provider::FunctionStatus>> List(const std::string& ns) override;
  absl::StatusOr<provider::FunctionStatus> Get(const std::string& name,
                                               const std::string& ns) override;
  absl::StatusOr<provider::FunctionUsage> Usage(const std::string& name,
                                                const std::string& ns) override {
    return provider::FunctionUsage{250, 64 << 20};
  }
  absl::Status Deploy(const provider::FunctionDeployment& d) override;
  absl::Status Update(const provider::FunctionDeployment& d) override;
  absl::Status Remove(const std::string& name, const std::string& ns) override;
  absl::Status Scale(const std::string& name, const std::string& ns, uint64_t replicas) override;
  absl::StatusOr<std::vector<std::string>> Namespaces() override;
  absl::StatusOr<provider::FunctionNamespace> GetNamespace(const std::string& ns) override;
  absl::Status CreateNamespace(const provider::FunctionNamespace& ns) override;
  absl::Status UpdateNamespace(const provider::FunctionNamespace& ns) override;
  absl::Status DeleteNamespace(const std::string& ns) override;
  absl::StatusOr<std::vector<std::string>> ListSecrets(const std::string& ns) override;
  absl::Status CreateSecret(const provider::Secret& secret) override;
  absl::Status UpdateSecret(const provider::Secret& secret) override;
  absl::Status DeleteSecret(const std::string& name, const std::string& ns) override;
  // NotFound unless the function is deployed; the log is logs["name.ns"] (created empty).
  absl::StatusOr<std::unique_ptr<provider::LogStream>> Logs(
      const provider::LogRequest& request) override;
  absl::Status Healthy() override {
    return healthy ? absl::OkStatus() : absl::UnavailableError("containerd down");
  }
  provider::RoutingTable& Routes() override { return routes; }

  std::mutex mu;
  std::map<std::string, provider::FunctionDeployment> functions;  // "name.ns"
  std::map<std::string, uint64_t> scaled;      // what Scale asked for; Get reports it as replicas
  std::map<std::string, std::string> secrets;  // "name.ns" -> value
  std::map<std::string, provider::FunctionNamespace> namespaces{// besides openfaas-fn
                                                                {"other", {"other", {}, {}}}};
  absl::Status next_deploy_error;  // returned once by Deploy when not OK
  std::atomic<bool> healthy{true};
  FakeRoutes routes;
  std::map<std::string, std::shared_ptr<FakeLog>> logs;  // "name.ns"
  provider::LogRequest last_log_request;
  std::atomic<int> open_log_streams{0};  // streams handed out and not yet destroyed
};

// A gateway on 127.0.0.1 (a free port) over a FakeProvider, and a client logged in as
// admin:s3cret. Stops the gateway on destruction.
struct GatewayFixture {
  GatewayFixture();
  ~GatewayFixture();

  FakeProvider provider;
  metrics::Metrics metrics;  // outlives the gateway
  // Sampled by the tests themselves; every function counts as deployed.
  metrics::History history{metrics, [](const std::string&) { return true; }};
  std::unique_ptr<Gateway> gateway;
  std::unique_ptr<httplib::Client> client;
  std::atomic<int> functions_changed{0};  // GatewayOptions::on_function_changed calls
};

// Echo upstream: answers every method on every path with a body describing the request
// ("method=..\npath=..\nquery=..\nbody=..\n" plus "h:<name>=<value>" lines). Special paths:
//   /slow     answers after 3 s (for the gateway's timeout)
//   /stream   chunked: "first\n", then waits for release_stream (or 5 s), then "second\n"
//   /events   text/event-stream with two events
//   /hop      names X-Upstream-Private in its Connection header (and sends X-Upstream-Public)
class EchoUpstream {
 public:
  EchoUpstream();
  ~EchoUpstream();
  int port() const { return port_; }
  std::atomic<bool> release_stream{false};
  std::atomic<int> requests{0};
  // TCP connections that carried at least one request, told apart by the client's port (a
  // closed connection's port sits in TIME_WAIT, so it is not handed out again during a test).
  int connections() const;

 private:
  mutable std::mutex mu_;
  std::set<int> client_ports_;  // guarded by mu_
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
};

// Returns a port nothing listens on (bound then closed).
int UnusedPort();

// A blocking client socket to 127.0.0.1:`port` with bounded reads. A `receive_buffer_bytes`
// above 0 is set before connecting, so it bounds the window the gateway may fill.
class RawConn {
 public:
  explicit RawConn(int port, int receive_buffer_bytes = 0);
  ~RawConn();
  RawConn(const RawConn&) = delete;
  RawConn& operator=(const RawConn&) = delete;
  bool connected() const { return connected_; }
  bool Send(const std::string& data);
  // Reads until the peer closes (closed() = true) or `timeout` passes.
  std::string ReadUntilClose(std::chrono::milliseconds timeout);
  // Reads until one whole response with a Content-Length body is in, the peer closes, or
  // `timeout` passes.
  std::string ReadResponse(std::chrono::milliseconds timeout);
  bool closed() const { return closed_; }
  // Reads until `needle` is in what arrived (from the start of this call), the peer closes or
  // `timeout` passes.
  std::string ReadUntil(const std::string& needle, std::chrono::milliseconds timeout);
  void ShutdownSend();

 private:
  std::string Read(std::chrono::milliseconds timeout,
                   const std::function<bool(const std::string&)>& done);
  int fd_ = -1;
  bool connected_ = false;
  bool closed_ = false;
};

}  // namespace faasd::gateway::testing
