// Deploy and update: pull, container, task, network, readiness.
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <fstream>
#include <future>
#include <random>

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "network/cni_network.h"
#include "provider/containerd_provider.h"
#include "provider/internal.h"
#include "provider/quantity.h"
#include "provider/rootfs.h"
#include "provider/spec.h"

namespace faasd::provider {

using containerd::api::services::containers::v1::Container;
using namespace internal;

namespace {

std::string RandomSuffix() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* hex = "0123456789abcdef";
  std::string s;
  uint64_t v = rng();
  for (int i = 0; i < 8; ++i, v >>= 4) s += hex[v & 0xf];
  return s;
}

// A replica's /etc/hosts names it by its own hostname (the container id) and by its function's.
std::string HostNames(const std::string& id, const std::string& function) {
  return absl::StrCat(id, " ", function);
}

// <state>/run/<id>/hosts: the replica's names on `ip` (127.0.1.1 while it is ""), the gateway,
// and the services every container on the bridge resolves (network::SharedHostsPath).
absl::Status WriteHosts(const std::string& state_dir, const std::string& id,
                        const std::string& function, const std::string& gateway_ip,
                        const std::string& ip) {
  return network::WriteEtcFile(absl::StrCat(state_dir, "/run/", id, "/hosts"),
                               network::HostsFile(HostNames(id, function), gateway_ip, ip,
                                                  network::ReadSharedHosts(state_dir)));
}

void MakeDirs(const std::string& path, mode_t mode) {
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') {
      ::mkdir(path.substr(0, i).c_str(), mode);
    }
  }
}

}  // namespace

absl::StatusOr<ContainerdProvider::Checked> ContainerdProvider::CheckDeployment(
    const FunctionDeployment& request) {
  absl::Status s = ValidateDeployment(request);
  if (auto it = request.annotations.find(kPullPolicyAnnotation);
      s.ok() && it != request.annotations.end()) {
    s = image::ParsePullPolicy(it->second).status();
  }
  if (!s.ok()) return s;
  absl::StatusOr<ScaleRange> range = ParseScaleRange(request.labels);
  if (!range.ok()) return range.status();
  absl::StatusOr<std::string> ns = ResolveNamespace(request.namespace_);
  if (!ns.ok()) return ns.status();
  Checked c{request, *range, FunctionKey(request.service, *ns)};
  c.d.namespace_ = *ns;
  return c;
}

absl::Status ContainerdProvider::Deploy(const FunctionDeployment& request) {
  absl::StatusOr<Checked> checked = CheckDeployment(request);
  if (!checked.ok()) return checked.status();
  const FunctionDeployment& d = checked->d;
  const ScaleRange& range = checked->range;
  const std::string& key = checked->key;
  OpGuard guard(*this, key);
  absl::StatusOr<std::vector<Found>> existing = FindFunctions(d.namespace_, d.service);
  if (!existing.ok()) return existing.status();
  if (!existing->empty()) {
    return absl::AlreadyExistsError(
        absl::StrCat("function \"", d.service, "\" already exists in namespace ", d.namespace_));
  }
  // As upstream: a new function starts with its minimum scale.
  const uint64_t desired = range.min;
  const int64_t generation = absl::GetCurrentTimeNanos();
  const absl::Time t_started = absl::Now();
  absl::StatusOr<std::vector<Replica>> replicas =
      CreateReplicas(d, generation, desired, desired, PolicyFor(d), options_.deploy_ready_wait);
  if (!replicas.ok()) return replicas.status();
  LogDebug("deploy ", d.service, ": ready after ", absl::FormatDuration(absl::Now() - t_started));
  bool all_ready = true;
  for (const Replica& r : *replicas) all_ready = all_ready && r.ready;
  SetRoute(key, MakeRoute(d, desired, generation, *replicas, absl::FromUnixNanos(generation)));
  if (!all_ready) {
    LogNotReady(d, *replicas, options_.deploy_ready_wait);
    RequestReconcile(key);  // the loop probes them until they are ready
  }
  LogInfo("deployed ", d.service, " (", replicas->size(), " replica",
          replicas->size() == 1 ? "" : "s", ", first ", replicas->front().container_id, " at ",
          replicas->front().ip, all_ready ? ", ready" : ", starting", ")");
  return absl::OkStatus();
}

absl::Status ContainerdProvider::Update(const FunctionDeployment& request) {
  absl::StatusOr<Checked> checked = CheckDeployment(request);
  if (!checked.ok()) return checked.status();
  const FunctionDeployment& d = checked->d;
  const ScaleRange& range = checked->range;
  const std::string& key = checked->key;
  OpGuard guard(*this, key);
  absl::StatusOr<Found> existing = FindDeployed(d.namespace_, d.service);
  if (!existing.ok()) return existing.status();
  // The wanted count carries over, within the new range; at zero the new generation is
  // created without tasks, ready to be woken.
  uint64_t desired = existing->desired;
  if (desired != 0) desired = std::min(std::max(desired, range.min), range.max);
  const int64_t generation = absl::GetCurrentTimeNanos();
  std::vector<Replica> replicas;
  if (desired == 0) {
    absl::StatusOr<Replica> r = CreateReplica(d, generation, 0, PolicyFor(d), /*start=*/false);
    if (!r.ok()) return r.status();  // the old generation stays
    replicas.push_back(*r);
    replicas.back().ready = false;
  } else {
    absl::StatusOr<std::vector<Replica>> created =
        CreateReplicas(d, generation, desired, desired, PolicyFor(d), options_.update_ready_wait);
    if (!created.ok()) return created.status();  // the old generation keeps serving
    replicas = std::move(*created);
  }
  bool all_ready = desired == 0;
  for (const Replica& r : replicas) all_ready = all_ready || r.ready;
  SetRoute(key, MakeRoute(d, desired, generation, replicas, absl::FromUnixNanos(generation)));
  if (!all_ready) {
    LogNotReady(d, replicas, options_.update_ready_wait);
    RequestReconcile(key);
  }
  RetireAll(*existing);
  LogInfo("updated ", d.service, " (", replicas.size(), " replica", replicas.size() == 1 ? "" : "s",
          " of generation ", generation, ")");
  return absl::OkStatus();
}

image::PullPolicy ContainerdProvider::PolicyFor(const FunctionDeployment& d) const {
  if (auto it = d.annotations.find(kPullPolicyAnnotation); it != d.annotations.end()) {
    absl::StatusOr<image::PullPolicy> p = image::ParsePullPolicy(it->second);
    if (p.ok()) return *p;  // CheckDeployment refused a bad one already
  }
  return options_.pull_policy;
}

absl::StatusOr<std::vector<ContainerdProvider::Replica>> ContainerdProvider::CreateReplicas(
    const FunctionDeployment& d, int64_t generation, uint64_t desired, uint64_t count,
    image::PullPolicy policy, absl::Duration wait) {
  std::vector<Replica> out;
  for (uint64_t i = 0; i < count; ++i) {
    // The image is pulled (by policy) once; more replicas take it from the content store.
    absl::StatusOr<Replica> r =
        CreateReplica(d, generation, desired, i == 0 ? policy : image::PullPolicy::kIfNotPresent,
                      /*start=*/true);
    if (!r.ok()) {
      for (const Replica& made : out) {
        absl::StatusOr<Container> c = runtime_.GetContainer(Call(d.namespace_), made.container_id);
        if (c.ok()) Retire(d.namespace_, *c);
      }
      return r.status();
    }
    out.push_back(*r);
  }
  const absl::Time deadline = absl::Now() + wait;
  for (Replica& r : out)
    r.ready = WaitReady(r, ReadyPath(d), std::max(deadline - absl::Now(), absl::ZeroDuration()));
  return out;
}

absl::StatusOr<ContainerdProvider::Replica> ContainerdProvider::CreateReplica(
    const FunctionDeployment& d, int64_t generation, uint64_t desired, image::PullPolicy policy,
    bool start) {
  int64_t memory = 0, cpu = 0, cpu_request = 0;
  if (d.limits && !d.limits->memory.empty()) {
    absl::StatusOr<int64_t> m = ParseMemoryQuantity(d.limits->memory);
    if (!m.ok()) return m.status();
    memory = *m;
  }
  if (d.limits && !d.limits->cpu.empty()) {
    absl::StatusOr<int64_t> c = ParseCpuQuantity(d.limits->cpu);
    if (!c.ok()) return c.status();
    cpu = *c;
  }
  if (d.requests && !d.requests->cpu.empty()) {
    absl::StatusOr<int64_t> c = ParseCpuQuantity(d.requests->cpu);
    if (!c.ok()) return c.status();
    cpu_request = *c;
  }
  for (const auto& name : d.secrets) {
    if (!secrets_.Exists(d.namespace_, name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("secret \"", name, "\" not found in namespace ", d.namespace_));
    }
  }

  const absl::Time t0 = absl::Now();
  absl::StatusOr<image::PulledImage> img = images_.Pull(d.image, policy, d.namespace_);
  const absl::Time t_pulled = absl::Now();
  if (!img.ok()) return img.status();
  absl::StatusOr<std::vector<std::string>> args =
      ProcessArgs(img->config.entrypoint, img->config.cmd);
  if (!args.ok())
    return absl::InvalidArgumentError(
        absl::StrCat("image ", d.image, ": ", args.status().message()));

  const std::string& ns = d.namespace_;
  const std::string id = NewContainerId(d.service);
  const std::string run_dir = absl::StrCat(options_.state_dir, "/run/", id);
  MakeDirs(run_dir, 0700);
  // The namespace and its CNI ADD (tens of ms of plugin execs and iptables) proceed while
  // containerd prepares the snapshot and the container; the task joins the namespace by path.
  if (absl::Status s = PrepareNetns(id); !s.ok()) return s;
  NetworkFuture network = std::async(std::launch::async, [this, id] { return AttachNetwork(id); });
  containerd::CallScope lease_scope = Call(ns, absl::Seconds(10));
  absl::StatusOr<std::string> lease = runtime_.CreateLease(lease_scope, absl::Minutes(10));
  auto cleanup = [&](absl::Status s) {
    if (network.valid()) (void)network.get();
    ReleaseNetwork(id);
    (void)runtime_.DeleteContainer(Call(ns), id);
    UnindexContainer(ns, id);
    (void)runtime_.RemoveSnapshot(Call(ns), id);
    if (lease.ok()) (void)runtime_.DeleteLease(lease_scope, *lease);
    RemoveRunDir(id);
    return s;
  };
  if (!lease.ok()) return cleanup(lease.status());
  containerd::CallScope scope = Call(ns);
  scope.lease = *lease;

  absl::StatusOr<containerd::Mounts> mounts =
      runtime_.PrepareSnapshot(scope, id, img->chain_id, {});
  if (!mounts.ok()) return cleanup(mounts.status());
  ProcessUser user;
  if (!img->config.user.empty()) {
    std::map<std::string, std::string> files;
    bool numeric = img->config.user.find_first_not_of("0123456789:") == std::string::npos;
    if (!numeric || img->config.user.find(':') == std::string::npos) {
      absl::StatusOr<std::map<std::string, std::string>> read = ReadRootfsFiles(
          *mounts, {"/etc/passwd", "/etc/group"}, absl::StrCat(options_.state_dir, "/tmp"));
      if (!read.ok()) return cleanup(read.status());
      files = std::move(*read);
    }
    absl::StatusOr<ProcessUser> u =
        ResolveUser(img->config.user, files["/etc/passwd"], files["/etc/group"]);
    if (!u.ok())
      return cleanup(
          absl::InvalidArgumentError(absl::StrCat("image ", d.image, ": ", u.status().message())));
    user = *u;
  }

  // Only the secrets this function names, readable by its user alone.
  std::string secrets_dir;
  if (!d.secrets.empty()) {
    secrets_dir = SecretsDir(id);
    absl::Status s = secrets_.Materialize(ns, d.secrets, secrets_dir, user.uid, user.gid);
    if (!s.ok()) {
      return cleanup(
          s.code() == absl::StatusCode::kNotFound ? absl::InvalidArgumentError(s.message()) : s);
    }
  }

  absl::StatusOr<std::string> resolv = network::ResolvConf(options_.nameservers);
  if (!resolv.ok()) {
    LogWarning("function ", d.service, ": no usable nameserver (", resolv.status().message(),
               "); its /etc/resolv.conf is empty: set --nameserver");
    resolv = std::string("# faasd: no nameserver configured (set --nameserver)\n");
  }
  // runc bind-mounts /etc/hosts when it creates the task, which happens while the address is
  // still being assigned; StartTask rewrites the file in place once the address is known.
  absl::Status s = network::WriteEtcFile(run_dir + "/resolv.conf", *resolv);
  if (s.ok()) {
    s = WriteHosts(options_.state_dir, id, d.service, network_.GatewayIp(), "");
  }
  if (!s.ok()) return cleanup(s);

  SpecInputs in;
  in.cgroups_path = absl::StrCat("/", ns, "/", id);
  in.hostname = id;  // each replica its own, as a pod's; the function's name resolves too
  in.args = *args;
  in.env = MergeEnv(img->config.env, d);
  in.cwd = img->config.working_dir.empty() ? "/" : img->config.working_dir;
  in.user = user;
  in.hosts_file = run_dir + "/hosts";
  in.resolv_conf_file = run_dir + "/resolv.conf";
  in.secrets_dir = secrets_dir;
  in.memory_limit_bytes = memory;
  in.cpu_limit_millis = cpu;
  in.cpu_request_millis = cpu_request;
  in.read_only_rootfs = d.read_only_root_filesystem;
  in.netns_path = NetnsPath(id);
  // As many open files as a busy function wants, but runc cannot raise past our own hard limit.
  struct rlimit nofile;
  if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
    in.nofile_limit = std::min<uint64_t>(65536, nofile.rlim_max);
  }
  absl::StatusOr<std::string> spec = BuildRuntimeSpec(in);
  if (!spec.ok()) return cleanup(spec.status());

  Container c;
  c.set_id(id);
  c.set_image(img->name);
  c.mutable_runtime()->set_name(options_.runtime);
  c.mutable_spec()->set_type_url(kSpecTypeUrl);
  c.mutable_spec()->set_value(*spec);
  c.set_snapshotter(runtime_.Snapshotter());
  c.set_snapshot_key(id);
  auto& labels = *c.mutable_labels();
  for (const auto& [k, v] : d.labels) labels[k] = v;
  for (const auto& [k, v] : d.annotations) labels[kAnnotationPrefix + k] = v;
  labels[kFunctionLabel] = d.service;
  labels[kGenerationLabel] = absl::StrCat(generation);
  labels[kReplicasLabel] = absl::StrCat(desired);
  FunctionDeployment stored = d;
  stored.namespace_ = ns;
  auto& ext = (*c.mutable_extensions())[kDeploymentExtension];
  ext.set_type_url(kDeploymentTypeUrl);
  ext.set_value(ToJson(stored).dump());
  s = runtime_.CreateContainer(scope, c);
  if (!s.ok()) return cleanup(s);
  IndexContainer(ns, d.service, id);
  (void)runtime_.DeleteLease(lease_scope, *lease);  // the container now holds the snapshot

  const absl::Time t_created = absl::Now();
  if (!start) {
    absl::StatusOr<std::string> ip = network.get();
    if (!ip.ok()) return cleanup(ip.status());
    (void)WriteHosts(options_.state_dir, id, d.service, network_.GatewayIp(), *ip);
    return Replica{id, *ip, false};
  }
  absl::StatusOr<Replica> r = StartTask(ns, id, d.service, &network);
  if (!r.ok()) return cleanup(r.status());
  // Where deploy time goes, for operators chasing slow deploys (--log-level=debug).
  LogDebug("deploy ", d.service, ": pull ", absl::FormatDuration(t_pulled - t0), ", container ",
           absl::FormatDuration(t_created - t_pulled), ", task+network ",
           absl::FormatDuration(absl::Now() - t_created));
  return r;
}

std::string ContainerdProvider::NewContainerId(const std::string& name) const {
  // Addresses, namespaces and run folders are kept by container id across all function
  // namespaces, so an id must be new to all of them.
  for (int attempt = 0;; ++attempt) {
    std::string id = absl::StrCat(name, "-", RandomSuffix());
    struct stat st;
    if (attempt >= 16 || (::lstat(NetnsPath(id).c_str(), &st) != 0 &&
                          ::lstat(absl::StrCat(options_.state_dir, "/run/", id).c_str(), &st) != 0))
      return id;
  }
}

std::string ContainerdProvider::NetnsPath(const std::string& id) const {
  return absl::StrCat(options_.state_dir, "/netns/", id);
}

absl::Status ContainerdProvider::PrepareNetns(const std::string& id) {
  const std::string path = NetnsPath(id);
  if (network_.IsNetns(path) && network_.LookupIp(id)) return absl::OkStatus();  // restart
  (void)network_.Detach(id, "");
  (void)network_.DeleteNetns(path);
  MakeDirs(absl::StrCat(options_.state_dir, "/netns"), 0755);
  return network_.CreateNetns(path);
}

absl::StatusOr<std::string> ContainerdProvider::AttachNetwork(const std::string& id) {
  if (std::optional<std::string> ip = network_.LookupIp(id)) return *ip;
  const std::string path = NetnsPath(id);
  const absl::Time t0 = absl::Now();
  absl::StatusOr<std::string> ip = network_.Attach(id, path);
  if (!ip.ok()) {
    // The firewall plugin races with concurrent ADDs when it creates its shared chains
    // ("CHAIN_USER_ADD failed (File exists)"); the failed ADD was rolled back, so try once more.
    // When that fails too, the first error says why (the second may only say that the first
    // could not be undone).
    LogWarning("network ", id, ": ", ip.status().message(), "; retrying once");
    absl::StatusOr<std::string> again = network_.Attach(id, path);
    if (again.ok()) {
      ip = std::move(again);
    } else {
      LogWarning("network ", id, ": retry: ", again.status().message());
    }
  }
  LogDebug("network ", id, ": cni attach ", absl::FormatDuration(absl::Now() - t0));
  return ip;
}

void ContainerdProvider::ReleaseNetwork(const std::string& id) {
  const std::string path = NetnsPath(id);
  absl::Status s = network_.Detach(id, network_.IsNetns(path) ? path : "");
  if (!s.ok()) LogWarning("network ", id, ": ", s.message());
  s = network_.DeleteNetns(path);
  if (!s.ok()) LogWarning("network ", id, ": ", s.message());
}

absl::StatusOr<ContainerdProvider::Replica> ContainerdProvider::StartTask(const std::string& ns,
                                                                          const std::string& id,
                                                                          const std::string& name,
                                                                          NetworkFuture* pending) {
  NetworkFuture own;
  if (pending == nullptr) {
    absl::Status s = PrepareNetns(id);
    if (!s.ok()) return s;
    own = std::async(std::launch::async, [this, id] { return AttachNetwork(id); });
    pending = &own;
  }
  // The CNI ADD runs while runc creates the task: the namespace exists already and the task
  // joins it by path; only Start must wait for the address. A failure releases the network this
  // call attached (a deploy's own clean-up releases the one it passed in).
  const bool own_network = pending == &own;
  auto fail = [&](absl::Status s) {
    if (pending->valid()) (void)pending->get();
    if (own_network) ReleaseNetwork(id);
    return s;
  };
  const absl::Time t0 = absl::Now();
  containerd::CallScope scope = Call(ns);
  absl::StatusOr<containerd::Mounts> rootfs = runtime_.SnapshotMounts(scope, id);
  if (!rootfs.ok()) return fail(rootfs.status());
  const absl::Time t_mounts = absl::Now();
  const std::string log_uri = TaskLogUri(ns, name);
  absl::StatusOr<uint32_t> pid = runtime_.CreateTask(scope, id, *rootfs, {log_uri, log_uri});
  if (!pid.ok()) return fail(pid.status());
  const absl::Time t_created = absl::Now();
  auto undo_task = [&](absl::Status s) {
    (void)runtime_.KillTask(Call(ns), id, SIGKILL, true);
    (void)runtime_.DeleteTask(Call(ns), id);
    return fail(s);
  };
  absl::StatusOr<std::string> ip = pending->get();
  if (!ip.ok()) return undo_task(ip.status());
  const absl::Time t_network = absl::Now();
  // The function resolves its own name to its address.
  (void)WriteHosts(options_.state_dir, id, name, network_.GatewayIp(), *ip);
  absl::StatusOr<uint32_t> started = runtime_.StartTask(scope, id);
  if (!started.ok()) return undo_task(started.status());
  LogDebug("task ", id, ": mounts ", absl::FormatDuration(t_mounts - t0), ", create ",
           absl::FormatDuration(t_created - t_mounts), ", network wait ",
           absl::FormatDuration(t_network - t_created), ", start ",
           absl::FormatDuration(absl::Now() - t_network));
  Replica r;
  r.container_id = id;
  r.ip = *ip;
  return r;
}

absl::Status ContainerdProvider::SignalTask(const std::string& ns, const std::string& id,
                                            int signal, bool all, bool paused) {
  {
    absl::MutexLock l(&mu_);
    paused_.erase(id);
  }
  absl::Status s = runtime_.KillTask(Call(ns), id, signal, all);
  if (paused) (void)runtime_.ResumeTask(Call(ns), id);  // a frozen task gets it when thawed
  return s;
}

void ContainerdProvider::StopTask(const std::string& ns, const std::string& id) {
  // Scaled to zero: nothing is in flight, so no grace period. A paused task dies of the signal
  // when thawed. The network goes too: a function at zero holds no veth, address or network
  // namespace (with 1,000 of them on the bridge every CNI ADD is slower), and the next start
  // attaches one while runc creates the task.
  bool paused = false;
  {
    absl::MutexLock l(&mu_);
    paused = paused_.count(id) > 0;
  }
  absl::Status s = SignalTask(ns, id, SIGKILL, true, paused);
  if (s.ok()) (void)WaitExit(ns, id, absl::Seconds(5));
  s = runtime_.DeleteTask(Call(ns), id);
  if (!s.ok() && s.code() != absl::StatusCode::kNotFound) {
    LogWarning("scale to zero ", id, ": ", s.message());  // the task may live: so does its network
    return;
  }
  ReleaseNetwork(id);
}

std::string internal::ReadyPath(const FunctionDeployment& d) {
  for (const auto* m : {&d.annotations, &d.labels}) {
    auto it = m->find(kReadyPathKey);
    if (it != m->end() && !it->second.empty() && it->second.front() == '/') return it->second;
  }
  return "";
}

bool ContainerdProvider::Probe(const std::string& ip, const std::string& path) {
  return probe_.Ready(ip, options_.function_port, path);
}

void ContainerdProvider::LogNotReady(const FunctionDeployment& d,
                                     const std::vector<Replica>& replicas, absl::Duration waited) {
  for (const Replica& r : replicas) {
    if (r.ready || r.ip.empty()) continue;
    LogWarning("function ", d.service, " in ", d.namespace_, ": replica ", r.container_id,
               " not ready after ", absl::FormatDuration(waited), ": ",
               probe_.WhyNotReady(r.ip, options_.function_port, ReadyPath(d)),
               "; it is probed until it is, and serves nothing meanwhile");
  }
}

bool ContainerdProvider::WaitReady(const Replica& r, const std::string& path,
                                   absl::Duration timeout) {
  // Every few milliseconds at first (a function usually listens within tens of ms of its
  // start, and a request may be waiting for it), then less often.
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + timeout;
  for (int i = 0; i < 10000; ++i) {
    if (Probe(r.ip, path)) return true;
    const absl::Duration pause = absl::Now() - start < absl::Milliseconds(250)
                                     ? absl::Milliseconds(3)
                                     : absl::Milliseconds(100);
    if (absl::Now() + pause > deadline || stopping_.load()) return false;
    absl::SleepFor(pause);
  }
  return false;
}

}  // namespace faasd::provider
