// Long-lived service containers beside the functions (NATS, Prometheus, an operator's own), run
// by the daemon from one file, <state-dir>/services.yaml, in the compose subset faasd users
// write: image, command, entrypoint, environment, volumes, ports, user, cap_add, depends_on,
// restart, stop_grace_period.
//
// Contract:
// - Parsing is pure: ParseServicesFile names the line and the key of the first problem.
// - ServiceSupervisor::Start() returns at once; a thread imports the OCI archives of the
//   package's images folder and the operator's, then creates or adopts each service in
//   depends_on order in containerd namespace `openfaas` (not a function namespace), each on the
//   functions' bridge with its own pinned network namespace, its ports published by CNI
//   portmap, its output kept by faasd-logger like a function's. A service whose entry (or
//   image) changed is replaced; a service no longer in the file is removed; a bad file changes
//   nothing and is logged.
// - Every container on the bridge resolves each service by name (network::SharedHostsPath).
// - A task that exits is restarted by its restart policy, after RestartDelay.
// - Stop() leaves the services running: a daemon restart (an upgrade) must not lose NATS's
//   queue or Prometheus's history; the next Start() adopts them.
// - Statuses() is what it knows of each service (status.h): none before services.yaml was read
//   (the images folder is imported first), none when it was bad or when Start() was not called.
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "containerd/client.h"
#include "image/puller.h"
#include "logs/logs.h"
#include "network/cni_network.h"
#include "services/status.h"

namespace faasd::services {

inline constexpr char kNamespace[] = "openfaas";
inline constexpr char kFileName[] = "services.yaml";
// Where the package puts the sidecar images (packaging/build.sh --with-images): read-only,
// owned by the package, so an upgrade brings new ones; they are imported at every start.
inline constexpr char kPackagedImagesDir[] = "/usr/share/faasd/images";

// The archives to import at start: each folder's *.tar in name order, the folders in the order
// given (a later archive of the same image name wins); a missing or empty folder adds nothing, a
// folder named twice counts once.
std::vector<std::string> ImageArchives(const std::vector<std::string>& dirs);

enum class RestartPolicy { kAlways, kOnFailure, kNo };

struct ServiceSpec {
  std::string name;
  int line = 0;  // its first key's line in the file (1-based)
  std::string image;
  std::vector<std::string> entrypoint;                           // empty: the image's
  std::vector<std::string> command;                              // empty: the image's Cmd
  std::vector<std::pair<std::string, std::string>> environment;  // in file order
  struct Volume {
    std::string host;  // absolute (relative ones resolved under the state dir)
    std::string container;
    bool read_only = false;
  };
  std::vector<Volume> volumes;
  std::vector<network::PortMapping> ports;
  std::string user;                  // "uid", "uid:gid", "name" ("" = the image's)
  std::vector<std::string> cap_add;  // "CAP_NET_ADMIN"
  std::vector<std::string> depends_on;
  RestartPolicy restart = RestartPolicy::kAlways;
  // SIGTERM to SIGKILL when it is replaced or removed ("10s", "1m30s", "500ms").
  absl::Duration stop_grace = absl::Seconds(10);
};

// services.yaml's text. Relative host paths of volumes resolve under `state_dir`. Errors are
// InvalidArgument "<file> line N: service X: key: what is wrong": bad YAML, unknown keys (a typo
// such as `enviroment`), names that are not DNS labels (or are `gateway`), a missing image, bad
// ports, volumes or restart values, a dependency that is not a service.
absl::StatusOr<std::vector<ServiceSpec>> ParseServicesFile(
    std::string_view yaml, const std::string& state_dir, const std::string& file_name = kFileName);

// "4222:4222", "127.0.0.1:9090:9090", "8080", "53:53/udp", "[::1]:80:80": without an address the
// port is bound to 127.0.0.1 (an appliance publishes nothing to the network by accident).
absl::StatusOr<network::PortMapping> ParsePort(std::string_view spec);

// The services in an order where each comes after what it depends on (file order otherwise).
// InvalidArgument naming the services of a cycle ("a -> b -> a").
absl::StatusOr<std::vector<ServiceSpec>> StartOrder(const std::vector<ServiceSpec>& services);

// Wait before the n-th restart in a row (n >= 1): 250 ms doubling, at most 30 s. A task that ran
// kStableRun or longer before it exited starts a new row.
absl::Duration RestartDelay(int restarts_in_a_row);
inline constexpr absl::Duration kStableRun = absl::Seconds(30);
// Whether a task that exited with `exit_status` is started again.
bool ShouldRestart(RestartPolicy policy, uint32_t exit_status);

struct DefaultsOptions {
  std::string nats_image = "docker.io/library/nats:2.9.10";
  std::string prometheus_image = "docker.io/prom/prometheus:v2.42.0";
  std::string nats_address = "127.0.0.1:4222";        // published NATS client port
  std::string prometheus_address = "127.0.0.1:9090";  // published Prometheus HTTP port
};
// The services.yaml written when there is none: NATS with JetStream (store in nats/ under the
// state dir) and Prometheus (config prometheus/prometheus.yml, data prometheus/data).
std::string DefaultServicesFile(const DefaultsOptions& o);
// prometheus.yml scraping the gateway's /metrics at gateway:<gateway_port> (the daemon on the
// host, through the bridge's address) and Prometheus itself.
std::string PrometheusConfig(int gateway_port);

struct SupervisorOptions {
  // containerd namespace of the service containers (and their cgroup parent). runc keeps its
  // state per namespace and container id under /run/containerd/runc whatever containerd's own
  // --state is, so two daemons on one host (a test beside the appliance) need two namespaces.
  std::string ns = kNamespace;
  std::string state_dir = "/var/lib/faasd";
  // OCI archives (*.tar) imported at start: the package's first, then the operator's, whose
  // archive of the same image name therefore wins.
  std::string packaged_images_dir = kPackagedImagesDir;
  std::string images_dir;  // "" = <state_dir>/images
  DefaultsOptions defaults;
  int gateway_port = 8080;               // where Prometheus scrapes the gateway
  std::vector<std::string> nameservers;  // their resolv.conf, as functions' (--nameserver)
  std::string runtime = "io.containerd.runc.v2";
  std::string logger;  // faasd-logger; "" discards service output
  logs::RotationOptions log_rotation;
  logs::JournalMode log_journal = logs::JournalMode::kAuto;
  absl::Duration check_interval = absl::Seconds(5);  // besides task-exit events
  // How long a service waits for what it depends on to run before it starts anyway.
  absl::Duration depends_wait = absl::Seconds(20);
};

// Runs the services of services.yaml. Borrows the containerd client, the puller (used with
// IfNotPresent) and the network.
class ServiceSupervisor : public StatusSource {
 public:
  ServiceSupervisor(SupervisorOptions options, containerd::Client& client,
                    image::ImagePuller& puller, network::CniNetwork& network);
  ~ServiceSupervisor() override;
  ServiceSupervisor(const ServiceSupervisor&) = delete;
  ServiceSupervisor& operator=(const ServiceSupervisor&) = delete;

  // Starts the supervising threads and returns.
  void Start();
  // Stops supervising; the service containers keep running.
  void Stop();

  // Each service of services.yaml in name order, with its state. Thread-safe.
  std::vector<ServiceStatus> Statuses() const override;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// Container labels the supervisor keeps on each service (read by `faasd service`).
inline constexpr char kServiceLabel[] = "faasd.service";            // its name
inline constexpr char kSpecHashLabel[] = "faasd.service.spec";      // entry + image digest
inline constexpr char kRestartsLabel[] = "faasd.service.restarts";  // restarts so far
inline constexpr char kIpLabel[] = "faasd.service.ip";
inline constexpr char kPortsLabel[] = "faasd.service.ports";  // "127.0.0.1:4222->4222/tcp,..."
inline constexpr char kStopGraceLabel[] = "faasd.service.stop-grace";  // "10s"
// Set by `faasd service restart`: the next exit restarts the task whatever its policy.
inline constexpr char kRestartRequestLabel[] = "faasd.service.restart-requested";

// The `faasd service list|logs NAME|restart NAME` command; returns the exit code.
int Main(int argc, char** argv);

}  // namespace faasd::services
