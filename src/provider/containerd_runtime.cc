#include "provider/containerd_runtime.h"

namespace faasd::provider {

namespace {

// One Subscribe call on its own gRPC context, which Cancel() cancels.
class ContainerdEventStream final : public EventStream {
 public:
  ContainerdEventStream(containerd::EventService& events, std::vector<std::string> filters)
      : events_(events), filters_(std::move(filters)) {}

  absl::Status Run(const std::function<bool(const Envelope&)>& on_event) override {
    return events_.Subscribe(ctx_, filters_, on_event);
  }
  void Cancel() override { ctx_.TryCancel(); }

 private:
  containerd::EventService& events_;
  const std::vector<std::string> filters_;
  grpc::ClientContext ctx_;
};

}  // namespace

absl::StatusOr<std::string> ContainerdRuntime::Version(absl::Duration timeout) {
  return client_.version.Version(timeout);
}

std::string ContainerdRuntime::Address() const { return client_.connection.address(); }

absl::Status ContainerdRuntime::EnsureNamespace(const std::string& ns,
                                                const containerd::Labels& labels) {
  return client_.namespaces.Ensure(ns, labels);
}

absl::StatusOr<std::vector<ContainerRuntime::Namespace>> ContainerdRuntime::ListNamespaces() {
  return client_.namespaces.List();
}

absl::StatusOr<ContainerRuntime::Namespace> ContainerdRuntime::GetNamespace(const std::string& ns) {
  return client_.namespaces.Get(ns);
}

absl::Status ContainerdRuntime::CreateNamespace(const std::string& ns,
                                                const containerd::Labels& labels) {
  return client_.namespaces.Create(ns, labels);
}

absl::Status ContainerdRuntime::SetNamespaceLabels(const std::string& ns,
                                                   const containerd::Labels& labels) {
  return client_.namespaces.SetLabels(ns, labels);
}

absl::Status ContainerdRuntime::DeleteNamespace(const std::string& ns) {
  return client_.namespaces.Delete(ns);
}

absl::StatusOr<std::vector<ContainerRuntime::Image>> ContainerdRuntime::ListImages(
    const containerd::CallScope& scope) {
  return client_.images.List(scope);
}

absl::Status ContainerdRuntime::DeleteImage(const containerd::CallScope& scope,
                                            const std::string& name) {
  return client_.images.Delete(scope, name);
}

absl::StatusOr<std::string> ContainerdRuntime::CreateLease(const containerd::CallScope& scope,
                                                           absl::Duration expire) {
  return client_.leases.Create(scope, expire);
}

absl::Status ContainerdRuntime::DeleteLease(const containerd::CallScope& scope,
                                            const std::string& id) {
  return client_.leases.Delete(scope, id);
}

std::string ContainerdRuntime::Snapshotter() const { return client_.snapshots.snapshotter(); }

absl::StatusOr<containerd::Mounts> ContainerdRuntime::PrepareSnapshot(
    const containerd::CallScope& scope, const std::string& key, const std::string& parent,
    const containerd::Labels& labels) {
  return client_.snapshots.Prepare(scope, key, parent, labels);
}

absl::StatusOr<containerd::Mounts> ContainerdRuntime::SnapshotMounts(
    const containerd::CallScope& scope, const std::string& key) {
  return client_.snapshots.GetMounts(scope, key);
}

absl::Status ContainerdRuntime::RemoveSnapshot(const containerd::CallScope& scope,
                                               const std::string& key) {
  return client_.snapshots.Remove(scope, key);
}

absl::Status ContainerdRuntime::CreateContainer(const containerd::CallScope& scope,
                                                const Container& c) {
  return client_.containers.Create(scope, c);
}

absl::StatusOr<ContainerRuntime::Container> ContainerdRuntime::GetContainer(
    const containerd::CallScope& scope, const std::string& id) {
  return client_.containers.Get(scope, id);
}

absl::StatusOr<std::vector<ContainerRuntime::Container>> ContainerdRuntime::ListContainers(
    const containerd::CallScope& scope, const std::string& filter) {
  return client_.containers.List(scope, filter);
}

absl::Status ContainerdRuntime::SetContainerLabels(const containerd::CallScope& scope,
                                                   const std::string& id,
                                                   const containerd::Labels& labels) {
  return client_.containers.SetLabels(scope, id, labels);
}

absl::Status ContainerdRuntime::DeleteContainer(const containerd::CallScope& scope,
                                                const std::string& id) {
  return client_.containers.Delete(scope, id);
}

absl::StatusOr<uint32_t> ContainerdRuntime::CreateTask(const containerd::CallScope& scope,
                                                       const std::string& id,
                                                       const containerd::Mounts& rootfs,
                                                       const containerd::TaskIo& io) {
  return client_.tasks.Create(scope, id, rootfs, io);
}

absl::StatusOr<uint32_t> ContainerdRuntime::StartTask(const containerd::CallScope& scope,
                                                      const std::string& id) {
  return client_.tasks.Start(scope, id);
}

absl::StatusOr<ContainerRuntime::Process> ContainerdRuntime::GetTask(
    const containerd::CallScope& scope, const std::string& id) {
  return client_.tasks.Get(scope, id);
}

absl::StatusOr<std::vector<ContainerRuntime::Process>> ContainerdRuntime::ListTasks(
    const containerd::CallScope& scope) {
  return client_.tasks.List(scope);
}

absl::Status ContainerdRuntime::KillTask(const containerd::CallScope& scope, const std::string& id,
                                         int signal, bool all) {
  return client_.tasks.Kill(scope, id, signal, all);
}

absl::Status ContainerdRuntime::PauseTask(const containerd::CallScope& scope,
                                          const std::string& id) {
  return client_.tasks.Pause(scope, id);
}

absl::Status ContainerdRuntime::ResumeTask(const containerd::CallScope& scope,
                                           const std::string& id) {
  return client_.tasks.Resume(scope, id);
}

absl::StatusOr<uint32_t> ContainerdRuntime::WaitTask(const containerd::CallScope& scope,
                                                     const std::string& id) {
  return client_.tasks.Wait(scope, id);
}

absl::Status ContainerdRuntime::DeleteTask(const containerd::CallScope& scope,
                                           const std::string& id) {
  return client_.tasks.Delete(scope, id);
}

absl::StatusOr<std::vector<containerd::TaskMetrics>> ContainerdRuntime::TaskMetrics(
    const containerd::CallScope& scope, const std::vector<std::string>& ids) {
  return client_.tasks.Metrics(scope, ids);
}

std::unique_ptr<EventStream> ContainerdRuntime::SubscribeEvents(
    const std::vector<std::string>& filters) {
  return std::make_unique<ContainerdEventStream>(client_.events, filters);
}

}  // namespace faasd::provider
