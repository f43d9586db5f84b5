// Durable asynchronous invocation on NATS JetStream: the face of src/queue/.
//
// POST /async-function/NAME[.NS][/path] becomes one message on a file-backed JetStream stream
// (work-queue retention: a message is removed once the worker acks it); the gateway answers
// 202 only once the server has acknowledged it. An embedded worker pulls from one durable
// consumer per function, up to `concurrency` calls of each function at once (so one
// function's backlog never delays another's), invokes the function through the daemon's own
// listener on loopback (so replicas, scale from zero and metrics are the sync path's), retries
// by policy with NakWithDelay, acks only once the invocation has finished, then POSTs the
// result to the call's X-Callback-Url.
// A daemon that dies mid-invocation leaves the message unacked: JetStream redelivers it after
// ack_wait (upstream timeout + 5 s), so delivery is at least once.
//
// NATS is the only record of queued calls. The connection is made lazily and kept up by cnats'
// reconnect logic: the daemon starts and serves sync calls without NATS; async calls answer
// 503 while it is away.
//
// Thread-safety: every method may be called from any thread. Publish and Cancel block (up to
// the publish timeout): call them from a helper thread, never an event loop.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "provider/provider.h"

namespace faasd::queue {

struct QueueOptions {
  std::string nats_url = "nats://127.0.0.1:4222";
  // The NATS at nats_url is the service supervisor's own, which starts after the gateway: not
  // reaching it at Connect() is the normal order of a start, not worth a warning.
  bool nats_supervised = false;
  size_t max_body_bytes = 256 << 10;  // async request bodies, then 413
  int concurrency = 4;  // calls of one function the worker invokes at once (an annotation
                        // com.openfaas.queue.concurrency overrides it per function)
  absl::Duration upstream_timeout = absl::Seconds(60);
  absl::Duration publish_timeout = absl::Seconds(5);
  std::string stream = "faasd-async";
};

// One queued invocation, as the gateway accepted it.
struct QueuedCall {
  std::string call_id;       // X-Call-Id; also the JetStream Nats-Msg-Id (de-duplication)
  std::string name, ns;      // the function
  std::string addressed;     // the name as the client wrote it ("fn" or "fn.ns"): X-Function-Name
  std::string method;        // always POST today, kept for the worker's request
  std::string path;          // "" or "/a/b?x=1": what follows the function in the target
  std::vector<std::pair<std::string, std::string>> headers;  // end-to-end request headers
  std::string body;
  std::string callback_url;  // "" for none
  int64_t queued_at_ns = 0;  // Unix ns
};

// Counters for /metrics (wired by the gateway's metrics owner). Updated with relaxed atomics.
struct QueueCounters {
  std::atomic<uint64_t> published{0};  // 202s given
  std::atomic<uint64_t> completed{0};  // invocations acked with a 2xx/3xx/4xx-not-retried answer
  std::atomic<uint64_t> retried{0};    // deliveries put back for a later attempt
  std::atomic<uint64_t> failed{0};     // gave up: attempts exhausted or undecodable message
  std::atomic<uint64_t> cancelled{0};  // DELETE /async-function/{call-id} that removed a call
  std::atomic<int64_t> in_flight{0};   // invocations running now
  std::atomic<int64_t> queued{0};      // messages in the stream (including in flight), ~1 s old
  std::atomic<int64_t> oldest_age_ms{0};  // age of the oldest message in the stream, ~1 s old
};

// "<token>": letters, digits, '-' and '_', 1-64 characters. A client's X-Call-Id of this form
// is kept (so a client retrying a POST is de-duplicated); anything else gets a fresh UUID.
bool IsValidCallId(absl::string_view id);
// OK, or InvalidArgument naming the problem: an absolute http:// or https:// URL with a host.
absl::Status CheckCallbackUrl(absl::string_view url);

class AsyncQueue {
 public:
  AsyncQueue(QueueOptions options, provider::FunctionProvider& provider);
  ~AsyncQueue();  // stops
  AsyncQueue(const AsyncQueue&) = delete;
  AsyncQueue& operator=(const AsyncQueue&) = delete;

  // Connects (in the background when NATS is not there yet), so publishes work as soon as the
  // gateway serves. Never fails: NATS may come later. Idempotent.
  void Connect();
  // Connects if not yet done, and starts the worker, which invokes through
  // http://127.0.0.1:`invoke_port`/function/.
  void Start(int invoke_port);
  // Ends the worker: each worker finishes the call it runs (a call the daemon's listener no
  // longer answers is put back with Nak); nothing else is fetched.
  // Closes the cnats library (this process's only user of it). Idempotent.
  void Stop();

  // Publishes `call` and waits for JetStream's ack. Unavailable when NATS is not connected
  // or did not ack in time; OutOfRange (413) when NATS refuses the size.
  absl::Status Publish(const QueuedCall& call);
  // Removes a queued call from the stream (a call already being invoked completes).
  // NotFound when no queued call has this id; Unavailable when NATS is away.
  absl::Status Cancel(const std::string& call_id);

  const QueueOptions& options() const;
  const QueueCounters& counters() const;
  // True while function `key` ("name.ns") has queued or in-flight async calls (the
  // autoscaler must not scale it to zero). Queued counts are refreshed about every second;
  // this process's own publishes count at once.
  bool HasPendingCalls(const std::string& key) const;

  struct State;  // opaque: private to src/queue/ (state.h)

 private:
  std::unique_ptr<State> state_;
};

}  // namespace faasd::queue
