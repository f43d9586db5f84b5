// Private to src/queue/: what async_queue.cc (NATS side) and worker.cc (the worker) share.
#pragma once

#include <nats/nats.h>

#include <atomic>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "httplib.h"
#include "queue/message.h"
#include "queue/queue.h"

namespace faasd::queue {

// Shared across threads: the gateway's helper threads (Publish, Cancel), the fetcher, the
// workers and cnats' callback thread. `mu` guards the bookkeeping below it; the cnats handles
// are set in Start and cleared in Stop, when no other thread uses them; `sub` belongs to the
// fetcher thread.
struct AsyncQueue::State {
  State(QueueOptions o, provider::FunctionProvider& p) : options(std::move(o)), provider(p) {}

  bool Connected() const;
  // The stream exists (created if missing). Any thread; serialised by ensure_mu.
  absl::Status EnsureStream();
  // The durable pull consumer and our subscription to it. Fetcher thread only.
  absl::Status EnsureConsumer();
  void RefreshStats();  // counters.queued, oldest_age_ms and queued_by_fn
  void MarkCancelledLocked(const std::string& call_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  bool TakeCancelled(const std::string& call_id);

  // worker.cc
  void StartWorker();
  void StopWorker();
  void Fetch();
  void Work();
  // `invoker`: the worker thread's keep-alive client to the daemon's own port.
  void Handle(natsMsg* msg, httplib::Client& invoker);
  InvokeResult Invoke(const QueuedCall& call, httplib::Client& invoker);
  void SendCallback(const QueuedCall& call, const InvokeResult& result, int retries,
                    int max_retries);
  RetryPolicy PolicyFor(const QueuedCall& call);
  // Sleeps up to `d`; false when the queue is stopping.
  bool SleepUnlessStopping(absl::Duration d);

  const QueueOptions options;
  provider::FunctionProvider& provider;
  int invoke_port = 0;
  QueueCounters counters;
  std::atomic<bool> started{false}, stopping{false};
  std::atomic<bool> stream_ready{false};

  natsOptions* nopts = nullptr;
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  natsSubscription* sub = nullptr;  // the fetcher's
  absl::Mutex ensure_mu;

  mutable absl::Mutex mu;
  std::map<std::string, int64_t> queued_by_fn ABSL_GUARDED_BY(mu);
  std::map<std::string, int64_t> in_flight_by_fn ABSL_GUARDED_BY(mu);
  std::set<std::string> cancelled ABSL_GUARDED_BY(mu);
  std::deque<std::string> cancelled_order ABSL_GUARDED_BY(mu);  // oldest first, bounded
  std::deque<natsMsg*> work ABSL_GUARDED_BY(mu);                // fetched, not yet taken
  int idle_workers ABSL_GUARDED_BY(mu) = 0;

  std::thread fetcher;
  std::vector<std::thread> workers;
};

}  // namespace faasd::queue
