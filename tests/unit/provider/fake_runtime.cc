#include "fake_runtime.h"

#include <signal.h>

#include <deque>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "events_task.pb.h"

namespace faasd::provider::testing {

using containerd::api::v1::types::CREATED;
using containerd::api::v1::types::PAUSED;
using containerd::api::v1::types::RUNNING;
using containerd::api::v1::types::STOPPED;

// Events queued for one subscriber until its Run() hands them on.
class FakeEventStream final : public EventStream {
 public:
  explicit FakeEventStream(FakeRuntime& runtime) : runtime_(runtime) {
    absl::MutexLock l(&runtime_.mu_);
    runtime_.streams_.insert(this);
  }
  ~FakeEventStream() override {
    absl::MutexLock l(&runtime_.mu_);
    runtime_.streams_.erase(this);
  }

  absl::Status Run(const std::function<bool(const Envelope&)>& on_event) override {
    for (;;) {
      Envelope next;
      {
        absl::MutexLock l(&mu_);
        auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return cancelled_ || !queue_.empty();
        };
        mu_.Await(absl::Condition(&ready));
        if (cancelled_) return absl::CancelledError("events: cancelled");
        next = std::move(queue_.front());
        queue_.pop_front();
      }
      const bool more = on_event(next);
      {
        absl::MutexLock l(&runtime_.mu_);
        ++runtime_.events_handled_;
      }
      if (!more) return absl::OkStatus();
    }
  }
  void Cancel() override {
    absl::MutexLock l(&mu_);
    cancelled_ = true;
  }
  void Push(Envelope e) {
    absl::MutexLock l(&mu_);
    queue_.push_back(std::move(e));
  }

 private:
  FakeRuntime& runtime_;
  absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<Envelope> queue_ ABSL_GUARDED_BY(mu_);
};

namespace {

absl::Status NotFound(const std::string& what, const std::string& id) {
  return absl::NotFoundError(absl::StrCat(what, " ", id, ": not found"));
}

// The two filter forms the provider uses: `labels."k"` and `labels."k"==v`; "" is everything.
absl::StatusOr<bool> Matches(const ContainerRuntime::Container& c, const std::string& filter) {
  if (filter.empty()) return true;
  constexpr absl::string_view kPrefix = "labels.\"";
  const size_t close = filter.find('"', kPrefix.size());
  if (!absl::StartsWith(filter, kPrefix) || close == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("fake: filter ", filter, " not understood"));
  }
  const std::string key = filter.substr(kPrefix.size(), close - kPrefix.size());
  const std::string rest = filter.substr(close + 1);
  auto it = c.labels().find(key);
  if (it == c.labels().end()) return false;
  if (rest.empty()) return true;
  if (!absl::StartsWith(rest, "==")) {
    return absl::InvalidArgumentError(absl::StrCat("fake: filter ", filter, " not understood"));
  }
  return it->second == rest.substr(2);
}

// What a snapshot mounts as: nothing is mounted, the provider only hands it on.
containerd::Mounts OverlayMounts() {
  containerd::Mounts mounts(1);
  mounts[0].set_type("overlay");
  mounts[0].set_source("overlay");
  return mounts;
}

}  // namespace

FakeRuntime::~FakeRuntime() = default;

ContainerRuntime::Container* FakeRuntime::FindContainer(const std::string& ns,
                                                        const std::string& id) {
  auto& in_ns = containers_[ns];
  auto it = in_ns.find(id);
  return it == in_ns.end() ? nullptr : &it->second;
}

ContainerRuntime::Process* FakeRuntime::FindTask(const std::string& ns, const std::string& id) {
  auto& in_ns = tasks_[ns];
  auto it = in_ns.find(id);
  return it == in_ns.end() ? nullptr : &it->second;
}

absl::StatusOr<std::string> FakeRuntime::Version(absl::Duration) { return std::string("fake"); }

absl::Status FakeRuntime::EnsureNamespace(const std::string& ns, const containerd::Labels& labels) {
  absl::MutexLock l(&mu_);
  auto& have = namespaces_[ns];
  for (const auto& [k, v] : labels) have.emplace(k, v);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ContainerRuntime::Namespace>> FakeRuntime::ListNamespaces() {
  absl::MutexLock l(&mu_);
  std::vector<Namespace> out;
  for (const auto& [name, labels] : namespaces_) {
    Namespace& n = out.emplace_back();
    n.set_name(name);
    n.mutable_labels()->insert(labels.begin(), labels.end());
  }
  return out;
}

absl::StatusOr<ContainerRuntime::Namespace> FakeRuntime::GetNamespace(const std::string& ns) {
  absl::MutexLock l(&mu_);
  auto it = namespaces_.find(ns);
  if (it == namespaces_.end()) return NotFound("namespace", ns);
  Namespace n;
  n.set_name(ns);
  n.mutable_labels()->insert(it->second.begin(), it->second.end());
  return n;
}

absl::Status FakeRuntime::CreateNamespace(const std::string& ns, const containerd::Labels& labels) {
  absl::MutexLock l(&mu_);
  if (!namespaces_.emplace(ns, labels).second) {
    return absl::AlreadyExistsError(absl::StrCat("namespace ", ns, ": already exists"));
  }
  return absl::OkStatus();
}

absl::Status FakeRuntime::SetNamespaceLabels(const std::string& ns,
                                             const containerd::Labels& labels) {
  absl::MutexLock l(&mu_);
  auto it = namespaces_.find(ns);
  if (it == namespaces_.end()) return NotFound("namespace", ns);
  it->second = labels;
  return absl::OkStatus();
}

absl::Status FakeRuntime::DeleteNamespace(const std::string& ns) {
  absl::MutexLock l(&mu_);
  if (namespaces_.count(ns) == 0) return NotFound("namespace", ns);
  if (!containers_[ns].empty() || !images_[ns].empty() || !snapshots_[ns].empty()) {
    return absl::FailedPreconditionError(absl::StrCat("namespace ", ns, ": not empty"));
  }
  namespaces_.erase(ns);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ContainerRuntime::Image>> FakeRuntime::ListImages(
    const containerd::CallScope& scope) {
  absl::MutexLock l(&mu_);
  std::vector<Image> out;
  for (const std::string& name : images_[scope.ns]) out.emplace_back().set_name(name);
  return out;
}

absl::Status FakeRuntime::DeleteImage(const containerd::CallScope& scope, const std::string& name) {
  absl::MutexLock l(&mu_);
  if (images_[scope.ns].erase(name) == 0) return NotFound("image", name);
  return absl::OkStatus();
}

absl::StatusOr<std::string> FakeRuntime::CreateLease(const containerd::CallScope&, absl::Duration) {
  absl::MutexLock l(&mu_);
  std::string id = absl::StrCat("lease-", ++next_lease_);
  leases_.insert(id);
  return id;
}

absl::Status FakeRuntime::DeleteLease(const containerd::CallScope&, const std::string& id) {
  absl::MutexLock l(&mu_);
  if (leases_.erase(id) == 0) return NotFound("lease", id);
  return absl::OkStatus();
}

absl::StatusOr<containerd::Mounts> FakeRuntime::PrepareSnapshot(const containerd::CallScope& scope,
                                                                const std::string& key,
                                                                const std::string&,
                                                                const containerd::Labels&) {
  absl::MutexLock l(&mu_);
  if (!snapshots_[scope.ns].insert(key).second) {
    return absl::AlreadyExistsError(absl::StrCat("snapshot ", key, ": already exists"));
  }
  return OverlayMounts();
}

absl::StatusOr<containerd::Mounts> FakeRuntime::SnapshotMounts(const containerd::CallScope& scope,
                                                               const std::string& key) {
  absl::MutexLock l(&mu_);
  if (snapshots_[scope.ns].count(key) == 0) return NotFound("snapshot", key);
  return OverlayMounts();
}

absl::Status FakeRuntime::RemoveSnapshot(const containerd::CallScope& scope,
                                         const std::string& key) {
  absl::MutexLock l(&mu_);
  if (snapshots_[scope.ns].erase(key) == 0) return NotFound("snapshot", key);
  return absl::OkStatus();
}

std::set<std::string> FakeRuntime::SnapshotKeys(const std::string& ns) const {
  absl::MutexLock l(&mu_);
  auto it = snapshots_.find(ns);
  return it == snapshots_.end() ? std::set<std::string>{} : it->second;
}

absl::Status FakeRuntime::CreateContainer(const containerd::CallScope& scope, const Container& c) {
  absl::MutexLock l(&mu_);
  auto [it, made] = containers_[scope.ns].emplace(c.id(), c);
  if (!made) return absl::AlreadyExistsError(absl::StrCat("container ", c.id(), ": exists"));
  it->second.mutable_created_at()->set_seconds(++created_);
  return absl::OkStatus();
}

absl::StatusOr<ContainerRuntime::Container> FakeRuntime::GetContainer(
    const containerd::CallScope& scope, const std::string& id) {
  absl::MutexLock l(&mu_);
  if (Container* c = FindContainer(scope.ns, id)) return *c;
  return NotFound("container", id);
}

absl::StatusOr<std::vector<ContainerRuntime::Container>> FakeRuntime::ListContainers(
    const containerd::CallScope& scope, const std::string& filter) {
  std::vector<Container> out;
  std::function<void()> hook;
  {
    absl::MutexLock l(&mu_);
    ++container_listings_;
    for (const auto& [id, c] : containers_[scope.ns]) {
      absl::StatusOr<bool> match = Matches(c, filter);
      if (!match.ok()) return match.status();
      if (*match) out.push_back(c);
    }
    if (!absl::StrContains(filter, "==")) hook = after_listing_;
  }
  if (hook) hook();
  return out;
}

void FakeRuntime::SetHooks(
    std::function<void()> after_listing,
    std::function<void(const std::string& id, const containerd::Labels&)> before_labels) {
  absl::MutexLock l(&mu_);
  after_listing_ = std::move(after_listing);
  before_labels_ = std::move(before_labels);
}

absl::Status FakeRuntime::SetContainerLabels(const containerd::CallScope& scope,
                                             const std::string& id,
                                             const containerd::Labels& labels) {
  std::function<void(const std::string&, const containerd::Labels&)> hook;
  {
    absl::MutexLock l(&mu_);
    hook = before_labels_;
  }
  if (hook) hook(id, labels);
  absl::MutexLock l(&mu_);
  Container* c = FindContainer(scope.ns, id);
  if (c == nullptr) return NotFound("container", id);
  c->mutable_labels()->clear();
  c->mutable_labels()->insert(labels.begin(), labels.end());
  if (auto st = labels.find("faasd.state"); st != labels.end()) {
    journal_.push_back(absl::StrCat("label ", id, " ", st->second));
  }
  return absl::OkStatus();
}

absl::Status FakeRuntime::DeleteContainer(const containerd::CallScope& scope,
                                          const std::string& id) {
  absl::MutexLock l(&mu_);
  if (containers_[scope.ns].erase(id) == 0) return NotFound("container", id);
  journal_.push_back(absl::StrCat("delete ", id));
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> FakeRuntime::CreateTask(const containerd::CallScope& scope,
                                                 const std::string& id,
                                                 const containerd::Mounts& rootfs,
                                                 const containerd::TaskIo&) {
  absl::MutexLock l(&mu_);
  journal_.push_back(absl::StrCat("create ", id));
  if (containers_[scope.ns].count(id) == 0) return NotFound("container", id);
  if (rootfs.empty()) return absl::InvalidArgumentError(absl::StrCat("task ", id, ": no rootfs"));
  auto [it, made] = tasks_[scope.ns].try_emplace(id);
  if (!made) return absl::AlreadyExistsError(absl::StrCat("task ", id, ": already exists"));
  it->second.set_id(id);
  it->second.set_container_id(id);
  it->second.set_pid(++next_pid_);
  it->second.set_status(CREATED);
  return it->second.pid();
}

absl::StatusOr<uint32_t> FakeRuntime::StartTask(const containerd::CallScope& scope,
                                                const std::string& id) {
  absl::MutexLock l(&mu_);
  Process* p = FindTask(scope.ns, id);
  if (p == nullptr) return NotFound("task", id);
  if (p->status() != CREATED) {
    return absl::FailedPreconditionError(absl::StrCat("task ", id, ": not in created state"));
  }
  p->set_status(RUNNING);
  starts_.push_back(Start{id, clock_.Now()});
  journal_.push_back(absl::StrCat("start ", id));
  return p->pid();
}

absl::StatusOr<ContainerRuntime::Process> FakeRuntime::GetTask(const containerd::CallScope& scope,
                                                               const std::string& id) {
  absl::MutexLock l(&mu_);
  if (Process* p = FindTask(scope.ns, id)) return *p;
  return NotFound("task", id);
}

absl::StatusOr<std::vector<ContainerRuntime::Process>> FakeRuntime::ListTasks(
    const containerd::CallScope& scope) {
  absl::MutexLock l(&mu_);
  ++task_listings_;
  std::vector<Process> out;
  for (const auto& [id, p] : tasks_[scope.ns]) out.push_back(p);
  return out;
}

absl::Status FakeRuntime::PauseTask(const containerd::CallScope& scope, const std::string& id) {
  absl::MutexLock l(&mu_);
  Process* p = FindTask(scope.ns, id);
  if (p == nullptr) return NotFound("task", id);
  if (p->status() != RUNNING) {
    return absl::FailedPreconditionError(absl::StrCat("tasks.Pause ", id, ": not running"));
  }
  journal_.push_back(absl::StrCat("pause ", id));
  p->set_status(PAUSED);
  return absl::OkStatus();
}

absl::Status FakeRuntime::ResumeTask(const containerd::CallScope& scope, const std::string& id) {
  absl::MutexLock l(&mu_);
  Process* p = FindTask(scope.ns, id);
  if (p == nullptr) return NotFound("task", id);
  if (p->status() != PAUSED) {
    return absl::FailedPreconditionError(absl::StrCat("tasks.Resume ", id, ": not paused"));
  }
  journal_.push_back(absl::StrCat("resume ", id));
  p->set_status(RUNNING);
  auto frozen = frozen_signals_.find(absl::StrCat(scope.ns, "/", id));
  if (frozen != frozen_signals_.end()) {
    const int signal = frozen->second;
    frozen_signals_.erase(frozen);
    ExitLocked(scope.ns, id, 128 + signal);
  }
  return absl::OkStatus();
}

absl::Status FakeRuntime::KillTask(const containerd::CallScope& scope, const std::string& id,
                                   int signal, bool) {
  absl::MutexLock l(&mu_);
  Process* p = FindTask(scope.ns, id);
  if (p == nullptr) return NotFound("task", id);
  journal_.push_back(absl::StrCat("kill ", id, " ", signal));
  if (signal == SIGTERM && ignore_sigterm_) return absl::OkStatus();
  if (p->status() == PAUSED) {  // as a frozen cgroup: the signal waits for the thaw
    frozen_signals_[absl::StrCat(scope.ns, "/", id)] = signal;
    return absl::OkStatus();
  }
  if (p->status() != STOPPED) ExitLocked(scope.ns, id, 128 + signal);
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> FakeRuntime::WaitTask(const containerd::CallScope& scope,
                                               const std::string& id) {
  absl::MutexLock l(&mu_);
  auto exited = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Process* p = FindTask(scope.ns, id);
    return p == nullptr || p->status() == STOPPED;
  };
  mu_.AwaitWithTimeout(absl::Condition(&exited), scope.timeout);
  Process* p = FindTask(scope.ns, id);
  if (p == nullptr) return NotFound("task", id);
  if (p->status() != STOPPED) {
    return absl::DeadlineExceededError(absl::StrCat("tasks.Wait ", id, ": deadline exceeded"));
  }
  return p->exit_status();
}

absl::Status FakeRuntime::DeleteTask(const containerd::CallScope& scope, const std::string& id) {
  absl::MutexLock l(&mu_);
  Process* p = FindTask(scope.ns, id);
  if (p == nullptr) return NotFound("task", id);
  if (p->status() == RUNNING) {
    return absl::FailedPreconditionError(absl::StrCat("task ", id, ": still running"));
  }
  tasks_[scope.ns].erase(id);
  oom_kills_[scope.ns].erase(id);  // the cgroup goes with the task
  journal_.push_back(absl::StrCat("delete-task ", id));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<containerd::TaskMetrics>> FakeRuntime::TaskMetrics(
    const containerd::CallScope& scope, const std::vector<std::string>& ids) {
  absl::MutexLock l(&mu_);
  ++metrics_calls_;
  std::vector<containerd::TaskMetrics> out;
  for (const std::string& id : ids) {
    if (tasks_[scope.ns].count(id) == 0) continue;
    containerd::TaskMetrics& m = out.emplace_back();
    m.container_id = id;
    m.timestamp = clock_.Now();
    auto k = oom_kills_[scope.ns].find(id);
    m.oom_kills = k == oom_kills_[scope.ns].end() ? 0 : k->second;
  }
  return out;
}

std::unique_ptr<EventStream> FakeRuntime::SubscribeEvents(const std::vector<std::string>&) {
  return std::make_unique<FakeEventStream>(*this);
}

void FakeRuntime::EmitLocked(const std::string& topic, const std::string& ns,
                             const std::string& type, const std::string& payload) {
  EventStream::Envelope e;
  e.set_topic(topic);
  e.set_namespace_(ns);
  e.mutable_event()->set_type_url(type);
  e.mutable_event()->set_value(payload);
  for (FakeEventStream* s : streams_) s->Push(e);
}

void FakeRuntime::ExitLocked(const std::string& ns, const std::string& id, uint32_t status) {
  Process& p = tasks_[ns][id];
  p.set_status(STOPPED);
  p.set_exit_status(status);
  containerd::api::events::TaskExit exit;
  exit.set_container_id(id);
  exit.set_id(id);
  exit.set_pid(p.pid());
  exit.set_exit_status(status);
  EmitLocked("/tasks/exit", ns, "containerd.events.TaskExit", exit.SerializeAsString());
}

void FakeRuntime::Exit(const std::string& ns, const std::string& id, uint32_t status) {
  absl::MutexLock l(&mu_);
  if (tasks_[ns].count(id) != 0) ExitLocked(ns, id, status);
}

void FakeRuntime::Oom(const std::string& ns, const std::string& id) {
  absl::MutexLock l(&mu_);
  containerd::api::events::TaskOOM oom;
  oom.set_container_id(id);
  journal_.push_back(absl::StrCat("oom ", id));
  EmitLocked("/tasks/oom", ns, "containerd.events.TaskOOM", oom.SerializeAsString());
}

void FakeRuntime::CountOomKill(const std::string& ns, const std::string& id) {
  absl::MutexLock l(&mu_);
  if (tasks_[ns].count(id) != 0) ++oom_kills_[ns][id];
}

int FakeRuntime::MetricsCalls() const {
  absl::MutexLock l(&mu_);
  return metrics_calls_;
}

void FakeRuntime::IgnoreSigterm(bool ignore) {
  absl::MutexLock l(&mu_);
  ignore_sigterm_ = ignore;
}

void FakeRuntime::Vanish(const std::string& ns, const std::string& id) {
  absl::MutexLock l(&mu_);
  containers_[ns].erase(id);
  tasks_[ns].erase(id);
  snapshots_[ns].erase(id);
}

std::vector<FakeRuntime::Start> FakeRuntime::Starts() const {
  absl::MutexLock l(&mu_);
  return starts_;
}

std::vector<ContainerRuntime::Container> FakeRuntime::Containers(const std::string& ns) const {
  absl::MutexLock l(&mu_);
  std::vector<Container> out;
  if (auto it = containers_.find(ns); it != containers_.end()) {
    for (const auto& [id, c] : it->second) out.push_back(c);
  }
  std::sort(out.begin(), out.end(), [](const Container& a, const Container& b) {
    return a.created_at().seconds() < b.created_at().seconds();
  });
  return out;
}

std::vector<std::string> FakeRuntime::RunningTasks(const std::string& ns) const {
  absl::MutexLock l(&mu_);
  std::vector<std::string> out;
  if (auto it = tasks_.find(ns); it != tasks_.end()) {
    for (const auto& [id, p] : it->second) {
      if (p.status() == RUNNING) out.push_back(id);
    }
  }
  return out;
}

size_t FakeRuntime::Tasks(const std::string& ns) const {
  absl::MutexLock l(&mu_);
  auto it = tasks_.find(ns);
  return it == tasks_.end() ? 0 : it->second.size();
}

size_t FakeRuntime::Snapshots() const {
  absl::MutexLock l(&mu_);
  size_t n = 0;
  for (const auto& [ns, keys] : snapshots_) n += keys.size();
  return n;
}

size_t FakeRuntime::Leases() const {
  absl::MutexLock l(&mu_);
  return leases_.size();
}

int FakeRuntime::ContainerListings() const {
  absl::MutexLock l(&mu_);
  return container_listings_;
}

int FakeRuntime::TaskListings() const {
  absl::MutexLock l(&mu_);
  return task_listings_;
}

std::vector<std::string> FakeRuntime::Journal() const {
  absl::MutexLock l(&mu_);
  return journal_;
}

bool FakeRuntime::Subscribed() const {
  absl::MutexLock l(&mu_);
  return !streams_.empty();
}

int FakeRuntime::EventsHandled() const {
  absl::MutexLock l(&mu_);
  return events_handled_;
}

}  // namespace faasd::provider::testing
