#include "gateway/http_rules.h"

#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace faasd::gateway {

namespace http = boost::beast::http;

std::string CheckRequestFraming(const HttpFields& fields, bool chunked) {
  const bool has_te = fields.count(http::field::transfer_encoding) > 0;
  if (has_te && fields.count(http::field::content_length) > 0) {
    return "both Content-Length and Transfer-Encoding";
  }
  if (has_te && !chunked) return "Transfer-Encoding without a final chunked coding";
  return "";
}

bool IsHopByHop(absl::string_view name) {
  static constexpr absl::string_view kHop[] = {"Connection",
                                               "Keep-Alive",
                                               "Proxy-Authenticate",
                                               "Proxy-Authorization",
                                               "Proxy-Connection",
                                               "TE",
                                               "Trailer",
                                               "Transfer-Encoding",
                                               "Upgrade"};
  for (absl::string_view h : kHop) {
    if (absl::EqualsIgnoreCase(name, h)) return true;
  }
  return false;
}

bool NamedInConnection(absl::string_view connection, absl::string_view name) {
  if (connection.empty()) return false;
  for (absl::string_view token : absl::StrSplit(connection, ',')) {
    if (absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(token), name)) return true;
  }
  return false;
}

namespace {
bool NamesWebSocket(absl::string_view upgrade) {
  for (absl::string_view token : absl::StrSplit(upgrade, ',')) {
    token = absl::StripAsciiWhitespace(token);
    token = token.substr(0, token.find('/'));
    if (absl::EqualsIgnoreCase(token, "websocket")) return true;
  }
  return false;
}
}  // namespace

UpgradeKind RequestedUpgrade(const HttpFields& fields) {
  bool connection_names_upgrade = false;
  for (auto range = fields.equal_range(http::field::connection); range.first != range.second;
       ++range.first) {
    connection_names_upgrade =
        connection_names_upgrade || NamedInConnection(View(range.first->value()), "upgrade");
  }
  if (!connection_names_upgrade || fields.find(http::field::upgrade) == fields.end()) {
    return UpgradeKind::kNone;
  }
  return SwitchesToWebSocket(fields) ? UpgradeKind::kWebSocket : UpgradeKind::kOther;
}

bool SwitchesToWebSocket(const HttpFields& fields) {
  for (auto range = fields.equal_range(http::field::upgrade); range.first != range.second;
       ++range.first) {
    if (NamesWebSocket(View(range.first->value()))) return true;
  }
  return false;
}

bool IsIdempotent(http::verb method) {
  switch (method) {
    case http::verb::get:
    case http::verb::head:
    case http::verb::options:
    case http::verb::trace:
    case http::verb::put:
    case http::verb::delete_:
      return true;
    default:
      return false;
  }
}

bool IsReplaySafe(http::verb method, const HttpFields& fields) {
  return IsIdempotent(method) || fields.count("Idempotency-Key") > 0 ||
         fields.count("X-Idempotency-Key") > 0;
}

bool MayRetry(bool replay_safe, const AttemptOutcome& o) {
  if (o.response_started || o.timed_out || !o.body_replayable) return false;
  if (!o.connected || o.bytes_written == 0) return true;
  if (o.closed_by_peer && o.reset) return true;  // unread when the function's socket closed
  if (!o.reused) return false;  // a fresh connection failing is the function's own doing
  return replay_safe;
}

bool ParseFunctionTarget(absl::string_view target, absl::string_view prefix,
                         absl::string_view default_ns, FunctionTarget* out) {
  if (!absl::StartsWith(target, prefix)) return false;
  absl::string_view rest = target.substr(prefix.size());
  const size_t end = rest.find_first_of("/?");
  const absl::string_view fn = rest.substr(0, end);
  out->suffix = end == absl::string_view::npos ? absl::string_view() : rest.substr(end);
  const size_t dot = fn.find('.');
  out->name = fn.substr(0, dot);
  out->ns = dot == absl::string_view::npos ? default_ns : fn.substr(dot + 1);
  return true;
}

std::string UpstreamPath(absl::string_view suffix) {
  if (suffix.empty()) return "/";
  if (suffix.front() == '?') return absl::StrCat("/", suffix);
  return std::string(suffix);
}

bool IsStreamingType(absl::string_view content_type) {
  return absl::StartsWithIgnoreCase(content_type, "text/event-stream") ||
         absl::StartsWithIgnoreCase(content_type, "application/x-ndjson");
}

std::string NewCallId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  uint64_t hi = rng(), lo = rng();
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // RFC 4122 variant
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(36, '-');
  int pos = 0;
  for (int i = 0; i < 32; ++i) {
    if (pos == 8 || pos == 13 || pos == 18 || pos == 23) ++pos;
    const uint64_t word = i < 16 ? hi : lo;
    const int shift = 60 - 4 * (i % 16);
    out[pos++] = kHex[(word >> shift) & 0xf];
  }
  return out;
}

}  // namespace faasd::gateway
