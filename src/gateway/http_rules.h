// The proxy's HTTP/1.1 rules, as pure functions over parsed messages (Boost.Beast parses;
// these decide): which requests are refused before anything is forwarded, which headers cross
// the proxy, how /function/ targets name a function, and when a failed exchange may be retried.
// Private to the gateway; no I/O, so every rule has a unit test.
#pragma once

#include <cstdint>
#include <limits>
#include <string>

#include "absl/strings/string_view.h"
#include "boost/beast/http/fields.hpp"
#include "boost/beast/http/message.hpp"

namespace faasd::gateway {

using HttpFields = boost::beast::http::fields;

// Heads bigger than this are refused with 431 (client) or treated as a broken upstream.
inline constexpr size_t kMaxHeadBytes = 64 << 10;

// The limits the front end gives Beast's parser of every request and upstream response: heads
// up to kMaxHeadBytes; bodies unbounded there, because the body limits (max_request_bytes) are
// checked above Beast: its "no limit" (boost::none) compares wrongly in 1.74.
template <typename Parser>
void LimitParser(Parser& parser) {
  parser.header_limit(kMaxHeadBytes);
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
}

// Framing checks Beast leaves to us (it already refuses conflicting Content-Length values,
// chunked + Content-Length in one order, bad chunk sizes and control characters): a request
// with both Content-Length and Transfer-Encoding in any order, or a Transfer-Encoding whose
// last coding is not chunked (its length is unknowable), is refused (400, connection closed).
// Returns "" when the head is acceptable, else the reason.
std::string CheckRequestFraming(const HttpFields& fields, bool chunked);

// Hop-by-hop headers (RFC 9110 7.6.1 plus the legacy Keep-Alive and Proxy-Connection) and
// those the message's own Connection header names never cross the proxy.
bool IsHopByHop(absl::string_view name);
bool NamedInConnection(absl::string_view connection, absl::string_view name);

// The protocol switch a request asks for (RFC 9110 7.8): none unless its Connection header
// (any of them) names "upgrade" and an Upgrade header is present; WebSocket when a token of
// Upgrade is "websocket" (case-insensitive, a "/version" suffix ignored), else another protocol
// (h2c, TLS/1.x ...). Only WebSocket is tunnelled; any other Upgrade is dropped with the other
// hop-by-hop headers and the request served as plain HTTP/1.1, which RFC 9110 lets a server do
// and which is what h2c clients (curl --http2 on http://) expect of a server that declines.
enum class UpgradeKind { kNone, kWebSocket, kOther };
UpgradeKind RequestedUpgrade(const HttpFields& fields);
// Whether an Upgrade header of `fields` names WebSocket: a 101 answer switches to it only then
// (RequestedUpgrade reads a request's the same way).
bool SwitchesToWebSocket(const HttpFields& fields);

// Methods a client may repeat without changing the outcome (RFC 9110 9.2.2).
bool IsIdempotent(boost::beast::http::verb method);
// An idempotent method, or a request that says it may be repeated with an Idempotency-Key (or
// X-Idempotency-Key) header, as Go's http.Transport accepts.
bool IsReplaySafe(boost::beast::http::verb method, const HttpFields& fields);

// What reached the upstream before an exchange failed.
struct AttemptOutcome {
  bool connected = false;         // a TCP connection existed (pooled or new)
  bool reused = false;            // it was a pooled keep-alive connection
  uint64_t bytes_written = 0;     // request bytes the kernel accepted
  bool closed_by_peer = false;    // the upstream closed or reset the connection
  bool reset = false;             // ... by a reset (RST), not an orderly close (FIN)
  bool response_started = false;  // any byte of a response arrived
  bool body_replayable = false;   // the whole request body is still held (or there is none)
  bool timed_out = false;
};
// A failed exchange is tried again on another connection only when nothing of it reached the
// function (no connection, nothing written), or when it went out on a kept-alive connection,
// may be repeated (IsReplaySafe) and can be sent again whole; never after a response began,
// after the deadline, or when part of the body is gone. A POST written to a kept-alive
// connection that then closes without an answer is not repeated (RFC 9110 9.2.2): the function
// may have closed it idle just before the request (a race the pool narrows, see
// UpstreamPool::Take) or may have read it and died, and only the second case is visible to the
// function; a 502 beats running it twice.
bool MayRetry(bool replay_safe, const AttemptOutcome& outcome);

// "/function/echo.ns/a/b?x=1" → {echo, ns, "/a/b?x=1"}; the suffix is "" or starts with '/'
// or '?'. False when the target is not under `prefix`.
struct FunctionTarget {
  absl::string_view name, ns, suffix;
};
bool ParseFunctionTarget(absl::string_view target, absl::string_view prefix,
                         absl::string_view default_ns, FunctionTarget* out);

// The path the function sees: "/" for an empty suffix, "/?x=1" for "?x=1", else the suffix.
std::string UpstreamPath(absl::string_view suffix);

// Response bodies of these types are streamed to the client as each piece arrives.
bool IsStreamingType(absl::string_view content_type);

// A random RFC 4122 version 4 UUID, for X-Call-Id.
std::string NewCallId();

// Appends "Name: value\r\n" for each field of `fields` that may cross the proxy: not
// hop-by-hop, not named in `connection`, and not for which `skip(name)` is true.
template <typename Skip>
void AppendForwardedFields(const HttpFields& fields, absl::string_view connection, Skip skip,
                           std::string* out) {
  for (const auto& f : fields) {
    const absl::string_view name(f.name_string().data(), f.name_string().size());
    if (IsHopByHop(name) || NamedInConnection(connection, name) || skip(name)) continue;
    out->append(name.data(), name.size());
    out->append(": ");
    out->append(f.value().data(), f.value().size());
    out->append("\r\n");
  }
}

inline absl::string_view View(boost::beast::string_view s) { return {s.data(), s.size()}; }

}  // namespace faasd::gateway
