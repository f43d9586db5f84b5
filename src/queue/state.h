// Private to src/queue/: what async_queue.cc (NATS side) and worker.cc (the worker) share.
#pragma once

#include <nats/nats.h>

#include <atomic>
#include <deque>
#include <map>
#include <memory>
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

// Shared across threads: the gateway's helper threads (Publish, Cancel), the dispatcher, the
// lanes' workers and cnats' callback thread. `mu` guards the bookkeeping below it; the cnats
// handles are set in Start and cleared in Stop, when no other thread uses them; each worker
// owns its subscription.
struct AsyncQueue::State {
  State(QueueOptions o, provider::FunctionProvider& p) : options(std::move(o)), provider(p) {}

  bool Connected() const;
  // The stream exists (created if missing). Any thread; serialised by ensure_mu.
  absl::Status EnsureStream();
  // Deletes the single durable consumer of earlier versions (filter faas-request.>): a
  // work-queue stream refuses the per-function consumers while it overlaps them. Its unacked
  // messages stay in the stream for them. Dispatcher thread only.
  absl::Status RemoveLegacyConsumer();
  // `count` pull subscriptions to the durable consumer of function name.ns, which is created
  // (or replaced, when an earlier run made it with another ack wait) as needed.
  absl::Status SubscribeToFunction(const std::string& name, const std::string& ns, int count,
                                   std::vector<natsSubscription*>* subs);
  void RefreshStats();  // counters.queued, oldest_age_ms and queued_by_fn
  void MarkCancelledLocked(const std::string& call_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  bool TakeCancelled(const std::string& call_id);

  // worker.cc
  // One function's share of the worker: `limit` threads, each with its own pull subscription
  // to the function's durable consumer, each fetching one message only when it is free.
  struct Lane {
    std::string key, name, ns;  // key: "name.ns"
    int running = 0;            // threads not yet returned; guarded by State::mu
    std::vector<std::thread> threads;
  };
  void StartWorker();
  void StopWorker();
  void Dispatch();
  // The lane's consumer (created or replaced as needed) and `limit` subscriptions to it.
  absl::Status StartLane(const std::string& key);
  void LaneWork(Lane* lane, natsSubscription* sub);
  void ReapLanes();
  // True when the stream held nothing for `key` at the last refresh and no call of it is
  // in flight here.
  bool NothingQueuedFor(const std::string& key);
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
  absl::Mutex ensure_mu;

  mutable absl::Mutex mu;
  std::map<std::string, int64_t> queued_by_fn ABSL_GUARDED_BY(mu);
  std::map<std::string, int64_t> in_flight_by_fn ABSL_GUARDED_BY(mu);
  std::set<std::string> cancelled ABSL_GUARDED_BY(mu);
  std::deque<std::string> cancelled_order ABSL_GUARDED_BY(mu);  // oldest first, bounded
  std::map<std::string, std::unique_ptr<Lane>> lanes ABSL_GUARDED_BY(mu);
  bool dispatch_now ABSL_GUARDED_BY(mu) = false;  // a publish or a lane's end: look at once
  bool legacy_consumer_removed = false;           // dispatcher thread only

  std::thread dispatcher;
};

}  // namespace faasd::queue
