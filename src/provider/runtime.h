// The container runtime as the provider drives it: namespaces, the images in them, leases,
// snapshots, containers, tasks and their events. These are containerd's operations, narrowed to
// the ones the provider calls; the data carried are containerd's own protobuf messages (a fake
// builds them as easily as containerd does). ContainerdRuntime is the real one; the unit tests
// hold an in-memory one.
//
// Contract: every call is scoped to a containerd namespace (CallScope, with a lease where one
// is given, and a deadline); errors keep containerd's codes (NotFound for a missing object,
// AlreadyExists, DeadlineExceeded when a wait runs out) and name the call and its subject.
// Implementations are thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "containerd/client.h"

namespace faasd::provider {

// One subscription to the runtime's events. Run() blocks, handing each event to `on_event`,
// until `on_event` returns false, Cancel() is called (from any thread, before or during Run) or
// the stream fails.
class EventStream {
 public:
  using Envelope = containerd::api::services::events::v1::Envelope;
  virtual ~EventStream() = default;
  virtual absl::Status Run(const std::function<bool(const Envelope&)>& on_event) = 0;
  virtual void Cancel() = 0;
};

class ContainerRuntime {
 public:
  using Namespace = containerd::api::services::namespaces::v1::Namespace;
  using Image = containerd::api::services::images::v1::Image;
  using Container = containerd::api::services::containers::v1::Container;
  using Process = containerd::api::v1::types::Process;

  virtual ~ContainerRuntime() = default;

  // The runtime's version (a health check), and where it is reached (for the log).
  virtual absl::StatusOr<std::string> Version(absl::Duration timeout) = 0;
  virtual std::string Address() const = 0;

  // Namespaces. Ensure creates `ns` with `labels`, or adds the labels it lacks; SetLabels
  // replaces them; Delete fails (FailedPrecondition) while the namespace holds anything.
  virtual absl::Status EnsureNamespace(const std::string& ns, const containerd::Labels& labels) = 0;
  virtual absl::StatusOr<std::vector<Namespace>> ListNamespaces() = 0;
  virtual absl::StatusOr<Namespace> GetNamespace(const std::string& ns) = 0;
  virtual absl::Status CreateNamespace(const std::string& ns, const containerd::Labels& labels) = 0;
  virtual absl::Status SetNamespaceLabels(const std::string& ns,
                                          const containerd::Labels& labels) = 0;
  virtual absl::Status DeleteNamespace(const std::string& ns) = 0;

  // Image records of a namespace (pulled images live there too; see ImageSource).
  virtual absl::StatusOr<std::vector<Image>> ListImages(const containerd::CallScope& scope) = 0;
  virtual absl::Status DeleteImage(const containerd::CallScope& scope, const std::string& name) = 0;

  // A lease keeps what is made under it from garbage collection until it is deleted, or until
  // `expire` passes.
  virtual absl::StatusOr<std::string> CreateLease(const containerd::CallScope& scope,
                                                  absl::Duration expire) = 0;
  virtual absl::Status DeleteLease(const containerd::CallScope& scope, const std::string& id) = 0;

  // Snapshots: a container's writable rootfs, keyed by the container id, on top of an image's
  // chain id.
  virtual std::string Snapshotter() const = 0;
  virtual absl::StatusOr<containerd::Mounts> PrepareSnapshot(const containerd::CallScope& scope,
                                                             const std::string& key,
                                                             const std::string& parent,
                                                             const containerd::Labels& labels) = 0;
  virtual absl::StatusOr<containerd::Mounts> SnapshotMounts(const containerd::CallScope& scope,
                                                            const std::string& key) = 0;
  virtual absl::Status RemoveSnapshot(const containerd::CallScope& scope,
                                      const std::string& key) = 0;

  // Containers. `filter` is containerd's filter syntax (`labels."faasd.function"==echo`; "" is
  // every container); SetContainerLabels replaces the labels.
  virtual absl::Status CreateContainer(const containerd::CallScope& scope, const Container& c) = 0;
  virtual absl::StatusOr<Container> GetContainer(const containerd::CallScope& scope,
                                                 const std::string& id) = 0;
  virtual absl::StatusOr<std::vector<Container>> ListContainers(const containerd::CallScope& scope,
                                                                const std::string& filter) = 0;
  virtual absl::Status SetContainerLabels(const containerd::CallScope& scope, const std::string& id,
                                          const containerd::Labels& labels) = 0;
  virtual absl::Status DeleteContainer(const containerd::CallScope& scope,
                                       const std::string& id) = 0;

  // Tasks, by container id. CreateTask makes the process (not started) and returns its pid;
  // GetTask is NotFound when the container has none; WaitTask blocks until the task exits
  // (its exit status) or scope.timeout passes (DeadlineExceeded). TaskMetrics leaves out
  // containers without a task.
  virtual absl::StatusOr<uint32_t> CreateTask(const containerd::CallScope& scope,
                                              const std::string& id,
                                              const containerd::Mounts& rootfs,
                                              const containerd::TaskIo& io) = 0;
  virtual absl::StatusOr<uint32_t> StartTask(const containerd::CallScope& scope,
                                             const std::string& id) = 0;
  virtual absl::StatusOr<Process> GetTask(const containerd::CallScope& scope,
                                          const std::string& id) = 0;
  virtual absl::StatusOr<std::vector<Process>> ListTasks(const containerd::CallScope& scope) = 0;
  virtual absl::Status KillTask(const containerd::CallScope& scope, const std::string& id,
                                int signal, bool all) = 0;
  virtual absl::StatusOr<uint32_t> WaitTask(const containerd::CallScope& scope,
                                            const std::string& id) = 0;
  // Freezes a running task (status PAUSED, memory kept) and thaws it (RUNNING again). A signal
  // sent to a paused task takes effect when it is resumed.
  virtual absl::Status PauseTask(const containerd::CallScope& scope, const std::string& id) = 0;
  virtual absl::Status ResumeTask(const containerd::CallScope& scope, const std::string& id) = 0;
  virtual absl::Status DeleteTask(const containerd::CallScope& scope, const std::string& id) = 0;
  virtual absl::StatusOr<std::vector<containerd::TaskMetrics>> TaskMetrics(
      const containerd::CallScope& scope, const std::vector<std::string>& ids) = 0;

  // Events of every namespace matching `filters` (`topic=="/tasks/exit"`); nothing flows until
  // the stream is Run.
  virtual std::unique_ptr<EventStream> SubscribeEvents(const std::vector<std::string>& filters) = 0;
};

}  // namespace faasd::provider
