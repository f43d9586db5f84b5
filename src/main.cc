// The `faasd` command: `faasd up` runs the appliance (gateway + provider on containerd + CNI);
// `faasd version` prints the build.
#include <malloc.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "appliance/appliance.h"
#include "autoscaler/autoscaler.h"
#include "base/companion.h"
#include "base/fs.h"
#include "base/handover.h"
#include "base/listen_fds.h"
#include "base/log.h"
#include "base/private_files.h"
#include "builder/builder.h"
#include "config/settings.h"
#include "containerd/client.h"
#include "containerd/event_engine.h"
#include "faasd_version.h"
#include "gateway/gateway.h"
#include "image/importer.h"
#include "image/puller.h"
#include "logs/logs.h"
#include "metrics/metrics.h"
#include "network/cni_network.h"
#include "provider/cni_function_network.h"
#include "provider/containerd_provider.h"
#include "provider/containerd_runtime.h"
#include "provider/http_readiness_probe.h"
#include "provider/registry_image_source.h"
#include "queue/queue.h"
#include "registry/registry.h"
#include "services/services.h"

namespace {

using namespace faasd;

constexpr char kUsage[] = R"(usage: faasd up [flags] | faasd config [flags] | faasd install [flags]
       | faasd export [--namespace=NS] [flags] | faasd build [flags] [PATH] | faasd version
       | faasd service list|logs NAME|restart NAME [--state-dir=DIR] | faasd image import FILE...

flags for `up`, `config`, `install` and `export` (--name=value; each is also a `name = value`
line of the config file, which the flag overrides):
  --config=PATH                 the config file (/etc/faasd/faasd.conf, if it exists)
  --listen=HOST:PORT            gateway address (0.0.0.0:8080)
  --state-dir=DIR               state: secrets, logs, run files (/var/lib/faasd)
  --containerd-address=PATH     containerd socket (/run/containerd/containerd.sock)
  --namespace=NAME              containerd namespace for functions (openfaas-fn)
  --cni-bin-dir=DIR[:DIR]       CNI plugin dirs (/usr/lib/cni:/opt/cni/bin)
  --cni-conf-dir=DIR            where the conflist is written (/etc/cni/net.d)
  --cni-network=NAME            CNI network name (openfaas-cni-bridge)
  --cni-bridge=NAME             bridge device (openfaas0)
  --cni-subnet=CIDR             function subnet (10.62.0.0/16)
  --cni-ipam-dir=DIR            host-local IPAM state (/var/lib/cni/networks)
  --cni-cache-dir=DIR           CNI results cache (<state-dir>/cni)
  --cni-extra-plugins=T[,T]     CNI plugins chained after bridge, e.g. firewall (none)
  --insecure-registry=HOST:PORT plain-HTTP registry; repeatable (loopback: TLS, else HTTP)
  --registry-ca=FILE            CA certificates (PEM) for registries (the system store)
  --docker-config=PATH          registry credentials (<state-dir>/.docker/config.json)
  --nameserver=IP               DNS server for functions; repeatable (host's resolv.conf)
  --pull-policy=POLICY          Always | IfNotPresent | Never (Always)
  --stop-grace=SECONDS          SIGTERM to SIGKILL on remove (30)
  --reconcile-interval=SECONDS  periodic check of tasks, besides containerd's exit events (2)
  --paused-max=N                at zero, this many tasks (the latest) stay paused for a fast
                                wake instead of stopped; 0 stops them all (16)
  --paused-ttl=SECONDS          how long a task stays paused at zero (600)
  --autoscale-interval=SECONDS  how often the autoscaler looks at each function; 0 turns it
                                off (2)
  --autoscale-window=SECONDS    the window of the rps rate the autoscaler reads (30)
  --autoscale-all[=true|false]  autoscale functions without a com.openfaas.scale.* label too
                                (false: only those with type, target, target-proportion,
                                zero, zero-duration or down.window)
  --upstream-timeout=SECONDS    invoke timeout (60)
  --max-body-bytes=N            invoke body limit (33554432)
  --max-connections=N           open client connections; past it 503 and close (10000)
  --http-head-timeout=SECONDS   a request's head must arrive within this of its first byte (10)
  --http-idle-timeout=SECONDS   keep-alive connections without a request are closed (60)
  --shutdown-grace=SECONDS      on SIGTERM: stop accepting, let requests in flight finish
                                this long, then exit (20)
  --max-image-bytes=N           what one pull's layers may unpack to (8589934592 = 8 GiB)
  --log-level=LEVEL             debug | info | warning | error (info)
  --log-file=PATH               the daemon's own log, rotated like function logs (stderr)
  --log-max-bytes=N             size of one log file, function logs and --log-file (10485760)
  --log-files=N                 files kept per log: the current one and N-1 older (3)
  --logger=PATH                 faasd-logger, which keeps function output (next to faasd)
  --nats-url=URL                NATS server (JetStream) for /async-function/; "" disables
                                async invocation (nats://127.0.0.1:4222)
  --async-max-body-bytes=N      async request body limit, then 413 (262144)
  --queue-concurrency=N         async calls of one function the queue worker invokes at
                                once (4); annotation com.openfaas.queue.concurrency wins
  --function-logs-journal=MODE  auto: also copy function output to journald when its socket
                                is there (journalctl -t NAMESPACE:NAME); off: files only (auto)
  --services=on|off             run the services of <state-dir>/services.yaml (on)
  --nats-image=REF              NATS image of the default services.yaml
                                (docker.io/library/nats:2.9.10)
  --prometheus-image=REF        Prometheus image of the default services.yaml
                                (docker.io/prom/prometheus:v2.42.0)
  --nats-address=HOST:PORT      NATS's published port in the default file (127.0.0.1:4222)
  --prometheus-address=H:P      Prometheus's published port in the default file (127.0.0.1:9090)
  --images-dir=DIR              OCI archives (*.tar) imported at start, after the package's
                                /usr/share/faasd/images (<state-dir>/images)
  --pid-file=PATH               write the daemon's pid here once it serves; `faasd up` with
                                the pid of a running faasd in it makes that daemon hand its
                                socket over to the binary now at its path, as SIGUSR2 does

SIGUSR2 restarts the daemon without refusing a connection: it starts the binary at its own
path with the same arguments on the listening socket, and drains and exits once that serves.

`faasd image import FILE...` imports OCI archives (skopeo's oci-archive:) into containerd
namespaces openfaas and openfaas-fn (--namespace=NAME, repeatable; --containerd-address).
)";

using Flags = config::Settings;

bool ParseSeconds(const Flags& f, const std::string& name, int def, int* out) {
  std::string v = f.Get(name, std::to_string(def));
  if (!absl::SimpleAtoi(v, out) || *out < 0) {
    std::fprintf(stderr, "faasd: --%s=%s is not a number of seconds\n", name.c_str(), v.c_str());
    return false;
  }
  return true;
}

// The autoscaler reads the invoke path's counters through its own narrow face.
class InvocationLoadSource final : public autoscaler::LoadSource {
 public:
  explicit InvocationLoadSource(const metrics::Metrics& metrics) : metrics_(metrics) {}
  std::map<std::string, autoscaler::InvocationLoad> Loads() const override {
    std::map<std::string, autoscaler::InvocationLoad> out;
    metrics_.ForEachFunction(
        [&out](const std::string& key, const metrics::Metrics::FunctionCounters& c) {
          const int64_t in_flight = c.inflight.load(std::memory_order_relaxed);
          out[key] = {c.started.load(std::memory_order_relaxed),
                      in_flight > 0 ? static_cast<uint64_t>(in_flight) : 0};
        });
    return out;
  }

 private:
  const metrics::Metrics& metrics_;
};

// Queued or running async calls keep a function from being scaled to zero.
class QueueIdleVeto final : public autoscaler::IdleVeto {
 public:
  explicit QueueIdleVeto(const queue::AsyncQueue* queue) : queue_(queue) {}
  bool Busy(const std::string& key) const override {
    return queue_ != nullptr && queue_->HasPendingCalls(key);
  }

 private:
  const queue::AsyncQueue* queue_;
};

std::vector<prometheus::MetricFamily> QueueMetrics(const queue::QueueCounters& c) {
  using prometheus::MetricType;
  auto n = [](const auto& atomic) { return static_cast<double>(atomic.load()); };
  return {
      metrics::SingleValueFamily("gateway_async_published_total",
                                 "Async calls accepted (202) after JetStream acked them",
                                 MetricType::Counter, n(c.published)),
      metrics::SingleValueFamily("gateway_async_completed_total",
                                 "Async calls invoked and acked", MetricType::Counter,
                                 n(c.completed)),
      metrics::SingleValueFamily("gateway_async_retried_total",
                                 "Async deliveries put back for a later attempt",
                                 MetricType::Counter, n(c.retried)),
      metrics::SingleValueFamily("gateway_async_failed_total",
                                 "Async calls given up (attempts exhausted, undecodable)",
                                 MetricType::Counter, n(c.failed)),
      metrics::SingleValueFamily("gateway_async_cancelled_total",
                                 "Async calls cancelled before they ran", MetricType::Counter,
                                 n(c.cancelled)),
      metrics::SingleValueFamily("gateway_async_inflight", "Async calls being invoked now",
                                 MetricType::Gauge, n(c.in_flight)),
      metrics::SingleValueFamily("gateway_async_queued",
                                 "Async calls in the stream (in flight included)",
                                 MetricType::Gauge, n(c.queued)),
      metrics::SingleValueFamily("gateway_async_oldest_age_seconds",
                                 "Age of the oldest call in the stream", MetricType::Gauge,
                                 n(c.oldest_age_ms) / 1000),
  };
}

std::string Arch() {
  struct utsname u;
  return ::uname(&u) == 0 ? u.machine : "unknown";
}

// --log-max-bytes/--log-files (function logs and --log-file alike), --log-file (from here on the
// daemon's lines go there), --logger and --function-logs-journal. Returns 0 or the exit code.
int SetUpLogs(const Flags& f, logs::RotationOptions* rotation, std::string* logger,
              logs::JournalMode* journal) {
  absl::StatusOr<logs::JournalMode> mode =
      logs::ParseJournalMode(f.Get("function-logs-journal", "auto"));
  if (!mode.ok()) {
    std::fprintf(stderr, "faasd: --function-logs-journal: %s\n",
                 std::string(mode.status().message()).c_str());
    return 2;
  }
  *journal = *mode;
  if (!absl::SimpleAtoi(f.Get("log-max-bytes", absl::StrCat(rotation->max_bytes)),
                        &rotation->max_bytes) ||
      !absl::SimpleAtoi(f.Get("log-files", absl::StrCat(rotation->files)), &rotation->files)) {
    std::fprintf(stderr, "faasd: --log-max-bytes and --log-files must be numbers\n");
    return 2;
  }
  if (absl::Status s = logs::CheckRotationOptions(*rotation); !s.ok()) {
    std::fprintf(stderr, "faasd: --log-max-bytes/--log-files: %s\n",
                 std::string(s.message()).c_str());
    return 2;
  }
  if (const std::string path = f.Get("log-file", ""); !path.empty()) {
    const size_t slash = path.find_last_of('/');
    absl::Status s = slash == std::string::npos || slash == 0
                         ? absl::OkStatus()
                         : logs::MakeDirs(path.substr(0, slash), 0755);
    absl::StatusOr<std::unique_ptr<logs::RotatingFile>> file =
        s.ok() ? logs::RotatingFile::Open(path, *rotation)
               : absl::StatusOr<std::unique_ptr<logs::RotatingFile>>(s);
    if (!file.ok()) {
      std::fprintf(stderr, "faasd: --log-file: %s\n", std::string(file.status().message()).c_str());
      return 1;
    }
    // Never freed: threads may log until the process exits.
    logs::RotatingFile* log_file = file->release();
    SetLogWriter([log_file](std::string_view line) {
      return log_file->Append(absl::string_view(line.data(), line.size())).ok();
    });
  }
  *logger = f.Get("logger", "");
  if (!logger->empty() && (logger->front() != '/' || ::access(logger->c_str(), X_OK) != 0)) {
    std::fprintf(stderr, "faasd: --logger=%s is not an absolute path to an executable\n",
                 logger->c_str());
    return 2;
  }
  if (logger->empty()) *logger = FindCompanionBinary("faasd-logger", "logs");
  if (logger->empty()) {
    LogWarning(
        "faasd-logger not found beside faasd: function output is discarded and "
        "/system/logs stays empty (install it or pass --logger=PATH)");
  }
  return 0;
}

// --listen's host (brackets of an IPv6 address removed) and port.
bool ParseListen(const Flags& f, std::string* host, int* port) {
  std::string listen = f.Get("listen", "0.0.0.0:8080");
  auto colon = listen.rfind(':');
  if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), port) ||
      *port < 0 || *port > 65535) {
    std::fprintf(stderr, "faasd: --listen=%s is not HOST:PORT\n", listen.c_str());
    return false;
  }
  *host = listen.substr(0, colon);
  if (host->size() > 2 && host->front() == '[' && host->back() == ']')
    *host = host->substr(1, host->size() - 2);
  return true;
}

// Where a local client reaches --listen: a wildcard address means loopback.
std::string LocalGatewayHost(const std::string& host) {
  if (host == "0.0.0.0" || host.empty()) return "127.0.0.1";
  if (host == "::") return "::1";
  return host;
}

std::string GatewayUrl(const std::string& host, int port) {
  const std::string h = LocalGatewayHost(host);
  return absl::StrCat("http://", h.find(':') != std::string::npos ? "[" + h + "]" : h, ":", port);
}

network::CniConfig CniConfigFrom(const Flags& f, const std::string& state_dir) {
  network::CniConfig cni;
  cni.network_name = f.Get("cni-network", cni.network_name);
  cni.bridge = f.Get("cni-bridge", cni.bridge);
  cni.subnet = f.Get("cni-subnet", cni.subnet);
  cni.conf_dir = f.Get("cni-conf-dir", cni.conf_dir);
  cni.ipam_data_dir = f.Get("cni-ipam-dir", cni.ipam_data_dir);
  cni.cache_dir = f.Get("cni-cache-dir", state_dir + "/cni");
  cni.extra_plugins = absl::StrSplit(f.Get("cni-extra-plugins", ""), ',', absl::SkipEmpty());
  if (auto dirs = f.Get("cni-bin-dir", ""); !dirs.empty()) {
    cni.plugin_dirs = absl::StrSplit(dirs, ':', absl::SkipEmpty());
  }
  return cni;
}

// `faasd install`: what the package's postinst runs (appliance.h).
int Install(const Flags& f) {
  std::string host;
  int port = 0;
  if (!ParseListen(f, &host, &port)) return 2;
  appliance::InstallOptions o;
  o.state_dir = f.Get("state-dir", "/var/lib/faasd");
  o.cni = CniConfigFrom(f, o.state_dir);
  o.gateway_url = GatewayUrl(host, port);
  return appliance::Install(o);
}

// `faasd export [--namespace=NS]`: here --namespace chooses what to export (every namespace
// without it); the config file's namespace stays the default one, left out of the stack.yml.
int Export(const Flags& f) {
  std::string host;
  int port = 0;
  if (!ParseListen(f, &host, &port)) return 2;
  appliance::ExportOptions o;
  o.host = LocalGatewayHost(host);
  o.port = port;
  o.gateway_url = GatewayUrl(host, port);
  o.state_dir = f.Get("state-dir", "/var/lib/faasd");
  auto origin = f.origins.find("namespace");
  const bool flag = origin != f.origins.end() && origin->second == "--namespace";
  o.ns = flag ? f.Get("namespace", "") : "";
  o.default_ns = flag ? std::string(provider::kDefaultNamespace)
                      : f.Get("namespace", provider::kDefaultNamespace);
  return appliance::Export(o);
}

// `faasd config`: the effective settings, and where the login is (never the password).
int ShowConfig(const Flags& f) {
  std::fputs(config::Render(f).c_str(), stdout);
  const std::string secrets = f.Get("state-dir", "/var/lib/faasd") + "/secrets";
  std::printf("# basic auth: user in %s/basic-auth-user, password in %s/basic-auth-password "
              "(not shown)\n",
              secrets.c_str(), secrets.c_str());
  return 0;
}

// The signals the daemon collects with sigwait.
sigset_t StopSignals() {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGTERM, SIGINT, SIGUSR2, SIGCHLD}) sigaddset(&set, sig);
  return set;
}

// What a successor runs (base/handover.h): this binary's path, read at start, and our arguments.
struct Relaunch {
  std::string exe;
  std::vector<std::string> argv;
};

// --pid-file: this process's pid, written once it serves (after a handover: once the
// predecessor is gone) and removed at exit if it is still ours.
class PidFile {
 public:
  explicit PidFile(std::string path) : path_(std::move(path)) {}
  ~PidFile() {
    if (written_ && ReadPid(path_) == ::getpid()) ::unlink(path_.c_str());
  }
  PidFile(const PidFile&) = delete;
  PidFile& operator=(const PidFile&) = delete;

  void Write() {
    if (path_.empty()) return;
    const size_t slash = path_.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : path_.substr(0, slash);
    const std::string name = slash == std::string::npos ? path_ : path_.substr(slash + 1);
    absl::Status s = WriteFileAtomic(dir, name, absl::StrCat(::getpid(), "\n"), 0644,
                                     ::geteuid(), ::getegid());
    if (!s.ok()) return LogWarning("pid file: ", s.message());
    written_ = true;
  }

  // The pid in `path`, or -1.
  static pid_t ReadPid(const std::string& path) {
    int pid = -1;
    return absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadSmallFile(path, 64)), &pid) && pid > 1
               ? pid
               : -1;
  }

 private:
  std::string path_;
  bool written_ = false;
};

// True when `pid` runs a program named faasd (an upgraded binary reads "faasd (deleted)").
bool IsFaasd(pid_t pid) {
  const std::string exe = ExecutableOf(pid);
  return absl::StartsWith(absl::string_view(exe).substr(exe.rfind('/') + 1), "faasd");
}

// True while `pid` runs: exists and is not a zombie waiting for its parent to reap it.
bool Running(pid_t pid) {
  if (::kill(pid, 0) != 0) return false;
  const std::string stat = ReadSmallFile(absl::StrCat("/proc/", pid, "/stat"), 4096);
  const size_t paren = stat.rfind(')');  // "pid (comm) S ...": comm may hold spaces
  return paren == std::string::npos || paren + 2 >= stat.size() || stat[paren + 2] != 'Z';
}

// `faasd up` while the daemon of --pid-file runs: asks it to hand its socket over to the binary
// now at its path (SIGUSR2) and waits until the successor has written the pid file.
int HandOverRunning(const std::string& pid_file, pid_t old, absl::Duration wait) {
  if (::kill(old, SIGUSR2) != 0) {
    std::fprintf(stderr, "faasd: signal pid %d: %s\n", old, std::strerror(errno));
    return 1;
  }
  std::fprintf(stderr, "faasd: pid %d (from %s) is running: asked it to hand over to its "
               "binary's current version\n", old, pid_file.c_str());
  const absl::Time deadline = absl::Now() + wait;
  absl::Time gone_at = absl::InfiniteFuture();
  while (absl::Now() < deadline) {
    const pid_t now = PidFile::ReadPid(pid_file);
    const bool old_running = Running(old);
    if (now > 1 && now != old && Running(now) && !old_running) {
      std::printf("faasd: pid %d took over from pid %d\n", now, old);
      return 0;
    }
    if (!old_running && gone_at == absl::InfiniteFuture()) gone_at = absl::Now();
    if (absl::Now() - gone_at > absl::Seconds(10)) {  // a faasd without handover dies of SIGUSR2
      std::fprintf(stderr, "faasd: pid %d exited and no successor wrote %s\n", old,
                   pid_file.c_str());
      return 3;
    }
    absl::SleepFor(absl::Milliseconds(50));  // polling another process's file, bounded
  }
  std::fprintf(stderr, "faasd: no successor took over from pid %d within %s; see its log\n", old,
               absl::FormatDuration(wait).c_str());
  return 1;
}

int Up(const Flags& f, const Relaunch& relaunch) {
  std::string level = f.Get("log-level", "info");
  if (level == "debug")
    SetLogLevel(LogLevel::kDebug);
  else if (level == "warning")
    SetLogLevel(LogLevel::kWarning);
  else if (level == "error")
    SetLogLevel(LogLevel::kError);
  else if (level != "info") {
    std::fprintf(stderr, "faasd: --log-level=%s is not debug, info, warning or error\n",
                 level.c_str());
    return 2;
  }
  logs::RotationOptions rotation;
  std::string logger;
  logs::JournalMode journal = logs::JournalMode::kAuto;
  if (int rc = SetUpLogs(f, &rotation, &logger, &journal); rc != 0) return rc;
  const std::string state_dir = f.Get("state-dir", "/var/lib/faasd");
  int stop_grace = 30, upstream_timeout = 60, reconcile_interval = 2, paused_ttl = 600,
      head_timeout = 10, idle_timeout = 60, max_connections = 10000, autoscale_interval = 2,
      autoscale_window = 30, shutdown_grace = 20;
  if (!ParseSeconds(f, "stop-grace", 30, &stop_grace) ||
      !ParseSeconds(f, "autoscale-interval", 2, &autoscale_interval) ||
      !ParseSeconds(f, "autoscale-window", 30, &autoscale_window) ||
      !ParseSeconds(f, "reconcile-interval", 2, &reconcile_interval) ||
      !ParseSeconds(f, "paused-ttl", 600, &paused_ttl) ||
      !ParseSeconds(f, "upstream-timeout", 60, &upstream_timeout) ||
      !ParseSeconds(f, "http-head-timeout", 10, &head_timeout) ||
      !ParseSeconds(f, "http-idle-timeout", 60, &idle_timeout) ||
      !ParseSeconds(f, "shutdown-grace", 20, &shutdown_grace)) {
    return 2;
  }
  bool autoscale_all = false;
  if (!absl::SimpleAtob(f.Get("autoscale-all", "false"), &autoscale_all)) {
    std::fprintf(stderr, "faasd: --autoscale-all must be true or false\n");
    return 2;
  }
  if (autoscale_window < 1) {
    std::fprintf(stderr, "faasd: --autoscale-window must be at least 1 second\n");
    return 2;
  }
  if (!absl::SimpleAtoi(f.Get("max-connections", "10000"), &max_connections) ||
      max_connections <= 0) {
    std::fprintf(stderr, "faasd: --max-connections must be a positive number\n");
    return 2;
  }
  uint32_t paused_max = 0;
  if (!absl::SimpleAtoi(f.Get("paused-max", "16"), &paused_max)) {
    std::fprintf(stderr, "faasd: --paused-max must be a whole number\n");
    return 2;
  }
  int64_t max_body = 0;
  if (!absl::SimpleAtoi(f.Get("max-body-bytes", "33554432"), &max_body) || max_body <= 0) {
    std::fprintf(stderr, "faasd: --max-body-bytes must be a positive number\n");
    return 2;
  }
  uint64_t max_image = 0;
  if (!absl::SimpleAtoi(f.Get("max-image-bytes", absl::StrCat(image::kDefaultMaxImageBytes)),
                        &max_image) ||
      max_image == 0) {
    std::fprintf(stderr, "faasd: --max-image-bytes must be a positive number\n");
    return 2;
  }
  absl::StatusOr<image::PullPolicy> policy = image::ParsePullPolicy(f.Get("pull-policy", "Always"));
  if (!policy.ok()) {
    std::fprintf(stderr, "faasd: --pull-policy: %s\n",
                 std::string(policy.status().message()).c_str());
    return 2;
  }
  queue::QueueOptions qopts;
  qopts.nats_url = f.Get("nats-url", qopts.nats_url);
  if (!absl::SimpleAtoi(f.Get("async-max-body-bytes", absl::StrCat(qopts.max_body_bytes)),
                        &qopts.max_body_bytes) ||
      qopts.max_body_bytes == 0) {
    std::fprintf(stderr, "faasd: --async-max-body-bytes must be a positive number\n");
    return 2;
  }
  if (!absl::SimpleAtoi(f.Get("queue-concurrency", absl::StrCat(qopts.concurrency)),
                        &qopts.concurrency) ||
      qopts.concurrency < 1 || qopts.concurrency > 1024) {
    std::fprintf(stderr, "faasd: --queue-concurrency must be 1-1024\n");
    return 2;
  }
  qopts.upstream_timeout = absl::Seconds(upstream_timeout > 0 ? upstream_timeout : 60);
  std::string host;
  int port = 0;
  if (!ParseListen(f, &host, &port)) return 2;

  const Predecessor predecessor = TakePredecessor();
  const bool handed_over = predecessor.pid > 0 || predecessor.lifeline >= 0;
  const std::string pid_path = f.Get("pid-file", "");
  if (!pid_path.empty() && !handed_over) {
    const pid_t running = PidFile::ReadPid(pid_path);
    if (running > 1 && running != ::getpid() && Running(running) && IsFaasd(running)) {
      return HandOverRunning(pid_path, running, absl::Seconds(shutdown_grace + 90));
    }
  }
  absl::StatusOr<int> listen_fd = TakeListenFd();
  if (!listen_fd.ok()) {
    std::fprintf(stderr, "faasd: socket activation: %s\n",
                 std::string(listen_fd.status().message()).c_str());
    return 2;
  }

  const std::string run_services = f.Get("services", "on");
  if (run_services != "on" && run_services != "off") {
    std::fprintf(stderr, "faasd: --services=%s is not on or off\n", run_services.c_str());
    return 2;
  }
  services::SupervisorOptions sopts;
  sopts.defaults.nats_image = f.Get("nats-image", sopts.defaults.nats_image);
  sopts.defaults.prometheus_image = f.Get("prometheus-image", sopts.defaults.prometheus_image);
  sopts.defaults.nats_address = f.Get("nats-address", sopts.defaults.nats_address);
  sopts.defaults.prometheus_address =
      f.Get("prometheus-address", sopts.defaults.prometheus_address);
  for (const std::string* address :
       {&sopts.defaults.nats_address, &sopts.defaults.prometheus_address}) {
    if (!services::ParsePort(*address + ":1").ok()) {
      std::fprintf(stderr, "faasd: %s is not HOST:PORT\n", address->c_str());
      return 2;
    }
  }
  // Without --nats-url, async goes to the NATS the supervisor publishes (0.0.0.0 means any
  // address, so loopback).
  if (f.All("nats-url").empty() && run_services == "on") {
    std::string address = sopts.defaults.nats_address;
    if (absl::StartsWith(address, "0.0.0.0:")) address = "127.0.0.1:" + address.substr(8);
    qopts.nats_url = "nats://" + address;
    qopts.nats_supervised = true;
  }

  ::umask(022);
  ::mkdir(state_dir.c_str(), 0700);  // as `faasd install` and the unit make it

  network::CniConfig cni = CniConfigFrom(f, state_dir);
  absl::StatusOr<std::unique_ptr<network::CniNetwork>> net = network::CniNetwork::Create(cni);
  if (!net.ok()) {
    LogError("cni: ", net.status().message());
    return 1;
  }

  registry::RegistryOptions reg;
  reg.insecure_registries = f.All("insecure-registry");
  reg.docker_config_path = f.Get("docker-config", state_dir + "/.docker/config.json");
  reg.ca_file = f.Get("registry-ca", "");
  registry::RegistryClient registry_client(reg);

  faasd::containerd::Client client(f.Get("containerd-address", "/run/containerd/containerd.sock"));
  provider::ProviderOptions popts;
  popts.ns = f.Get("namespace", provider::kDefaultNamespace);
  popts.state_dir = state_dir;
  popts.nameservers = f.All("nameserver");
  popts.pull_policy = *policy;
  popts.stop_grace = absl::Seconds(stop_grace);
  popts.reconcile_interval = absl::Seconds(std::max(1, reconcile_interval));
  popts.max_paused = paused_max;
  popts.paused_ttl = absl::Seconds(paused_ttl);
  popts.logger = logger;
  popts.log_rotation = rotation;
  popts.log_journal = journal;
  image::ImagePuller puller(client, registry_client, popts.ns, registry::Platform::Host(),
                            max_image);
  provider::ContainerdRuntime runtime(client);
  provider::RegistryImageSource images(puller);
  provider::CniFunctionNetwork network(**net);
  provider::HttpReadinessProbe probe;
  provider::SystemClock clock;
  provider::ContainerdProvider provider(popts, runtime, images, network, probe, clock);

  // containerd may still be starting (systemd orders us after it, but not after its socket).
  absl::Status started;
  for (int attempt = 0; attempt < 60; ++attempt) {
    started = provider.Start();
    if (started.ok() || started.code() != absl::StatusCode::kUnavailable) break;
    if (attempt == 0) LogWarning("waiting for containerd: ", started.message());
    absl::SleepFor(absl::Milliseconds(500));
  }
  if (!started.ok()) {
    LogError("provider: ", started.message());
    return 1;
  }

  absl::StatusOr<gateway::Credentials> creds =
      gateway::LoadOrCreateCredentials(state_dir + "/secrets");
  if (!creds.ok()) {
    LogError("credentials: ", creds.status().message());
    return 1;
  }
  gateway::GatewayOptions gopts;
  gopts.listen_host = host;
  gopts.port = port;
  gopts.credentials = *creds;
  gopts.max_request_bytes = static_cast<size_t>(max_body);
  gopts.upstream_timeout_seconds = upstream_timeout;
  gopts.head_timeout_seconds = head_timeout > 0 ? head_timeout : 10;
  gopts.idle_timeout_seconds = idle_timeout > 0 ? idle_timeout : 60;
  gopts.max_connections = static_cast<size_t>(max_connections);
  gopts.listen_fd = *listen_fd;
  gopts.version = FAASD_VERSION;
  gopts.git_sha = FAASD_GIT_SHA;
  metrics::Metrics metrics;
  // Counters and charts of functions no longer deployed are dropped (History::Sample).
  metrics::History history(metrics, [&provider](const std::string& key) {
    return provider.Routes().Snapshot()->functions.count(key) > 0;
  });
  // Declared before the gateway, which borrows it: destroyed after it.
  std::unique_ptr<queue::AsyncQueue> async_queue;
  if (!qopts.nats_url.empty()) {
    async_queue = std::make_unique<queue::AsyncQueue>(qopts, provider);
    async_queue->Connect();  // before the gateway serves: its first async call may publish
    gopts.async_queue = async_queue.get();
  }
  // A deploy or update may ask for autoscaling: a sleeping autoscaler (none of its functions
  // managed) starts again. Set once the autoscaler exists; cleared before it goes.
  std::atomic<autoscaler::Autoscaler*> wake_on_deploy{nullptr};
  gopts.on_function_changed = [&wake_on_deploy] {
    if (autoscaler::Autoscaler* scaler = wake_on_deploy.load()) scaler->Wake();
  };
  gateway::Gateway gw(gopts, provider, metrics, &history);
  absl::Status s = gw.Start();
  if (!s.ok()) {
    LogError("gateway: ", s.message());
    return 1;
  }
  // The worker invokes through the gateway's own port, so it starts once that is bound.
  if (async_queue != nullptr) async_queue->Start(gw.port());
  LogInfo("faasd ", FAASD_VERSION, " (", FAASD_GIT_SHA, ") serving on ",
          *listen_fd >= 0 ? "the inherited socket's " : "", host, ":", gw.port(), ", functions in containerd namespace ", popts.ns, ", state in ", state_dir);

  // Started by a handover: the predecessor stops accepting and drains once we serve; our
  // background work (autoscaler, service supervisor) starts only when it is gone.
  if (handed_over) {
    absl::StatusOr<absl::Duration> took =
        RetirePredecessor(predecessor, absl::Seconds(shutdown_grace + 15));
    if (took.ok()) {
      LogInfo("handover: serving; pid ", predecessor.pid, " drained and exited in ",
              absl::FormatDuration(*took));
    } else {
      LogWarning("handover: pid ", predecessor.pid, ": ", took.status().message());
    }
  }
  PidFile pid_file(pid_path);
  pid_file.Write();

  InvocationLoadSource load(metrics);
  autoscaler::AutoscalerOptions aopts;
  aopts.interval = absl::Seconds(autoscale_interval);
  aopts.rate_window = absl::Seconds(autoscale_window);
  aopts.all = autoscale_all;
  autoscaler::Autoscaler scaler(aopts, provider, load, clock);
  if (autoscale_interval > 0) {
    scaler.Start();
    wake_on_deploy = &scaler;
    LogInfo("autoscaler: every ", autoscale_interval, " s, rps over ", autoscale_window, " s, ",
            autoscale_all ? "every function" : "functions with com.openfaas.scale.* labels");
  }
  QueueIdleVeto queued_calls(async_queue.get());
  if (async_queue != nullptr) scaler.SetIdleVeto(&queued_calls);
  const int queue_collector = metrics.AddCollector([&async_queue] {
    return async_queue == nullptr ? std::vector<prometheus::MetricFamily>()
                                  : QueueMetrics(async_queue->counters());
  });
  const int desired_collector = metrics.AddCollector([&scaler] {
    std::vector<std::pair<std::string, double>> wanted;
    for (const auto& [key, replicas] : scaler.Desired()) {
      wanted.emplace_back(key, static_cast<double>(replicas));
    }
    return std::vector<prometheus::MetricFamily>{
        metrics::GaugeFamily("gateway_function_desired_replicas",
                             "Replicas the autoscaler wants for the function", "function_name",
                             wanted)};
  });

  // Started after the gateway: the API never waits for NATS or Prometheus.
  sopts.state_dir = state_dir;
  sopts.ns = f.Get("services-namespace", services::kNamespace);
  sopts.images_dir = f.Get("images-dir", "");
  sopts.gateway_port = gw.port();
  sopts.nameservers = popts.nameservers;
  sopts.logger = logger;
  sopts.log_rotation = rotation;
  sopts.log_journal = journal;
  services::ServiceSupervisor supervisor(sopts, client, puller, **net);
  gw.SetServiceStatuses(&supervisor);  // gw.Stop() below comes before its destruction
  if (run_services == "on") {
    if (host == "127.0.0.1" || host == "localhost") {
      LogWarning("services: the gateway listens on ", host,
                 " only: Prometheus (and other services) cannot reach it as gateway:", gw.port());
    }
    supervisor.Start();
  }

  // Signals are collected here with sigtimedwait (blocked in every thread): no work in
  // handlers. SIGUSR2 starts a successor (base/handover.h), SIGCHLD tells when it died before
  // taking over, SIGTERM (from it, or from an operator) and SIGINT stop. Between them this
  // thread takes the charts' samples (History::Sample, quick: no I/O).
  sigset_t set = StopSignals();
  int sig = 0;
  Successor successor;
  absl::Time next_sample = absl::Now() + metrics::History::kInterval;
  for (;;) {
    const absl::Time now = absl::Now();
    if (now >= next_sample) {
      history.Sample(now);
      next_sample += metrics::History::kInterval;
      if (next_sample <= now) next_sample = now + metrics::History::kInterval;  // fell behind
    }
    const timespec wait = absl::ToTimespec(next_sample - now);
    sig = sigtimedwait(&set, nullptr, &wait);
    if (sig < 0) continue;  // EAGAIN: a sample is due; EINTR
    if (sig == SIGCHLD) {
      int status = 0;
      if (successor.pid > 0 && ::waitpid(successor.pid, &status, WNOHANG) == successor.pid) {
        LogError("handover: successor pid ", successor.pid, " exited (",
                 WIFEXITED(status) ? absl::StrCat("status ", WEXITSTATUS(status))
                                   : absl::StrCat("signal ", WTERMSIG(status)),
                 ") before taking over; still serving");
        ::close(successor.lifeline);
        successor = Successor{};
      }
      continue;
    }
    if (sig == SIGUSR2) {
      if (successor.pid > 0) {
        LogWarning("SIGUSR2: handover to pid ", successor.pid, " already under way");
        continue;
      }
      absl::StatusOr<Successor> started =
          StartSuccessor(relaunch.exe, relaunch.argv, gw.listener_fd());
      if (!started.ok()) {
        LogError("SIGUSR2: ", started.status().message(), "; still serving");
        continue;
      }
      successor = *started;
      LogInfo("SIGUSR2: started ", relaunch.exe, " as pid ", successor.pid,
              " on the listening socket; serving until it takes over");
      continue;
    }
    break;
  }
  LogInfo("signal ", sig, ": stopping; function and service containers keep running");
  supervisor.Stop();
  metrics.RemoveCollector(desired_collector);
  metrics.RemoveCollector(queue_collector);
  wake_on_deploy = nullptr;
  scaler.Stop();
  gw.Drain(absl::Seconds(shutdown_grace));
  gw.Stop();
  if (async_queue != nullptr) async_queue->Stop();  // calls being invoked go back to the stream
  provider.Stop();
  return 0;
}

// `faasd image import FILE...`: OCI archives into containerd, for services and functions.
int ImageCommand(int argc, char** argv) {
  if (argc < 4 || std::string(argv[2]) != "import") {
    std::fprintf(stderr,
                 "usage: faasd image import FILE... [--namespace=NAME] "
                 "[--containerd-address=PATH]\n");
    return 2;
  }
  std::vector<std::string> files;
  int first_flag = 3;
  while (first_flag < argc && std::string(argv[first_flag]).rfind("--", 0) != 0) {
    files.push_back(argv[first_flag++]);
  }
  absl::StatusOr<config::Settings> f = config::Load(absl::MakeConstSpan(argv + first_flag, argv + argc));
  if (!f.ok()) {
    std::fprintf(stderr, "faasd image import: %s\n", std::string(f.status().message()).c_str());
    return 2;
  }
  std::vector<std::string> namespaces = f->All("namespace");
  if (namespaces.empty()) namespaces = {services::kNamespace, provider::kDefaultNamespace};
  faasd::containerd::Client client(f->Get("containerd-address", "/run/containerd/containerd.sock"));
  const std::string scratch = f->Get("state-dir", "/var/lib/faasd") + "/tmp";
  int rc = 0;
  for (const std::string& file : files) {
    for (const std::string& ns : namespaces) {
      if (absl::Status s = client.namespaces.Ensure(ns, {}); !s.ok()) {
        std::fprintf(stderr, "faasd image import: namespace %s: %s\n", ns.c_str(),
                     std::string(s.message()).c_str());
        return 1;
      }
      absl::StatusOr<std::vector<image::ImportedImage>> imported =
          image::ImportOciArchive(client, ns, file, scratch);
      if (!imported.ok()) {
        std::fprintf(stderr, "faasd image import: %s\n",
                     std::string(imported.status().message()).c_str());
        rc = 1;
        break;
      }
      for (const auto& i : *imported) {
        std::printf("%s\t%s\t%s\n", ns.c_str(), i.name.c_str(), i.manifest_digest.c_str());
      }
    }
  }
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  // Block the signals Up() collects with sigwait, in every thread (threads inherit the mask).
  sigset_t set = StopSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  // glibc would give each busy thread its own malloc arena, which costs resident memory on
  // small boxes for no measurable speed here.
  mallopt(M_ARENA_MAX, 2);
#if !defined(__SANITIZE_ADDRESS__)
  // Debian builds Abseil without NDEBUG, which leaves absl::Mutex's lock-order (deadlock)
  // checking on: every Lock records the edge in a graph behind one process-wide lock, which
  // the event loops would take for each request. The sanitized build, whose integration run is
  // where a lock-order cycle would be caught, keeps it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
#endif
  // Before any gRPC channel: gRPC's own engine would keep 3 idle threads (on 2 cores) for good.
  faasd::containerd::UseOnDemandEventEngine();

  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  std::string cmd = argv[1];
  if (cmd == "version" || cmd == "--version") {
    std::printf("faasd-cpp %s (commit %s, %s)\n", FAASD_VERSION, FAASD_GIT_SHA, Arch().c_str());
    return 0;
  }
  if (cmd == "build") return faasd::builder::Main(argc, argv);
  if (cmd == "service") return faasd::services::Main(argc, argv);
  if (cmd == "image") return ImageCommand(argc, argv);
  if (cmd == "up" || cmd == "config" || cmd == "install" || cmd == "export") {
    absl::StatusOr<config::Settings> settings =
        config::Load(absl::MakeConstSpan(argv + 2, argv + argc));
    if (!settings.ok()) {
      std::fprintf(stderr, "faasd: %s\n", std::string(settings.status().message()).c_str());
      if (settings.status().message().find("unknown flag") == 0) std::fputs(kUsage, stderr);
      return 2;
    }
    if (cmd == "config") return ShowConfig(*settings);
    if (cmd == "install") return Install(*settings);
    if (cmd == "export") return Export(*settings);
    Relaunch relaunch{ExecutableOf(::getpid()), std::vector<std::string>(argv, argv + argc)};
    return Up(*settings, relaunch);
  }
  if (cmd == "help" || cmd == "--help" || cmd == "-h") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  std::fprintf(stderr, "faasd: unknown command %s\n%s", cmd.c_str(), kUsage);
  return 2;
}
