// AsyncQueue over cnats: the connection, the stream and its durable pull consumer, publish,
// cancel and the queue's statistics. The worker (fetch → invoke → ack/nak → callback) is in
// worker.cc; both share State (queue/state.h).
#include <nats/nats.h>

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "queue/message.h"
#include "queue/state.h"

namespace faasd::queue {

namespace {

// The one consumer of all functions before the worker had one per function.
constexpr char kLegacyDurable[] = "faasd-queue-worker";
constexpr absl::Duration kAckMargin = absl::Seconds(5);

std::string NatsError(natsStatus s, jsErrCode jerr) {
  std::string out = natsStatus_GetText(s);
  if (const char* last = nats_GetLastError(nullptr); last != nullptr && *last != '\0') {
    absl::StrAppend(&out, ": ", last);
  }
  if (jerr != 0) absl::StrAppend(&out, " (JetStream error ", static_cast<int>(jerr), ")");
  return out;
}

void OnConnected(natsConnection*, void* closure) {
  auto* st = static_cast<AsyncQueue::State*>(closure);
  LogInfo("queue: connected to NATS at ", st->options.nats_url);
}

void OnDisconnected(natsConnection*, void* closure) {
  auto* st = static_cast<AsyncQueue::State*>(closure);
  if (!st->stopping.load()) {
    LogWarning("queue: lost NATS at ", st->options.nats_url, "; async calls answer 503 until it is back");
  }
  st->stream_ready.store(false);  // the server may come back without our stream (a fresh store)
}

void OnReconnected(natsConnection*, void* closure) {
  auto* st = static_cast<AsyncQueue::State*>(closure);
  LogInfo("queue: reconnected to NATS at ", st->options.nats_url);
}

}  // namespace

bool AsyncQueue::State::Connected() const {
  return nc != nullptr && natsConnection_Status(nc) == NATS_CONN_STATUS_CONNECTED;
}

absl::Status AsyncQueue::State::EnsureStream() {
  absl::MutexLock lock(&ensure_mu);
  if (stream_ready.load()) return absl::OkStatus();
  jsStreamInfo* si = nullptr;
  jsErrCode jerr{};
  natsStatus s = js_GetStreamInfo(&si, js, options.stream.c_str(), nullptr, &jerr);
  if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) {
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    const std::string subjects = absl::StrCat(kSubjectPrefix, ".>");
    const char* subject_list[] = {subjects.c_str()};
    cfg.Name = options.stream.c_str();
    cfg.Description = "faasd-cpp asynchronous invocations";
    cfg.Subjects = subject_list;
    cfg.SubjectsLen = 1;
    cfg.Retention = js_WorkQueuePolicy;
    cfg.Storage = js_FileStorage;
    cfg.Duplicates = absl::ToInt64Nanoseconds(absl::Minutes(10));
    jerr = {};
    s = js_AddStream(&si, js, &cfg, nullptr, &jerr);
    if (s == NATS_OK) LogInfo("queue: created JetStream stream ", options.stream);
  }
  if (si != nullptr) jsStreamInfo_Destroy(si);
  if (s != NATS_OK) {
    return absl::UnavailableError(
        absl::StrCat("queue: stream ", options.stream, ": ", NatsError(s, jerr)));
  }
  stream_ready.store(true);
  return absl::OkStatus();
}

absl::Status AsyncQueue::State::RemoveLegacyConsumer() {
  if (legacy_consumer_removed) return absl::OkStatus();
  if (absl::Status s = EnsureStream(); !s.ok()) return s;
  jsErrCode jerr{};
  const natsStatus s =
      js_DeleteConsumer(js, options.stream.c_str(), kLegacyDurable, nullptr, &jerr);
  if (s == NATS_OK) {
    LogInfo("queue: removed consumer ", kLegacyDurable, " of an earlier version");
  } else if (s != NATS_NOT_FOUND && jerr != JSConsumerNotFoundErr) {
    return absl::UnavailableError(
        absl::StrCat("queue: remove consumer ", kLegacyDurable, ": ", NatsError(s, jerr)));
  }
  legacy_consumer_removed = true;
  return absl::OkStatus();
}

absl::Status AsyncQueue::State::SubscribeToFunction(const std::string& name, const std::string& ns,
                                                    int count,
                                                    std::vector<natsSubscription*>* subs) {
  if (absl::Status s = EnsureStream(); !s.ok()) return s;
  const std::string durable = ConsumerName(name, ns);
  const std::string filter = FunctionFilter(name, ns);
  // The ack wait must outlast an invocation.
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = options.stream.c_str();
  so.Config.AckPolicy = js_AckExplicit;
  so.Config.AckWait = absl::ToInt64Nanoseconds(options.upstream_timeout + kAckMargin);
  so.Config.MaxDeliver = -1;  // the retry policy decides, per function
  so.Config.MaxAckPending = 20000;
  jsErrCode jerr{};
  natsStatus s = NATS_OK;
  for (int i = 0; i < count; ++i) {
    natsSubscription* sub = nullptr;
    // The first subscription creates the consumer or binds to it; one left by a run with
    // another --upstream-timeout is replaced (its unacked messages stay in the stream and go
    // to the new one; nothing of this function is in flight here yet).
    std::string replaced_because;
    for (int attempt = 0; attempt < (i == 0 ? 2 : 1); ++attempt) {
      jerr = {};
      s = js_PullSubscribe(&sub, js, filter.c_str(), durable.c_str(), nullptr, &so, &jerr);
      if (s == NATS_OK && attempt > 0) {
        LogWarning("queue: consumer ", durable, " replaced: ", replaced_because);
      }
      if (s == NATS_OK || i > 0) break;
      replaced_because = NatsError(s, jerr);  // the caller reports a failure that stays
      jsErrCode ignored{};
      js_DeleteConsumer(js, options.stream.c_str(), durable.c_str(), nullptr, &ignored);
    }
    if (s != NATS_OK) break;
    subs->push_back(sub);
  }
  if (subs->empty()) {
    return absl::UnavailableError(
        absl::StrCat("queue: consumer ", durable, ": ", NatsError(s, jerr)));
  }
  return absl::OkStatus();
}

void AsyncQueue::State::RefreshStats() {
  jsOptions o;
  jsOptions_Init(&o);
  const std::string filter = absl::StrCat(kSubjectPrefix, ".>");
  o.Stream.Info.SubjectsFilter = filter.c_str();
  jsStreamInfo* si = nullptr;
  jsErrCode jerr{};
  if (js_GetStreamInfo(&si, js, options.stream.c_str(), &o, &jerr) != NATS_OK) return;
  std::map<std::string, int64_t> by_fn;
  if (si->State.Subjects != nullptr) {
    for (int i = 0; i < si->State.Subjects->Count; ++i) {
      const jsStreamStateSubject& subj = si->State.Subjects->List[i];
      by_fn[FunctionKeyOfSubject(subj.Subject)] += static_cast<int64_t>(subj.Msgs);
    }
  }
  counters.queued.store(static_cast<int64_t>(si->State.Msgs), std::memory_order_relaxed);
  const int64_t age_ms =
      si->State.Msgs == 0 || si->State.FirstTime == 0
          ? 0
          : (absl::GetCurrentTimeNanos() - si->State.FirstTime) / 1000000;
  counters.oldest_age_ms.store(std::max<int64_t>(0, age_ms), std::memory_order_relaxed);
  jsStreamInfo_Destroy(si);
  absl::MutexLock lock(&mu);
  queued_by_fn = std::move(by_fn);
}

AsyncQueue::AsyncQueue(QueueOptions options, provider::FunctionProvider& provider)
    : state_(std::make_unique<State>(std::move(options), provider)) {}

AsyncQueue::~AsyncQueue() { Stop(); }

const QueueOptions& AsyncQueue::options() const { return state_->options; }
const QueueCounters& AsyncQueue::counters() const { return state_->counters; }

void AsyncQueue::Connect() {
  State& st = *state_;
  if (st.started.exchange(true)) return;
  natsOptions_Create(&st.nopts);
  natsOptions_SetURL(st.nopts, st.options.nats_url.c_str());
  natsOptions_SetName(st.nopts, "faasd-cpp");
  natsOptions_SetMaxReconnect(st.nopts, -1);  // forever
  natsOptions_SetReconnectWait(st.nopts, 500);
  natsOptions_SetTimeout(st.nopts, 2000);
  natsOptions_SetRetryOnFailedConnect(st.nopts, true, OnConnected, &st);
  natsOptions_SetDisconnectedCB(st.nopts, OnDisconnected, &st);
  natsOptions_SetReconnectedCB(st.nopts, OnReconnected, &st);
  natsStatus s = natsConnection_Connect(&st.nc, st.nopts);
  if (s == NATS_OK) {
    LogInfo("queue: connected to NATS at ", st.options.nats_url);
  } else if (s == NATS_NOT_YET_CONNECTED && st.options.nats_supervised) {
    LogInfo("queue: connecting to the services' NATS at ", st.options.nats_url,
            " once it runs (async calls answer 503 until then)");
  } else if (s == NATS_NOT_YET_CONNECTED) {
    LogWarning("queue: NATS at ", st.options.nats_url,
               " not reachable yet; retrying in the background (async calls answer 503)");
  } else {
    LogError("queue: NATS at ", st.options.nats_url, ": ", NatsError(s, {}),
             "; async invocation is unavailable");
    st.nc = nullptr;
    return;
  }
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = absl::ToInt64Milliseconds(st.options.publish_timeout);
  if (s = natsConnection_JetStream(&st.js, st.nc, &jo); s != NATS_OK) {
    LogError("queue: JetStream context: ", NatsError(s, {}));
    st.js = nullptr;
  }
}

void AsyncQueue::Start(int invoke_port) {
  State& st = *state_;
  Connect();
  if (st.js == nullptr || st.dispatcher.joinable()) return;
  st.invoke_port = invoke_port;
  st.StartWorker();
  LogInfo("queue: async worker started: ", st.options.concurrency, " at once per function, stream ",
          st.options.stream, ", ack wait ",
          absl::FormatDuration(st.options.upstream_timeout + kAckMargin));
}

void AsyncQueue::Stop() {
  State& st = *state_;
  if (!st.started.load() || st.stopping.exchange(true)) return;
  st.StopWorker();
  if (st.js != nullptr) jsCtx_Destroy(st.js);
  if (st.nc != nullptr) {
    natsConnection_Close(st.nc);
    natsConnection_Destroy(st.nc);
  }
  if (st.nopts != nullptr) natsOptions_Destroy(st.nopts);
  // cnats delivers connection callbacks (which use `st`) on its own threads: wait for them.
  // The daemon is the library's only user.
  nats_CloseAndWait(2000);
  st.js = nullptr;
  st.nc = nullptr;
  st.nopts = nullptr;
}

absl::Status AsyncQueue::Publish(const QueuedCall& call) {
  State& st = *state_;
  const auto unavailable = [&](absl::string_view why) {
    return absl::UnavailableError(absl::StrCat("async call to function ", call.name, ".", call.ns,
                                               ": NATS at ", st.options.nats_url, ": ", why));
  };
  if (st.js == nullptr || st.stopping.load()) return unavailable("not connected");
  const std::string data = EncodeCall(call);
  const std::string subject = CallSubject(call);
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!st.Connected()) return unavailable("not connected");
    if (absl::Status ready = st.EnsureStream(); !ready.ok()) return unavailable(ready.message());
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = call.call_id.c_str();  // sets Nats-Msg-Id: JetStream drops a duplicate publish
    po.MaxWait = absl::ToInt64Milliseconds(st.options.publish_timeout);
    jsPubAck* ack = nullptr;
    jsErrCode jerr{};
    const natsStatus s =
        js_Publish(&ack, st.js, subject.c_str(), data.data(), static_cast<int>(data.size()), &po,
                   &jerr);
    if (ack != nullptr) jsPubAck_Destroy(ack);
    if (s == NATS_OK) {
      st.counters.published.fetch_add(1, std::memory_order_relaxed);
      const std::string key = absl::StrCat(call.name, ".", call.ns);
      absl::MutexLock lock(&st.mu);
      ++st.queued_by_fn[key];
      if (st.lanes.count(key) == 0) st.dispatch_now = true;  // its lane starts now
      return absl::OkStatus();
    }
    if (s == NATS_MAX_PAYLOAD) {
      return absl::OutOfRangeError(absl::StrCat(
          "async call to function ", call.name, ".", call.ns, ": ", data.size(),
          " bytes are over the NATS server's max_payload"));
    }
    if (s == NATS_NO_RESPONDERS && attempt == 0) {
      // The server came back without our stream: create it and try once more.
      st.stream_ready.store(false);
      continue;
    }
    return unavailable(NatsError(s, jerr));
  }
  return unavailable("no JetStream stream answered");
}

absl::Status AsyncQueue::Cancel(const std::string& call_id) {
  State& st = *state_;
  if (!IsValidCallId(call_id)) {
    return absl::NotFoundError(absl::StrCat("async call ", call_id.substr(0, 64), " not found"));
  }
  if (st.js == nullptr || !st.Connected()) {
    return absl::UnavailableError(
        absl::StrCat("cancel async call ", call_id, ": NATS at ", st.options.nats_url,
                     ": not connected"));
  }
  // The call's subject ends in its id; the stream knows which subjects hold messages.
  jsOptions o;
  jsOptions_Init(&o);
  const std::string filter = absl::StrCat(kSubjectPrefix, ".*.*.", call_id);
  o.Stream.Info.SubjectsFilter = filter.c_str();
  jsStreamInfo* si = nullptr;
  jsErrCode jerr{};
  natsStatus s = js_GetStreamInfo(&si, st.js, st.options.stream.c_str(), &o, &jerr);
  std::string subject;
  if (s == NATS_OK && si->State.Subjects != nullptr && si->State.Subjects->Count > 0) {
    subject = si->State.Subjects->List[0].Subject;
  }
  if (si != nullptr) jsStreamInfo_Destroy(si);
  const auto not_found = absl::NotFoundError(absl::StrCat(
      "async call ", call_id, " not found (never queued, finished or cancelled)"));
  if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) return not_found;
  if (s != NATS_OK) {
    return absl::UnavailableError(
        absl::StrCat("cancel async call ", call_id, ": ", NatsError(s, jerr)));
  }
  if (subject.empty()) return not_found;
  natsMsg* msg = nullptr;
  jerr = {};
  s = js_GetLastMsg(&msg, st.js, st.options.stream.c_str(), subject.c_str(), nullptr, &jerr);
  if (s == NATS_NOT_FOUND || jerr == JSNoMessageFoundErr) return not_found;
  if (s != NATS_OK) {
    return absl::UnavailableError(
        absl::StrCat("cancel async call ", call_id, ": ", NatsError(s, jerr)));
  }
  const uint64_t seq = natsMsg_GetSequence(msg);
  natsMsg_Destroy(msg);
  {
    // Marked first: a worker that fetched it a moment ago checks before invoking.
    absl::MutexLock lock(&st.mu);
    st.MarkCancelledLocked(call_id);
  }
  jerr = {};
  s = js_DeleteMsg(st.js, st.options.stream.c_str(), seq, nullptr, &jerr);
  if (s == NATS_NOT_FOUND || jerr == JSNoMessageFoundErr) return not_found;
  if (s != NATS_OK) {
    return absl::UnavailableError(
        absl::StrCat("cancel async call ", call_id, ": ", NatsError(s, jerr)));
  }
  st.counters.cancelled.fetch_add(1, std::memory_order_relaxed);
  LogInfo("queue: cancelled async call ", call_id, " (", subject, ")");
  return absl::OkStatus();
}

bool AsyncQueue::HasPendingCalls(const std::string& key) const {
  const State& st = *state_;
  absl::MutexLock lock(&st.mu);
  auto q = st.queued_by_fn.find(key);
  auto f = st.in_flight_by_fn.find(key);
  return (q != st.queued_by_fn.end() && q->second > 0) ||
         (f != st.in_flight_by_fn.end() && f->second > 0);
}

}  // namespace faasd::queue
