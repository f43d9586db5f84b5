// fwatchdog: the OpenFaaS watchdog contract in one static binary, a drop-in for the upstream
// classic watchdog and of-watchdog inside function images.
//
// Contract (env names as upstream):
//   - `mode` unset and `upstream_url` unset: classic watchdog. Every request forks `fprocess`
//     (split on spaces), the body goes to its stdin, its stdout (plus stderr when
//     `combine_output`, default true) is buffered and returned with 200; non-zero exit -> 500
//     "exit status N"; `exec_timeout` kills the whole process group -> 408 "Killed process.".
//     `marshal_request` wraps headers and body in JSON; `content_type` forces the response type
//     (else the request's Content-Type is mirrored).
//   - `mode=streaming` (of-watchdog default when `upstream_url` is set without a mode, too):
//     fork per request, stdin and stdout streamed (never held whole), stderr logged.
//   - `mode=serializing`: fork per request, buffered in and out.
//   - `mode=http`: `fprocess` is started once (own process group) and restarted with backoff if
//     it dies; requests are reverse-proxied to `upstream_url` (default http://127.0.0.1:3000)
//     over pooled keep-alive connections; 503 while it is down, 502 when it refuses,
//     504 after `exec_timeout`.
//   - `mode=static`: files under `static_path` (default /home/app/public).
//   In every mode: CGI env Http_Method/Http_Path/Http_Query/Http_ContentLength/Http_<Header>
//   for forked processes, `max_inflight` (429 beyond), X-Duration-Seconds on every response,
//   GET /_/health (200 while $TMPDIR/.lock exists and we are not draining, else 503), the lock
//   is written at start (http mode: once the upstream accepts connections) unless
//   `suppress_lock`, SIGTERM removes the lock, stops accepting and drains in-flight requests
//   for at most `write_timeout` before exiting 0. Child log lines are prefixed with a time and
//   "stderr:"/"stdout:" unless `prefix_logs=false`.
//   HTTP/1.1 framing is Boost.Beast's: a request head over 64 KiB is 431; a malformed head
//   (bad syntax, bare CR or NUL in a header, Content-Length with Transfer-Encoding,
//   conflicting Content-Lengths, a Transfer-Encoding not ending in chunked) or a malformed or
//   truncated request body (a bad chunk size) is 400, and the connection closes.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace faasd::watchdog {

enum class Mode { kClassic, kStreaming, kSerializing, kHttp, kStatic };

const char* ModeName(Mode mode);

struct Config {
  Mode mode = Mode::kClassic;
  std::string fprocess;
  int port = 8080;
  absl::Duration read_timeout = absl::Seconds(10);
  absl::Duration write_timeout = absl::Seconds(10);
  absl::Duration exec_timeout = absl::ZeroDuration();  // zero: no limit
  int max_inflight = 0;                                // zero: no limit
  bool suppress_lock = false;
  bool prefix_logs = true;
  size_t log_buffer_size = 64 * 1024;  // longest child log line before it is split
  std::string content_type;            // empty: mirror the request's Content-Type
  bool combine_output = true;          // classic only
  bool marshal_request = false;        // classic only
  bool cgi_headers = true;
  std::string upstream_url = "http://127.0.0.1:3000";
  std::string upstream_host = "127.0.0.1";  // parsed from upstream_url
  int upstream_port = 3000;
  std::string static_path = "/home/app/public";
  std::string lock_dir = "/tmp";  // $TMPDIR as Go's os.TempDir()
};

// Go duration ("10s", "1m30s", "500ms", "1.5h") or plain non-negative integer seconds.
absl::StatusOr<absl::Duration> ParseDuration(absl::string_view text);

// Builds the config from an environment lookup (nullptr = unset). Unknown modes, bad
// durations and integers are errors naming the variable.
absl::StatusOr<Config> ConfigFromEnv(const std::function<const char*(const char*)>& getenv);

// "Content-Type" -> "Http_Content_Type", as upstream: '-' becomes '_', the rest is verbatim.
std::string CgiEnvName(absl::string_view header_name);

// Parses "http://host:port[/...]" into host (IPv4 literal or "localhost") and port.
absl::Status ParseUpstreamUrl(absl::string_view url, std::string* host, int* port);

// Runs the watchdog until SIGTERM/SIGINT; returns the process exit code.
int Run(const Config& config);

}  // namespace faasd::watchdog
