// `faasd service list|logs NAME|restart NAME`: straight to containerd and the state dir, no API.
// An operator runs it as root on the appliance (containerd's socket is root's anyway), and it
// still answers while the daemon is stopped: list and logs read what containerd and the log
// files hold; restart asks the supervisor (a label) and stops the task, which the running
// daemon then starts again whatever the restart policy.
#include <poll.h>
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "network/cni_network.h"
#include "services/services.h"

namespace faasd::services {
namespace {

constexpr char kUsage[] =
    R"(usage: faasd service list | logs NAME [--tail=N] [--follow] | restart NAME
  --state-dir=DIR              the daemon's state dir (/var/lib/faasd)
  --containerd-address=PATH    containerd socket (/run/containerd/containerd.sock)
  --services-namespace=NS      containerd namespace of the services (openfaas)
)";

struct Args {
  std::vector<std::string> words;
  std::map<std::string, std::string> flags;
  std::string Flag(const std::string& name, const std::string& def) const {
    auto it = flags.find(name);
    return it == flags.end() ? def : it->second;
  }
};

int Usage(const char* why) {
  std::fprintf(stderr, "faasd service: %s\n%s", why, kUsage);
  return 2;
}

int Fail(absl::string_view what, const absl::Status& s) {
  std::fprintf(stderr, "faasd service %s: %s\n", std::string(what).c_str(),
               std::string(s.message()).c_str());
  return 1;
}

const char* StatusName(containerd::api::v1::types::Status s) {
  using containerd::api::v1::types::Status;
  switch (s) {
    case Status::RUNNING:
      return "running";
    case Status::CREATED:
      return "created";
    case Status::STOPPED:
      return "stopped";
    case Status::PAUSED:
      return "paused";
    case Status::PAUSING:
      return "pausing";
    default:
      return "unknown";
  }
}

std::string Label(const containerd::api::services::containers::v1::Container& c, const char* key) {
  auto it = c.labels().find(key);
  return it == c.labels().end() ? "" : it->second;
}

int List(containerd::Client& client, const std::string& ns, const std::string& state_dir) {
  std::ifstream error_file(state_dir + "/services/error");
  if (error_file) {
    std::stringstream s;
    s << error_file.rdbuf();
    std::fprintf(stderr, "services.yaml was not applied: %s", s.str().c_str());
  }
  const containerd::CallScope scope{ns, "", absl::Seconds(10)};
  auto containers = client.containers.List(scope, absl::StrCat("labels.\"", kServiceLabel, "\""));
  if (!containers.ok()) return Fail("list", containers.status());
  std::printf("%-16s %-9s %-8s %-8s %-15s %-32s %s\n", "NAME", "STATUS", "PID", "RESTARTS", "IP",
              "PORTS", "IMAGE");
  for (const auto& c : *containers) {
    std::string status = "no task", pid = "-";
    auto task = client.tasks.Get(scope, c.id());
    if (task.ok()) {
      status = StatusName(task->status());
      if (task->status() == containerd::api::v1::types::Status::STOPPED) {
        status = absl::StrCat("exited(", task->exit_status(), ")");
      }
      pid = absl::StrCat(task->pid());
    }
    const std::string restarts = Label(c, kRestartsLabel);
    std::printf("%-16s %-9s %-8s %-8s %-15s %-32s %s\n", c.id().c_str(), status.c_str(),
                pid.c_str(), restarts.empty() ? "0" : restarts.c_str(), Label(c, kIpLabel).c_str(),
                Label(c, kPortsLabel).c_str(), c.image().c_str());
  }
  return 0;
}

int Logs(const std::string& ns, const std::string& state_dir, const std::string& name,
         const Args& args) {
  logs::ReadOptions o;
  if (!absl::SimpleAtoi(args.Flag("tail", "0"), &o.tail)) return Usage("--tail wants a number");
  o.follow = args.flags.count("follow") > 0;
  auto reader = logs::LogReader::Open(logs::FunctionLogDir(state_dir, ns, name), o);
  if (!reader.ok()) return Fail("logs", reader.status());
  std::vector<logs::Record> records;
  for (;;) {
    records.clear();
    absl::Status s = (*reader)->Read(1000, &records);
    if (!s.ok()) return Fail("logs", s);
    for (const logs::Record& r : records) {
      std::printf("%s %s\n",
                  absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", r.time, absl::UTCTimeZone()).c_str(),
                  r.text.c_str());
    }
    std::fflush(stdout);
    if (!records.empty()) continue;
    if ((*reader)->done()) return 0;
    struct pollfd p {
      (*reader)->wake_fd(), POLLIN, 0
    };
    if (p.fd < 0) {
      absl::SleepFor(absl::Milliseconds(250));
    } else {
      (void)::poll(&p, 1, 1000);
    }
  }
}

int Restart(containerd::Client& client, const std::string& ns, const std::string& name) {
  const containerd::CallScope scope{ns, "", absl::Seconds(10)};
  auto c = client.containers.Get(scope, name);
  if (!c.ok()) return Fail("restart", c.status());
  containerd::Labels labels(c->labels().begin(), c->labels().end());
  labels[kRestartRequestLabel] = "1";
  if (absl::Status s = client.containers.SetLabels(scope, name, labels); !s.ok()) {
    return Fail("restart", s);
  }
  if (absl::Status s = client.tasks.Kill(scope, name, SIGTERM, true); !s.ok()) {
    return Fail("restart", s);
  }
  containerd::CallScope wait{ns, "", absl::Seconds(10)};
  if (!client.tasks.Wait(wait, name).ok()) (void)client.tasks.Kill(scope, name, SIGKILL, true);
  std::printf("%s stopped; the daemon starts it again (faasd service list shows it)\n",
              name.c_str());
  return 0;
}

}  // namespace

int Main(int argc, char** argv) {
  Args args;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) == 0) {
      const size_t eq = a.find('=');
      args.flags[a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2)] =
          eq == std::string::npos ? "" : a.substr(eq + 1);
    } else {
      args.words.push_back(a);
    }
  }
  if (args.words.empty()) return Usage("which command?");
  const std::string state_dir = args.Flag("state-dir", "/var/lib/faasd");
  const std::string ns = args.Flag("services-namespace", kNamespace);
  const std::string& verb = args.words[0];
  if (verb == "logs") {
    if (args.words.size() != 2) return Usage("logs wants one NAME");
    return Logs(ns, state_dir, args.words[1], args);
  }
  containerd::Client client(args.Flag("containerd-address", "/run/containerd/containerd.sock"));
  if (verb == "list" || verb == "ls") return List(client, ns, state_dir);
  if (verb == "restart") {
    if (args.words.size() != 2) return Usage("restart wants one NAME");
    return Restart(client, ns, args.words[1]);
  }
  return Usage(absl::StrCat("unknown command ", verb).c_str());
}

}  // namespace faasd::services
