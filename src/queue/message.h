// Private to src/queue/: the pure parts (no I/O), each unit-tested.
//   - How a QueuedCall travels on the stream: one JSON line of metadata, '\n', the raw body.
//   - Subjects: faas-request.<name>.<ns>.<call-id>, so a call is found by its id (cancel) and
//     queued calls are counted per function from the stream's subject state.
//   - Callback URLs, and the headers a callback carries.
//   - The retry policy: annotations, exponential back-off, Retry-After, which answers retry.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "queue/queue.h"

namespace faasd::queue {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

inline constexpr char kSubjectPrefix[] = "faas-request";

std::string EncodeCall(const QueuedCall& call);
absl::StatusOr<QueuedCall> DecodeCall(absl::string_view data);

std::string CallSubject(const QueuedCall& call);
// "faas-request.fn.ns.id" → "fn.ns"; "" when the subject is not one of ours.
std::string FunctionKeyOfSubject(absl::string_view subject);

// Per-function consumers (see worker.cc for why): each function has its own durable pull
// consumer, "faasd_<name>_<ns>" (names and namespaces are DNS labels, so '_' cannot be
// ambiguous), filtered on "faas-request.<name>.<ns>.*". Filters of two functions never
// overlap, which a work-queue stream requires of its consumers.
std::string ConsumerName(absl::string_view name, absl::string_view ns);
std::string FunctionFilter(absl::string_view name, absl::string_view ns);

// Calls of one function the worker invokes at once: annotation com.openfaas.queue.concurrency
// (1-1024), else `fallback` (--queue-concurrency). A bad value is reported in `warnings`.
int QueueConcurrencyFromAnnotations(const std::map<std::string, std::string>& annotations,
                                    int fallback, std::vector<std::string>* warnings = nullptr);

struct CallbackUrl {
  std::string scheme, host;  // host without brackets for IPv6 literals
  int port = 0;
  std::string path;  // starts with '/'; query included
};
absl::StatusOr<CallbackUrl> ParseCallbackUrl(absl::string_view url);

// The result of one invocation, as the worker saw it.
struct InvokeResult {
  int status = 0;              // 0: the daemon's listener could not be reached
  bool proxy_made = false;     // X-OpenFaaS-Internal: proxy (the gateway's error, not the function's)
  HeaderList headers;          // the response's headers
  std::string body;
  absl::Duration duration;
};

// The callback's headers: the function's response headers (hop-by-hop, framing and our own
// X- names dropped), then X-Call-Id, X-Function-Name, X-Function-Status (503 when the
// function could not be reached), X-Duration-Seconds, X-Retry (retries made) and X-Retry-Max
// (retries allowed).
HeaderList CallbackHeaders(const QueuedCall& call, const InvokeResult& result, int retries,
                           int max_retries);

// Retry policy; annotations (as the OpenFaaS Pro queue worker):
//   com.openfaas.retry.attempts  total attempts, 1-100 (10)
//   com.openfaas.retry.codes     comma or space separated HTTP codes (408,429,500,502,503,504)
//   com.openfaas.retry.min_wait  Go duration, first back-off (10s)
//   com.openfaas.retry.max_wait  Go duration, back-off cap (120s)
// Bad values are ignored (the default stays) and reported in `warnings`.
struct RetryPolicy {
  int attempts = 10;
  std::set<int> codes = {408, 429, 500, 502, 503, 504};
  absl::Duration min_wait = absl::Seconds(10);
  absl::Duration max_wait = absl::Seconds(120);
};
RetryPolicy RetryPolicyFromAnnotations(const std::map<std::string, std::string>& annotations,
                                       std::vector<std::string>* warnings = nullptr);

// Back-off before attempt `attempt`+1 after `attempt` attempts failed (attempt ≥ 1):
// min_wait × 2^(attempt-1), capped at max_wait.
absl::Duration Backoff(const RetryPolicy& policy, int attempt);
// Retry-After: delta-seconds or an HTTP date (relative to `now`); nullopt-like: negative
// duration when absent or unparseable.
absl::Duration ParseRetryAfter(absl::string_view value, absl::Time now);

// What to do after attempt `attempt` (1-based) ended with `result`.
struct RetryDecision {
  bool retry = false;
  absl::Duration delay;
};
RetryDecision Decide(const RetryPolicy& policy, const InvokeResult& result, int attempt,
                     absl::Time now);

}  // namespace faasd::queue
