// An in-memory ContainerRuntime for the provider's lifecycle tests: namespaces, containers,
// snapshots, leases and tasks held in maps, with containerd's rules where the provider relies
// on them (NotFound, AlreadyExists, a running task cannot be deleted, Wait blocks until the task
// exits or the deadline passes). Tasks never run anything: a test makes one exit with Exit(),
// which also sends /tasks/exit to every subscriber, as Oom() sends /tasks/oom.
//
// Thread-safe: the provider calls it from its request, reconcile, event and background threads
// while the test reads it.
#pragma once

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "provider/clock.h"
#include "provider/runtime.h"

namespace faasd::provider::testing {

class FakeEventStream;

class FakeRuntime final : public ContainerRuntime {
 public:
  // Task starts are stamped with `clock`.
  explicit FakeRuntime(const Clock& clock) : clock_(clock) {}
  ~FakeRuntime() override;

  absl::StatusOr<std::string> Version(absl::Duration timeout) override;
  std::string Address() const override { return "fake://containerd"; }

  absl::Status EnsureNamespace(const std::string& ns, const containerd::Labels& labels) override;
  absl::StatusOr<std::vector<Namespace>> ListNamespaces() override;
  absl::StatusOr<Namespace> GetNamespace(const std::string& ns) override;
  absl::Status CreateNamespace(const std::string& ns, const containerd::Labels& labels) override;
  absl::Status SetNamespaceLabels(const std::string& ns, const containerd::Labels& labels) override;
  absl::Status DeleteNamespace(const std::string& ns) override;

  absl::StatusOr<std::vector<Image>> ListImages(const containerd::CallScope& scope) override;
  absl::Status DeleteImage(const containerd::CallScope& scope, const std::string& name) override;

  absl::StatusOr<std::string> CreateLease(const containerd::CallScope& scope,
                                          absl::Duration expire) override;
  absl::Status DeleteLease(const containerd::CallScope& scope, const std::string& id) override;

  std::string Snapshotter() const override { return "fake"; }
  absl::StatusOr<containerd::Mounts> PrepareSnapshot(const containerd::CallScope& scope,
                                                     const std::string& key,
                                                     const std::string& parent,
                                                     const containerd::Labels& labels) override;
  absl::StatusOr<containerd::Mounts> SnapshotMounts(const containerd::CallScope& scope,
                                                    const std::string& key) override;
  absl::Status RemoveSnapshot(const containerd::CallScope& scope, const std::string& key) override;

  absl::Status CreateContainer(const containerd::CallScope& scope, const Container& c) override;
  absl::StatusOr<Container> GetContainer(const containerd::CallScope& scope,
                                         const std::string& id) override;
  absl::StatusOr<std::vector<Container>> ListContainers(const containerd::CallScope& scope,
                                                        const std::string& filter) override;
  absl::Status SetContainerLabels(const containerd::CallScope& scope, const std::string& id,
                                  const containerd::Labels& labels) override;
  absl::Status DeleteContainer(const containerd::CallScope& scope, const std::string& id) override;

  absl::StatusOr<uint32_t> CreateTask(const containerd::CallScope& scope, const std::string& id,
                                      const containerd::Mounts& rootfs,
                                      const containerd::TaskIo& io) override;
  absl::StatusOr<uint32_t> StartTask(const containerd::CallScope& scope,
                                     const std::string& id) override;
  absl::StatusOr<Process> GetTask(const containerd::CallScope& scope,
                                  const std::string& id) override;
  absl::StatusOr<std::vector<Process>> ListTasks(const containerd::CallScope& scope) override;
  absl::Status PauseTask(const containerd::CallScope& scope, const std::string& id) override;
  absl::Status ResumeTask(const containerd::CallScope& scope, const std::string& id) override;
  absl::Status KillTask(const containerd::CallScope& scope, const std::string& id, int signal,
                        bool all) override;
  absl::StatusOr<uint32_t> WaitTask(const containerd::CallScope& scope,
                                    const std::string& id) override;
  absl::Status DeleteTask(const containerd::CallScope& scope, const std::string& id) override;
  absl::StatusOr<std::vector<containerd::TaskMetrics>> TaskMetrics(
      const containerd::CallScope& scope, const std::vector<std::string>& ids) override;

  std::unique_ptr<EventStream> SubscribeEvents(const std::vector<std::string>& filters) override;

  // ---- what a test does ----
  // The task of `id` stops with `status`, and /tasks/exit goes out.
  void Exit(const std::string& ns, const std::string& id, uint32_t status);
  // /tasks/oom goes out for the task (containerd sends it before the task's exit).
  void Oom(const std::string& ns, const std::string& id);
  // The kernel OOM-kills a process of the task: its cgroup counts the kill, which TaskMetrics
  // reports as oom_kills until the task is deleted. No event (Oom() is containerd's account).
  void CountOomKill(const std::string& ns, const std::string& id);
  // While set, SIGTERM leaves tasks running (a function slow to stop); Exit() still stops them.
  void IgnoreSigterm(bool ignore);
  // The container, its task and its snapshot disappear behind the provider's back.
  void Vanish(const std::string& ns, const std::string& id);
  // Points where a test holds a provider thread, to order it against another: `after_listing`
  // runs when a listing of every function's containers (a filter naming none) has been taken,
  // before it is returned; `before_labels` before SetContainerLabels replaces a container's
  // labels. Each runs in the calling thread, outside the fake's lock; empty functions clear them.
  void SetHooks(
      std::function<void()> after_listing,
      std::function<void(const std::string& id, const containerd::Labels&)> before_labels);

  // ---- what a test reads ----
  struct Start {
    std::string id;
    absl::Time at;  // by the clock given at construction
  };
  std::vector<Start> Starts() const;  // every task start, oldest first
  // Containers of `ns`, oldest first.
  std::vector<Container> Containers(const std::string& ns) const;
  std::vector<std::string> RunningTasks(const std::string& ns) const;
  size_t Tasks(const std::string& ns) const;
  size_t Snapshots() const;
  std::set<std::string> SnapshotKeys(const std::string& ns) const;
  size_t Leases() const;
  // How many ListTasks calls were made: one a reconcile pass per namespace.
  int TaskListings() const;
  // How many ListContainers calls were made (with or without a filter).
  int ContainerListings() const;
  // One line an operation that changes state, in order: "create <id>" (a task, tried),
  // "start <id>", "kill <id> <signal>", "label <id> <faasd.state>", "delete <id>" (a container),
  // "delete-task <id>", "oom <id>" (the event sent).
  std::vector<std::string> Journal() const;
  // How many TaskMetrics calls were made.
  int MetricsCalls() const;
  bool Subscribed() const;
  // Events the subscribers have handled (their callback returned).
  int EventsHandled() const;

 private:
  friend class FakeEventStream;
  // The container or task `id` of `ns`; null when there is none.
  Container* FindContainer(const std::string& ns, const std::string& id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Process* FindTask(const std::string& ns, const std::string& id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EmitLocked(const std::string& topic, const std::string& ns, const std::string& type,
                  const std::string& payload) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ExitLocked(const std::string& ns, const std::string& id, uint32_t status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Clock& clock_;
  mutable absl::Mutex mu_;
  std::function<void()> after_listing_ ABSL_GUARDED_BY(mu_);
  std::function<void(const std::string&, const containerd::Labels&)> before_labels_
      ABSL_GUARDED_BY(mu_);
  std::map<std::string, containerd::Labels> namespaces_ ABSL_GUARDED_BY(mu_);
  // By namespace, then id.
  std::map<std::string, std::map<std::string, Container>> containers_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::map<std::string, Process>> tasks_ ABSL_GUARDED_BY(mu_);
  // OOM kills each task's cgroup counted, by namespace, then id.
  std::map<std::string, std::map<std::string, uint64_t>> oom_kills_ ABSL_GUARDED_BY(mu_);
  int metrics_calls_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, std::set<std::string>> snapshots_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::set<std::string>> images_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> leases_ ABSL_GUARDED_BY(mu_);
  std::set<FakeEventStream*> streams_ ABSL_GUARDED_BY(mu_);
  std::vector<Start> starts_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> journal_ ABSL_GUARDED_BY(mu_);
  bool ignore_sigterm_ ABSL_GUARDED_BY(mu_) = false;
  int task_listings_ ABSL_GUARDED_BY(mu_) = 0;
  int container_listings_ ABSL_GUARDED_BY(mu_) = 0;
  // Signals sent to paused tasks, delivered when they are resumed; by "<ns>/<id>".
  std::map<std::string, int> frozen_signals_ ABSL_GUARDED_BY(mu_);
  int events_handled_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t created_ ABSL_GUARDED_BY(mu_) = 0;  // containers' creation order
  uint32_t next_pid_ ABSL_GUARDED_BY(mu_) = 100;
  int next_lease_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace faasd::provider::testing
