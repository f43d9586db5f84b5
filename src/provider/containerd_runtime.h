// The ContainerRuntime on containerd: each call is the containerd::Client call of the same
// name, and events come from its event service. Thread-safe, as the client is; borrows it.
#pragma once

#include "containerd/client.h"
#include "provider/runtime.h"

namespace faasd::provider {

class ContainerdRuntime final : public ContainerRuntime {
 public:
  explicit ContainerdRuntime(containerd::Client& client) : client_(client) {}

  absl::StatusOr<std::string> Version(absl::Duration timeout) override;
  std::string Address() const override;

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

  std::string Snapshotter() const override;
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
  absl::Status KillTask(const containerd::CallScope& scope, const std::string& id, int signal,
                        bool all) override;
  absl::StatusOr<uint32_t> WaitTask(const containerd::CallScope& scope,
                                    const std::string& id) override;
  absl::Status PauseTask(const containerd::CallScope& scope, const std::string& id) override;
  absl::Status ResumeTask(const containerd::CallScope& scope, const std::string& id) override;
  absl::Status DeleteTask(const containerd::CallScope& scope, const std::string& id) override;
  absl::StatusOr<std::vector<containerd::TaskMetrics>> TaskMetrics(
      const containerd::CallScope& scope, const std::vector<std::string>& ids) override;

  std::unique_ptr<EventStream> SubscribeEvents(const std::vector<std::string>& filters) override;

 private:
  containerd::Client& client_;
};

}  // namespace faasd::provider
