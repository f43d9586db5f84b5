// The service supervisor: services.yaml -> containers in namespace `openfaas` -> restarts.
#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "base/log.h"
#include "base/thread_name.h"
#include "events_task.pb.h"
#include "image/importer.h"
#include "network/netns.h"
#include "nlohmann/json.hpp"
#include "provider/rootfs.h"
#include "provider/spec.h"
#include "services/services.h"

namespace faasd::services {
namespace {

using containerd::api::services::containers::v1::Container;
using nlohmann::json;

constexpr char kSpecTypeUrl[] = "types.containerd.io/opencontainers/runtime-spec/1/Spec";

// Our own files (services.yaml's default, prometheus.yml, the error note), mode 0644, in place
// like the /etc files: prometheus.yml is bind-mounted into a running Prometheus.
absl::Status WriteTextFile(const std::string& path, const std::string& content) {
  return network::WriteEtcFile(path, content);
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot read"));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string PortsText(const std::vector<network::PortMapping>& ports) {
  std::vector<std::string> out;
  for (const auto& p : ports) {
    out.push_back(
        absl::StrCat(p.host_ip, ":", p.host_port, "->", p.container_port, "/", p.protocol));
  }
  return absl::StrJoin(out, ",");
}

// What makes two versions of a service the same: the entry as parsed and the image's digest.
std::string SpecHash(const ServiceSpec& s, const std::string& image_digest) {
  json volumes = json::array(), ports = json::array();
  for (const auto& v : s.volumes) volumes.push_back({v.host, v.container, v.read_only});
  for (const auto& p : s.ports)
    ports.push_back({p.host_ip, p.host_port, p.container_port, p.protocol});
  json doc = {{"image", s.image},
              {"digest", image_digest},
              {"entrypoint", s.entrypoint},
              {"command", s.command},
              {"env", s.environment},
              {"volumes", volumes},
              {"ports", ports},
              {"user", s.user},
              {"cap_add", s.cap_add},
              {"restart", static_cast<int>(s.restart)},
              {"stop_grace", absl::FormatDuration(s.stop_grace)}};
  // FNV-1a: stable across builds and runs, unlike std::hash.
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : doc.dump()) h = (h ^ c) * 1099511628211ull;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

// Image env, then the entry's (override by name).
std::vector<std::string> MergeEnv(const std::vector<std::string>& image_env,
                                  const std::vector<std::pair<std::string, std::string>>& env) {
  std::vector<std::string> out = image_env;
  for (const auto& [k, v] : env) {
    const std::string prefix = k + "=";
    auto it = std::find_if(out.begin(), out.end(),
                           [&](const std::string& e) { return absl::StartsWith(e, prefix); });
    if (it != out.end()) {
      *it = prefix + v;
    } else {
      out.push_back(prefix + v);
    }
  }
  if (std::none_of(out.begin(), out.end(),
                   [](const std::string& e) { return absl::StartsWith(e, "PATH="); })) {
    out.push_back("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  }
  return out;
}

void MakeDirs(const std::string& path, mode_t mode) { (void)logs::MakeDirs(path, mode); }

ServiceExit Exited(uint32_t status) { return ServiceExit{status, ExitReason(status), absl::Now()}; }
ServiceExit StartFailure(const absl::Status& s) {
  return ServiceExit{std::nullopt, absl::StrCat("did not start: ", s.message()), absl::Now()};
}

const char* PolicyName(RestartPolicy p) {
  constexpr const char* kNames[] = {"always", "on-failure", "no"};  // RestartPolicy's order
  return kNames[static_cast<int>(p)];
}

}  // namespace

class ServiceSupervisor::Impl {
 public:
  Impl(SupervisorOptions o, containerd::Client& client, image::ImagePuller& puller,
       network::CniNetwork& network)
      : o_(std::move(o)), client_(client), puller_(puller), network_(network) {
    if (o_.images_dir.empty()) o_.images_dir = o_.state_dir + "/images";
  }

  void Start() {
    main_ = std::thread([this] {
      NameThisThread("faasd-services");
      Run();
    });
    events_ = std::thread([this] {
      NameThisThread("faasd-svc-exit");
      WatchExits();
    });
  }

  std::vector<ServiceStatus> Statuses() const {
    absl::MutexLock l(&mu_);
    std::vector<ServiceStatus> out;
    for (const auto& [name, st] : states_) {
      ServiceStatus s;
      s.name = name;
      s.image = st.spec.image;
      s.restart_policy = PolicyName(st.spec.restart);
      s.state = st.state;
      s.since = st.since;
      s.pid = st.pid;
      s.ip = st.ip;
      s.restarts = st.restarts;
      if (st.state == ServiceState::kRestarting) s.restart_at = st.restart_at;
      s.last_exit = st.last_exit;
      for (const auto& p : st.spec.ports) {
        s.ports.push_back({p.host_ip, p.host_port, p.container_port, p.protocol});
      }
      out.push_back(std::move(s));
    }
    return out;
  }

  void Stop() {
    if (stopping_.exchange(true)) return;
    {
      absl::MutexLock l(&mu_);
      if (events_ctx_ != nullptr) events_ctx_->TryCancel();
    }
    if (main_.joinable()) main_.join();
    if (events_.joinable()) events_.join();
  }

 private:
  struct State {
    ServiceSpec spec;
    int restarts = 0;                                // since the container was made
    int in_a_row = 0;                                // restarts without a stable run between them
    absl::Time started_at;                           // of the current task
    absl::Time restart_at = absl::InfiniteFuture();  // a restart is due then
    bool running = false;
    // What Statuses() reports (status.h); `since` moves only when `state` changes.
    ServiceState state = ServiceState::kStarting;
    absl::Time since = absl::Now();
    uint32_t pid = 0;  // of the running task
    std::string ip;
    std::optional<ServiceExit> last_exit;

    void Enter(ServiceState s) {
      if (s != state) since = absl::Now();
      state = s;
    }
    void Running(uint32_t task_pid, const std::string& address) {
      running = true;
      started_at = absl::Now();
      pid = task_pid;
      ip = address;
      Enter(ServiceState::kRunning);
    }
  };

  containerd::CallScope Scope(absl::Duration timeout = absl::Seconds(30)) const {
    return containerd::CallScope{o_.ns, "", timeout};
  }
  std::string RunDir(const std::string& name) const {
    return absl::StrCat(o_.state_dir, "/services/run/", name);
  }
  std::string NetnsPath(const std::string& name) const {
    return absl::StrCat(o_.state_dir, "/services/netns/", name);
  }

  void Run() {
    const absl::Time t0 = absl::Now();
    absl::StatusOr<std::vector<ServiceSpec>> order = Prepare();
    if (!order.ok()) {
      LogError("services: ", order.status().message(),
               "; no service was started or changed (functions are served as usual)");
      WriteStatus(std::string(order.status().message()));
      return;
    }
    WriteStatus("");
    for (const ServiceSpec& spec : *order) {
      if (stopping_.load()) return;
      WaitForDependencies(spec);
      absl::Status s = Ensure(spec);
      if (!s.ok()) {
        LogError("service ", spec.name, ": ", s.message());
        ScheduleRestart(spec.name, StartFailure(s), /*failed_start=*/true);
      }
    }
    LogInfo("services: ", order->size(), " up after ", absl::FormatDuration(absl::Now() - t0));
    Loop();
  }

  // Files, images, the parsed and ordered entries; removes services no longer in the file.
  absl::StatusOr<std::vector<ServiceSpec>> Prepare() {
    MakeDirs(o_.state_dir + "/services/run", 0700);
    MakeDirs(o_.state_dir + "/services/netns", 0755);
    MakeDirs(o_.state_dir + "/prometheus", 0755);
    (void)WriteTextFile(o_.state_dir + "/prometheus/prometheus.yml",
                        PrometheusConfig(o_.gateway_port));
    const std::string path = absl::StrCat(o_.state_dir, "/", kFileName);
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
      if (absl::Status s = WriteTextFile(path, DefaultServicesFile(o_.defaults)); !s.ok()) return s;
      LogInfo("services: wrote the default ", path, " (NATS, Prometheus)");
    }
    ImportImages();
    absl::StatusOr<std::string> text = ReadFile(path);
    if (!text.ok()) return text.status();
    absl::StatusOr<std::vector<ServiceSpec>> specs = ParseServicesFile(*text, o_.state_dir, path);
    if (!specs.ok()) return specs.status();
    absl::StatusOr<std::vector<ServiceSpec>> order = StartOrder(*specs);
    if (!order.ok())
      return absl::InvalidArgumentError(absl::StrCat(path, ": ", order.status().message()));
    if (absl::Status s = client_.namespaces.Ensure(o_.ns, {}); !s.ok()) return s;
    std::set<std::string> wanted;
    for (const ServiceSpec& s : *order) wanted.insert(s.name);
    absl::StatusOr<std::vector<Container>> existing =
        client_.containers.List(Scope(), absl::StrCat("labels.\"", kServiceLabel, "\""));
    if (!existing.ok()) return existing.status();
    for (const Container& c : *existing) {
      if (!wanted.count(c.id())) {
        LogInfo("service ", c.id(), ": no longer in ", kFileName, ", removing it");
        Remove(c, /*forget=*/true);
      }
    }
    absl::MutexLock l(&mu_);
    for (const ServiceSpec& s : *order) states_[s.name].spec = s;
    return order;
  }

  // `faasd service list` shows what went wrong with the file.
  void WriteStatus(const std::string& error) {
    const std::string path = o_.state_dir + "/services/error";
    if (error.empty()) {
      ::unlink(path.c_str());
    } else {
      (void)WriteTextFile(path, error + "\n");
    }
  }

  void ImportImages() {
    for (const std::string& f : ImageArchives({o_.packaged_images_dir, o_.images_dir})) {
      const absl::Time t = absl::Now();
      absl::StatusOr<std::vector<image::ImportedImage>> imported =
          image::ImportOciArchive(client_, o_.ns, f, o_.state_dir + "/tmp");
      if (!imported.ok()) {
        LogError("services: ", imported.status().message());
        continue;
      }
      for (const auto& i : *imported) {
        LogInfo("services: imported ", i.name, " (", i.manifest_digest, ") from ", f, " in ",
                absl::FormatDuration(absl::Now() - t));
      }
    }
  }

  void WaitForDependencies(const ServiceSpec& spec) {
    if (spec.depends_on.empty()) return;
    auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      if (stopping_.load()) return true;
      for (const std::string& d : spec.depends_on) {
        auto it = states_.find(d);
        if (it == states_.end() || !it->second.running) return false;
      }
      return true;
    };
    absl::MutexLock l(&mu_);
    if (!mu_.AwaitWithTimeout(absl::Condition(&ready), o_.depends_wait)) {
      LogWarning("service ", spec.name, ": starting before ", absl::StrJoin(spec.depends_on, ", "),
                 " runs (waited ", absl::FormatDuration(o_.depends_wait), ")");
    }
  }

  // Creates, replaces or adopts the service's container and gets its task running.
  absl::Status Ensure(const ServiceSpec& spec) {
    absl::StatusOr<image::PulledImage> img =
        puller_.Pull(spec.image, image::PullPolicy::kIfNotPresent, o_.ns);
    if (!img.ok()) return img.status();
    const std::string hash = SpecHash(spec, img->target_digest);
    absl::StatusOr<Container> existing = client_.containers.Get(Scope(), spec.name);
    if (existing.ok()) {
      auto it = existing->labels().find(kSpecHashLabel);
      if (it != existing->labels().end() && it->second == hash) {
        // The count goes on from what the container records (a daemon restart in between).
        if (auto restarts = existing->labels().find(kRestartsLabel);
            restarts != existing->labels().end()) {
          absl::MutexLock l(&mu_);
          (void)absl::SimpleAtoi(restarts->second, &states_[spec.name].restarts);
        }
        absl::StatusOr<containerd::api::v1::types::Process> task =
            client_.tasks.Get(Scope(), spec.name);
        const std::optional<std::string> ip = network_.LookupIp(spec.name);
        if (task.ok() && task->status() == containerd::api::v1::types::Status::RUNNING && ip &&
            network::IsNetns(NetnsPath(spec.name))) {
          {
            absl::MutexLock l(&mu_);
            states_[spec.name].Running(task->pid(), *ip);
          }
          LogInfo("service ", spec.name, ": adopted the running task (pid ", task->pid(), ")");
          PublishHosts();
          return absl::OkStatus();
        }
        return StartTask(spec.name);
      }
      LogInfo("service ", spec.name, ": its entry or image changed, replacing it");
      Remove(*existing, /*forget=*/false);
    } else if (existing.status().code() != absl::StatusCode::kNotFound) {
      return existing.status();
    }
    if (absl::Status s = Create(spec, *img, hash); !s.ok()) return s;
    return StartTask(spec.name);
  }

  absl::Status Create(const ServiceSpec& spec, const image::PulledImage& img,
                      const std::string& hash) {
    const std::string& id = spec.name;
    containerd::CallScope lease_scope = Scope(absl::Seconds(10));
    absl::StatusOr<std::string> lease = client_.leases.Create(lease_scope, absl::Minutes(10));
    if (!lease.ok()) return lease.status();
    containerd::CallScope scope = Scope();
    scope.lease = *lease;
    auto done = [&](absl::Status s) {
      if (!s.ok()) (void)client_.snapshots.Remove(Scope(), id);
      (void)client_.leases.Delete(lease_scope, *lease);
      return s;
    };
    (void)client_.snapshots.Remove(Scope(), id);  // left by a crash between the two steps
    absl::StatusOr<containerd::Mounts> mounts =
        client_.snapshots.Prepare(scope, id, img.chain_id, {});
    if (!mounts.ok()) return done(mounts.status());

    provider::ProcessUser user;
    const std::string user_text = spec.user.empty() ? img.config.user : spec.user;
    if (!user_text.empty()) {
      std::map<std::string, std::string> files;
      if (user_text.find_first_not_of("0123456789:") != std::string::npos) {
        absl::StatusOr<std::map<std::string, std::string>> read = provider::ReadRootfsFiles(
            *mounts, {"/etc/passwd", "/etc/group"}, o_.state_dir + "/tmp");
        if (!read.ok()) return done(read.status());
        files = std::move(*read);
      }
      absl::StatusOr<provider::ProcessUser> u =
          provider::ResolveUser(user_text, files["/etc/passwd"], files["/etc/group"]);
      if (!u.ok())
        return done(absl::InvalidArgumentError(absl::StrCat("user: ", u.status().message())));
      user = *u;
    }

    provider::SpecInputs in;
    in.cgroups_path = absl::StrCat("/", o_.ns, "/", id);
    in.hostname = id;
    const std::vector<std::string>& entrypoint =
        spec.entrypoint.empty() ? img.config.entrypoint : spec.entrypoint;
    // As compose: a new entrypoint drops the image's Cmd unless `command` gives one.
    std::vector<std::string> cmd = spec.command;
    if (cmd.empty() && spec.entrypoint.empty()) cmd = img.config.cmd;
    in.args = entrypoint;
    in.args.insert(in.args.end(), cmd.begin(), cmd.end());
    if (in.args.empty())
      return done(absl::InvalidArgumentError("image has nothing to run: give command"));
    in.env = MergeEnv(img.config.env, spec.environment);
    in.cwd = img.config.working_dir.empty() ? "/" : img.config.working_dir;
    in.user = user;
    MakeDirs(RunDir(id), 0700);
    in.hosts_file = RunDir(id) + "/hosts";
    in.resolv_conf_file = RunDir(id) + "/resolv.conf";
    absl::StatusOr<std::string> resolv = network::ResolvConf(o_.nameservers);
    if (!resolv.ok())
      resolv = std::string("# faasd: no nameserver configured (set --nameserver)\n");
    if (absl::Status s = network::WriteEtcFile(in.resolv_conf_file, *resolv); !s.ok())
      return done(s);
    if (absl::Status s = network::WriteEtcFile(in.hosts_file, HostsFor(id, "")); !s.ok())
      return done(s);
    in.netns_path = NetnsPath(id);
    for (const auto& v : spec.volumes) {
      struct stat st;
      if (::stat(v.host.c_str(), &st) != 0) {
        // A missing host path is a folder for the service's data, owned by its user.
        MakeDirs(v.host, 0755);
        if (::chown(v.host.c_str(), user.uid, user.gid) != 0) {
          LogWarning("service ", id, ": chown ", v.host, ": ", std::strerror(errno));
        }
      }
      in.binds.push_back({v.host, v.container, v.read_only});
    }
    in.extra_capabilities = spec.cap_add;
    struct rlimit nofile;
    if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
      in.nofile_limit = std::min<uint64_t>(65536, nofile.rlim_max);
    }
    absl::StatusOr<std::string> runtime_spec = provider::BuildRuntimeSpec(in);
    if (!runtime_spec.ok()) return done(runtime_spec.status());

    Container c;
    c.set_id(id);
    c.set_image(img.name);
    c.mutable_runtime()->set_name(o_.runtime);
    c.mutable_spec()->set_type_url(kSpecTypeUrl);
    c.mutable_spec()->set_value(*runtime_spec);
    c.set_snapshotter(client_.snapshots.snapshotter());
    c.set_snapshot_key(id);
    auto& labels = *c.mutable_labels();
    labels[kServiceLabel] = id;
    labels[kSpecHashLabel] = hash;
    labels[kRestartsLabel] = "0";
    labels[kPortsLabel] = PortsText(spec.ports);
    labels[kStopGraceLabel] = absl::FormatDuration(spec.stop_grace);
    if (absl::Status s = client_.containers.Create(scope, c); !s.ok()) return done(s);
    {
      absl::MutexLock l(&mu_);
      states_[id].restarts = 0;
      states_[id].in_a_row = 0;
    }
    LogInfo("service ", id, ": created from ", img.name, " (", img.target_digest, ")");
    return done(absl::OkStatus());
  }

  // The container exists: (re)creates its task, attaching the network first when the pinned
  // namespace is gone (first start, reboot).
  absl::Status StartTask(const std::string& id) {
    ServiceSpec spec;
    {
      absl::MutexLock l(&mu_);
      spec = states_[id].spec;
    }
    (void)client_.tasks.Delete(Scope(), id);
    const std::string netns = NetnsPath(id);
    std::optional<std::string> ip = network_.LookupIp(id);
    if (!network::IsNetns(netns) || !ip) {
      (void)network_.UnmapPorts(id, "", spec.ports);
      (void)network_.Detach(id, "");
      (void)network::DeleteNetns(netns);
      if (absl::Status s = network::CreateNetns(netns); !s.ok()) return s;
      absl::StatusOr<std::string> attached = network_.Attach(id, netns);
      if (!attached.ok()) return attached.status();
      ip = *attached;
      if (absl::Status s = network_.MapPorts(id, netns, spec.ports); !s.ok()) return s;
      absl::StatusOr<Container> c = client_.containers.Get(Scope(), id);
      if (c.ok()) {
        containerd::Labels labels(c->labels().begin(), c->labels().end());
        labels[kIpLabel] = *ip;
        (void)client_.containers.SetLabels(Scope(), id, labels);
      }
    }
    if (absl::Status s = network::WriteEtcFile(RunDir(id) + "/hosts", HostsFor(id, *ip)); !s.ok())
      return s;
    absl::StatusOr<containerd::Mounts> mounts = client_.snapshots.GetMounts(Scope(), id);
    if (!mounts.ok()) return mounts.status();
    containerd::TaskIo io;
    io.stdout_uri = io.stderr_uri =
        logs::TaskLogUri(o_.logger, o_.state_dir, o_.ns, id, o_.log_rotation, o_.log_journal);
    absl::StatusOr<uint32_t> created = client_.tasks.Create(Scope(), id, *mounts, io);
    if (!created.ok()) return created.status();
    absl::StatusOr<uint32_t> started = client_.tasks.Start(Scope(), id);
    if (!started.ok()) {
      (void)client_.tasks.Delete(Scope(), id);
      return started.status();
    }
    {
      absl::MutexLock l(&mu_);
      State& st = states_[id];
      st.Running(*started, *ip);
      st.restart_at = absl::InfiniteFuture();
    }
    LogInfo("service ", id, ": running (pid ", *started, ", ", *ip, ports_note(spec), ")");
    PublishHosts();
    return absl::OkStatus();
  }

  static std::string ports_note(const ServiceSpec& spec) {
    return spec.ports.empty() ? "" : absl::StrCat(", ports ", PortsText(spec.ports));
  }

  std::string HostsFor(const std::string& id, const std::string& ip) const {
    return network::HostsFile(id, network_.GatewayIp(), ip, network::ReadSharedHosts(o_.state_dir));
  }

  // Stops (SIGTERM, grace, SIGKILL) and removes a service: task, ports, network, container.
  // Its entry stays when it is being replaced (`forget` false).
  void Remove(const Container& c, bool forget) {
    const std::string& id = c.id();
    {
      absl::MutexLock l(&mu_);  // the exit this causes is not one to restart after
      if (auto it = states_.find(id); it != states_.end()) {
        it->second.running = false;
        it->second.restart_at = absl::InfiniteFuture();
        it->second.pid = 0;
        it->second.Enter(ServiceState::kStarting);  // replaced (or removed and forgotten)
      }
    }
    absl::Duration grace = absl::Seconds(10);
    if (auto it = c.labels().find(kStopGraceLabel); it != c.labels().end()) {
      (void)absl::ParseDuration(it->second, &grace);
    }
    if (client_.tasks.Kill(Scope(), id, SIGTERM, true).ok()) {
      containerd::CallScope wait = Scope(std::max(grace, absl::Milliseconds(1)));
      if (!client_.tasks.Wait(wait, id).ok()) {
        (void)client_.tasks.Kill(Scope(), id, SIGKILL, true);
        (void)client_.tasks.Wait(Scope(absl::Seconds(10)), id);
      }
    }
    (void)client_.tasks.Delete(Scope(), id);
    std::vector<network::PortMapping> ports;
    if (auto it = c.labels().find(kPortsLabel); it != c.labels().end()) {
      for (absl::string_view p : absl::StrSplit(it->second, ',', absl::SkipEmpty())) {
        // "127.0.0.1:4222->4222/tcp" back into "127.0.0.1:4222:4222/tcp".
        std::string spec(p);
        if (size_t arrow = spec.find("->"); arrow != std::string::npos) spec.replace(arrow, 2, ":");
        if (absl::StatusOr<network::PortMapping> m = ParsePort(spec); m.ok()) ports.push_back(*m);
      }
    }
    if (absl::Status s = network_.UnmapPorts(id, NetnsPath(id), ports); !s.ok())
      LogWarning("service ", id, ": ", s.message());
    if (absl::Status s = network_.Detach(id, NetnsPath(id)); !s.ok())
      LogWarning("service ", id, ": ", s.message());
    (void)network::DeleteNetns(NetnsPath(id));
    (void)client_.containers.Delete(Scope(), id);
    (void)client_.snapshots.Remove(Scope(), id);
    if (forget) {
      absl::MutexLock l(&mu_);
      states_.erase(id);
    }
    PublishHosts();
  }

  // The shared hosts block from every service's address; put into the containers' files when
  // it changed.
  void PublishHosts() {
    std::string lines;
    {
      absl::MutexLock l(&mu_);
      for (const auto& [name, st] : states_) {
        if (std::optional<std::string> ip = network_.LookupIp(name)) {
          absl::StrAppend(&lines, *ip, "\t", name, "\n");
        }
      }
    }
    if (lines == network::ReadSharedHosts(o_.state_dir)) return;
    (void)network::WriteEtcFile(network::SharedHostsPath(o_.state_dir), lines);
    SyncHostsFiles(lines);
  }

  // Every container's hosts file: functions (<state>/run/<id>/hosts) and services.
  void SyncHostsFiles(const std::string& lines) {
    for (const std::string& dir : {o_.state_dir + "/run", o_.state_dir + "/services/run"}) {
      DIR* d = ::opendir(dir.c_str());
      if (d == nullptr) continue;
      while (struct dirent* de = ::readdir(d)) {
        if (de->d_name[0] == '.') continue;
        const std::string path = absl::StrCat(dir, "/", de->d_name, "/hosts");
        absl::StatusOr<std::string> old = ReadFile(path);
        if (!old.ok()) continue;
        const std::string updated = network::ReplaceSharedHosts(*old, lines);
        if (updated != *old) (void)network::WriteEtcFile(path, updated);
      }
      ::closedir(d);
    }
  }

  // Called with the exit seen (from an event or a check). A failed start counts as an exit.
  void ScheduleRestart(const std::string& id, ServiceExit exit, bool failed_start) {
    const uint32_t exit_status = exit.code.value_or(0);
    absl::StatusOr<Container> c = client_.containers.Get(Scope(), id);
    bool requested = false;
    if (c.ok()) requested = c->labels().count(kRestartRequestLabel) > 0;
    absl::MutexLock l(&mu_);
    auto it = states_.find(id);
    if (it == states_.end()) return;
    State& st = it->second;
    if (!st.running && !failed_start) return;  // seen already
    st.running = false;
    st.pid = 0;
    if (requested) exit.reason += " (restart requested)";
    st.last_exit = std::move(exit);
    if (!requested && !failed_start && !ShouldRestart(st.spec.restart, exit_status)) {
      LogInfo("service ", id, ": exited with status ", exit_status, "; restart policy says no");
      st.Enter(exit_status == 0 ? ServiceState::kStopped : ServiceState::kFailed);
      return;
    }
    st.Enter(ServiceState::kRestarting);
    const bool stable = !failed_start && absl::Now() - st.started_at >= kStableRun;
    st.in_a_row = stable || requested ? 1 : st.in_a_row + 1;
    const absl::Duration delay = RestartDelay(st.in_a_row);
    st.restart_at = absl::Now() + delay;
    LogWarning("service ", id, failed_start ? ": did not start" : ": exited with status ",
               failed_start ? "" : absl::StrCat(exit_status), "; restarting in ",
               absl::FormatDuration(delay));
  }

  void Restart(const std::string& id) {
    ServiceSpec spec;
    int restarts = 0;
    {
      absl::MutexLock l(&mu_);
      auto it = states_.find(id);
      if (it == states_.end()) return;
      it->second.restart_at = absl::InfiniteFuture();
      restarts = ++it->second.restarts;
      spec = it->second.spec;
    }
    absl::StatusOr<Container> c = client_.containers.Get(Scope(), id);
    absl::Status s = c.status();
    if (c.ok()) {
      containerd::Labels labels(c->labels().begin(), c->labels().end());
      labels[kRestartsLabel] = absl::StrCat(restarts);
      labels.erase(kRestartRequestLabel);
      (void)client_.containers.SetLabels(Scope(), id, labels);
      s = StartTask(id);
    } else if (c.status().code() == absl::StatusCode::kNotFound) {
      s = Ensure(spec);  // removed behind our back (ctr): made again
    }
    if (!s.ok()) {
      LogError("service ", id, ": restart: ", s.message());
      ScheduleRestart(id, StartFailure(s), /*failed_start=*/true);
    }
  }

  // Due restarts, and a periodic look at every task in case an exit event was missed.
  void Loop() {
    absl::Time next_check = absl::Now() + o_.check_interval;
    while (!stopping_.load()) {
      std::vector<std::string> due;
      absl::Time wake = next_check;
      {
        absl::MutexLock l(&mu_);
        const absl::Time now = absl::Now();
        for (const auto& [name, st] : states_) {
          if (st.restart_at <= now) due.push_back(name);
          wake = std::min(wake, st.restart_at);
        }
        if (due.empty()) {
          auto woken = [this]()
                           ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_.load() || wake_; };
          mu_.AwaitWithDeadline(absl::Condition(&woken), wake);
          wake_ = false;
          continue;
        }
      }
      for (const std::string& id : due) Restart(id);
      if (absl::Now() >= next_check) {
        Check();
        next_check = absl::Now() + o_.check_interval;
      }
    }
  }

  void Check() {
    std::vector<std::string> running;
    {
      absl::MutexLock l(&mu_);
      for (const auto& [name, st] : states_) {
        if (st.running) running.push_back(name);
      }
    }
    for (const std::string& id : running) {
      absl::StatusOr<containerd::api::v1::types::Process> t = client_.tasks.Get(Scope(), id);
      if (t.ok() && t->status() == containerd::api::v1::types::Status::STOPPED) {
        ScheduleRestart(id, Exited(t->exit_status()), false);
      } else if (!t.ok() && t.status().code() == absl::StatusCode::kNotFound) {
        ScheduleRestart(id, ServiceExit{std::nullopt, "its task is gone", absl::Now()}, false);
      }
    }
    PublishHosts();
  }

  void WatchExits() {
    const std::vector<std::string> filters{
        absl::StrCat("topic==\"/tasks/exit\",namespace==\"", o_.ns, "\"")};
    absl::Duration backoff = absl::Milliseconds(200);
    while (!stopping_.load()) {
      grpc::ClientContext ctx;
      {
        absl::MutexLock l(&mu_);
        if (stopping_.load()) break;
        events_ctx_ = &ctx;
      }
      absl::Status s = client_.events.Subscribe(ctx, filters, [this](const auto& envelope) {
        containerd::api::events::TaskExit exit;
        if (absl::EndsWith(envelope.event().type_url(), "TaskExit") &&
            exit.ParseFromString(envelope.event().value()) &&
            exit.id() == exit.container_id()) {  // the task, not an exec'd process
          ScheduleRestart(exit.container_id(), Exited(exit.exit_status()), false);
          absl::MutexLock l(&mu_);
          wake_ = true;
        }
        return !stopping_.load();
      });
      {
        absl::MutexLock l(&mu_);
        events_ctx_ = nullptr;
      }
      if (stopping_.load()) break;
      if (!s.ok()) LogDebug("services: events: ", s.message(), "; resubscribing");
      absl::SleepFor(backoff);
      backoff = std::min(backoff * 2, absl::Seconds(5));
    }
  }

  SupervisorOptions o_;
  containerd::Client& client_;
  image::ImagePuller& puller_;
  network::CniNetwork& network_;
  std::atomic<bool> stopping_{false};
  std::thread main_, events_;

  mutable absl::Mutex mu_;
  std::map<std::string, State> states_ ABSL_GUARDED_BY(mu_);
  bool wake_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* events_ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
};

ServiceSupervisor::ServiceSupervisor(SupervisorOptions options, containerd::Client& client,
                                     image::ImagePuller& puller, network::CniNetwork& network)
    : impl_(std::make_unique<Impl>(std::move(options), client, puller, network)) {}
ServiceSupervisor::~ServiceSupervisor() { impl_->Stop(); }
void ServiceSupervisor::Start() { impl_->Start(); }
void ServiceSupervisor::Stop() { impl_->Stop(); }
std::vector<ServiceStatus> ServiceSupervisor::Statuses() const { return impl_->Statuses(); }

}  // namespace faasd::services
