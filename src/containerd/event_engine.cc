#include "containerd/event_engine.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "base/thread_name.h"

namespace faasd::containerd {

namespace ee = grpc_event_engine::experimental;

namespace {
int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

struct OnDemandEventEngine::State {
  explicit State(absl::Duration linger) : linger(linger) {}
  const absl::Duration linger;
  absl::Mutex mu;
  // Ordered by when each is due (steady clock, ns), then by the order they were scheduled in.
  using Tasks = std::map<std::pair<int64_t, uint64_t>, absl::AnyInvocable<void()>>;
  Tasks tasks ABSL_GUARDED_BY(mu);
  uint64_t next_seq ABSL_GUARDED_BY(mu) = 1;
  uint64_t changes ABSL_GUARDED_BY(mu) = 0;  // bumped by every change: the thread re-plans
  bool running ABSL_GUARDED_BY(mu) = false;  // a thread is in Work()
  bool stop ABSL_GUARDED_BY(mu) = false;
  std::thread thread ABSL_GUARDED_BY(mu);
};

bool UseOnDemandEventEngine() {
  const char* experiments = std::getenv("GRPC_EXPERIMENTS");
  if (experiments != nullptr && *experiments != '\0') return false;
  ee::SetEventEngineFactory([] { return std::make_unique<OnDemandEventEngine>(); });
  return true;
}

OnDemandEventEngine::OnDemandEventEngine(absl::Duration linger)
    : state_(std::make_shared<State>(linger)) {}

OnDemandEventEngine::~OnDemandEventEngine() {
  std::thread thread;
  State::Tasks dropped;  // destroyed after the lock is released
  {
    absl::MutexLock l(&state_->mu);
    state_->stop = true;
    thread = std::move(state_->thread);
    dropped.swap(state_->tasks);
  }
  if (!thread.joinable()) return;
  if (thread.get_id() == std::this_thread::get_id()) {
    thread.detach();  // a task of its own released the engine: its State outlives it
  } else {
    thread.join();
  }
}

bool OnDemandEventEngine::IsWorkerThread() {
  absl::MutexLock l(&state_->mu);
  return state_->running && state_->thread.get_id() == std::this_thread::get_id();
}

bool OnDemandEventEngine::HasThread() const {
  absl::MutexLock l(&state_->mu);
  return state_->running;
}

std::unique_ptr<ee::EventEngine::DNSResolver> OnDemandEventEngine::GetDNSResolver(
    const DNSResolver::ResolverOptions&) {
  return nullptr;
}

absl::StatusOr<std::unique_ptr<ee::EventEngine::Listener>> OnDemandEventEngine::CreateListener(
    Listener::AcceptCallback, absl::AnyInvocable<void(absl::Status)>, const ee::EndpointConfig&,
    std::unique_ptr<ee::MemoryAllocatorFactory>) {
  return absl::UnimplementedError("faasd's gRPC event engine serves no listeners");
}

ee::EventEngine::ConnectionHandle OnDemandEventEngine::Connect(OnConnectCallback on_connect,
                                                               const ResolvedAddress&,
                                                               const ee::EndpointConfig&,
                                                               ee::MemoryAllocator, Duration) {
  Run([on_connect = std::move(on_connect)]() mutable {
    on_connect(absl::UnimplementedError("faasd's gRPC event engine makes no connections"));
  });
  return ConnectionHandle{{0, 0}};
}

bool OnDemandEventEngine::CancelConnect(ConnectionHandle) { return false; }

void OnDemandEventEngine::Run(Closure* closure) {
  Schedule(Duration::zero(), [closure] { closure->Run(); });
}

void OnDemandEventEngine::Run(absl::AnyInvocable<void()> closure) {
  Schedule(Duration::zero(), std::move(closure));
}

ee::EventEngine::TaskHandle OnDemandEventEngine::RunAfter(Duration when, Closure* closure) {
  return Schedule(when, [closure] { closure->Run(); });
}

ee::EventEngine::TaskHandle OnDemandEventEngine::RunAfter(Duration when,
                                                          absl::AnyInvocable<void()> closure) {
  return Schedule(when, std::move(closure));
}

bool OnDemandEventEngine::Cancel(TaskHandle handle) {
  absl::AnyInvocable<void()> cancelled;  // destroyed after the lock is released
  absl::MutexLock l(&state_->mu);
  auto it = state_->tasks.find({handle.keys[1], static_cast<uint64_t>(handle.keys[0])});
  if (it == state_->tasks.end()) return false;  // run, running, or never scheduled here
  cancelled = std::move(it->second);
  state_->tasks.erase(it);
  ++state_->changes;
  return true;
}

ee::EventEngine::TaskHandle OnDemandEventEngine::Schedule(Duration when,
                                                          absl::AnyInvocable<void()> task) {
  State& s = *state_;
  std::thread finished;  // a thread that has left Work(): joined after the lock is released
  TaskHandle handle;
  {
    absl::MutexLock l(&s.mu);
    const int64_t due = NowNs() + std::max<int64_t>(0, when.count());
    const uint64_t seq = s.next_seq++;
    s.tasks.emplace(std::make_pair(due, seq), std::move(task));
    ++s.changes;
    if (!s.running && !s.stop) {
      finished = std::move(s.thread);
      s.running = true;
      s.thread = std::thread([state = state_] { Work(state); });
    }
    handle = TaskHandle{{static_cast<intptr_t>(seq), static_cast<intptr_t>(due)}};
  }
  if (finished.joinable()) finished.join();
  return handle;
}

void OnDemandEventEngine::Work(const std::shared_ptr<State>& state) {
  NameThisThread("faasd-grpc-ee");
  State& s = *state;
  absl::MutexLock l(&s.mu);
  int64_t idle_until = NowNs() + absl::ToInt64Nanoseconds(s.linger);
  while (!s.stop) {
    const int64_t now = NowNs();
    if (s.tasks.empty() || s.tasks.begin()->first.first > now) {
      if (s.tasks.empty() && now >= idle_until) break;
      const int64_t until = s.tasks.empty() ? idle_until : s.tasks.begin()->first.first;
      const uint64_t seen = s.changes;
      auto changed = [&s, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu) {
        return s.stop || s.changes != seen;
      };
      s.mu.AwaitWithTimeout(absl::Condition(&changed), absl::Nanoseconds(until - now));
      continue;
    }
    absl::AnyInvocable<void()> task = std::move(s.tasks.begin()->second);
    s.tasks.erase(s.tasks.begin());
    s.mu.Unlock();
    task();
    task = nullptr;
    s.mu.Lock();
    idle_until = NowNs() + absl::ToInt64Nanoseconds(s.linger);
  }
  s.running = false;
}

}  // namespace faasd::containerd
