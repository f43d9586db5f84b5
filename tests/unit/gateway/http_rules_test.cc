// The proxy's HTTP rules as pure functions, and the error map.
#include "gateway/http_rules.h"

#include "catch.hpp"
#include "gateway/http_errors.h"

namespace faasd::gateway {
namespace {

namespace http = boost::beast::http;

TEST_CASE("request framing: Content-Length with Transfer-Encoding is refused in any order",
          "[rules]") {
  HttpFields both;
  both.insert(http::field::transfer_encoding, "gzip");
  both.insert(http::field::content_length, "5");
  CHECK(CheckRequestFraming(both, false) == "both Content-Length and Transfer-Encoding");
  HttpFields te_not_chunked;
  te_not_chunked.insert(http::field::transfer_encoding, "gzip");
  CHECK(CheckRequestFraming(te_not_chunked, false) ==
        "Transfer-Encoding without a final chunked coding");
  HttpFields chunked;
  chunked.insert(http::field::transfer_encoding, "chunked");
  CHECK(CheckRequestFraming(chunked, true).empty());
  HttpFields length;
  length.insert(http::field::content_length, "5");
  CHECK(CheckRequestFraming(length, false).empty());
  CHECK(CheckRequestFraming(HttpFields(), false).empty());
}

TEST_CASE("hop-by-hop headers and those named in Connection do not cross", "[rules]") {
  for (const char* h : {"Connection", "keep-alive", "Proxy-Authorization", "te", "Trailer",
                        "Transfer-Encoding", "Upgrade", "Proxy-Connection"}) {
    CHECK(IsHopByHop(h));
  }
  CHECK_FALSE(IsHopByHop("Content-Type"));
  CHECK_FALSE(IsHopByHop("Authorization"));
  CHECK(NamedInConnection("close, X-Secret ,foo", "x-secret"));
  CHECK(NamedInConnection("close, X-Secret ,foo", "FOO"));
  CHECK_FALSE(NamedInConnection("close", "X-Secret"));
  CHECK_FALSE(NamedInConnection("", "X-Secret"));

  HttpFields f;
  f.insert("X-Keep", "1");
  f.insert(http::field::connection, "close, X-Drop");
  f.insert("X-Drop", "2");
  f.insert(http::field::upgrade, "websocket");
  f.insert(http::field::host, "example");
  std::string out;
  AppendForwardedFields(
      f, "close, X-Drop", [](absl::string_view name) { return name == "Host"; }, &out);
  CHECK(out == "X-Keep: 1\r\n");
}

TEST_CASE("upgrades: WebSocket only when Connection names upgrade; other protocols apart",
          "[rules]") {
  HttpFields ws;
  ws.insert(http::field::connection, "keep-alive, Upgrade");
  ws.insert(http::field::upgrade, "WebSocket");
  CHECK(RequestedUpgrade(ws) == UpgradeKind::kWebSocket);

  HttpFields listed;  // a list of offers, one with a version
  listed.insert(http::field::connection, "upgrade");
  listed.insert(http::field::upgrade, "h2c, websocket/13");
  CHECK(RequestedUpgrade(listed) == UpgradeKind::kWebSocket);

  HttpFields second_connection;  // "upgrade" in the second of two Connection headers
  second_connection.insert(http::field::connection, "keep-alive");
  second_connection.insert(http::field::connection, "Upgrade");
  second_connection.insert(http::field::upgrade, "websocket");
  CHECK(RequestedUpgrade(second_connection) == UpgradeKind::kWebSocket);

  HttpFields h2c;  // curl --http2 on http://
  h2c.insert(http::field::connection, "Upgrade, HTTP2-Settings");
  h2c.insert(http::field::upgrade, "h2c");
  h2c.insert("HTTP2-Settings", "AAMAAABkAAQCAAAAAAIAAAAA");
  CHECK(RequestedUpgrade(h2c) == UpgradeKind::kOther);
  // Dropped on the way, with the settings the Connection header names.
  std::string out;
  AppendForwardedFields(
      h2c, "Upgrade, HTTP2-Settings", [](absl::string_view) { return false; }, &out);
  CHECK(out.empty());

  HttpFields no_connection;  // Upgrade alone asks for nothing (RFC 9110 7.8)
  no_connection.insert(http::field::upgrade, "websocket");
  CHECK(RequestedUpgrade(no_connection) == UpgradeKind::kNone);
  HttpFields no_upgrade;
  no_upgrade.insert(http::field::connection, "upgrade");
  CHECK(RequestedUpgrade(no_upgrade) == UpgradeKind::kNone);
  HttpFields websocketish;  // not a token of its own
  websocketish.insert(http::field::connection, "upgrade");
  websocketish.insert(http::field::upgrade, "websockets");
  CHECK(RequestedUpgrade(websocketish) == UpgradeKind::kOther);
  CHECK(RequestedUpgrade(HttpFields()) == UpgradeKind::kNone);

  HttpFields switched, h2c_switched;
  switched.insert(http::field::upgrade, "websocket");
  h2c_switched.insert(http::field::upgrade, "h2c");
  CHECK(SwitchesToWebSocket(switched));
  CHECK_FALSE(SwitchesToWebSocket(h2c_switched));
  CHECK_FALSE(SwitchesToWebSocket(HttpFields()));
}

TEST_CASE("idempotent methods, or an Idempotency-Key, make a request safe to send again",
          "[rules]") {
  HttpFields none, key, x_key;
  key.set("Idempotency-Key", "abc");
  x_key.set("X-Idempotency-Key", "abc");
  CHECK(IsReplaySafe(http::verb::get, none));
  CHECK(IsReplaySafe(http::verb::put, none));
  CHECK(IsReplaySafe(http::verb::delete_, none));
  CHECK_FALSE(IsReplaySafe(http::verb::post, none));
  CHECK_FALSE(IsReplaySafe(http::verb::patch, none));
  CHECK(IsReplaySafe(http::verb::post, key));
  CHECK(IsReplaySafe(http::verb::patch, x_key));
}

TEST_CASE("retry only when nothing reached the function or a replay-safe request is whole",
          "[rules]") {
  AttemptOutcome refused;  // the connection never existed
  refused.body_replayable = true;
  CHECK(MayRetry(false, refused));

  AttemptOutcome unsent;  // connected, nothing written
  unsent.connected = true;
  unsent.body_replayable = true;
  CHECK(MayRetry(false, unsent));

  AttemptOutcome sent;  // written on a pooled connection that then failed, no answer
  sent.connected = sent.reused = true;
  sent.bytes_written = 100;
  sent.body_replayable = true;
  CHECK(MayRetry(true, sent));
  CHECK_FALSE(MayRetry(false, sent));

  AttemptOutcome idle_closed = sent;  // closed idle, or read the request and died: unknown
  idle_closed.closed_by_peer = true;
  CHECK_FALSE(MayRetry(false, idle_closed));  // a POST is not run twice
  CHECK(MayRetry(true, idle_closed));
  AttemptOutcome fresh_closed = idle_closed;  // on a fresh one it may have read the request
  fresh_closed.reused = false;
  CHECK_FALSE(MayRetry(true, fresh_closed));

  AttemptOutcome reset = fresh_closed;  // reset: the request was unread when its socket closed
  reset.reset = true;
  CHECK(MayRetry(false, reset));
  reset.reused = true;
  CHECK(MayRetry(false, reset));
  AttemptOutcome reset_late = reset;  // but never after an answer began or part of the body left
  reset_late.response_started = true;
  CHECK_FALSE(MayRetry(false, reset_late));
  reset_late = reset;
  reset_late.body_replayable = false;
  CHECK_FALSE(MayRetry(false, reset_late));

  AttemptOutcome fresh = sent;  // a fresh connection failing is the function's doing
  fresh.reused = false;
  CHECK_FALSE(MayRetry(true, fresh));

  AttemptOutcome streamed = idle_closed;  // part of the body is gone: cannot be sent again
  streamed.body_replayable = false;
  CHECK_FALSE(MayRetry(true, streamed));
  CHECK_FALSE(MayRetry(false, streamed));

  AttemptOutcome answered = idle_closed;
  answered.response_started = true;
  CHECK_FALSE(MayRetry(true, answered));

  AttemptOutcome late = sent;
  late.timed_out = true;
  CHECK_FALSE(MayRetry(true, late));
}

TEST_CASE("function targets name the function, namespace and path", "[rules]") {
  FunctionTarget t;
  REQUIRE(ParseFunctionTarget("/function/echo.ns/a/b?x=1", "/function/", "openfaas-fn", &t));
  CHECK(t.name == "echo");
  CHECK(t.ns == "ns");
  CHECK(t.suffix == "/a/b?x=1");
  CHECK(UpstreamPath(t.suffix) == "/a/b?x=1");
  REQUIRE(ParseFunctionTarget("/function/echo?q=1", "/function/", "openfaas-fn", &t));
  CHECK(t.name == "echo");
  CHECK(t.ns == "openfaas-fn");
  CHECK(UpstreamPath(t.suffix) == "/?q=1");
  REQUIRE(ParseFunctionTarget("/function/echo", "/function/", "openfaas-fn", &t));
  CHECK(UpstreamPath(t.suffix) == "/");
  CHECK_FALSE(ParseFunctionTarget("/system/functions", "/function/", "openfaas-fn", &t));
}

TEST_CASE("streaming content types and call ids", "[rules]") {
  CHECK(IsStreamingType("text/event-stream; charset=utf-8"));
  CHECK(IsStreamingType("Application/X-NDJSON"));
  CHECK_FALSE(IsStreamingType("application/json"));
  const std::string id = NewCallId();
  CHECK(id.size() == 36);
  CHECK(id[14] == '4');
  CHECK(id != NewCallId());
}

TEST_CASE("one map from errors to HTTP; proxy errors say who made them", "[rules][errors]") {
  CHECK(HttpStatusFor(absl::NotFoundError("x")) == 404);
  CHECK(HttpStatusFor(absl::UnavailableError("x")) == 503);
  CHECK(HttpStatusFor(absl::DeadlineExceededError("x")) == 504);
  CHECK(HttpStatusFor(absl::UnauthenticatedError("x")) == 401);
  CHECK(HttpStatusFor(WithHttpStatus(absl::UnavailableError("x"), 502)) == 502);
  CHECK(HttpStatusFor(WithHttpStatus(absl::OutOfRangeError("x"), 413)) == 413);
  CHECK(HttpStatusFor(WithHttpStatus(absl::ResourceExhaustedError("x"), 431)) == 431);
  const std::string r = RenderProxyError(
      WithHttpStatus(absl::UnavailableError("function echo.openfaas-fn: upstream refused"), 502),
      "", true);
  CHECK(r.rfind("HTTP/1.1 502 Bad Gateway\r\n", 0) == 0);
  CHECK(r.find("\r\nX-OpenFaaS-Internal: proxy\r\n") != std::string::npos);
  CHECK(r.find("\r\nConnection: close\r\n") != std::string::npos);
  CHECK(r.find("\r\n\r\nfunction echo.openfaas-fn: upstream refused\n") != std::string::npos);
}

}  // namespace
}  // namespace faasd::gateway
