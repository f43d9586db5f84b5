// The embedded queue worker: one fetcher thread pulls from the durable consumer as many
// messages as there are idle workers; each worker invokes its call through the daemon's own
// listener, then acks (done), naks with a delay (retry), or terms (undecodable), and finally
// POSTs the result to the callback URL.
#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/log.h"
#include "httplib.h"
#include "queue/state.h"

namespace faasd::queue {

namespace {

constexpr int kFetchWaitMs = 1000;
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
  for (int i = 0; i < std::max(1, options.concurrency); ++i) workers.emplace_back([this] { Work(); });
  fetcher = std::thread([this] { Fetch(); });
}

void AsyncQueue::State::StopWorker() {
  {
    absl::MutexLock lock(&mu);  // wakes the waits (their conditions read `stopping`)
  }
  if (fetcher.joinable()) fetcher.join();
  for (auto& w : workers) w.join();
  workers.clear();
  absl::MutexLock lock(&mu);
  for (natsMsg* m : work) {  // fetched, never started: straight back to the stream
    natsMsg_Nak(m, nullptr);
    natsMsg_Destroy(m);
  }
  work.clear();
}

void AsyncQueue::State::Fetch() {
  absl::Time next_stats = absl::InfinitePast();
  bool logged = false;
  while (!stopping.load()) {
    if (!Connected()) {
      SleepUnlessStopping(absl::Milliseconds(200));
      continue;
    }
    if (absl::Now() >= next_stats) {
      RefreshStats();
      next_stats = absl::Now() + kStatsEvery;
    }
    if (absl::Status s = EnsureConsumer(); !s.ok()) {
      if (!logged) LogWarning(s.message(), "; retrying");
      logged = true;
      SleepUnlessStopping(absl::Seconds(1));
      continue;
    }
    logged = false;
    int free = 0;
    {
      absl::MutexLock lock(&mu);
      auto has_room = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
        return stopping.load() || idle_workers > static_cast<int>(work.size());
      };
      mu.AwaitWithTimeout(absl::Condition(&has_room), kStatsEvery);
      free = idle_workers - static_cast<int>(work.size());
    }
    if (stopping.load()) break;
    if (free <= 0) continue;
    natsMsgList list{};
    jsErrCode jerr{};
    const natsStatus s = natsSubscription_Fetch(&list, sub, free, kFetchWaitMs, &jerr);
    if (s == NATS_TIMEOUT) continue;
    if (s != NATS_OK) {
      // The server may have lost the consumer (a fresh store): subscribe again.
      LogWarning("queue: fetch: ", natsStatus_GetText(s), jerr != 0 ? " (JetStream error " : "",
                 jerr != 0 ? absl::StrCat(static_cast<int>(jerr), ")") : "");
      natsSubscription_Destroy(sub);
      sub = nullptr;
      stream_ready.store(false);
      SleepUnlessStopping(absl::Milliseconds(500));
      continue;
    }
    {
      absl::MutexLock lock(&mu);
      for (int i = 0; i < list.Count; ++i) {
        work.push_back(list.Msgs[i]);
        list.Msgs[i] = nullptr;  // now the worker's
      }
    }
    natsMsgList_Destroy(&list);
  }
}

void AsyncQueue::State::Work() {
  httplib::Client invoker("127.0.0.1", invoke_port);
  invoker.set_keep_alive(true);
  invoker.set_tcp_nodelay(true);  // head and body go in two writes: no delayed-ACK stall
  invoker.set_connection_timeout(std::chrono::seconds(5));
  const auto limit = std::chrono::milliseconds(Millis(options.upstream_timeout + absl::Seconds(5)));
  invoker.set_read_timeout(limit);
  invoker.set_write_timeout(limit);
  for (;;) {
    natsMsg* msg = nullptr;
    {
      absl::MutexLock lock(&mu);
      ++idle_workers;
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
        return stopping.load() || !work.empty();
      };
      // Timed: `stopping` is set without the lock, so a wake-up may be missed once.
      while (!mu.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(500))) {
      }
      --idle_workers;
      if (stopping.load()) return;
      msg = work.front();
      work.pop_front();
    }
    Handle(msg, invoker);
    natsMsg_Destroy(msg);
  }
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
  counters.in_flight.fetch_sub(1, std::memory_order_relaxed);
  {
    absl::MutexLock lock(&mu);
    if (--in_flight_by_fn[key] <= 0) in_flight_by_fn.erase(key);
  }
  if (stopping.load() && result.status == 0) {
    natsMsg_Nak(msg, nullptr);  // the daemon is going down: the next run takes it
    return;
  }
  const RetryDecision decision = Decide(policy, result, attempt, absl::Now());
  if (decision.retry) {
    LogInfo("queue: call ", call->call_id, " to ", key, ": attempt ", attempt, " of ",
            policy.attempts, " answered ", result.status, "; retrying in ",
            absl::FormatDuration(decision.delay));
    natsMsg_NakWithDelay(msg, Millis(decision.delay), nullptr);
    counters.retried.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  // Acked before the callback: a crash now loses the callback, never repeats the call.
  jsErrCode jerr{};
  if (natsStatus s = natsMsg_AckSync(msg, nullptr, &jerr); s != NATS_OK) {
    LogWarning("queue: call ", call->call_id, " to ", key, ": ack: ", natsStatus_GetText(s),
               "; JetStream will deliver it again");
  }
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
