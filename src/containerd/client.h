// Typed faces over containerd's gRPC services, one small class per service, in the manner of
// containerd's Go client. Every call carries the containerd namespace (and, where given, a lease)
// as gRPC metadata and a deadline. gRPC errors become absl::Status with the same code and a
// message naming the call and its subject ("containers.Create fn-1a2b: already exists").
//
// All classes are thread-safe: they hold only a shared gRPC channel and stubs, which are.
// Messages are containerd's own generated protobuf types; this layer does not re-model them.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services_containers_v1_containers.grpc.pb.h"
#include "services_content_v1_content.grpc.pb.h"
#include "services_diff_v1_diff.grpc.pb.h"
#include "services_events_v1_events.grpc.pb.h"
#include "services_images_v1_images.grpc.pb.h"
#include "services_leases_v1_leases.grpc.pb.h"
#include "services_namespaces_v1_namespace.grpc.pb.h"
#include "services_snapshots_v1_snapshots.grpc.pb.h"
#include "services_tasks_v1_tasks.grpc.pb.h"
#include "services_version_v1_version.grpc.pb.h"
#include "types_metrics.pb.h"
#include "types_task_task.pb.h"

namespace faasd::containerd {

namespace api = ::containerd;
using Mounts = std::vector<api::types::Mount>;
using Labels = std::map<std::string, std::string>;

// A protobuf timestamp (containerd's created_at, exited_at, metrics' timestamp) as absl::Time.
inline absl::Time ToTime(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

// Who a call is for: the containerd namespace, an optional lease (content and snapshots made
// under it are kept from GC until the lease is deleted), and how long it may take.
struct CallScope {
  std::string ns;
  std::string lease;
  absl::Duration timeout = absl::Seconds(30);
};

// Translates a gRPC status, prefixing `what` ("images.Get 127.0.0.1:5000/echo:latest").
absl::Status FromGrpc(const grpc::Status& status, absl::string_view what);

// One connection to containerd over its unix socket. The faces below borrow it.
class Connection {
 public:
  // `address` is a socket path ("/run/containerd/containerd.sock") or a "unix://" URI.
  explicit Connection(const std::string& address);
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  const std::string& address() const { return address_; }
  void Prepare(grpc::ClientContext& ctx, const CallScope& scope) const;

 private:
  std::string address_;
  std::shared_ptr<grpc::Channel> channel_;
};

class VersionService {
 public:
  explicit VersionService(const Connection& conn);
  absl::StatusOr<std::string> Version(absl::Duration timeout = absl::Seconds(5));

 private:
  const Connection& conn_;
  std::unique_ptr<api::services::version::v1::Version::Stub> stub_;
};

class NamespaceService {
 public:
  explicit NamespaceService(const Connection& conn);
  // Creates the namespace with `labels` if absent; adds missing labels if present.
  absl::Status Ensure(const std::string& ns, const Labels& labels);
  absl::StatusOr<std::vector<api::services::namespaces::v1::Namespace>> List();
  // NotFound when absent.
  absl::StatusOr<api::services::namespaces::v1::Namespace> Get(const std::string& ns);
  // AlreadyExists when present.
  absl::Status Create(const std::string& ns, const Labels& labels);
  // Replaces the labels. NotFound when absent.
  absl::Status SetLabels(const std::string& ns, const Labels& labels);
  // FailedPrecondition while it holds anything (images, content, snapshots, containers).
  absl::Status Delete(const std::string& ns);

 private:
  const Connection& conn_;
  std::unique_ptr<api::services::namespaces::v1::Namespaces::Stub> stub_;
};

class LeaseService {
 public:
  explicit LeaseService(const Connection& conn);
  // A lease that containerd's GC drops by itself after `expire` if we never delete it.
  absl::StatusOr<std::string> Create(const CallScope& scope, absl::Duration expire);
  absl::Status Delete(const CallScope& scope, const std::string& id);
  // Make the lease `scope.lease` a GC root of a blob (by digest) or of a snapshot (by key) that
  // may already exist. What a call made under a lease creates joins it by itself; what it only
  // finds there does not, and the GC may take it the moment nothing else references it (e.g.
  // the layers a failed pull left behind). Hold first, then look: what the GC took before the
  // hold is then simply not found.
  absl::Status HoldContent(const CallScope& scope, const std::string& digest);
  absl::Status HoldSnapshot(const CallScope& scope, const std::string& snapshotter,
                            const std::string& key);

 private:
  absl::Status AddResource(const CallScope& scope, const std::string& type, const std::string& id);

  const Connection& conn_;
  std::unique_ptr<api::services::leases::v1::Leases::Stub> stub_;
};

struct ContentInfo {
  std::string digest;
  int64_t size = 0;
  Labels labels;
};

// Streams one blob into the content store. Write() chunks in order, then Commit().
class ContentWriter {
 public:
  virtual ~ContentWriter() = default;
  virtual absl::Status Write(std::string_view chunk) = 0;
  // Commits with containerd checking size and digest; AlreadyExists counts as success.
  virtual absl::Status Commit(const Labels& labels) = 0;
  // Bytes containerd holds already: 0, or the whole blob when it has it for another namespace.
  virtual int64_t offset() const = 0;
};

class ContentStore {
 public:
  explicit ContentStore(const Connection& conn);
  // NotFound when absent.
  absl::StatusOr<ContentInfo> Info(const CallScope& scope, const std::string& digest);
  // Sets `labels` (merged with the existing ones) on a blob.
  absl::Status AddLabels(const CallScope& scope, const std::string& digest, const Labels& labels);
  absl::StatusOr<std::string> ReadAll(const CallScope& scope, const std::string& digest,
                                      int64_t max_bytes);
  // `scope` must outlive the writer. FailedPrecondition when `ref` holds a partial write;
  // AlreadyExists when this namespace has the blob.
  absl::StatusOr<std::unique_ptr<ContentWriter>> OpenWriter(const CallScope& scope,
                                                            const std::string& ref,
                                                            const std::string& expected_digest,
                                                            int64_t total);
  // Puts the blob `digest` of `size` bytes into this namespace unless it is there: `write`
  // streams its bytes into the writer and may add to the labels committed with them. When the
  // blob is there already, or appears meanwhile (a concurrent pull), only `labels` are added;
  // when containerd holds it for another namespace, it is committed here without a byte
  // written. True when `write` ran.
  absl::StatusOr<bool> Ingest(const CallScope& scope, const std::string& ref,
                              const std::string& digest, int64_t size, Labels labels,
                              const std::function<absl::Status(ContentWriter&, Labels*)>& write);
  // Drops what an interrupted write under `ref` holds. Ingest does it when `write` fails.
  absl::Status Abort(const CallScope& scope, const std::string& ref);

 private:
  const Connection& conn_;
  std::unique_ptr<api::services::content::v1::Content::Stub> stub_;
};

class ImageStore {
 public:
  explicit ImageStore(const Connection& conn);
  absl::StatusOr<api::services::images::v1::Image> Get(const CallScope& scope,
                                                       const std::string& name);
  // Creates the image record, or updates target and labels when it exists.
  absl::Status Put(const CallScope& scope, const api::services::images::v1::Image& image);
  absl::StatusOr<std::vector<api::services::images::v1::Image>> List(const CallScope& scope);
  // Deletes the record and waits for containerd's garbage collection of what only it held.
  absl::Status Delete(const CallScope& scope, const std::string& name);

 private:
  const Connection& conn_;
  std::unique_ptr<api::services::images::v1::Images::Stub> stub_;
};

class SnapshotService {
 public:
  SnapshotService(const Connection& conn, std::string snapshotter);
  const std::string& snapshotter() const { return snapshotter_; }
  absl::StatusOr<Mounts> Prepare(const CallScope& scope, const std::string& key,
                                 const std::string& parent, const Labels& labels);
  absl::StatusOr<Mounts> GetMounts(const CallScope& scope, const std::string& key);
  absl::Status Commit(const CallScope& scope, const std::string& name, const std::string& key,
                      const Labels& labels);
  // NotFound when absent.
  absl::Status Stat(const CallScope& scope, const std::string& key);
  absl::Status Remove(const CallScope& scope, const std::string& key);

 private:
  const Connection& conn_;
  std::string snapshotter_;
  std::unique_ptr<api::services::snapshots::v1::Snapshots::Stub> stub_;
};

class DiffService {
 public:
  explicit DiffService(const Connection& conn);
  // Unpacks the layer `diff` onto `mounts`; returns the uncompressed descriptor.
  absl::StatusOr<api::types::Descriptor> Apply(const CallScope& scope,
                                               const api::types::Descriptor& diff,
                                               const Mounts& mounts);

 private:
  const Connection& conn_;
  std::unique_ptr<api::services::diff::v1::Diff::Stub> stub_;
};

class ContainerStore {
 public:
  explicit ContainerStore(const Connection& conn);
  absl::Status Create(const CallScope& scope, const api::services::containers::v1::Container& c);
  absl::StatusOr<api::services::containers::v1::Container> Get(const CallScope& scope,
                                                               const std::string& id);
  // `filter` uses containerd's filter syntax, e.g. `labels."faasd.function"==echo`; "" = all.
  absl::StatusOr<std::vector<api::services::containers::v1::Container>> List(
      const CallScope& scope, const std::string& filter);
  // Replaces the container's labels with `labels`.
  absl::Status SetLabels(const CallScope& scope, const std::string& id, const Labels& labels);
  absl::Status Delete(const CallScope& scope, const std::string& id);

 private:
  const Connection& conn_;
  std::unique_ptr<api::services::containers::v1::Containers::Stub> stub_;
};

struct TaskIo {
  std::string stdout_uri;  // e.g. "file:///var/lib/faasd/logs/fn.log"; "" = discard
  std::string stderr_uri;
};

// One task's cgroup statistics as containerd sampled them, decoded from the Any in its
// containerd.types.Metric: io.containerd.cgroups.v1.Metrics (cgroup v1, this platform) or
// io.containerd.cgroups.v2.Metrics (unified hierarchy). Counters run from the task's start.
struct TaskMetrics {
  std::string container_id;
  absl::Time timestamp;  // when containerd sampled them
  int cgroup_version = 0;
  uint64_t cpu_usage_ns = 0;  // user + system CPU time of every process in the task
  uint64_t cpu_user_ns = 0;
  uint64_t cpu_system_ns = 0;
  uint64_t cpu_throttled_periods = 0;  // CFS periods that ran out of quota
  uint64_t cpu_throttled_ns = 0;
  // v1 memory.usage_in_bytes, v2 memory.current: includes page cache.
  uint64_t memory_usage_bytes = 0;
  // usage minus inactive file cache (v1: total_inactive_file, v2: inactive_file), floored at
  // 0: what kubelet and cAdvisor call the working set; cache the kernel can drop is left out.
  uint64_t memory_working_set_bytes = 0;
  uint64_t memory_max_usage_bytes = 0;         // v1 memory.max_usage_in_bytes; 0 on v2
  std::optional<uint64_t> memory_limit_bytes;  // nullopt when the cgroup has no limit
  // Times usage hit the limit: v1 memory.failcnt, v2 memory.events "max".
  uint64_t memory_failcnt = 0;
  // Processes the OOM killer killed in this cgroup (v1 needs kernel 4.13+, else 0).
  uint64_t oom_kills = 0;
  bool under_oom = false;  // v1 memory.oom_control under_oom; always false on v2
  uint64_t pids = 0;
};

// Decodes one containerd.types.Metric. Unimplemented (naming the container and the type) for a
// stats type other than the two above; Internal when its payload does not parse.
absl::StatusOr<TaskMetrics> DecodeTaskMetrics(const api::types::Metric& metric);

class TaskService {
 public:
  explicit TaskService(const Connection& conn);
  // Creates the task (process created, not started). Returns its pid.
  absl::StatusOr<uint32_t> Create(const CallScope& scope, const std::string& container_id,
                                  const Mounts& rootfs, const TaskIo& io);
  absl::StatusOr<uint32_t> Start(const CallScope& scope, const std::string& container_id);
  // NotFound when the container has no task.
  absl::StatusOr<api::v1::types::Process> Get(const CallScope& scope,
                                              const std::string& container_id);
  absl::StatusOr<std::vector<api::v1::types::Process>> List(const CallScope& scope);
  absl::Status Kill(const CallScope& scope, const std::string& container_id, int signal, bool all);
  // Freezes the task's processes (its cgroup) and thaws them; a signal sent while frozen is
  // delivered on Resume.
  absl::Status Pause(const CallScope& scope, const std::string& container_id);
  absl::Status Resume(const CallScope& scope, const std::string& container_id);
  // Blocks until the task exits or scope.timeout passes (DeadlineExceeded).
  absl::StatusOr<uint32_t> Wait(const CallScope& scope, const std::string& container_id);
  absl::Status Delete(const CallScope& scope, const std::string& container_id);
  // Cgroup stats of the tasks of `container_ids`, in one call (containerd asks each task's
  // shim in turn). A container without a task, or whose stats containerd cannot read, is left
  // out (containerd skips it and logs why); empty `container_ids` is an empty answer, not
  // every task. A stats type we do not decode fails the call, naming the container.
  absl::StatusOr<std::vector<TaskMetrics>> Metrics(const CallScope& scope,
                                                   const std::vector<std::string>& container_ids);
  // Every task of scope.ns.
  absl::StatusOr<std::vector<TaskMetrics>> NamespaceMetrics(const CallScope& scope);
  // One task's; NotFound naming the container when containerd has no stats for it.
  absl::StatusOr<TaskMetrics> Metric(const CallScope& scope, const std::string& container_id);

 private:
  absl::StatusOr<std::vector<TaskMetrics>> MetricsMatching(const CallScope& scope,
                                                           const std::vector<std::string>& filters,
                                                           absl::string_view what);

  const Connection& conn_;
  std::unique_ptr<api::services::tasks::v1::Tasks::Stub> stub_;
};

class EventService {
 public:
  explicit EventService(const Connection& conn);
  // Streams events matching `filters` (e.g. `topic=="/tasks/exit"`, `namespace==openfaas-fn`)
  // to `on_event` until it returns false, `ctx` is cancelled, or the stream fails. No deadline:
  // the caller cancels through `ctx`.
  absl::Status Subscribe(
      grpc::ClientContext& ctx, const std::vector<std::string>& filters,
      const std::function<bool(const api::services::events::v1::Envelope&)>& on_event);

 private:
  const Connection& conn_;
  std::unique_ptr<api::services::events::v1::Events::Stub> stub_;
};

// The faces bundled, as the provider and the image puller use them.
struct Client {
  explicit Client(const std::string& address, const std::string& snapshotter = "overlayfs");
  Connection connection;
  VersionService version;
  NamespaceService namespaces;
  LeaseService leases;
  ContentStore content;
  ImageStore images;
  SnapshotService snapshots;
  DiffService diff;
  ContainerStore containers;
  TaskService tasks;
  EventService events;
};

}  // namespace faasd::containerd
