// The provider on containerd: each replica of a function is one containerd container (id
// "<name>-<8 hex>") in the functions namespace, with its own task, pinned network namespace
// and address on the CNI bridge.
//
// containerd is the source of truth. Every container of a function carries the labels
// faasd.function=<name>, faasd.generation=<the deployment's time in ns> and
// faasd.replicas=<wanted count>; the exact FunctionDeployment rides along as a container
// extension, user labels/annotations as labels. Nothing else is stored: after a restart the
// daemon lists the containers, finds their addresses in the CNI cache, restarts dead tasks and
// serves at once.
//
// Scale sets the wanted count; a reconcile pass brings the replicas to it (replicas.h says
// how). At zero one container is kept as the function's record and its task is paused (the
// latest max_paused, for paused_ttl) or stopped, its network released; a request for it
// (AwaitReady) resumes or starts that task again: however many requests wait, one wake serves
// them all. A replica that exits is restarted at once (containerd's task-exit event), with
// back-off when it keeps crashing; requests wait for it instead of failing while no replica is
// ready.
//
// Remove answers at once: the function leaves routing, its containers are labelled
// faasd.state=removing, and a background job stops them (SIGTERM, grace, SIGKILL) and removes
// task, network, container and snapshot. Update is blue-green: a new generation of replicas
// starts and becomes ready before routing moves to it and the old one is stopped.
//
// Thread-safe. Operations on the same function are serialised by a per-name lock; the routing
// snapshot is immutable and swapped atomically.
#pragma once

#include <atomic>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "containerd/client.h"
#include "image/puller.h"
#include "logs/logs.h"
#include "provider/clock.h"
#include "provider/image_source.h"
#include "provider/network.h"
#include "provider/provider.h"
#include "provider/readiness_probe.h"
#include "provider/replicas.h"
#include "provider/runtime.h"
#include "provider/secret_store.h"

namespace faasd::provider {

struct ProviderOptions {
  // The default namespace (always present). Every containerd namespace labelled openfaas=1 (or
  // true) is a function namespace too: containerd namespace = OpenFaaS namespace.
  std::string ns = kDefaultNamespace;
  // run/<id>/{hosts,resolv.conf,secrets/}, logs/, function-secrets/<ns>/<name>
  std::string state_dir = "/var/lib/faasd";
  std::vector<std::string> nameservers;  // "" = host's resolv.conf minus loopback
  image::PullPolicy pull_policy = image::PullPolicy::kAlways;
  std::string runtime = "io.containerd.runc.v2";
  int function_port = 8080;
  absl::Duration stop_grace = absl::Seconds(30);         // SIGTERM → SIGKILL
  absl::Duration deploy_ready_wait = absl::Seconds(2);   // deploy answers after this at most
  absl::Duration update_ready_wait = absl::Seconds(30);  // old replicas serve until then
  absl::Duration reconcile_interval = absl::Seconds(2);
  // At zero a function's task is paused (frozen: no CPU, its memory kept) rather than stopped,
  // so a request resumes it in tens of milliseconds where a start takes ~150. At most
  // `max_paused` tasks stay paused (the most recently paused), each for at most `paused_ttl`;
  // past either the task is stopped and costs nothing. 0 stops every task at zero.
  size_t max_paused = 16;
  absl::Duration paused_ttl = absl::Minutes(10);
  // faasd-logger, run by each task's shim to keep its stdout/stderr in the function's rotated
  // log (<state_dir>/logs/<ns>/<name>/); "" discards function output.
  std::string logger;
  logs::RotationOptions log_rotation;
  // Whether faasd-logger also copies each line to journald (when there is one).
  logs::JournalMode log_journal = logs::JournalMode::kAuto;
};

class ContainerdProvider final : public FunctionProvider, public RoutingTable {
 public:
  // Borrows the faces of the outside systems it drives (runtime.h, image_source.h,
  // network.h, readiness_probe.h, clock.h); they must outlive it.
  ContainerdProvider(ProviderOptions options, ContainerRuntime& runtime, ImageSource& images,
                     FunctionNetwork& network, ReadinessProbe& probe, const Clock& clock);
  ~ContainerdProvider() override;

  // Ensures the namespace, rediscovers deployed functions (restarting dead tasks), then keeps
  // reconciling in the background. Fails only when containerd cannot be reached.
  absl::Status Start();
  // Stops the background loop and joins the background jobs (removals stop at their next
  // step; the next start finishes them). Function tasks keep running (their shims own them).
  void Stop();

  absl::StatusOr<std::vector<FunctionStatus>> List(const std::string& ns) override;
  absl::StatusOr<FunctionStatus> Get(const std::string& name, const std::string& ns) override;
  absl::StatusOr<FunctionUsage> Usage(const std::string& name, const std::string& ns) override;
  absl::Status Deploy(const FunctionDeployment& d) override;
  absl::Status Update(const FunctionDeployment& d) override;
  absl::Status Remove(const std::string& name, const std::string& ns) override;
  absl::Status Scale(const std::string& name, const std::string& ns, uint64_t replicas) override;
  absl::StatusOr<std::vector<std::string>> Namespaces() override;
  absl::StatusOr<FunctionNamespace> GetNamespace(const std::string& ns) override;
  absl::Status CreateNamespace(const FunctionNamespace& ns) override;
  absl::Status UpdateNamespace(const FunctionNamespace& ns) override;
  absl::Status DeleteNamespace(const std::string& ns) override;
  absl::StatusOr<std::vector<std::string>> ListSecrets(const std::string& ns) override;
  absl::Status CreateSecret(const Secret& secret) override;
  absl::Status UpdateSecret(const Secret& secret) override;
  absl::Status DeleteSecret(const std::string& name, const std::string& ns) override;
  absl::StatusOr<std::unique_ptr<LogStream>> Logs(const LogRequest& request) override;
  absl::Status Healthy() override;
  RoutingTable& Routes() override { return *this; }

  std::shared_ptr<const RoutingSnapshot> Snapshot() const override;
  std::shared_ptr<const RoutingSnapshot> AwaitReady(const std::string& key,
                                                    absl::Time deadline) override;
  void ReportUnreachable(const std::string& key, const Endpoint& endpoint) override;

  // Waits for background removals to finish (tests and orderly shutdown), at most `timeout`.
  bool WaitForRemovals(absl::Duration timeout);
  // Background threads not yet joined: those at work, and at most one that finished.
  size_t BackgroundThreads() const;

 private:
  using Container = containerd::api::services::containers::v1::Container;
  struct Replica {
    std::string container_id;
    std::string ip;
    bool ready = false;
  };
  // What routing knows of a function: its wanted count, the replicas of the generation being
  // served, and that generation's deployment and time (list and get answer from these, so they
  // cost no call into containerd: every write of the daemon's sets them, and each reconcile
  // pass sets them again from what containerd holds).
  struct Route {
    std::string ns, name;
    uint64_t desired = 1;
    int64_t generation = 0;
    std::vector<Replica> replicas;
    std::shared_ptr<const FunctionDeployment> deployment;
    absl::Time created;
    // route_seq_ when it was set: a pass drops only routes set before its listing.
    uint64_t set_at = 0;
  };
  static Route MakeRoute(const FunctionDeployment& d, uint64_t desired, int64_t generation,
                         std::vector<Replica> replicas, absl::Time created);
  // One function's containers as containerd reports them.
  struct Found {
    std::string ns;
    std::string name;
    int64_t generation = 0;          // newest generation
    uint64_t desired = 1;            // faasd.replicas of that generation (max)
    std::vector<Container> current;  // that generation's containers, oldest first
    std::vector<Container> stale;    // older generations
    FunctionDeployment deployment;   // of the newest container
    absl::Time created;              // of the generation (its oldest container, when unlabelled)
  };
  // Whether the exited task of replica `id` was OOM-killed: containerd's /tasks/oom came, or
  // its cgroup counted a kill (then containerd's event is awaited for up to kOomEventWait
  // before the caller deletes the task). Clears the event's note.
  struct OomAccount {
    bool event = false;  // containerd's /tasks/oom
    uint64_t kills = 0;  // the task cgroup's count (0 also when it could not be read)
  };
  OomAccount OomKilled(const std::string& ns, const std::string& id) ABSL_LOCKS_EXCLUDED(mu_);
  static constexpr absl::Duration kOomEventWait = absl::Milliseconds(500);
  // Crash back-off of one replica, by container id.
  struct Restarts {
    bool oom_killed = false;  // containerd said so; the next exit is logged as such
    int consecutive = 0;
    absl::Time last_start;
    absl::Time not_before;
    std::optional<ReplicaExit> last_exit;  // for the function's status
  };
  // From routing and restarts_: available_replicas, and last_exit (the newest exit of any of
  // the function's replicas).
  void FillRuntimeStatus(const std::string& key, FunctionStatus* st) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A function's status from its route (deployment, counts) and FillRuntimeStatus.
  FunctionStatus StatusOf(const std::string& key, const Route& route) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // "" → the default namespace; OK when `ns` is a function namespace, NotFound when it is
  // not (or does not exist), InvalidArgument for a bad name.
  absl::StatusOr<std::string> ResolveNamespace(const std::string& ns);
  // Function namespaces: the default one and those labelled openfaas=1|true.
  absl::StatusOr<std::vector<std::string>> FunctionNamespaces();
  // The lock every operation on one function holds, by FunctionKey. Each call notes the
  // operation for OpSince, unless `noted` is false: the reconcile passes, which act on what
  // they list under it. Operations take it through OpGuard, which notes them at their end too.
  std::shared_ptr<absl::Mutex> OpLock(const std::string& key, bool noted = true);
  // A counter of noted operations, and whether `key` had one after `counter` was read.
  uint64_t OpCounter();
  bool OpSince(const std::string& key, uint64_t counter);
  void NoteOp(const std::string& key);
  // What a deploy, update, remove, scale or wake holds for its whole run: the function's lock,
  // with the operation noted as it begins (OpLock) and again as it ends. A pass whose listing
  // was taken while the operation ran (after the first note, before its changes reached
  // containerd) is older than the second note, so the pass leaves the function to a pass of its
  // own: the soak saw such a pass route a function just removed and give it new replicas.
  class OpGuard {
   public:
    OpGuard(ContainerdProvider& p, const std::string& key)
        : provider_(p), key_(key), lock_(p.OpLock(key)) {
      lock_->Lock();
    }
    ~OpGuard() {
      provider_.NoteOp(key_);  // before the unlock: a pass that takes the lock next sees it
      lock_->Unlock();
    }
    OpGuard(const OpGuard&) = delete;
    OpGuard& operator=(const OpGuard&) = delete;

   private:
    ContainerdProvider& provider_;
    const std::string key_;
    const std::shared_ptr<absl::Mutex> lock_;
  };
  containerd::CallScope Call(const std::string& ns,
                             absl::Duration timeout = absl::Seconds(30)) const;

  // Every function of `ns` (a listing of its containers, which also brings the container index
  // of `ns` up to date), or the one named `only_name` (its indexed containers, got one by one;
  // a listing while `ns` is not indexed yet).
  absl::StatusOr<std::vector<Found>> FindFunctions(const std::string& ns,
                                                   const std::string& only_name);
  // The containers of function `name` in an indexed `ns`, by id; nullopt when `ns` is not
  // indexed. Ids containerd no longer knows leave the index.
  std::optional<absl::StatusOr<std::vector<Container>>> IndexedContainers(const std::string& ns,
                                                                          const std::string& name);
  // A container of function `name` that now exists; one that is gone (or going).
  void IndexContainer(const std::string& ns, const std::string& name, const std::string& id);
  void UnindexContainer(const std::string& ns, const std::string& id);
  // After a listing of `ns` that began at index_seq_ `before`: what it listed is indexed, what
  // it did not list and was indexed before it began leaves, and `ns` counts as indexed.
  void SyncIndex(const std::string& ns, uint64_t before, const std::vector<Container>& listed);
  // FindFunctions(ns, name), NotFound when nothing of that name is deployed.
  absl::StatusOr<Found> FindDeployed(const std::string& ns, const std::string& name);
  // A deployment checked (fields, pull policy, scale labels, namespace) and resolved: its
  // namespace filled in, its scale range, its FunctionKey.
  struct Checked {
    FunctionDeployment d;
    ScaleRange range;
    std::string key;
  };
  absl::StatusOr<Checked> CheckDeployment(const FunctionDeployment& request);
  // Pulls (by `policy`), creates the container of generation `generation` wanting `desired`
  // replicas, and starts its task unless `start` is false (the network is attached either way).
  absl::StatusOr<Replica> CreateReplica(const FunctionDeployment& d, int64_t generation,
                                        uint64_t desired, image::PullPolicy policy, bool start);
  // Creates `count` replicas, waits up to `wait` for them to be ready.
  absl::StatusOr<std::vector<Replica>> CreateReplicas(const FunctionDeployment& d,
                                                      int64_t generation, uint64_t desired,
                                                      uint64_t count, image::PullPolicy policy,
                                                      absl::Duration wait);
  image::PullPolicy PolicyFor(const FunctionDeployment& d) const;
  using NetworkFuture = std::future<absl::StatusOr<std::string>>;
  // Creates and starts the task. `pending` is an attach already under way (from
  // AttachNetwork after PrepareNetns); null starts one here.
  absl::StatusOr<Replica> StartTask(const std::string& ns, const std::string& container_id,
                                    const std::string& name, NetworkFuture* pending = nullptr);
  // Sends `signal` to the task; a paused one (`paused`) is thawed after it, so that it gets the
  // signal, and counts as paused no more.
  absl::Status SignalTask(const std::string& ns, const std::string& container_id, int signal,
                          bool all, bool paused);
  // Kills and deletes the task (paused or not) and releases its network; the container stays.
  void StopTask(const std::string& ns, const std::string& container_id);
  // Whether the kept task of a function at zero may be, or stay, paused (options' max_paused
  // and paused_ttl); registers a paused task found after a daemon restart.
  bool MayPause(const std::string& container_id, bool paused_now, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Freezes the kept task of a function scaled to zero (StopTask when that fails); asks for a
  // pass over the function whose paused task is now one too many.
  void PauseTask(const std::string& ns, const std::string& container_id);
  // Thaws a paused task: the replica, its address known, not probed yet. NotFound when it was
  // not paused.
  absl::StatusOr<Replica> ResumeTask(const std::string& ns, const std::string& container_id);
  // A container id no function namespace uses: "<name>-<8 hex>".
  std::string NewContainerId(const std::string& name) const;
  // The stdio URI of a task of function `name`: its faasd-logger, or "" (discard).
  std::string TaskLogUri(const std::string& ns, const std::string& name) const;
  // The container's pinned network namespace: created, or kept when it exists with an address
  // (a restarted task keeps its address).
  absl::Status PrepareNetns(const std::string& container_id);
  // CNI ADD into that namespace (or the address it already has).
  absl::StatusOr<std::string> AttachNetwork(const std::string& container_id);
  void ReleaseNetwork(const std::string& container_id);
  std::string NetnsPath(const std::string& container_id) const;
  // Probes until ready or `timeout`. `path` "" is /_/health, where any answer but 503 counts
  // (the watchdogs answer 503 until ready); a path the function names must answer 2xx.
  bool WaitReady(const Replica& r, const std::string& path, absl::Duration timeout);
  bool Probe(const std::string& ip, const std::string& path);
  // Names each replica of `replicas` that is not ready after `waited` and why (the probe's
  // answer), so an operator sees why a deploy answered with nothing available.
  void LogNotReady(const FunctionDeployment& d, const std::vector<Replica>& replicas,
                   absl::Duration waited);
  // Runs `job` on a thread Stop() joins.
  void RunInBackground(std::function<void()> job);
  void ReapJobsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ScheduleRemoval(const std::string& ns, const std::string& container_id);
  void StopAndRemove(const std::string& ns, const std::string& container_id);
  // <state>/run/<id>: hosts, resolv.conf and the secrets copy of a container that is gone.
  void RemoveRunDir(const std::string& container_id);
  // Waits for the task to exit, at most `max`; false on timeout or when the daemon stops.
  bool WaitExit(const std::string& ns, const std::string& container_id, absl::Duration max);
  // Labels the container faasd.state=removing and stops and removes it in the background.
  void Retire(const std::string& ns, const Container& c);
  void RetireAll(const Found& f);  // current and stale containers
  // Sets faasd.replicas on every container of the current generation.
  absl::Status SetDesired(const Found& f, uint64_t desired);
  // Starts the kept container of a function at zero; requests waiting in AwaitReady go on.
  void WakeFromZero(const std::string& ns, const std::string& name);
  void SetRoute(const std::string& key, std::optional<Route> route);
  // SetRoute, but a route equal to the current one publishes nothing: a reconcile pass over
  // many steady functions costs no snapshot rebuilds.
  void UpdateRoute(const std::string& key, Route route);
  void Publish() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // One pass over every function; false when containerd did not answer (the loop tries a full
  // pass again soon). Functions locked by an operation go to `busy`, those left not ready to
  // `retry`: the loop comes back for those alone, so that one function starting up does not
  // cost listings of every function (with 1,000 functions a full pass lists 1,000 containers,
  // specs included).
  bool ReconcileOnce(std::set<std::string>* busy, std::set<std::string>* retry);
  // The same for these functions only (FunctionKeys), so that an event about one function
  // costs that function's containers and tasks, not a listing of every function. A key routing
  // does not know asks for a full pass; false, `busy` and `retry` as ReconcileOnce (the scale
  // or wake that asked for this pass often holds the function's lock).
  bool ReconcileKeys(const std::set<std::string>& keys, std::set<std::string>* busy,
                     std::set<std::string>* retry);
  // One function, under its lock: replicas to the wanted count, tasks running, route current.
  // False when a replica is left not ready.
  bool ReconcileFunction(const Found& f,
                         const std::map<std::string, containerd::api::v1::types::Process>& tasks);
  // True when the container exists and is not being removed.
  bool StillDeployed(const std::string& ns, const std::string& container_id);
  // What a container that no longer exists held: network, snapshot, run directory.
  // `listed`: the ids of the containers this pass listed (they exist; no need to ask again).
  void ReclaimOrphans(const std::set<std::string>& listed);
  void ReconcileLoop();
  void WatchTaskExits();
  // A /tasks/oom event: logged, and remembered for the exit that follows.
  void NoteOom(const containerd::api::services::events::v1::Envelope& envelope);
  // Runs a reconcile pass now rather than at the next interval: of every function, or only of
  // the function `key` (a FunctionKey) when that is all that changed.
  void RequestReconcile();
  void RequestReconcile(const std::string& key);
  // The FunctionKey of the function whose replica is `container_id`, "" when routing does not
  // know it.
  std::string KeyOfReplica(const std::string& container_id) const;
  // A secret's checks shared by create and update: namespace, name, size.
  absl::Status CheckSecret(const Secret& secret, std::string* ns);
  // Where a container's own copy of the secrets it names lives (mounted read-only).
  std::string SecretsDir(const std::string& container_id) const;

  const ProviderOptions options_;
  SecretStore secrets_;
  ContainerRuntime& runtime_;
  ImageSource& images_;
  FunctionNetwork& network_;
  ReadinessProbe& probe_;
  const Clock& clock_;

  mutable absl::Mutex mu_;
  std::map<std::string, Route> routes_ ABSL_GUARDED_BY(mu_);  // by FunctionKey
  uint64_t route_seq_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, std::shared_ptr<absl::Mutex>> op_locks_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, uint64_t> op_seq_ ABSL_GUARDED_BY(mu_);  // key -> op_counter_ at its op
  uint64_t op_counter_ ABSL_GUARDED_BY(mu_) = 0;
  // Container index: namespace → function name → container id → index_seq_ when added. To find
  // one function containerd is asked for its containers by id: a label filter makes it read
  // every container, spec included (at 1,000 functions tens of ms, several times a deploy). A
  // superset of what exists: a container this daemon creates is added once it exists, a
  // listing adds what it finds and drops what it no longer shows, a lookup drops what is gone.
  // Only namespaces a full listing has covered (`indexed_ns_`) are trusted.
  std::map<std::string, std::map<std::string, std::map<std::string, uint64_t>>> index_
      ABSL_GUARDED_BY(mu_);
  std::set<std::string> indexed_ns_ ABSL_GUARDED_BY(mu_);
  uint64_t index_seq_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<std::string> removing_ ABSL_GUARDED_BY(mu_);  // container ids being removed
  std::set<std::string> waking_ ABSL_GUARDED_BY(mu_);    // FunctionKeys starting from zero
  std::map<std::string, absl::Time> paused_ ABSL_GUARDED_BY(mu_);  // container id → paused at
  std::map<std::string, Restarts> restarts_ ABSL_GUARDED_BY(mu_);  // by container id
  // CPU samples (time, cumulative ns) of the last minute, by container id, for Usage.
  std::map<std::string, std::vector<std::pair<absl::Time, uint64_t>>> cpu_samples_
      ABSL_GUARDED_BY(mu_);
  struct Job {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::vector<Job> jobs_ ABSL_GUARDED_BY(mu_);  // background work; Stop() joins it
  // Written under mu_ (so AwaitReady's waiters wake), read with atomic_load without it.
  std::shared_ptr<const RoutingSnapshot> snapshot_;

  std::atomic<bool> stopping_{false};
  absl::Mutex loop_mu_;
  bool reconcile_requested_ ABSL_GUARDED_BY(loop_mu_) = false;
  std::set<std::string> reconcile_keys_ ABSL_GUARDED_BY(loop_mu_);  // targeted passes
  std::thread loop_;
  absl::Mutex events_mu_;
  EventStream* events_stream_ ABSL_GUARDED_BY(events_mu_) = nullptr;
  std::thread events_;
};

}  // namespace faasd::provider
