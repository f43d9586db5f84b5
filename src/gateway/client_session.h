// Private to the front end: one client connection on one event loop, and what the loops share.
//
// A request goes through named steps, each an asynchronous hop on the connection's loop:
//   ReadHead → Route → (invoke) ResolveFunction → PickReplica [→ ReplicaWaiter]
//   → ReadRequestBody → ConnectUpstream → SendRequest [→ StreamRequestBody]
//   → ReadResponseHead → RelayResponseBody → FinishExchange → ReadHead ...
//   (WebSocket) ... → ReadResponseHead → SwitchProtocols → Tunnel (tunnel.h) until both close
//   (async) AcceptAsync → ReadAsyncBody → PublishAsync [helper thread] → AnswerAsync
//   (cancel) CancelAsync [helper thread] → AnswerAsync
// Gateway-made errors go through ProxyError (http_errors.h decides the status).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/beast/core/flat_buffer.hpp"
#include "boost/beast/http/buffer_body.hpp"
#include "boost/beast/http/parser.hpp"
#include "gateway/front_end.h"
#include "gateway/http_rules.h"
#include "gateway/loop_types.h"
#include "gateway/replica_waiter.h"
#include "gateway/session_slab.h"
#include "gateway/upstream_pool.h"
#include "gateway/worker_pool.h"
#include "metrics/metrics.h"
#include "queue/queue.h"

namespace faasd::gateway {

// One event loop: its io_context, thread and upstream connections.
struct EventLoop {
  boost::asio::io_context ioc{1};
  UpstreamPool pool;
  uint64_t round_robin = 0;
  std::thread thread;
};

// Read-only after Start, or thread-safe.
struct FrontEndShared {
  FrontEndOptions options;
  provider::FunctionProvider& provider;
  metrics::Metrics& metrics;
  ReplicaWaiter& waiter;
  ElasticWorkerPool& blocking;   // provider calls that may block (health)
  ElasticWorkerPool& queue_ops;  // JetStream publish and cancel (options.queue)
  std::atomic<size_t> open{0};         // client connections
  // Connections with a request in progress (from accept or the next request's first byte to
  // its response), and whether the front end is draining: then every response closes its
  // connection and FrontEnd::Drain waits for `busy` to reach 0.
  std::atomic<size_t> busy{0};
  std::atomic<bool> draining{false};
};

class ClientSession : public std::enable_shared_from_this<ClientSession> {
 public:
  ClientSession(LoopSocket socket, EventLoop& loop, FrontEndShared& shared);
  ~ClientSession();
  void Start();

 private:
  using Clock = std::chrono::steady_clock;
  // What an idle keep-alive connection reads its next request into (Beast's own first read
  // size): most heads fit.
  static constexpr size_t kFirstReadBytes = 512;
  using RequestParser = boost::beast::http::request_parser<boost::beast::http::buffer_body>;
  using ResponseParser = boost::beast::http::response_parser<boost::beast::http::buffer_body>;
  enum class Route { kInvoke, kInternal };

  // Head.
  void ReadHead();
  void ReadHeadRest();
  void OnHead(boost::system::error_code ec);
  void Route_();
  void ServeHealthz();
  void ServeMetrics();
  // Async (queue/).
  void AcceptAsync();
  void ReadAsyncBody();
  void OnAsyncBody(boost::system::error_code ec);
  void PublishAsync();
  void CancelAsync();
  void AnswerAsync(const absl::Status& status);
  // On `Expect: 100-continue` before any body byte: sends the interim answer, then `next`.
  // False when there is nothing to send.
  bool SendContinue(void (ClientSession::*next)());
  // Invoke.
  void ResolveFunction();
  void PickReplica();
  // Relay (invoke and internal).
  void ReadRequestBody();
  void OnRequestBody(boost::system::error_code ec);
  void ConnectUpstream();
  void SendRequest();
  void StreamRequestBody();
  void ReadResponseHead();
  void OnResponseHead(boost::system::error_code ec, size_t bytes);
  // A 101 to a WebSocket upgrade: the head goes to the client and both sockets to a Tunnel;
  // the session lives on (counted open and in flight) until the tunnel ends.
  void SwitchProtocols();
  void RelayResponseBody();
  // Reads the next piece of the response body into resp_body_ from `offset` on.
  void ReadResponseBody(size_t offset);
  void OnResponseBody(boost::system::error_code ec);
  void ArmExchangeTimer();
  void ArmBodyReadTimer();
  void WatchClientGone();
  void FinishExchange();
  void UpstreamFailed(boost::system::error_code ec, absl::string_view during);
  // Who a gateway-made error is about: "function NAME.NS", or "gateway".
  std::string Subject() const;
  // The 413 for a request body past max_request_bytes.
  absl::Status BodyTooLarge() const;
  // Answers.
  void ProxyError(const absl::Status& status);
  // Writes `response` (head and body), then reads the next request or closes.
  void Respond(std::string response, bool close);
  void NextRequest(bool close);
  void LingeringClose();
  void CloseNow();
  void SetBusy(bool busy);
  void ArmIdleTimer(Clock::time_point at);

  std::string BuildUpstreamHead(bool whole_body) const;
  std::string BuildResponseHead(bool whole_body, size_t body_len);
  absl::string_view RequestField(boost::beast::http::field f) const;
  void CountFinished(int code);
  void ReleaseUpstream(bool reusable);

  LoopStream client_;
  LoopTimer idle_timer_;          // keep-alive connections waiting for a request
  Clock::time_point idle_since_;  // when the current wait for a request began
  bool waiting_idle_ = false;     // in that wait now
  bool idle_timer_armed_ = false;
  EventLoop& loop_;
  FrontEndShared& shared_;
  std::string remote_ip_;
  // The next head's first read, and most heads whole, land in in_block_, inside the session.
  InlineBlock<kFirstReadBytes> in_block_;
  boost::beast::basic_flat_buffer<InlineBlockAllocator<char, kFirstReadBytes>> in_{
      InlineBlockAllocator<char, kFirstReadBytes>(in_block_)};
  std::optional<RequestParser> req_;

  // The exchange in progress.
  Route route_ = Route::kInternal;
  Clock::time_point start_;
  int64_t start_ns_ = 0;
  std::string key_;  // "name.namespace" when invoking
  metrics::Metrics::FunctionCounters* counters_ = nullptr;
  std::string path_, call_id_, start_time_;
  std::shared_ptr<const provider::RoutingSnapshot> routing_;
  provider::Endpoint endpoint_;
  std::string address_;
  int refused_ = 0, attempts_ = 0;
  std::vector<char> req_body_;  // up to req_cap_ (≤ 64 KiB) of the request body
  size_t req_body_len_ = 0, req_cap_ = 0;
  uint64_t req_body_total_ = 0;
  bool req_whole_ = false;  // req_body_ holds the whole body (replayable)
  std::shared_ptr<UpstreamConnection> up_;
  AttemptOutcome outcome_;
  std::string up_head_, chunk_head_, out_head_;
  std::optional<ResponseParser> resp_;
  std::vector<char> resp_body_;  // up to resp_cap_ (≤ 64 KiB) of the response body
  size_t resp_body_len_ = 0, resp_cap_ = 0;
  int code_ = 0;
  bool client_head_sent_ = false;  // the response head went to the client
  bool chunked_out_ = false;
  bool close_after_ = false;
  bool watching_client_ = false;
  bool busy_ = false;  // counted in shared_.busy
  uint64_t exchange_epoch_ = 0;
  std::string connect_error_;  // the last refused connection, for the 502 if none recovers
  std::optional<queue::QueuedCall> async_call_;  // the async call being read
  UpgradeKind upgrade_ = UpgradeKind::kNone;      // what the invoke request asked for
  bool tunnelled_ = false;  // a Tunnel holds both sockets: the exchange ends with it
};

}  // namespace faasd::gateway
