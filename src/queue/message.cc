#include "queue/message.h"

#include <algorithm>
#include <cctype>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"

namespace faasd::queue {

namespace {

using nlohmann::json;

constexpr int kMaxAttempts = 100;

std::string IgnoredAnnotation(absl::string_view key, absl::string_view value) {
  return absl::StrCat("annotation ", key, "=\"", value, "\" ignored");
}

// Headers the callback never copies from the function's response: framing and connection
// management (the callback request has its own), and the names the callback sets itself.
bool DroppedFromCallback(absl::string_view name) {
  static constexpr absl::string_view kDropped[] = {
      "Connection",     "Keep-Alive",       "Proxy-Connection",   "Transfer-Encoding",
      "TE",             "Trailer",          "Upgrade",            "Content-Length",
      "Host",           "X-Call-Id",        "X-Function-Name",    "X-Function-Status",
      "X-Duration-Seconds", "X-Retry",      "X-Retry-Max",        "X-OpenFaaS-Internal"};
  for (absl::string_view d : kDropped) {
    if (absl::EqualsIgnoreCase(name, d)) return true;
  }
  return false;
}

bool IsUrlChar(char c) {
  return static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) < 0x7f;
}

}  // namespace

bool IsValidCallId(absl::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
  });
}

std::string EncodeCall(const QueuedCall& call) {
  json headers = json::array();
  for (const auto& [name, value] : call.headers) headers.push_back({name, value});
  json meta = {{"callId", call.call_id},     {"name", call.name},
               {"namespace", call.ns},       {"addressed", call.addressed},
               {"method", call.method},      {"path", call.path},
               {"headers", std::move(headers)}, {"callbackUrl", call.callback_url},
               {"queuedAt", call.queued_at_ns}};
  // One line: JSON escapes every newline inside strings; bad UTF-8 in a header is replaced.
  std::string out = meta.dump(-1, ' ', false, json::error_handler_t::replace);
  out.push_back('\n');
  out.append(call.body);
  return out;
}

absl::StatusOr<QueuedCall> DecodeCall(absl::string_view data) {
  const size_t nl = data.find('\n');
  if (nl == absl::string_view::npos) {
    return absl::InvalidArgumentError("queued call: no metadata line");
  }
  json meta = json::parse(data.begin(), data.begin() + nl, nullptr, /*allow_exceptions=*/false);
  if (!meta.is_object()) return absl::InvalidArgumentError("queued call: metadata is not JSON");
  QueuedCall call;
  try {
    call.call_id = meta.at("callId").get<std::string>();
    call.name = meta.at("name").get<std::string>();
    call.ns = meta.at("namespace").get<std::string>();
    call.addressed = meta.value("addressed", call.name);
    call.method = meta.value("method", std::string("POST"));
    call.path = meta.value("path", std::string());
    call.callback_url = meta.value("callbackUrl", std::string());
    call.queued_at_ns = meta.value("queuedAt", int64_t{0});
    for (const auto& h : meta.value("headers", json::array())) {
      call.headers.emplace_back(h.at(0).get<std::string>(), h.at(1).get<std::string>());
    }
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("queued call: bad metadata: ", e.what()));
  }
  if (call.call_id.empty() || call.name.empty() || call.ns.empty()) {
    return absl::InvalidArgumentError("queued call: callId, name or namespace missing");
  }
  call.body = std::string(data.substr(nl + 1));
  return call;
}

std::string CallSubject(const QueuedCall& call) {
  return absl::StrCat(kSubjectPrefix, ".", call.name, ".", call.ns, ".", call.call_id);
}

std::string FunctionKeyOfSubject(absl::string_view subject) {
  std::vector<absl::string_view> parts = absl::StrSplit(subject, '.');
  if (parts.size() != 4 || parts[0] != kSubjectPrefix) return "";
  return absl::StrCat(parts[1], ".", parts[2]);
}

std::string ConsumerName(absl::string_view name, absl::string_view ns) {
  return absl::StrCat("faasd_", name, "_", ns);
}

std::string FunctionFilter(absl::string_view name, absl::string_view ns) {
  return absl::StrCat(kSubjectPrefix, ".", name, ".", ns, ".*");
}

int QueueConcurrencyFromAnnotations(const std::map<std::string, std::string>& annotations,
                                    int fallback, std::vector<std::string>* warnings) {
  constexpr char kKey[] = "com.openfaas.queue.concurrency";
  auto it = annotations.find(kKey);
  if (it == annotations.end()) return fallback;
  int n = 0;
  if (absl::SimpleAtoi(it->second, &n) && n >= 1 && n <= 1024) return n;
  if (warnings != nullptr) {
    warnings->push_back(IgnoredAnnotation(kKey, it->second));
  }
  return fallback;
}

absl::StatusOr<CallbackUrl> ParseCallbackUrl(absl::string_view url) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "X-Callback-Url \"", url.substr(0, 200), "\": ", why));
  };
  CallbackUrl out;
  if (!std::all_of(url.begin(), url.end(), IsUrlChar)) {
    return bad("must not hold spaces or control characters");
  }
  absl::string_view rest = url;
  if (absl::ConsumePrefix(&rest, "http://")) {
    out.scheme = "http";
    out.port = 80;
  } else if (absl::ConsumePrefix(&rest, "https://")) {
    out.scheme = "https";
    out.port = 443;
  } else {
    return bad("must be an absolute http:// or https:// URL");
  }
  const size_t slash = rest.find_first_of("/?#");
  absl::string_view authority = rest.substr(0, slash);
  absl::string_view path = slash == absl::string_view::npos ? "" : rest.substr(slash);
  if (const size_t hash = path.find('#'); hash != absl::string_view::npos) {
    path = path.substr(0, hash);
  }
  if (authority.find('@') != absl::string_view::npos) return bad("must not carry credentials");
  absl::string_view host = authority, port;
  if (absl::StartsWith(authority, "[")) {
    const size_t close = authority.find(']');
    if (close == absl::string_view::npos) return bad("unclosed IPv6 literal");
    host = authority.substr(1, close - 1);
    absl::string_view after = authority.substr(close + 1);
    if (!after.empty() && !absl::ConsumePrefix(&after, ":")) return bad("bad port");
    port = after;
  } else if (const size_t colon = authority.rfind(':'); colon != absl::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) return bad("has no host");
  if (!port.empty()) {
    if (!std::all_of(port.begin(), port.end(), absl::ascii_isdigit) ||
        !absl::SimpleAtoi(port, &out.port) || out.port < 1 || out.port > 65535) {
      return bad("bad port");
    }
  }
  out.host = std::string(host);
  out.path = path.empty() ? "/" : (path.front() == '?' ? absl::StrCat("/", path)
                                                        : std::string(path));
  return out;
}

absl::Status CheckCallbackUrl(absl::string_view url) { return ParseCallbackUrl(url).status(); }

HeaderList CallbackHeaders(const QueuedCall& call, const InvokeResult& result, int retries,
                           int max_retries) {
  HeaderList out;
  for (const auto& [name, value] : result.headers) {
    if (!DroppedFromCallback(name)) out.emplace_back(name, value);
  }
  out.emplace_back("X-Call-Id", call.call_id);
  out.emplace_back("X-Function-Name", call.addressed.empty() ? call.name : call.addressed);
  out.emplace_back("X-Function-Status", absl::StrCat(result.status == 0 ? 503 : result.status));
  out.emplace_back("X-Duration-Seconds",
                   absl::StrFormat("%.6f", absl::ToDoubleSeconds(result.duration)));
  out.emplace_back("X-Retry", absl::StrCat(retries));
  out.emplace_back("X-Retry-Max", absl::StrCat(max_retries));
  return out;
}

RetryPolicy RetryPolicyFromAnnotations(const std::map<std::string, std::string>& annotations,
                                       std::vector<std::string>* warnings) {
  RetryPolicy p;
  auto warn = [&](const std::string& key, const std::string& value) {
    if (warnings != nullptr) {
      warnings->push_back(IgnoredAnnotation(key, value));
    }
  };
  auto get = [&](const char* key) -> const std::string* {
    auto it = annotations.find(key);
    return it == annotations.end() ? nullptr : &it->second;
  };
  if (const std::string* v = get("com.openfaas.retry.attempts")) {
    int n = 0;
    if (absl::SimpleAtoi(*v, &n) && n >= 1 && n <= kMaxAttempts) {
      p.attempts = n;
    } else {
      warn("com.openfaas.retry.attempts", *v);
    }
  }
  if (const std::string* v = get("com.openfaas.retry.codes")) {
    std::set<int> codes;
    bool ok = true;
    for (absl::string_view c : absl::StrSplit(*v, absl::ByAnyChar(", "), absl::SkipEmpty())) {
      int code = 0;
      ok = ok && absl::SimpleAtoi(c, &code) && code >= 100 && code <= 599;
      codes.insert(code);
    }
    if (ok) {
      p.codes = std::move(codes);
    } else {
      warn("com.openfaas.retry.codes", *v);
    }
  }
  for (auto [key, field] : {std::pair{"com.openfaas.retry.min_wait", &p.min_wait},
                            std::pair{"com.openfaas.retry.max_wait", &p.max_wait}}) {
    const std::string* v = get(key);
    if (v == nullptr) continue;
    absl::Duration d;
    if (absl::ParseDuration(*v, &d) && d >= absl::ZeroDuration() && d <= absl::Hours(24)) {
      *field = d;
    } else {
      warn(key, *v);
    }
  }
  if (p.max_wait < p.min_wait) p.max_wait = p.min_wait;
  return p;
}

absl::Duration Backoff(const RetryPolicy& policy, int attempt) {
  absl::Duration d = policy.min_wait;
  for (int i = 1; i < attempt && d < policy.max_wait; ++i) d *= 2;
  return std::min(d, policy.max_wait);
}

absl::Duration ParseRetryAfter(absl::string_view value, absl::Time now) {
  value = absl::StripAsciiWhitespace(value);
  if (value.empty()) return -absl::Seconds(1);
  int64_t seconds = 0;
  if (std::all_of(value.begin(), value.end(), absl::ascii_isdigit)) {
    return absl::SimpleAtoi(value, &seconds) ? absl::Seconds(seconds) : -absl::Seconds(1);
  }
  absl::Time when;
  std::string err;
  if (absl::ParseTime("%a, %d %b %Y %H:%M:%S GMT", std::string(value), &when, &err)) {
    return std::max(absl::ZeroDuration(), when - now);
  }
  return -absl::Seconds(1);
}

RetryDecision Decide(const RetryPolicy& policy, const InvokeResult& result, int attempt,
                     absl::Time now) {
  RetryDecision d;
  const bool retryable =
      result.status == 0 ||
      (result.proxy_made && (result.status == 502 || result.status == 503 ||
                             result.status == 504)) ||
      policy.codes.count(result.status) > 0;
  if (!retryable || attempt >= policy.attempts) return d;
  d.retry = true;
  d.delay = Backoff(policy, attempt);
  if (result.status == 429 || result.status == 503) {
    for (const auto& [name, value] : result.headers) {
      if (!absl::EqualsIgnoreCase(name, "Retry-After")) continue;
      const absl::Duration after = ParseRetryAfter(value, now);
      if (after >= absl::ZeroDuration()) d.delay = std::min(after, policy.max_wait);
    }
  }
  return d;
}

}  // namespace faasd::queue
