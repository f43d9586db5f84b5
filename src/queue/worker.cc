// The embedded queue worker: a dispatcher thread starts a lane for each function with queued
// calls: up to N workers (--queue-concurrency, or the function's com.openfaas.queue.concurrency
// annotation), each pulling one message at a time from the function's own durable consumer.
// A worker invokes its call through the daemon's own listener, then acks (done), naks with a
// delay (retry), or terms (undecodable), and finally POSTs the result to the callback URL.
#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/log.h"
#include "base/thread_name.h"
#include "httplib.h"
#include "queue/state.h"

namespace faasd::queue {

namespace {

constexpr int kFetchWaitMs = 1000;
constexpr int kIdleFetchesBeforeExit = 3;
constexpr size_t kCancelledKept = 10000;
constexpr int kCallbackAttempts = 3;
constexpr absl::Duration kStatsEvery = absl::Seconds(1);

// Request headers the worker does not replay: framing and connection management (httplib
// frames its own request), and X-Call-Id (set from the call).
bool NotReplayed(absl::string_view name) {
  static constexpr absl::string_view kSkipped[] = {
      "Host",    "Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive",
      "Upgrade", "Expect",         "TE",                "Trailer",    "Proxy-Connection",
      "X-Call-Id"};
  return std::any_of(std::begin(kSkipped), std::end(kSkipped),
                     [&](absl::string_view s) { return absl::EqualsIgnoreCase(name, s); });
}

int64_t Millis(absl::Duration d) { return std::max<int64_t>(0, absl::ToInt64Milliseconds(d)); }

}  // namespace

void AsyncQueue::State::MarkCancelledLocked(const std::string& call_id) {
  if (cancelled.insert(call_id).second) cancelled_order.push_back(call_id);
  while (cancelled_order.size() > kCancelledKept) {
    cancelled.erase(cancelled_order.front());
    cancelled_order.pop_front();
  }
}

bool AsyncQueue::State::TakeCancelled(const std::string& call_id) {
  absl::MutexLock lock(&mu);
  return cancelled.erase(call_id) > 0;
}

bool AsyncQueue::State::SleepUnlessStopping(absl::Duration d) {
  absl::MutexLock lock(&mu);
  auto stop = [this] { return stopping.load(); };
  mu.AwaitWithTimeout(absl::Condition(&stop), d);
  return !stopping.load();
}

void AsyncQueue::State::StartWorker() {
  dispatcher = std::thread([this] {
    NameThisThread("faasd-queue");
    Dispatch();
  });
}

void AsyncQueue::State::StopWorker() {
  {
    absl::MutexLock lock(&mu);  // wakes the waits (their conditions read `stopping`)
  }
  if (dispatcher.joinable()) dispatcher.join();
  std::map<std::string, std::unique_ptr<Lane>> all;
  {
    absl::MutexLock lock(&mu);
    all.swap(lanes);
  }
  // Each worker ends after its current fetch (at most kFetchWaitMs) or invocation.
  for (auto& [key, lane] : all) {
    for (auto& t : lane->threads) t.join();
  }
}

// Why a consumer per function rather than one consumer and per-function scheduling here: with
// one consumer the server hands out messages in stream order, so reaching function B's call
// behind a backlog of A's means fetching A's calls and holding them unacked (memory bounded
// only by the backlog, and each held call needs in-progress acks to outlive the ack wait), or
// naking them back (which counts as a delivery, and the retry policy counts deliveries). With
// one durable consumer per function the server keeps each function's order and redelivery,
// and a worker fetches one message only when it is free to invoke it, so nothing waits
// unacked in this process. The cost: a pull request per idle worker per kFetchWaitMs while a
// function has calls queued, and a lane (threads, subscriptions) started on demand.
void AsyncQueue::State::Dispatch() {
  absl::Time next_stats = absl::InfinitePast();
  std::string last_warning;
  while (!stopping.load()) {
    ReapLanes();
    if (!Connected()) {
      SleepUnlessStopping(absl::Milliseconds(200));
      continue;
    }
    if (absl::Now() >= next_stats) {
      RefreshStats();
      next_stats = absl::Now() + kStatsEvery;
    }
    std::vector<std::string> wanted;
    {
      absl::MutexLock lock(&mu);
      for (const auto& [key, n] : queued_by_fn) {
        if (n > 0 && lanes.count(key) == 0) wanted.push_back(key);
      }
    }
    absl::Status status = wanted.empty() ? absl::OkStatus() : RemoveLegacyConsumer();
    // One function's consumer failing must not keep the others' lanes from starting.
    const bool may_start = status.ok();
    for (size_t i = 0; may_start && i < wanted.size() && !stopping.load(); ++i) {
      if (absl::Status s = StartLane(wanted[i]); !s.ok() && status.ok()) status = s;
    }
    if (!status.ok()) {
      if (status.message() != last_warning) LogWarning(status.message(), "; retrying");
      last_warning = std::string(status.message());
      SleepUnlessStopping(absl::Seconds(1));
      continue;
    }
    last_warning.clear();
    absl::MutexLock lock(&mu);
    auto woken = [this]()
                     ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return stopping.load() || dispatch_now; };
    mu.AwaitWithTimeout(absl::Condition(&woken), kStatsEvery);
    dispatch_now = false;
  }
}

absl::Status AsyncQueue::State::StartLane(const std::string& key) {
  auto lane = std::make_unique<Lane>();
  lane->key = key;
  const size_t dot = key.find('.');
  lane->name = key.substr(0, dot);
  lane->ns = dot == std::string::npos ? "" : key.substr(dot + 1);
  int limit = options.concurrency;
  if (absl::StatusOr<provider::FunctionStatus> fn = provider.Get(lane->name, lane->ns); fn.ok()) {
    std::vector<std::string> warnings;
    limit = QueueConcurrencyFromAnnotations(fn->annotations, options.concurrency, &warnings);
    for (const auto& w : warnings) LogWarning("queue: function ", key, ": ", w);
  }
  std::vector<natsSubscription*> subs;
  if (absl::Status s = SubscribeToFunction(lane->name, lane->ns, limit, &subs); !s.ok()) return s;
  if (static_cast<int>(subs.size()) < limit) {
    LogWarning("queue: function ", key, ": ", subs.size(), " of ", limit, " workers subscribed");
  }
  absl::MutexLock lock(&mu);
  Lane* l = lane.get();
  l->running = static_cast<int>(subs.size());
  for (natsSubscription* sub : subs)
    l->threads.emplace_back([this, l, sub] {
      NameThisThread("faasd-queue-lane");
      LaneWork(l, sub);
    });
  lanes[key] = std::move(lane);
  return absl::OkStatus();
}

void AsyncQueue::State::ReapLanes() {
  std::vector<std::unique_ptr<Lane>> done;
  {
    absl::MutexLock lock(&mu);
    for (auto it = lanes.begin(); it != lanes.end();) {
      if (it->second->running > 0) {
        ++it;
        continue;
      }
      done.push_back(std::move(it->second));
      it = lanes.erase(it);
    }
  }
  for (auto& lane : done) {
    for (auto& t : lane->threads) t.join();
  }
}

bool AsyncQueue::State::NothingQueuedFor(const std::string& key) {
  absl::MutexLock lock(&mu);
  auto q = queued_by_fn.find(key);
  return (q == queued_by_fn.end() || q->second <= 0) && in_flight_by_fn.count(key) == 0;
}

void AsyncQueue::State::LaneWork(Lane* lane, natsSubscription* sub) {
  httplib::Client invoker("127.0.0.1", invoke_port);
  invoker.set_keep_alive(true);
  invoker.set_tcp_nodelay(true);  // head and body go in two writes: no delayed-ACK stall
  invoker.set_connection_timeout(std::chrono::seconds(5));
  const auto limit = std::chrono::milliseconds(Millis(options.upstream_timeout + absl::Seconds(5)));
  invoker.set_read_timeout(limit);
  invoker.set_write_timeout(limit);
  int idle_fetches = 0;
  while (!stopping.load()) {
    if (!Connected()) {  // cnats reconnects and keeps the subscription
      SleepUnlessStopping(absl::Milliseconds(200));
      continue;
    }
    natsMsgList list{};
    jsErrCode jerr{};
    const natsStatus s = natsSubscription_Fetch(&list, sub, 1, kFetchWaitMs, &jerr);
    if (s == NATS_TIMEOUT) {
      // The lane ends once its function has had nothing queued for a while; the dispatcher
      // starts it again when calls come.
      if (++idle_fetches >= kIdleFetchesBeforeExit && NothingQueuedFor(lane->key)) break;
      continue;
    }
    if (s != NATS_OK) {
      if (!Connected()) continue;
      // The server may have lost the consumer (a fresh store): the dispatcher starts the lane
      // again, with a new consumer, once all its workers have ended.
      LogWarning("queue: function ", lane->key, ": fetch: ", natsStatus_GetText(s),
                 jerr != 0 ? absl::StrCat(" (JetStream error ", static_cast<int>(jerr), ")") : "");
      stream_ready.store(false);
      SleepUnlessStopping(absl::Milliseconds(500));
      break;
    }
    idle_fetches = 0;
    for (int i = 0; i < list.Count; ++i) {
      Handle(list.Msgs[i], invoker);
      natsMsg_Destroy(list.Msgs[i]);
      list.Msgs[i] = nullptr;
    }
    natsMsgList_Destroy(&list);
  }
  natsSubscription_Destroy(sub);
  absl::MutexLock lock(&mu);
  --lane->running;
  dispatch_now = true;
}

RetryPolicy AsyncQueue::State::PolicyFor(const QueuedCall& call) {
  absl::StatusOr<provider::FunctionStatus> fn = provider.Get(call.name, call.ns);
  if (!fn.ok()) return RetryPolicy{};
  std::vector<std::string> warnings;
  RetryPolicy p = RetryPolicyFromAnnotations(fn->annotations, &warnings);
  for (const auto& w : warnings) LogWarning("queue: function ", call.name, ".", call.ns, ": ", w);
  return p;
}

void AsyncQueue::State::Handle(natsMsg* msg, httplib::Client& invoker) {
  absl::StatusOr<QueuedCall> call = DecodeCall(
      absl::string_view(natsMsg_GetData(msg), static_cast<size_t>(natsMsg_GetDataLength(msg))));
  if (!call.ok()) {
    LogError("queue: dropping message on ", natsMsg_GetSubject(msg), ": ", call.status().message());
    natsMsg_Term(msg, nullptr);
    counters.failed.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (TakeCancelled(call->call_id)) {
    natsMsg_Ack(msg, nullptr);
    return;
  }
  int attempt = 1;
  jsMsgMetaData* meta = nullptr;
  if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
    attempt = static_cast<int>(std::max<uint64_t>(1, meta->NumDelivered));
    jsMsgMetaData_Destroy(meta);
  }
  const RetryPolicy policy = PolicyFor(*call);
  const std::string key = absl::StrCat(call->name, ".", call->ns);
  {
    absl::MutexLock lock(&mu);
    ++in_flight_by_fn[key];
  }
  counters.in_flight.fetch_add(1, std::memory_order_relaxed);
  InvokeResult result = Invoke(*call, invoker);
  // Settled with the server before anything else: a call whose answer came back must not run
  // again after a crash, so the window between the answer and the ack stays as short as one
  // round trip to NATS (AckSync waits for the server to have it).
  const RetryDecision decision = Decide(policy, result, attempt, absl::Now());
  const bool going_down = stopping.load() && result.status == 0;
  if (going_down) {
    natsMsg_Nak(msg, nullptr);  // the daemon is going down: the next run takes it
  } else if (decision.retry) {
    natsMsg_NakWithDelay(msg, Millis(decision.delay), nullptr);
  } else {
    jsErrCode jerr{};
    if (natsStatus s = natsMsg_AckSync(msg, nullptr, &jerr); s != NATS_OK) {
      LogWarning("queue: call ", call->call_id, " to ", key, ": ack: ", natsStatus_GetText(s),
                 "; JetStream will deliver it again");
    }
  }
  counters.in_flight.fetch_sub(1, std::memory_order_relaxed);
  {
    absl::MutexLock lock(&mu);
    if (--in_flight_by_fn[key] <= 0) in_flight_by_fn.erase(key);
  }
  if (going_down) return;
  if (decision.retry) {
    LogInfo("queue: call ", call->call_id, " to ", key, ": attempt ", attempt, " of ",
            policy.attempts, " answered ", result.status, "; retrying in ",
            absl::FormatDuration(decision.delay));
    counters.retried.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  // Acked before the callback: a crash now loses the callback, never repeats the call.
  const bool ok = result.status > 0 && result.status < 500 &&
                  policy.codes.count(result.status) == 0;
  (ok ? counters.completed : counters.failed).fetch_add(1, std::memory_order_relaxed);
  if (!ok) {
    LogWarning("queue: call ", call->call_id, " to ", key, ": gave up after ", attempt,
               " attempt(s); last answer ", result.status);
  }
  if (!call->callback_url.empty()) {
    SendCallback(*call, result, attempt - 1, policy.attempts - 1);
  }
}

InvokeResult AsyncQueue::State::Invoke(const QueuedCall& call, httplib::Client& invoker) {
  httplib::Request req;
  req.method = call.method.empty() ? "POST" : call.method;
  req.path = absl::StrCat("/function/", call.name, ".", call.ns, call.path);
  for (const auto& [name, value] : call.headers) {
    if (!NotReplayed(name)) req.headers.emplace(name, value);
  }
  req.headers.emplace("X-Call-Id", call.call_id);
  req.body = call.body;
  httplib::Response res;
  httplib::Error err = httplib::Error::Success;
  const absl::Time start = absl::Now();
  const bool sent = invoker.send(req, res, err);
  InvokeResult out;
  out.duration = absl::Now() - start;
  if (!sent) {
    LogWarning("queue: call ", call.call_id, " to ", call.name, ".", call.ns, ": ",
               httplib::to_string(err));
    return out;
  }
  out.status = res.status;
  out.proxy_made = res.get_header_value("X-OpenFaaS-Internal") == "proxy";
  for (const auto& [name, value] : res.headers) out.headers.emplace_back(name, value);
  out.body = std::move(res.body);
  return out;
}

void AsyncQueue::State::SendCallback(const QueuedCall& call, const InvokeResult& result,
                                     int retries, int max_retries) {
  absl::StatusOr<CallbackUrl> url = ParseCallbackUrl(call.callback_url);
  if (!url.ok()) return;  // checked before the call was queued
  const std::string host = url->host.find(':') != std::string::npos
                               ? absl::StrCat("[", url->host, "]")
                               : url->host;
  httplib::Headers headers;
  for (auto& [name, value] : CallbackHeaders(call, result, retries, max_retries)) {
    headers.emplace(name, value);
  }
  std::string last_error;
  for (int attempt = 1; attempt <= kCallbackAttempts; ++attempt) {
    httplib::Client cli(absl::StrCat(url->scheme, "://", host, ":", url->port));
    cli.set_tcp_nodelay(true);
    cli.set_connection_timeout(std::chrono::seconds(5));
    cli.set_read_timeout(std::chrono::seconds(10));
    cli.set_write_timeout(std::chrono::seconds(10));
    httplib::Request req;
    req.method = "POST";
    req.path = url->path;
    req.headers = headers;
    req.body = result.body;
    httplib::Response res;
    httplib::Error err = httplib::Error::Success;
    if (cli.send(req, res, err) && res.status < 500) return;
    last_error = err != httplib::Error::Success ? httplib::to_string(err)
                                                : absl::StrCat("answered ", res.status);
    if (attempt < kCallbackAttempts && !SleepUnlessStopping(absl::Seconds(attempt))) break;
  }
  LogWarning("queue: call ", call.call_id, ": callback to ", call.callback_url, " failed: ",
             last_error);
}

}  // namespace faasd::queue
