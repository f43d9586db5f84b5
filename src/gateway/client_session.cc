#include "gateway/client_session.h"

#include <array>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/log.h"
#include "boost/asio/post.hpp"
#include "boost/asio/write.hpp"
#include "boost/beast/http/error.hpp"
#include "boost/beast/http/read.hpp"
#include "gateway/basic_auth.h"
#include "gateway/http_errors.h"
#include "gateway/names.h"
#include "gateway/server.h"
#include "gateway/tunnel.h"
#include "gateway/write_now.h"

namespace faasd::gateway {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;

namespace {

// Bodies up to this size are held whole (one write of head and body, replayable); larger or
// slower ones stream through in pieces of this size.
constexpr size_t kBodyChunk = 64 << 10;
// After an error answer, what the client is still sending is read and dropped for a while so
// it can read the answer instead of a reset.
constexpr size_t kLingerBytes = 4 << 20;
constexpr auto kLingerTime = std::chrono::seconds(2);
constexpr absl::string_view kFunctionPrefix = "/function/";
constexpr absl::string_view kAsyncPrefix = "/async-function/";
// Chunked framing: what ends a chunk's data, and the last (empty) chunk.
constexpr absl::string_view kChunkEnd = "\r\n";
constexpr absl::string_view kLastChunk = "0\r\n\r\n";

std::chrono::steady_clock::duration ToChrono(absl::Duration d) {
  return std::chrono::nanoseconds(absl::ToInt64Nanoseconds(d));
}

bool IsParseError(const error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_method).category() &&
         ec != http::error::end_of_stream && ec != http::error::partial_message &&
         ec != http::error::need_buffer && ec != http::error::need_more;
}

// Parses what `buffer` already holds, as Beast's read does before it reads: true when that
// settles the read (the head, or some of the body, or an error in `ec`), false when more bytes
// are needed and the caller reads. A read Beast settles from its buffer alone completes through
// a posted handler, one more pass of the event loop (and of epoll_wait) per request.
template <typename Parser, typename Buffer>
bool ParseBuffered(Parser& parser, Buffer& buffer, bool head_only, error_code& ec) {
  if (buffer.size() == 0) return false;
  ec = {};
  buffer.consume(parser.put(buffer.data(), ec));
  if (ec == http::error::need_more) {
    ec = {};
    return false;
  }
  return ec || !head_only || parser.is_header_done();
}

}  // namespace

ClientSession::ClientSession(LoopSocket socket, EventLoop& loop, FrontEndShared& shared)
    : client_(std::move(socket)),
      idle_timer_(client_.get_executor()),
      loop_(loop),
      shared_(shared) {
  SetBusy(true);  // a new connection is presumed to carry a request
}

ClientSession::~ClientSession() {
  SetBusy(false);
  // The client went away mid-exchange, or the daemon stopped under an open tunnel.
  if (counters_ != nullptr) CountFinished(tunnelled_ ? 101 : 499);
  shared_.open.fetch_sub(1, std::memory_order_relaxed);
}

void ClientSession::Start() {
  error_code ec;
  auto remote = client_.socket().remote_endpoint(ec);
  if (ec) return CloseNow();
  remote_ip_ = remote.address().to_string();
  client_.socket().set_option(asio::ip::tcp::no_delay(true), ec);
  ReadHead();
}

// --- Head ----------------------------------------------------------------------------------

void ClientSession::ReadHead() {
  req_.emplace();
  LimitParser(*req_);
  if (in_.size() > 0) return ReadHeadRest();  // pipelined: the next head is already here
  // Idle keep-alive: the next request's first bytes are read, with idle_timeout; its head then
  // has head_timeout to arrive. A read, not a readiness wait: Asio (1.74) re-arms epoll with a
  // system call for every wait, while a read after one that drained the socket costs none.
  idle_since_ = Clock::now();
  waiting_idle_ = true;
  if (!idle_timer_armed_) ArmIdleTimer(idle_since_ + ToChrono(shared_.options.idle_timeout));
  client_.socket().async_read_some(in_.prepare(kFirstReadBytes),
                                   [self = shared_from_this()](error_code ec, size_t n) {
                                     self->waiting_idle_ = false;
                                     if (ec) return self->CloseNow();
                                     self->in_.commit(n);
                                     self->SetBusy(true);
                                     self->ReadHeadRest();
                                   });
}

// Armed once and left armed while requests come: it is not cancelled when one does (a wait and
// a cancel for every request, each a trip through the timer queue and a completion of its own),
// so when it fires it looks at when the current wait began and waits again for the rest. It
// holds the session weakly: a session that ends while it is armed goes at once, not when it
// fires.
void ClientSession::ArmIdleTimer(Clock::time_point at) {
  idle_timer_armed_ = true;
  idle_timer_.expires_at(at);
  idle_timer_.async_wait([weak = weak_from_this()](error_code ec) {
    std::shared_ptr<ClientSession> self = weak.lock();
    if (self == nullptr) return;
    self->idle_timer_armed_ = false;
    if (ec || !self->waiting_idle_) return;  // closing, or busy: the next wait arms it again
    const Clock::time_point due = self->idle_since_ + ToChrono(self->shared_.options.idle_timeout);
    if (Clock::now() >= due) return self->CloseNow();  // idle too long
    self->ArmIdleTimer(due);
  });
}

void ClientSession::ReadHeadRest() {
  SetBusy(true);
  if (error_code ec; ParseBuffered(*req_, in_, /*head_only=*/true, ec)) return OnHead(ec);
  client_.expires_after(ToChrono(shared_.options.head_timeout));
  http::async_read_header(client_, in_, *req_,
                          [self = shared_from_this()](error_code ec, size_t) { self->OnHead(ec); });
}

void ClientSession::OnHead(error_code ec) {
  if (ec == http::error::header_limit) {
    return ProxyError(
        WithHttpStatus(absl::Status(absl::StatusCode::kResourceExhausted,
                                    absl::StrCat("request head over ", kMaxHeadBytes, " bytes")),
                       431));
  }
  if (IsParseError(ec)) {
    return ProxyError(absl::InvalidArgumentError(absl::StrCat("bad request: ", ec.message())));
  }
  if (ec) return CloseNow();  // EOF, reset, or the head deadline (slowloris): just drop it
  const auto& req = req_->get();
  if (std::string bad = CheckRequestFraming(req, req_->chunked()); !bad.empty()) {
    return ProxyError(absl::InvalidArgumentError(absl::StrCat("bad request: ", bad)));
  }
  start_ = Clock::now();
  start_ns_ = absl::GetCurrentTimeNanos();
  key_.clear();
  counters_ = nullptr;
  refused_ = attempts_ = 0;
  connect_error_.clear();
  req_body_len_ = req_cap_ = resp_cap_ = 0;
  req_body_total_ = 0;
  req_whole_ = false;
  upgrade_ = UpgradeKind::kNone;
  client_head_sent_ = chunked_out_ = watching_client_ = false;
  ++exchange_epoch_;
  close_after_ = !req_->keep_alive() || shared_.draining.load(std::memory_order_relaxed);
  client_.expires_never();
  Route_();
}

absl::string_view ClientSession::RequestField(http::field f) const {
  const auto& req = req_->get();
  auto it = req.find(f);
  return it == req.end() ? absl::string_view() : View(it->value());
}

void ClientSession::Route_() {
  const auto& req = req_->get();
  const absl::string_view target = View(req.target());
  const absl::string_view path = target.substr(0, target.find('?'));
  const bool get = req.method() == http::verb::get || req.method() == http::verb::head;
  if (absl::StartsWith(target, kFunctionPrefix)) return ResolveFunction();
  if (path == "/healthz" && get) return ServeHealthz();
  if (path == "/metrics" && get) return ServeMetrics();
  if (absl::StartsWith(target, kAsyncPrefix) &&
      (req.method() == http::verb::post || req.method() == http::verb::delete_)) {
    return AcceptAsync();
  }
  if (absl::StartsWith(target, "/system/")) {
    // Before any body byte is read.
    if (!BasicAuthorized(RequestField(http::field::authorization), shared_.options.credentials)) {
      return ProxyError(absl::UnauthenticatedError("invalid credentials"));
    }
    // Announced far past the /system limit: refused before the body is read, as the internal
    // server would; anything smaller is relayed and judged there.
    if (auto length = req_->content_length();
        length && *length > kSystemBodyLimit + kDrainAllowance) {
      return ProxyError(WithHttpStatus(absl::OutOfRangeError(SystemBodyLimitMessage()), 413));
    }
  }
  route_ = Route::kInternal;
  path_ = std::string(target);
  endpoint_ = provider::Endpoint{"127.0.0.1", shared_.options.internal_port};
  address_ = absl::StrCat("127.0.0.1:", shared_.options.internal_port);
  ReadRequestBody();
}

void ClientSession::ServeHealthz() {
  shared_.blocking.enqueue([self = shared_from_this()] {
    absl::Status s = self->shared_.provider.Healthy();
    asio::post(self->client_.get_executor(), [self, s] {
      if (!s.ok()) return self->ProxyError(absl::UnavailableError(s.message()));
      self->Respond(RenderResponse(200, "text/plain; charset=utf-8", "", "OK"),
                    self->close_after_ || !self->req_->is_done());
    });
  });
}

void ClientSession::ServeMetrics() {
  Respond(RenderResponse(200, "text/plain; version=0.0.4; charset=utf-8", "",
                         shared_.metrics.Render()),
          close_after_ || !req_->is_done());
}

bool ClientSession::SendContinue(void (ClientSession::*next)()) {
  if (!absl::EqualsIgnoreCase(RequestField(http::field::expect), "100-continue") ||
      in_.size() != 0) {
    return false;
  }
  static constexpr absl::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
  client_.expires_after(ToChrono(shared_.options.upstream_timeout));
  asio::async_write(client_, asio::buffer(kContinue.data(), kContinue.size()),
                    [self = shared_from_this(), next](error_code ec, size_t) {
                      if (ec) return self->CloseNow();
                      self->req_->get().erase(http::field::expect);
                      ((*self).*next)();
                    });
  return true;
}

// --- Async ---------------------------------------------------------------------------------

void ClientSession::AcceptAsync() {
  queue::AsyncQueue* q = shared_.options.queue;
  if (q == nullptr) {
    return ProxyError(absl::UnimplementedError("gateway: asynchronous invocation is not enabled"));
  }
  const auto& req = req_->get();
  if (req.method() == http::verb::delete_) return CancelAsync();
  FunctionTarget t;
  ParseFunctionTarget(View(req.target()), kAsyncPrefix, provider::kDefaultNamespace, &t);
  if (absl::Status s = CheckName("function name", t.name); !s.ok()) return ProxyError(s);
  if (absl::Status s = CheckName("namespace", t.ns); !s.ok()) return ProxyError(s);
  const std::string key = absl::StrCat(t.name, ".", t.ns);
  if (shared_.provider.Routes().Snapshot()->functions.count(key) == 0) {
    return ProxyError(absl::NotFoundError(absl::StrCat("function ", key, " not found")));
  }
  const absl::string_view callback = View(req["X-Callback-Url"]);
  if (!callback.empty()) {
    if (absl::Status s = queue::CheckCallbackUrl(callback); !s.ok()) return ProxyError(s);
  }
  const size_t limit = q->options().max_body_bytes;
  if (auto length = req_->content_length(); length && *length > limit) {
    return ProxyError(WithHttpStatus(
        absl::OutOfRangeError(absl::StrCat("async call to function ", key,
                                           ": request body over ", limit, " bytes")),
        413));
  }
  queue::QueuedCall& call = async_call_.emplace();
  call.call_id = std::string(View(req["X-Call-Id"]));
  if (!queue::IsValidCallId(call.call_id)) call.call_id = NewCallId();
  call.name = std::string(t.name);
  call.ns = std::string(t.ns);
  const absl::string_view target = View(req.target());
  const absl::string_view rest = target.substr(kAsyncPrefix.size());
  call.addressed = std::string(rest.substr(0, rest.find_first_of("/?")));
  call.method = std::string(View(req.method_string()));
  call.path = std::string(t.suffix);
  call.callback_url = std::string(callback);
  call.queued_at_ns = start_ns_;
  const absl::string_view connection = RequestField(http::field::connection);
  bool forwarded_for = false;
  for (const auto& f : req) {
    const absl::string_view name = View(f.name_string());
    if (IsHopByHop(name) || NamedInConnection(connection, name) ||
        absl::EqualsIgnoreCase(name, "Content-Length") || absl::EqualsIgnoreCase(name, "Expect") ||
        absl::EqualsIgnoreCase(name, "X-Call-Id")) {
      continue;
    }
    forwarded_for = forwarded_for || absl::EqualsIgnoreCase(name, "X-Forwarded-For");
    call.headers.emplace_back(std::string(name), std::string(View(f.value())));
  }
  if (!forwarded_for) call.headers.emplace_back("X-Forwarded-For", remote_ip_);
  call_id_ = call.call_id;
  if (SendContinue(&ClientSession::ReadAsyncBody)) return;
  ReadAsyncBody();
}

void ClientSession::ReadAsyncBody() {
  if (req_->is_done()) return PublishAsync();
  if (req_body_.size() < kBodyChunk) req_body_.resize(kBodyChunk);
  auto& body = req_->get().body();
  body.data = req_body_.data();
  body.size = kBodyChunk;
  client_.expires_after(ToChrono(shared_.options.upstream_timeout));
  http::async_read_some(client_, in_, *req_, [self = shared_from_this()](error_code ec, size_t) {
    self->OnAsyncBody(ec);
  });
}

void ClientSession::OnAsyncBody(error_code ec) {
  if (ec == http::error::need_buffer) ec = {};
  if (ec) {
    async_call_.reset();
    if (IsParseError(ec)) {
      return ProxyError(
          absl::InvalidArgumentError(absl::StrCat("bad request body: ", ec.message())));
    }
    return CloseNow();
  }
  const size_t got = kBodyChunk - req_->get().body().size;
  async_call_->body.append(req_body_.data(), got);
  const size_t limit = shared_.options.queue->options().max_body_bytes;
  if (async_call_->body.size() > limit) {
    const std::string key = absl::StrCat(async_call_->name, ".", async_call_->ns);
    async_call_.reset();
    return ProxyError(WithHttpStatus(
        absl::OutOfRangeError(absl::StrCat("async call to function ", key,
                                           ": request body over ", limit, " bytes")),
        413));
  }
  ReadAsyncBody();
}

void ClientSession::PublishAsync() {
  client_.expires_never();
  auto call = std::make_shared<queue::QueuedCall>(std::move(*async_call_));
  async_call_.reset();
  shared_.queue_ops.enqueue([self = shared_from_this(), call] {
    absl::Status s = self->shared_.options.queue->Publish(*call);
    asio::post(self->client_.get_executor(), [self, s] { self->AnswerAsync(s); });
  });
}

void ClientSession::CancelAsync() {
  const absl::string_view target = View(req_->get().target());
  absl::string_view id = target.substr(kAsyncPrefix.size());
  id = id.substr(0, id.find('?'));
  shared_.queue_ops.enqueue([self = shared_from_this(), id = std::string(id)] {
    absl::Status s = self->shared_.options.queue->Cancel(id);
    asio::post(self->client_.get_executor(), [self, s] { self->AnswerAsync(s); });
  });
}

void ClientSession::AnswerAsync(const absl::Status& status) {
  if (status.code() == absl::StatusCode::kOutOfRange) return ProxyError(WithHttpStatus(status, 413));
  if (!status.ok()) return ProxyError(status);
  const bool cancel = req_->get().method() == http::verb::delete_;
  Respond(RenderResponse(202, "text/plain; charset=utf-8",
                         cancel ? "" : absl::StrCat("X-Call-Id: ", call_id_, "\r\n"), ""),
          close_after_ || !req_->is_done());
}

// --- Invoke --------------------------------------------------------------------------------

void ClientSession::ResolveFunction() {
  const auto& req = req_->get();
  FunctionTarget t;
  ParseFunctionTarget(View(req.target()), kFunctionPrefix, provider::kDefaultNamespace, &t);
  if (absl::Status s = CheckName("function name", t.name); !s.ok()) return ProxyError(s);
  if (absl::Status s = CheckName("namespace", t.ns); !s.ok()) return ProxyError(s);
  key_ = absl::StrCat(t.name, ".", t.ns);
  routing_ = shared_.provider.Routes().Snapshot();
  if (routing_->functions.count(key_) == 0) {
    return ProxyError(absl::NotFoundError(absl::StrCat("function ", key_, " not found")));
  }
  route_ = Route::kInvoke;
  path_ = UpstreamPath(t.suffix);
  counters_ = shared_.metrics.For(key_);
  metrics::Metrics::Started(counters_);
  call_id_ = std::string(View(req["X-Call-Id"]));
  if (call_id_.empty()) call_id_ = NewCallId();
  start_time_ = std::string(View(req["X-Start-Time"]));
  if (start_time_.empty()) start_time_ = absl::StrCat(start_ns_);
  if (auto length = req_->content_length(); length && *length > shared_.options.max_request_bytes) {
    return ProxyError(BodyTooLarge());
  }
  upgrade_ = RequestedUpgrade(req);
  if (upgrade_ == UpgradeKind::kWebSocket &&
      (req.method() != http::verb::get || req.version() != 11 || !req_->is_done())) {
    // RFC 6455 4.1; a body would leave the tunnel's first bytes ambiguous.
    return ProxyError(absl::InvalidArgumentError(absl::StrCat(
        "function ", key_, ": a WebSocket upgrade must be an HTTP/1.1 GET without a body")));
  }
  PickReplica();
}

void ClientSession::PickReplica() {
  auto it = routing_->functions.find(key_);
  if (it == routing_->functions.end() || it->second.empty()) {
    // Scaled to zero or its only replica being replaced: held until one is ready.
    const absl::Time deadline = absl::FromUnixNanos(start_ns_) + shared_.options.upstream_timeout;
    shared_.waiter.Await(key_, deadline, client_.get_executor(),
                         [self = shared_from_this()](ReplicaWaiter::Snapshot snap) {
                           if (snap == nullptr && !self->connect_error_.empty()) {
                             // Its replicas refused and none came back in time.
                             return self->ProxyError(
                                 WithHttpStatus(absl::UnavailableError(self->connect_error_), 502));
                           }
                           if (snap == nullptr) {
                             return self->ProxyError(absl::UnavailableError(absl::StrCat(
                                 "function ", self->key_, ": no replica became ready within ",
                                 absl::FormatDuration(self->shared_.options.upstream_timeout))));
                           }
                           self->routing_ = std::move(snap);
                           self->PickReplica();
                         });
    return;
  }
  endpoint_ = it->second[loop_.round_robin++ % it->second.size()];
  address_ = absl::StrCat(endpoint_.ip, ":", endpoint_.port);
  if (req_body_len_ == 0 && !req_whole_) return ReadRequestBody();
  ConnectUpstream();
}

// --- Relay ---------------------------------------------------------------------------------

void ClientSession::ReadRequestBody() {
  if (req_->is_done()) {
    req_whole_ = true;
    return ConnectUpstream();
  }
  if (req_cap_ == 0) {
    // Sized to the body when it is small: a burst of connections must not pin 64 KiB each.
    const auto length = req_->content_length();
    req_cap_ = length && *length < kBodyChunk ? static_cast<size_t>(*length) : kBodyChunk;
    if (req_body_.size() < req_cap_) req_body_.resize(req_cap_);
    // Beast reads no more than the buffer's free room (512 bytes at least): left at the size
    // of the head, a big body would come in pieces of a few KiB, each its own upstream write.
    if (req_cap_ == kBodyChunk) in_.reserve(kBodyChunk);
  }
  if (req_body_total_ == 0 && SendContinue(&ClientSession::ReadRequestBody)) return;
  auto& body = req_->get().body();
  body.data = req_body_.data() + req_body_len_;
  body.size = req_cap_ - req_body_len_;
  if (error_code ec; ParseBuffered(*req_, in_, /*head_only=*/false, ec)) {
    return OnRequestBody(ec);
  }
  client_.expires_after(ToChrono(shared_.options.upstream_timeout));
  http::async_read_some(client_, in_, *req_, [self = shared_from_this()](error_code ec, size_t) {
    self->OnRequestBody(ec);
  });
}

void ClientSession::OnRequestBody(error_code ec) {
  if (ec == http::error::need_buffer) ec = {};
  const size_t got = req_cap_ - req_body_len_ - req_->get().body().size;
  if (ec) {
    if (IsParseError(ec)) {
      if (up_) ReleaseUpstream(false);  // the function must not take a partial body as whole
      return ProxyError(
          absl::InvalidArgumentError(absl::StrCat("bad request body: ", ec.message())));
    }
    // The client went away mid-upload: the function's request is cut, never completed.
    if (up_) ReleaseUpstream(false);
    return CloseNow();
  }
  req_body_len_ += got;
  req_body_total_ += got;
  if (req_body_total_ > shared_.options.max_request_bytes) {
    if (up_) ReleaseUpstream(false);
    return ProxyError(BodyTooLarge());
  }
  if (up_ != nullptr) return StreamRequestBody();  // streaming: forward this piece
  if (req_->is_done()) {
    req_whole_ = true;
    return ConnectUpstream();
  }
  if (req_body_len_ == req_cap_) return ConnectUpstream();  // too big to hold: stream it
  ReadRequestBody();
}

void ClientSession::ConnectUpstream() {
  outcome_ = AttemptOutcome{};
  outcome_.body_replayable = req_whole_;
  up_ = loop_.pool.Take(address_);
  if (up_ != nullptr) {
    outcome_.connected = outcome_.reused = true;
    return SendRequest();
  }
  up_ = std::make_shared<UpstreamConnection>(loop_.ioc, address_);
  error_code ec;
  const auto ip = asio::ip::make_address(endpoint_.ip, ec);
  if (ec) {
    return ProxyError(
        WithHttpStatus(absl::Status(absl::StatusCode::kUnavailable,
                                    absl::StrCat("upstream ", address_, ": bad address")),
                       502));
  }
  const auto left = start_ + ToChrono(shared_.options.upstream_timeout) - Clock::now();
  up_->stream.expires_after(
      std::min<Clock::duration>(left, ToChrono(shared_.options.connect_timeout)));
  up_->stream.async_connect(
      asio::ip::tcp::endpoint(ip, static_cast<uint16_t>(endpoint_.port)),
      [self = shared_from_this(), up = up_](error_code ec) {
        if (!ec) {
          self->outcome_.connected = true;
          error_code ignored;
          self->up_->stream.socket().set_option(asio::ip::tcp::no_delay(true), ignored);
          return self->SendRequest();
        }
        self->up_.reset();
        self->connect_error_ =
            absl::StrCat(self->Subject(), ": connect ", self->address_, ": ",
                         ec == beast::error::timeout ? "timed out" : ec.message());
        // Nothing of the request reached the function: report the replica and try another.
        if (self->route_ == Route::kInvoke && ec != beast::error::timeout &&
            ++self->refused_ <= 3) {
          self->shared_.provider.Routes().ReportUnreachable(self->key_, self->endpoint_);
          self->routing_ = self->shared_.provider.Routes().Snapshot();
          return self->PickReplica();
        }
        self->ProxyError(WithHttpStatus(absl::UnavailableError(self->connect_error_), 502));
      });
}

std::string ClientSession::BuildUpstreamHead(bool whole_body) const {
  const auto& req = req_->get();
  const bool invoke = route_ == Route::kInvoke;
  std::string head;
  head.reserve(512);
  absl::StrAppend(&head, View(req.method_string()), " ", path_, " HTTP/1.1\r\n");
  if (invoke) absl::StrAppend(&head, "Host: ", address_, "\r\n");
  const absl::string_view connection = RequestField(http::field::connection);
  AppendForwardedFields(
      req, connection,
      [invoke](absl::string_view name) {
        return (invoke && absl::EqualsIgnoreCase(name, "Host")) ||
               absl::EqualsIgnoreCase(name, "Content-Length") ||
               absl::EqualsIgnoreCase(name, "Expect") ||
               absl::EqualsIgnoreCase(name, "X-Forwarded-For") ||
               (invoke && (absl::EqualsIgnoreCase(name, "X-Call-Id") ||
                           absl::EqualsIgnoreCase(name, "X-Start-Time")));
      },
      &head);
  std::string xff;
  for (auto it = req.find("X-Forwarded-For");
       it != req.end() && absl::EqualsIgnoreCase(View(it->name_string()), "X-Forwarded-For");
       ++it) {
    absl::StrAppend(&xff, View(it->value()), ", ");
  }
  absl::StrAppend(&head, "X-Forwarded-For: ", xff, remote_ip_, "\r\n");
  if (req.find("X-Forwarded-Host") == req.end()) {
    absl::StrAppend(&head, "X-Forwarded-Host: ", RequestField(http::field::host), "\r\n");
  }
  if (invoke)
    absl::StrAppend(&head, "X-Call-Id: ", call_id_, "\r\nX-Start-Time: ", start_time_, "\r\n");
  if (upgrade_ == UpgradeKind::kWebSocket) {
    head.append("Connection: Upgrade\r\nUpgrade: websocket\r\n");
  }
  if (whole_body) {
    absl::StrAppend(&head, "Content-Length: ", req_body_len_, "\r\n\r\n");
  } else if (req_->chunked()) {
    head.append("Transfer-Encoding: chunked\r\n\r\n");
  } else {
    absl::StrAppend(&head, "Content-Length: ", req_->content_length().value_or(0), "\r\n\r\n");
  }
  return head;
}

void ClientSession::SendRequest() {
  up_head_ = BuildUpstreamHead(req_whole_);
  ArmExchangeTimer();
  chunk_head_.clear();
  if (!req_whole_ && req_->chunked()) chunk_head_ = absl::StrCat(absl::Hex(req_body_len_), "\r\n");
  const std::array<asio::const_buffer, 4> bufs = {
      asio::buffer(up_head_), asio::buffer(chunk_head_),
      asio::buffer(req_body_.data(), req_body_len_),
      asio::buffer(kChunkEnd.data(), chunk_head_.empty() ? 0 : kChunkEnd.size())};
  WriteNowOrLater(
      up_->stream, bufs, [self = shared_from_this(), up = up_](error_code ec, size_t n) {
        self->outcome_.bytes_written += n;
        if (ec) return self->UpstreamFailed(ec, "write");
        if (self->req_whole_ || self->req_->is_done()) {
          if (!self->req_whole_ && self->req_->chunked()) {
            // The terminating chunk; the body's last piece already went out.
            return asio::async_write(self->up_->stream,
                                     asio::buffer(kLastChunk.data(), kLastChunk.size()),
                                     [self, up = self->up_](error_code ec, size_t) {
                                       if (ec) return self->UpstreamFailed(ec, "write");
                                       self->ReadResponseHead();
                                     });
          }
          return self->ReadResponseHead();
        }
        self->req_body_len_ = 0;
        self->ReadRequestBody();  // OnRequestBody sees up_ and calls StreamRequestBody
      });
}

void ClientSession::StreamRequestBody() {
  // One piece of a body too big to hold: forwarded as it came (re-framed when chunked).
  const bool chunked = req_->chunked();
  const bool last = req_->is_done();
  chunk_head_ = chunked && req_body_len_ > 0 ? absl::StrCat(absl::Hex(req_body_len_), "\r\n") : "";
  const std::array<asio::const_buffer, 4> bufs = {
      asio::buffer(chunk_head_), asio::buffer(req_body_.data(), req_body_len_),
      asio::buffer(kChunkEnd.data(), chunk_head_.empty() ? 0 : kChunkEnd.size()),
      asio::buffer(kLastChunk.data(), chunked && last ? kLastChunk.size() : 0)};
  up_->stream.expires_after(ToChrono(shared_.options.upstream_timeout));
  asio::async_write(up_->stream, bufs,
                    [self = shared_from_this(), up = up_, last](error_code ec, size_t n) {
                      self->outcome_.bytes_written += n;
                      if (ec) return self->UpstreamFailed(ec, "write");
                      if (last) return self->ReadResponseHead();
                      self->req_body_len_ = 0;
                      self->ReadRequestBody();
                    });
}

void ClientSession::ReadResponseHead() {
  resp_.emplace();
  LimitParser(*resp_);
  if (req_->get().method() == http::verb::head) resp_->skip(true);
  ArmExchangeTimer();
  http::async_read_header(up_->stream, up_->buffer, *resp_,
                          [self = shared_from_this(), up = up_](error_code ec, size_t n) {
                            self->OnResponseHead(ec, n);
                          });
}

void ClientSession::OnResponseHead(error_code ec, size_t bytes) {
  if (ec) {
    if (bytes > 0 || up_->buffer.size() > 0) outcome_.response_started = true;
    return UpstreamFailed(ec, "read");
  }
  outcome_.response_started = true;
  code_ = resp_->get().result_int();
  if (code_ == 101) return SwitchProtocols();
  if (code_ >= 100 && code_ < 200) return ReadResponseHead();  // interim
  resp_body_len_ = 0;
  if (resp_->is_done()) return RelayResponseBody();
  const auto length = resp_->content_length();
  resp_cap_ = length && *length < kBodyChunk ? static_cast<size_t>(*length) : kBodyChunk;
  if (resp_body_.size() < resp_cap_) resp_body_.resize(resp_cap_);
  if (resp_cap_ == kBodyChunk) up_->buffer.reserve(kBodyChunk);  // as in ReadRequestBody
  // A stream of unknown length with nothing of its body here yet (events, a followed log):
  // the head goes out now rather than with a first piece that may be long in coming.
  if (!length && up_->buffer.size() == 0) return RelayResponseBody();
  ArmBodyReadTimer();
  ReadResponseBody(0);
}

void ClientSession::SwitchProtocols() {
  if (upgrade_ != UpgradeKind::kWebSocket || !SwitchesToWebSocket(resp_->get())) {
    ReleaseUpstream(false);
    return ProxyError(WithHttpStatus(
        absl::UnavailableError(absl::StrCat(
            Subject(), ": upstream ", address_, ": answered 101 Switching Protocols ",
            upgrade_ == UpgradeKind::kWebSocket ? "without Upgrade: websocket"
                                                : "to a request that asked for no upgrade")),
        502));
  }
  std::string to_client = BuildResponseHead(/*whole_body=*/true, 0);
  client_head_sent_ = true;
  // Frames either side sent right behind its head, already read into our buffers.
  const auto from_upstream = up_->buffer.data();
  to_client.append(static_cast<const char*>(from_upstream.data()), from_upstream.size());
  const auto from_client = in_.data();
  std::string to_upstream(static_cast<const char*>(from_client.data()), from_client.size());
  in_.consume(in_.size());
  tunnelled_ = true;
  SetBusy(false);  // a tunnel may stay open for hours: a drain does not wait for it
  client_.expires_never();
  up_->stream.expires_never();
  std::shared_ptr<UpstreamConnection> up = std::move(up_);  // never back to the pool
  const auto idle = ToChrono(shared_.options.tunnel_idle_timeout);
  // Counted (code 101) only when the tunnel ends: until then it is in flight, which the
  // autoscaler reads as load (capacity scaling) and as a reason not to scale to zero.
  Tunnel::Start(client_.release_socket(), up->stream.release_socket(), std::move(to_client),
                std::move(to_upstream), idle,
                [self = shared_from_this()](const Tunnel::Result& r) {
                  LogDebug("gateway: ", self->Subject(), ": WebSocket tunnel closed (",
                           r.to_upstream, " bytes up, ", r.to_client, " down",
                           r.idle ? ", idle" : "", r.failed ? ", cut" : "", ")");
                  self->CountFinished(101);
                });
}

void ClientSession::ReadResponseBody(size_t offset) {
  auto& body = resp_->get().body();
  body.data = resp_body_.data() + offset;
  body.size = resp_cap_ - offset;
  if (error_code ec; ParseBuffered(*resp_, up_->buffer, /*head_only=*/false, ec)) {
    return OnResponseBody(ec);
  }
  http::async_read_some(
      up_->stream, up_->buffer, *resp_,
      [self = shared_from_this(), up = up_](error_code ec, size_t) { self->OnResponseBody(ec); });
}

void ClientSession::ArmExchangeTimer() {
  // An invocation has its timeout from its start; a /system call (a deploy pulling a large
  // image) takes as long as it takes, as it did before the front end.
  if (route_ == Route::kInvoke) {
    up_->stream.expires_at(start_ + ToChrono(shared_.options.upstream_timeout));
  } else {
    up_->stream.expires_never();
  }
}

void ClientSession::ArmBodyReadTimer() {
  // Function streams (events, NDJSON, long chunked bodies) get the timeout per piece, not
  // overall. /system streams (a followed log) may stay quiet for as long as the client waits.
  if (route_ == Route::kInvoke) {
    up_->stream.expires_after(ToChrono(shared_.options.upstream_timeout));
  } else {
    up_->stream.expires_never();
  }
}

void ClientSession::OnResponseBody(error_code ec) {
  if (ec == http::error::need_buffer) ec = {};
  const size_t got = resp_cap_ - resp_body_len_ - resp_->get().body().size;
  if (ec) {
    if (client_head_sent_) {
      // Mid-body: the client must see a cut response, never a complete-looking one.
      ReleaseUpstream(false);
      return CloseNow();
    }
    return UpstreamFailed(ec, "read");
  }
  resp_body_len_ += got;
  const auto length = resp_->content_length();
  const bool hold = !client_head_sent_ && !resp_->is_done() && length && *length <= kBodyChunk &&
                    resp_body_len_ < resp_cap_;
  if (hold) {  // a small body still arriving: one write of head and body once it is all here
    return ReadResponseBody(resp_body_len_);
  }
  RelayResponseBody();
}

std::string ClientSession::BuildResponseHead(bool whole_body, size_t body_len) {
  const auto& resp = resp_->get();
  const bool invoke = route_ == Route::kInvoke;
  std::string head;
  head.reserve(512);
  absl::StrAppend(&head, "HTTP/1.1 ", code_, " ", View(resp.reason()), "\r\n");
  auto conn_it = resp.find(http::field::connection);
  const absl::string_view connection =
      conn_it == resp.end() ? absl::string_view() : View(conn_it->value());
  const bool head_request = req_->get().method() == http::verb::head;
  AppendForwardedFields(
      resp, connection,
      [invoke, head_request](absl::string_view name) {
        return (!head_request && absl::EqualsIgnoreCase(name, "Content-Length")) ||
               (invoke && (absl::EqualsIgnoreCase(name, "X-Call-Id") ||
                           absl::EqualsIgnoreCase(name, "X-Start-Time")));
      },
      &head);
  if (invoke)
    absl::StrAppend(&head, "X-Call-Id: ", call_id_, "\r\nX-Start-Time: ", start_time_, "\r\n");
  const bool no_body = head_request || code_ == 101 || code_ == 204 || code_ == 304;
  if (!no_body) {
    if (whole_body) {
      absl::StrAppend(&head, "Content-Length: ", body_len, "\r\n");
    } else if (auto length = resp_->content_length(); length) {
      absl::StrAppend(&head, "Content-Length: ", *length, "\r\n");
    } else {
      chunked_out_ = true;
      head.append("Transfer-Encoding: chunked\r\n");
    }
  }
  if (code_ == 101) {
    head.append("Connection: Upgrade\r\nUpgrade: websocket\r\n");
  } else if (close_after_) {
    head.append("Connection: close\r\n");
  }
  head.append("\r\n");
  return head;
}

void ClientSession::RelayResponseBody() {
  const bool done = resp_->is_done();
  if (!client_head_sent_) {
    out_head_ = BuildResponseHead(done, resp_body_len_);
    client_head_sent_ = true;
  } else {
    out_head_.clear();
  }
  if (done) {
    // A connection that carried an upgrade offer is not reused, whatever the answer.
    ReleaseUpstream(resp_->keep_alive() && !resp_->need_eof() &&
                    upgrade_ != UpgradeKind::kWebSocket);
    // Counted before the last bytes go out: a client that has read its answer and then asks
    // /metrics (or describe's invocationCount) on another connection must find it counted.
    CountFinished(code_);
  } else if (!watching_client_) {
    WatchClientGone();
  }
  chunk_head_ =
      chunked_out_ && resp_body_len_ > 0 ? absl::StrCat(absl::Hex(resp_body_len_), "\r\n") : "";
  const std::array<asio::const_buffer, 5> bufs = {
      asio::buffer(out_head_), asio::buffer(chunk_head_),
      asio::buffer(resp_body_.data(), resp_body_len_),
      asio::buffer(kChunkEnd.data(), chunk_head_.empty() ? 0 : kChunkEnd.size()),
      asio::buffer(kLastChunk.data(), chunked_out_ && done ? kLastChunk.size() : 0)};
  client_.expires_after(ToChrono(shared_.options.upstream_timeout));
  WriteNowOrLater(client_, bufs, [self = shared_from_this(), done](error_code ec, size_t) {
    if (ec) {
      self->ReleaseUpstream(false);  // the client left: the rest of the response is not wanted
      return self->CloseNow();
    }
    if (done) return self->FinishExchange();
    if (self->up_ == nullptr) return self->CloseNow();  // WatchClientGone saw the client leave
    self->resp_body_len_ = 0;
    self->ArmBodyReadTimer();
    self->ReadResponseBody(0);
  });
}

void ClientSession::WatchClientGone() {
  // While a response streams, nothing reads from the client; a client that leaves would go
  // unnoticed until the next piece, which for a quiet stream may be never.
  watching_client_ = true;
  client_.socket().async_wait(
      asio::socket_base::wait_read,
      [self = shared_from_this(), epoch = exchange_epoch_](error_code ec) {
        if (ec || epoch != self->exchange_epoch_ || self->up_ == nullptr) return;
        char byte;
        error_code peek;
        const size_t n = self->client_.socket().receive(asio::buffer(&byte, 1),
                                                        asio::socket_base::message_peek, peek);
        if (n == 0 && peek) {  // EOF or reset: gone. Bytes would be a pipelined request.
          self->ReleaseUpstream(false);
          self->CloseNow();
        }
      });
}

void ClientSession::FinishExchange() { NextRequest(close_after_ || !req_->is_done()); }

void ClientSession::ReleaseUpstream(bool reusable) {
  if (up_ == nullptr) return;
  if (reusable) {
    ShrinkIfGrown(up_->buffer);  // pooled ones keep no more than their inline block
    loop_.pool.Put(std::move(up_));
  } else {
    error_code ignored;
    up_->stream.socket().close(ignored);
  }
  up_.reset();
}

void ClientSession::UpstreamFailed(error_code ec, absl::string_view during) {
  outcome_.timed_out = ec == beast::error::timeout;
  outcome_.closed_by_peer = ec == http::error::end_of_stream || ec == asio::error::eof ||
                            ec == asio::error::connection_reset || ec == asio::error::broken_pipe;
  outcome_.reset = ec == asio::error::connection_reset || ec == asio::error::broken_pipe;
  const bool reused = outcome_.reused;
  ReleaseUpstream(false);
  if (MayRetry(IsReplaySafe(req_->get().method(), req_->get()), outcome_) && ++attempts_ < 3) {
    // A pooled connection the function had closed, or nothing of the request went out.
    return ConnectUpstream();
  }
  const std::string who = Subject();
  if (outcome_.timed_out) {
    return ProxyError(absl::DeadlineExceededError(
        absl::StrCat(who, ": upstream ", address_, ": timed out after ",
                     absl::FormatDuration(shared_.options.upstream_timeout))));
  }
  ProxyError(WithHttpStatus(
      absl::Status(absl::StatusCode::kUnavailable,
                   absl::StrCat(who, ": upstream ", address_, ": ", during, ": ", ec.message(),
                                reused ? " (kept-alive connection)" : "")),
      502));
}

std::string ClientSession::Subject() const {
  return route_ == Route::kInvoke ? "function " + key_ : std::string("gateway");
}

absl::Status ClientSession::BodyTooLarge() const {
  return WithHttpStatus(absl::Status(absl::StatusCode::kOutOfRange,
                                     absl::StrCat(Subject(), ": request body over ",
                                                  shared_.options.max_request_bytes, " bytes")),
                        413);
}

// --- Answers -------------------------------------------------------------------------------

void ClientSession::CountFinished(int code) {
  if (counters_ == nullptr) return;
  metrics::Metrics::Finished(counters_, code,
                              static_cast<uint64_t>(absl::GetCurrentTimeNanos() - start_ns_));
  counters_ = nullptr;
}

void ClientSession::ProxyError(const absl::Status& status) {
  const int code = HttpStatusFor(status);
  CountFinished(code);
  if (up_) ReleaseUpstream(false);
  if (client_head_sent_) return CloseNow();
  // A body still unread (or a broken stream) ends the connection after the answer.
  const bool close = close_after_ || req_ == std::nullopt || !req_->is_header_done() ||
                     !req_->is_done() || code == 400 || code == 431;
  std::string extra;
  if (code == 401) extra = "WWW-Authenticate: Basic realm=\"Restricted\"\r\n";
  Respond(RenderProxyError(status, extra, close), close);
}

void ClientSession::Respond(std::string response, bool close) {
  if (req_ && req_->is_header_done() && req_->get().method() == http::verb::head) {
    response.resize(response.find("\r\n\r\n") + 4);  // the head of what GET would get
  }
  out_head_ = std::move(response);
  client_head_sent_ = true;
  client_.expires_after(ToChrono(shared_.options.upstream_timeout));
  WriteNowOrLater(client_, std::array<asio::const_buffer, 1>{asio::buffer(out_head_)},
                  [self = shared_from_this(), close](error_code ec, size_t) {
                    if (ec) return self->CloseNow();
                    self->NextRequest(close);
                  });
}

void ClientSession::NextRequest(bool close) {
  // Body buffers live for one exchange: idle keep-alive connections hold none.
  std::vector<char>().swap(req_body_);
  std::vector<char>().swap(resp_body_);
  ShrinkIfGrown(in_);  // the next head's first read reuses the inline block
  SetBusy(false);
  if (close || shared_.draining.load(std::memory_order_relaxed)) return LingeringClose();
  ReadHead();
}

void ClientSession::LingeringClose() {
  error_code ignored;
  client_.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  req_body_.resize(16 << 10);
  client_.expires_after(kLingerTime);
  struct Drain {
    std::shared_ptr<ClientSession> self;
    size_t left;
    void operator()(error_code ec, size_t n) {
      if (ec || n >= left) return self->CloseNow();
      left -= n;
      self->client_.async_read_some(asio::buffer(self->req_body_), std::move(*this));
    }
  };
  in_.consume(in_.size());
  client_.async_read_some(asio::buffer(req_body_), Drain{shared_from_this(), kLingerBytes});
}

void ClientSession::SetBusy(bool busy) {
  if (busy == busy_) return;
  busy_ = busy;
  if (busy)
    shared_.busy.fetch_add(1, std::memory_order_relaxed);
  else
    shared_.busy.fetch_sub(1, std::memory_order_relaxed);
}

void ClientSession::CloseNow() {
  SetBusy(false);
  idle_timer_.cancel();
  error_code ignored;
  client_.socket().close(ignored);
  ReleaseUpstream(false);
}

}  // namespace faasd::gateway
