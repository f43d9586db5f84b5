// The provider on containerd: each function is one containerd container (id "<name>-<8 hex>")
// in the functions namespace, with its task on the CNI bridge.
//
// containerd is the source of truth. A container carries the label faasd.function=<name>; the
// exact FunctionDeployment it was made from rides along as a container extension, and user
// labels/annotations as labels. Nothing else is stored: after a restart the daemon lists the
// containers, finds their IPs in the CNI cache, restarts dead tasks and serves at once.
//
// Remove answers at once: the function leaves routing, its containers are labelled
// faasd.state=removing, and a background job stops them (SIGTERM, grace, SIGKILL) and removes
// task, network, container and snapshot. A deploy of the same name can follow immediately
// because the new container has a new id. Update is blue-green: the new container starts and
// becomes ready before routing moves to it and the old one is stopped.
//
// Thread-safe. Operations on the same function are serialised by a per-name lock; the routing
// snapshot is immutable and swapped atomically.
#pragma once

#include <atomic>
#include <future>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "containerd/client.h"
#include "image/puller.h"
#include "logs/logs.h"
#include "network/cni_network.h"
#include "provider/provider.h"

namespace faasd::provider {

struct ProviderOptions {
  std::string ns = kDefaultNamespace;        // containerd namespace = OpenFaaS namespace
  std::string state_dir = "/var/lib/faasd";  // run/<id>/{hosts,resolv.conf}, logs/, secrets/
  std::vector<std::string> nameservers;      // "" = host's resolv.conf minus loopback
  image::PullPolicy pull_policy = image::PullPolicy::kAlways;
  std::string runtime = "io.containerd.runc.v2";
  int function_port = 8080;
  absl::Duration stop_grace = absl::Seconds(30);         // SIGTERM → SIGKILL
  absl::Duration deploy_ready_wait = absl::Seconds(2);   // deploy answers after this at most
  absl::Duration update_ready_wait = absl::Seconds(30);  // old replica serves until then
  absl::Duration reconcile_interval = absl::Seconds(2);
  // faasd-logger, run by each task's shim to keep its stdout/stderr in the function's rotated
  // log (<state_dir>/logs/<ns>/<name>/); "" discards function output.
  std::string logger;
  logs::RotationOptions log_rotation;
};

class ContainerdProvider final : public FunctionProvider, public RoutingTable {
 public:
  ContainerdProvider(ProviderOptions options, containerd::Client& client,
                     image::ImagePuller& puller, network::CniNetwork& network);
  ~ContainerdProvider() override;

  // Ensures the namespace, rediscovers deployed functions (restarting dead tasks), then keeps
  // reconciling in the background. Fails only when containerd cannot be reached.
  absl::Status Start();
  // Stops the background loop and joins the removals under way (they stop at their next step;
  // the next start finishes them). Function tasks keep running (their shims own them).
  void Stop();

  absl::StatusOr<std::vector<FunctionStatus>> List(const std::string& ns) override;
  absl::StatusOr<FunctionStatus> Get(const std::string& name, const std::string& ns) override;
  absl::Status Deploy(const FunctionDeployment& d) override;
  absl::Status Update(const FunctionDeployment& d) override;
  absl::Status Remove(const std::string& name, const std::string& ns) override;
  absl::Status Scale(const std::string& name, const std::string& ns, uint64_t replicas) override;
  absl::StatusOr<std::vector<std::string>> Namespaces() override;
  absl::StatusOr<std::unique_ptr<LogStream>> Logs(const LogRequest& request) override;
  absl::Status Healthy() override;
  const RoutingTable& Routes() const override { return *this; }

  std::shared_ptr<const RoutingSnapshot> Snapshot() const override;

  // Waits for background removals to finish (tests and orderly shutdown), at most `timeout`.
  bool WaitForRemovals(absl::Duration timeout);

 private:
  struct Replica {
    std::string container_id;
    std::string ip;
    bool ready = false;
  };
  // One function's containers as containerd reports them.
  struct Found {
    std::string name;
    containerd::api::services::containers::v1::Container current;  // newest, not removing
    std::vector<containerd::api::services::containers::v1::Container> stale;  // older duplicates
    FunctionDeployment deployment;
  };

  absl::Status CheckNamespace(const std::string& ns) const;
  std::shared_ptr<absl::Mutex> OpLock(const std::string& name);
  containerd::CallScope Call(absl::Duration timeout = absl::Seconds(30)) const;

  absl::StatusOr<std::vector<Found>> FindFunctions(const std::string& only_name);
  // FindFunctions(name), NotFound when nothing of that name is deployed.
  absl::StatusOr<std::vector<Found>> FindDeployed(const std::string& name);
  // Everything about a FunctionDeployment that can be refused before touching containerd.
  absl::Status CheckDeployment(const FunctionDeployment& d) const;
  absl::StatusOr<Replica> CreateReplica(const FunctionDeployment& d);
  using NetworkFuture = std::future<absl::StatusOr<std::string>>;
  // Creates and starts the task. `pending` is an attach already under way (from
  // AttachNetwork after PrepareNetns); null starts one here.
  absl::StatusOr<Replica> StartTask(const std::string& container_id, const std::string& name,
                                    NetworkFuture* pending = nullptr);
  // The stdio URI of a task of function `name`: its faasd-logger, or "" (discard).
  std::string TaskLogUri(const std::string& name) const;
  // The container's pinned network namespace: created, or kept when it exists with an address
  // (a restarted task keeps its address).
  absl::Status PrepareNetns(const std::string& container_id);
  // CNI ADD into that namespace (or the address it already has).
  absl::StatusOr<std::string> AttachNetwork(const std::string& container_id);
  void ReleaseNetwork(const std::string& container_id);
  std::string NetnsPath(const std::string& container_id) const;
  bool WaitReady(const Replica& r, absl::Duration timeout);
  bool Probe(const std::string& ip);
  void ScheduleRemoval(const std::string& container_id);
  void StopAndRemove(const std::string& container_id);
  // Waits for the task to exit, at most `max`; false on timeout or when the daemon stops.
  bool WaitExit(const std::string& container_id, absl::Duration max);
  // Labels the container faasd.state=removing and stops and removes it in the background.
  void Retire(const containerd::api::services::containers::v1::Container& c);
  void RetireAll(const Found& f);  // current and stale containers
  void SetRoute(const std::string& name, std::optional<Replica> replica);
  void Publish() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // One pass; false when it skipped a function or left one not ready (the loop returns soon).
  bool ReconcileOnce();
  // True when the container exists and is not being removed.
  bool StillDeployed(const std::string& container_id);
  void ReclaimOrphanNetworks();
  void ReconcileLoop();
  void WatchTaskExits();
  void RequestReconcile();  // run a reconcile pass now rather than at the next interval

  const ProviderOptions options_;
  containerd::Client& client_;
  image::ImagePuller& puller_;
  network::CniNetwork& network_;

  mutable absl::Mutex mu_;
  std::map<std::string, Replica> routes_ ABSL_GUARDED_BY(mu_);  // by function name
  std::map<std::string, std::shared_ptr<absl::Mutex>> op_locks_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> removing_ ABSL_GUARDED_BY(mu_);  // container ids being removed
  struct Removal {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  // Background removals; Stop() joins them (they return early once stopping_ is set).
  std::vector<Removal> removals_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const RoutingSnapshot> snapshot_;  // atomic_load / atomic_store only

  std::atomic<bool> stopping_{false};
  absl::Mutex loop_mu_;
  bool reconcile_requested_ ABSL_GUARDED_BY(loop_mu_) = false;
  std::thread loop_;
  absl::Mutex events_mu_;
  grpc::ClientContext* events_ctx_ ABSL_GUARDED_BY(events_mu_) = nullptr;
  std::thread events_;
};

}  // namespace faasd::provider
