#include "gateway/invoke_proxy.h"

#include <memory>
#include <random>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "gateway/http_errors.h"
#include "gateway/names.h"
#include "gateway/upstream.h"

namespace faasd::gateway {
namespace {

// absl of Debian 12 predates StrContainsIgnoreCase.
bool ContainsIgnoreCase(absl::string_view haystack, absl::string_view needle) {
  return absl::AsciiStrToLower(haystack).find(absl::AsciiStrToLower(needle)) != std::string::npos;
}

// Bodies up to this size are read whole (one write upstream, one response copy); larger or
// chunked ones are streamed so a 32 MiB upload never sits in memory twice.
constexpr size_t kBufferedLimit = 1 << 20;
constexpr absl::string_view kPrefix = "/function/";

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

// Headers the proxy sets itself on the way to the function.
bool IsOwnRequestHeader(absl::string_view name) {
  return absl::EqualsIgnoreCase(name, "Host") || absl::EqualsIgnoreCase(name, "Content-Length") ||
         absl::EqualsIgnoreCase(name, "Expect") ||
         absl::EqualsIgnoreCase(name, "X-Forwarded-For") ||
         absl::EqualsIgnoreCase(name, "X-Call-Id") || absl::EqualsIgnoreCase(name, "X-Start-Time");
}

bool NamedInConnection(absl::string_view connection, absl::string_view name) {
  if (connection.empty()) return false;
  for (absl::string_view token : absl::StrSplit(connection, ',')) {
    if (absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(token), name)) return true;
  }
  return false;
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
    uint64_t word = i < 16 ? hi : lo;
    int shift = 60 - 4 * (i % 16);
    out[pos++] = kHex[(word >> shift) & 0xf];
  }
  return out;
}

struct Target {
  absl::string_view name, ns, suffix;
};

// "/function/echo.ns/a/b?x=1" → {echo, ns, "/a/b?x=1"}; suffix is "", or starts with '/' or
// '?' ("/function/echo?x=1").
bool ParseTarget(absl::string_view target, Target* out) {
  if (!absl::StartsWith(target, kPrefix)) return false;
  absl::string_view rest = target.substr(kPrefix.size());
  size_t end = rest.find_first_of("/?");
  absl::string_view fn = rest.substr(0, end);
  out->suffix = end == absl::string_view::npos ? absl::string_view() : rest.substr(end);
  size_t dot = fn.find('.');
  out->name = fn.substr(0, dot);
  out->ns = dot == absl::string_view::npos ? absl::string_view(provider::kDefaultNamespace)
                                           : fn.substr(dot + 1);
  return true;
}

// Reads and discards an unread request body so the client's keep-alive connection stays in
// step. Bodies over `limit` are left: httplib then answers 413 itself and the client's next
// request on that connection fails to parse, which closes it.
void DrainBody(const httplib::ContentReader* reader) {
  if (reader == nullptr) return;
  (*reader)([](const char*, size_t) { return true; });
}

int StatusForUpstream(const absl::Status& s) { return absl::IsDeadlineExceeded(s) ? 504 : 502; }

bool IsStreamingType(absl::string_view content_type) {
  return absl::StartsWithIgnoreCase(content_type, "text/event-stream") ||
         absl::StartsWithIgnoreCase(content_type, "application/x-ndjson");
}

struct StreamState {
  std::unique_ptr<UpstreamConnection> conn;
  InvocationMetrics::FunctionCounters* counters = nullptr;
  int code = 0;
  int64_t start_ns = 0;
  absl::Duration timeout;
};

}  // namespace

void InvokeProxy::Handle(const httplib::Request& req, httplib::Response& res,
                         const httplib::ContentReader* reader) const {
  const int64_t start_ns = absl::GetCurrentTimeNanos();
  Target t;
  if (!ParseTarget(req.target, &t)) {
    DrainBody(reader);
    return WriteError(res, 404, "not found");
  }
  if (absl::Status s = CheckName("function name", t.name); !s.ok()) {
    DrainBody(reader);
    return WriteError(res, s);
  }
  if (absl::Status s = CheckName("namespace", t.ns); !s.ok()) {
    DrainBody(reader);
    return WriteError(res, s);
  }
  const std::string key = absl::StrCat(t.name, ".", t.ns);
  const std::shared_ptr<const provider::RoutingSnapshot> snapshot = routes_.Snapshot();
  auto fn = snapshot->functions.find(key);
  if (fn == snapshot->functions.end()) {
    DrainBody(reader);
    return WriteError(res, 404, absl::StrCat("function ", key, " not found"));
  }
  InvocationMetrics::FunctionCounters* counters = metrics_.For(key);
  InvocationMetrics::Started(counters);
  auto finish = [&](int code) {
    InvocationMetrics::Finished(counters, code,
                                static_cast<uint64_t>(absl::GetCurrentTimeNanos() - start_ns));
  };
  const absl::Time deadline = absl::FromUnixNanos(start_ns) + options_.timeout;
  std::shared_ptr<const provider::RoutingSnapshot> routing = snapshot;
  // Picks a ready replica, waiting for one when there is none (scale from zero, a replica
  // being replaced). False (with 503 written) when none is ready by the deadline.
  thread_local uint64_t round_robin = 0;
  provider::Endpoint ep;
  auto pick = [&]() {
    auto it = routing->functions.find(key);
    if (it == routing->functions.end() || it->second.empty()) {
      routing = routes_.AwaitReady(key, deadline);
      if (routing == nullptr) return false;
      it = routing->functions.find(key);
    }
    ep = it->second[round_robin++ % it->second.size()];
    return true;
  };
  if (!pick()) {
    DrainBody(reader);
    WriteError(res, 503,
               absl::StrCat("function ", key, ": no replica became ready within ",
                            absl::FormatDuration(options_.timeout)));
    return finish(503);
  }
  std::string address = absl::StrCat(ep.ip, ":", ep.port);

  std::string call_id = req.get_header_value("X-Call-Id");
  if (call_id.empty()) call_id = NewCallId();
  std::string start_time = req.get_header_value("X-Start-Time");
  if (start_time.empty()) start_time = absl::StrCat(start_ns);

  // Request head.
  std::string head;
  head.reserve(512);
  absl::StrAppend(&head, req.method, " ", (t.suffix.empty() || t.suffix.front() == '?') ? "/" : "",
                  t.suffix, " HTTP/1.1\r\n");
  const size_t host_at = head.size();
  size_t host_len = 0;
  auto set_host = [&](const std::string& addr) {  // Host: the replica the request goes to
    std::string line = absl::StrCat("Host: ", addr, "\r\n");
    head.replace(host_at, host_len, line);
    host_len = line.size();
  };
  set_host(address);
  const std::string connection = req.get_header_value("Connection");
  std::string xff;
  for (const auto& [name, value] : req.headers) {
    if (absl::EqualsIgnoreCase(name, "X-Forwarded-For")) {
      xff = xff.empty() ? value : absl::StrCat(xff, ", ", value);
      continue;
    }
    if (IsHopByHop(name) || IsOwnRequestHeader(name) || NamedInConnection(connection, name)) {
      continue;
    }
    absl::StrAppend(&head, name, ": ", value, "\r\n");
  }
  absl::StrAppend(&head, "X-Forwarded-For: ", xff.empty() ? "" : absl::StrCat(xff, ", "),
                  req.remote_addr, "\r\n");
  if (!req.has_header("X-Forwarded-Host")) {
    absl::StrAppend(&head, "X-Forwarded-Host: ", req.get_header_value("Host"), "\r\n");
  }
  absl::StrAppend(&head, "X-Call-Id: ", call_id, "\r\nX-Start-Time: ", start_time, "\r\n");

  // Request body: buffered when small and of known length, otherwise streamed.
  const bool chunked_in = ContainsIgnoreCase(req.get_header_value("Transfer-Encoding"), "chunked");
  uint64_t content_length = 0;
  const bool has_length = req.has_header("Content-Length") &&
                          absl::SimpleAtoi(req.get_header_value("Content-Length"), &content_length);
  if (has_length && content_length > options_.max_request_bytes) {
    // Reading the body keeps the client able to read our answer (closing with unread data
    // would reset the connection); bodies beyond the drain allowance are not read.
    if (content_length <= options_.max_request_bytes + kDrainAllowance) DrainBody(reader);
    WriteError(res, 413,
               absl::StrCat("function ", key, ": request body over ", options_.max_request_bytes,
                            " bytes"));
    return finish(413);
  }
  if (reader == nullptr && req.body.size() > options_.max_request_bytes) {
    WriteError(res, 413,
               absl::StrCat("function ", key, ": request body over ", options_.max_request_bytes,
                            " bytes"));
    return finish(413);
  }
  const bool stream_in = reader != nullptr && (chunked_in || content_length > kBufferedLimit);
  std::string read_body;
  const std::string* body = &req.body;
  if (reader != nullptr && !stream_in) {
    read_body.reserve(content_length);
    bool too_large = false;
    (*reader)([&](const char* data, size_t len) {
      read_body.append(data, len);
      too_large = read_body.size() > options_.max_request_bytes;
      return !too_large;
    });
    if (too_large) {
      WriteError(res, 413,
                 absl::StrCat("function ", key, ": request body over ", options_.max_request_bytes,
                              " bytes"));
      return finish(413);
    }
    body = &read_body;
  }

  UpstreamPool& pool = pool_;
  std::unique_ptr<UpstreamConnection> conn;
  absl::StatusOr<UpstreamResponseHead> resp_head =
      absl::UnavailableError(absl::StrCat("function ", key, ": not attempted"));
  const bool head_request = req.method == "HEAD";
  // A pooled connection the function closed while idle fails before any response byte; the
  // request is then repeated once on a fresh connection (only when the body is buffered).
  // A replica that refuses the connection got nothing of the request: it is reported and
  // another one (or its replacement, once ready) is tried, a few times at most.
  int refused = 0;
  for (int attempt = 0; attempt < 2; ++attempt) {
    conn = attempt == 0 ? pool.Take(address) : nullptr;
    const bool reused = conn != nullptr;
    while (!reused && conn == nullptr) {
      absl::StatusOr<std::unique_ptr<UpstreamConnection>> fresh = UpstreamConnection::Connect(
          ep.ip, ep.port, std::min(deadline, absl::Now() + options_.connect_timeout));
      if (fresh.ok()) {
        conn = std::move(*fresh);
        break;
      }
      routes_.ReportUnreachable(key, ep);
      routing = routes_.Snapshot();
      if (++refused > 3 || absl::IsDeadlineExceeded(fresh.status()) || !pick()) {
        DrainBody(reader);
        WriteError(res, 502, absl::StrCat("function ", key, ": ", fresh.status().message()));
        return finish(502);
      }
      address = absl::StrCat(ep.ip, ":", ep.port);
      set_host(address);
    }
    conn->StartRequest();
    absl::Status sent;
    if (!stream_in) {
      absl::StrAppend(&head, "Content-Length: ", body->size(), "\r\n\r\n");
      if (body->size() <= 16384) {
        std::string msg = absl::StrCat(head, *body);
        sent = conn->Write(msg, deadline);
      } else {
        sent = conn->Write(head, deadline);
        if (sent.ok()) sent = conn->Write(*body, deadline);
      }
      head.resize(head.size() - absl::StrCat("Content-Length: ", body->size(), "\r\n\r\n").size());
    } else {
      absl::StrAppend(&head, chunked_in
                                 ? "Transfer-Encoding: chunked\r\n\r\n"
                                 : absl::StrCat("Content-Length: ", content_length, "\r\n\r\n"));
      sent = conn->Write(head, deadline);
      size_t total = 0;
      bool too_large = false;
      if (sent.ok()) {
        (*reader)([&](const char* data, size_t len) {
          total += len;
          if (total > options_.max_request_bytes) {
            too_large = true;
            return false;
          }
          if (chunked_in) {
            sent = conn->Write(absl::StrCat(absl::Hex(len), "\r\n"), deadline);
            if (sent.ok()) sent = conn->Write(absl::string_view(data, len), deadline);
            if (sent.ok()) sent = conn->Write("\r\n", deadline);
          } else {
            sent = conn->Write(absl::string_view(data, len), deadline);
          }
          return sent.ok();
        });
      } else {
        DrainBody(reader);
      }
      if (too_large) {
        WriteError(res, 413,
                   absl::StrCat("function ", key, ": request body over ",
                                options_.max_request_bytes, " bytes"));
        return finish(413);
      }
      if (sent.ok() && chunked_in) sent = conn->Write("0\r\n\r\n", deadline);
    }
    if (sent.ok()) {
      resp_head = conn->ReadHead(head_request, deadline);
    } else {
      resp_head = sent;
    }
    if (resp_head.ok()) break;
    const bool retry = reused && !stream_in && !conn->GotResponseBytes() &&
                       !absl::IsDeadlineExceeded(resp_head.status());
    if (!retry) break;
  }
  if (!resp_head.ok()) {
    const int code = StatusForUpstream(resp_head.status());
    WriteError(res, code, absl::StrCat("function ", key, ": ", resp_head.status().message()));
    return finish(code);
  }

  // Response.
  const int code = resp_head->status;
  std::string content_type;
  bool stream_out = false;
  for (auto& [name, value] : resp_head->headers) {
    if (absl::EqualsIgnoreCase(name, "Content-Type")) content_type = value;
  }
  const bool no_body = head_request || code == 204 || code == 304;
  if (!no_body) {
    stream_out = resp_head->chunked || !resp_head->has_length || IsStreamingType(content_type) ||
                 resp_head->content_length > kBufferedLimit;
  }
  const std::string upstream_connection = [&] {
    for (auto& [name, value] : resp_head->headers) {
      if (absl::EqualsIgnoreCase(name, "Connection")) return value;
    }
    return std::string();
  }();
  for (auto& [name, value] : resp_head->headers) {
    if (IsHopByHop(name) || NamedInConnection(upstream_connection, name)) continue;
    if (absl::EqualsIgnoreCase(name, "X-Call-Id") || absl::EqualsIgnoreCase(name, "X-Start-Time")) {
      continue;
    }
    // httplib writes Content-Length itself (and Content-Type for provider bodies).
    if (absl::EqualsIgnoreCase(name, "Content-Length") && !head_request) continue;
    if (stream_out && absl::EqualsIgnoreCase(name, "Content-Type")) continue;
    res.headers.emplace(std::move(name), std::move(value));
  }
  res.headers.emplace("X-Call-Id", call_id);
  res.headers.emplace("X-Start-Time", start_time);
  res.status = code;

  if (!stream_out) {
    if (!no_body) {
      if (absl::Status s = conn->ReadAllBody(&res.body, kBufferedLimit, deadline); !s.ok()) {
        res.headers.clear();
        res.body.clear();
        const int err = StatusForUpstream(s);
        WriteError(res, err, absl::StrCat("function ", key, ": ", s.message()));
        return finish(err);
      }
    }
    pool.Put(std::move(conn));
    return finish(code);
  }

  auto state = std::make_shared<StreamState>();
  state->conn = std::move(conn);
  state->counters = counters;
  state->code = code;
  state->start_ns = start_ns;
  state->timeout = options_.timeout;
  auto releaser = [state, pool = &pool_](bool success) {
    InvocationMetrics::Finished(
        state->counters, state->code,
        static_cast<uint64_t>(absl::GetCurrentTimeNanos() - state->start_ns));
    if (success) pool->Put(std::move(state->conn));
  };
  if (content_type.empty()) content_type = "application/octet-stream";
  if (resp_head->chunked || !resp_head->has_length || IsStreamingType(content_type)) {
    // Each piece goes out as it arrives; the timeout applies per read, not to the whole
    // stream, so a long-lived event stream is not cut.
    res.set_chunked_content_provider(
        content_type,
        [state](size_t, httplib::DataSink& sink) {
          std::string piece;
          absl::StatusOr<bool> more = state->conn->ReadBody(&piece, absl::Now() + state->timeout);
          if (!more.ok()) return false;
          if (!*more) {
            sink.done();
            return true;
          }
          return sink.write(piece.data(), piece.size());
        },
        releaser);
  } else {
    res.set_content_provider(
        resp_head->content_length, content_type,
        [state](size_t, size_t, httplib::DataSink& sink) {
          std::string piece;
          absl::StatusOr<bool> more = state->conn->ReadBody(&piece, absl::Now() + state->timeout);
          if (!more.ok() || !*more) return false;
          return sink.write(piece.data(), piece.size());
        },
        releaser);
  }
}

}  // namespace faasd::gateway
