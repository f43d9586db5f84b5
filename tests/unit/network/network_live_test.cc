// Integration test of CniNetwork against the real CNI plugins in /usr/lib/cni. Needs root, ip(8),
// iptables and busybox. It makes its own network namespaces, a bridge named fdt<6 hex>, a random
// /24 in 10.254.0.0/16 and temp dirs for conf, cache and IPAM, and removes all of them (plus the
// iptables rules and chains the plugins made for that subnet) even when an assertion fails.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "catch.hpp"
#include "network/cni_network.h"
#include "network/masquerade.h"
#include "network/process.h"
#include "network/subnet.h"
#include "test_util.h"

extern char** environ;

namespace faasd::network {
namespace {

using testing::Exists;
using testing::TempDir;
using testing::WriteFile;

constexpr char kIp[] = "/usr/sbin/ip";
constexpr char kIptables[] = "/usr/sbin/iptables";
constexpr char kIptablesSave[] = "/usr/sbin/iptables-save";
constexpr char kBusybox[] = "/usr/bin/busybox";

ProcessOutput Run(const std::string& path, const std::vector<std::string>& args) {
  absl::StatusOr<ProcessOutput> out =
      RunProcess(path, args, {"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, "", absl::Seconds(30));
  if (!out.ok()) return ProcessOutput{-1, "", std::string(out.status().message())};
  return *out;
}

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

std::string IptablesSave(const std::string& table) {
  return Run(kIptablesSave, {"-t", table}).stdout_data;
}

// Rules in `table` mentioning any of `needles`.
std::vector<std::string> RulesMentioning(const std::string& table,
                                         const std::vector<std::string>& needles) {
  std::vector<std::string> found;
  for (const std::string& line : Lines(IptablesSave(table))) {
    if (!absl::StartsWith(line, "-A ")) continue;
    for (const std::string& needle : needles) {
      if (absl::StrContains(line, needle)) {
        found.push_back(line);
        break;
      }
    }
  }
  return found;
}

bool ChainExists(const std::string& table, const std::string& chain) {
  return Run(kIptables, {"-w", "-t", table, "-S", chain}).exit_code == 0;
}

// Everything the test creates, undone in the destructor whatever happened.
struct LiveFixture {
  std::string hex;
  std::string bridge;
  std::string subnet_prefix;  // "10.254.N."
  std::string subnet;
  std::string network_name;
  std::vector<std::string> namespaces;
  std::vector<pid_t> servers;
  bool had_cni_forward = false;
  TempDir dir;

  LiveFixture() {
    std::random_device random;
    hex = absl::StrFormat("%06x", random() & 0xffffff);
    bridge = "fdt" + hex;
    network_name = "fdt-test-" + hex;
    // Pick a /24 no route on the host already uses.
    std::string routes = Run(kIp, {"-4", "route", "show"}).stdout_data;
    for (int attempt = 0; attempt < 64; ++attempt) {
      subnet_prefix = absl::StrCat("10.254.", random() % 256, ".");
      if (!absl::StrContains(routes, subnet_prefix)) break;
    }
    subnet = subnet_prefix + "0/24";
    had_cni_forward = ChainExists("filter", "CNI-FORWARD");
  }

  std::string AddNamespace(const std::string& suffix) {
    std::string name = absl::StrCat("fdt-", hex, "-", suffix);
    namespaces.push_back(name);
    ProcessOutput out = Run(kIp, {"netns", "add", name});
    INFO(out.stderr_data);
    REQUIRE(out.exit_code == 0);
    return name;
  }

  CniConfig Config() const {
    CniConfig config;
    config.network_name = network_name;
    config.bridge = bridge;
    config.subnet = subnet;
    config.conf_dir = dir / "conf";
    config.ipam_data_dir = dir / "ipam";
    config.cache_dir = dir / "cache";
    config.plugin_timeout_seconds = 60;
    return config;
  }

  // Addresses host-local currently holds for the test network.
  std::set<std::string> IpamAllocations() const {
    std::set<std::string> ips;
    std::error_code ec;
    for (const auto& entry :
         std::filesystem::directory_iterator(dir / ("ipam/" + network_name), ec)) {
      std::string name = entry.path().filename();
      if (absl::StartsWith(name, subnet_prefix)) ips.insert(name);
    }
    return ips;
  }

  // Rules for one address of the subnet (a plugin's per-container rules), not the network's
  // subnet-wide ones (EnsureSubnetRules).
  std::vector<std::string> PerContainerRules(const std::string& table) const {
    std::vector<std::string> found;
    for (const std::string& rule : RulesMentioning(table, {subnet_prefix})) {
      if (absl::StrContains(rule, "/32")) found.push_back(rule);
    }
    return found;
  }

  pid_t StartHttpd(const std::string& netns, const std::string& ip, const std::string& root) {
    std::string listen = ip + ":8080";
    std::vector<std::string> args = {kIp,  "netns", "exec", netns, kBusybox, "httpd",
                                     "-f", "-p",    listen, "-h",  root};
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    if (posix_spawn(&pid, kIp, nullptr, nullptr, argv.data(), environ) != 0) return -1;
    servers.push_back(pid);
    return pid;
  }

  ~LiveFixture() {
    for (pid_t pid : servers) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
    for (const std::string& ns : namespaces) Run(kIp, {"netns", "del", ns});
    Run(kIp, {"link", "del", bridge});
    // Rules the network (EnsureSubnetRules) and the plugins (firewall, an older bridge with
    // ipMasq) left for our subnet or network, then the chains those rules jumped to.
    for (const char* table : {"nat", "filter"}) {
      std::set<std::string> chains;
      for (const std::string& rule : RulesMentioning(table, {subnet_prefix, network_name})) {
        std::vector<std::string> args = SplitIptablesRule(rule);
        args[0] = "-D";
        for (size_t i = 0; i + 1 < args.size(); ++i) {
          if (args[i] == "-j" &&
              (absl::StartsWith(args[i + 1], "CNI-") || absl::StartsWith(args[i + 1], "FAASD-")) &&
              args[i + 1] != "CNI-FORWARD" && args[i + 1] != "CNI-ADMIN") {
            chains.insert(args[i + 1]);
          }
        }
        args.insert(args.begin(), {"-w", "-t", table});
        Run(kIptables, args);
      }
      for (const std::string& chain : chains) {
        Run(kIptables, {"-w", "-t", table, "-F", chain});
        Run(kIptables, {"-w", "-t", table, "-X", chain});
      }
    }
    // The firewall plugin's shared chains: remove them only if this test created them and
    // nobody else has put rules in them since.
    if (!had_cni_forward && ChainExists("filter", "CNI-FORWARD")) {
      std::string forward = Run(kIptables, {"-w", "-S", "CNI-FORWARD"}).stdout_data;
      std::string admin = Run(kIptables, {"-w", "-S", "CNI-ADMIN"}).stdout_data;
      // Concurrent firewall ADDs can each add the jump to CNI-ADMIN, so there may be several.
      bool only_admin_jumps = true;
      for (const std::string& rule : Lines(forward)) {
        if (absl::StartsWith(rule, "-A ") && !absl::StrContains(rule, "-j CNI-ADMIN")) {
          only_admin_jumps = false;
        }
      }
      if (only_admin_jumps && Lines(admin).size() <= 1) {
        for (int i = 0; i < 16; ++i) {  // bounded: one jump per racing ADD at most
          if (Run(kIptables, {"-w", "-D", "FORWARD", "-m", "comment", "--comment",
                              "CNI firewall plugin rules", "-j", "CNI-FORWARD"})
                  .exit_code != 0) {
            break;
          }
        }
        Run(kIptables, {"-w", "-F", "CNI-FORWARD"});
        Run(kIptables, {"-w", "-X", "CNI-FORWARD"});
        Run(kIptables, {"-w", "-F", "CNI-ADMIN"});
        Run(kIptables, {"-w", "-X", "CNI-ADMIN"});
      }
    }
  }
};

// One HTTP/1.0 GET; returns the whole response or "" when the connection fails.
std::string HttpGet(const std::string& ip, int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  timeval timeout{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  inet_pton(AF_INET, ip.c_str(), &addr.sin_addr);
  std::string response;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    std::string request = "GET " + path + " HTTP/1.0\r\n\r\n";
    if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
        static_cast<ssize_t>(request.size())) {
      char buf[4096];
      for (ssize_t n; (n = recv(fd, buf, sizeof(buf), 0)) > 0;) response.append(buf, n);
    }
  }
  close(fd);
  return response;
}

// Retries until the server answers with `token` or the deadline passes.
std::string GetWithRetry(const std::string& ip, const std::string& token) {
  absl::Time deadline = absl::Now() + absl::Seconds(15);
  std::string response;
  while (absl::Now() < deadline) {
    response = HttpGet(ip, 8080, "/index.html");
    if (absl::StrContains(response, token)) return response;
    absl::SleepFor(absl::Milliseconds(100));  // polling a server we just started
  }
  return response;
}

TEST_CASE("real plugins: attach, reach, detach, no leaks", "[live]") {
  REQUIRE(geteuid() == 0);  // creating namespaces, bridges and iptables rules needs root
  LiveFixture fx;
  REQUIRE_FALSE(fx.dir.path().empty());
  INFO("bridge " << fx.bridge << " subnet " << fx.subnet);

  absl::StatusOr<std::unique_ptr<CniNetwork>> created = CniNetwork::Create(fx.Config());
  INFO(created.status().ToString());
  REQUIRE(created.ok());
  CniNetwork& network = **created;
  Ipv4Subnet subnet = *Ipv4Subnet::Parse(fx.subnet);
  CHECK(network.GatewayIp() == fx.subnet_prefix + "1");
  CHECK(Exists(fx.dir / "conf/10-openfaas.conflist"));

  std::string ns = fx.AddNamespace("a");
  std::string netns_path = "/run/netns/" + ns;
  std::string id = absl::StrCat("fdt-", fx.hex, "-a");

  absl::StatusOr<std::string> ip = network.Attach(id, netns_path);
  INFO(ip.status().ToString());
  REQUIRE(ip.ok());
  CHECK(subnet.Contains(*ip));
  CHECK(*ip != network.GatewayIp());
  CHECK(Run(kIp, {"link", "show", fx.bridge}).exit_code == 0);
  CHECK(fx.IpamAllocations() == std::set<std::string>{*ip});
  CHECK(network.LookupIp(id) == std::optional<std::string>(*ip));
  CHECK(network.AttachedContainers() == std::vector<std::string>{id});
  std::string in_ns =
      Run(kIp, {"netns", "exec", ns, kIp, "-4", "addr", "show", "eth1"}).stdout_data;
  CHECK(absl::StrContains(in_ns, *ip + "/24"));
  // No per-container rule: the network's own rules cover the subnet, once.
  CHECK(fx.PerContainerRules("nat").empty());
  CHECK(fx.PerContainerRules("filter").empty());
  CHECK(RulesMentioning("nat", {"-s " + fx.subnet}).size() == 1);

  // The container answers on its address from the host, across the bridge.
  std::string token = "faasd-live-" + fx.hex;
  std::filesystem::create_directories(fx.dir / "www");
  WriteFile(fx.dir / "www/index.html", token + "\n");
  REQUIRE(fx.StartHttpd(ns, *ip, fx.dir / "www") > 0);
  std::string response = GetWithRetry(*ip, token);
  INFO(response);
  CHECK(absl::StrContains(response, token));

  // Detach frees the address and the plugins' iptables state for it.
  absl::Status detached = network.Detach(id, netns_path);
  INFO(detached.ToString());
  CHECK(detached.ok());
  CHECK(fx.IpamAllocations().empty());
  CHECK(RulesMentioning("nat", {*ip + "/32"}).empty());
  CHECK(RulesMentioning("filter", {*ip + "/32"}).empty());
  CHECK_FALSE(network.LookupIp(id).has_value());
  CHECK(network.AttachedContainers().empty());
  CHECK(network.Detach(id, netns_path).ok());
  CHECK(network.Detach(id, "").ok());

  // A bogus namespace fails ADD, and the undo leaves no address allocated.
  std::string bad_id = absl::StrCat("fdt-", fx.hex, "-bad");
  absl::StatusOr<std::string> bad =
      network.Attach(bad_id, absl::StrCat("/run/netns/fdt-", fx.hex, "-does-not-exist"));
  INFO(bad.status().ToString());
  CHECK_FALSE(bad.ok());
  CHECK(absl::StrContains(bad.status().message(), "cni bridge ADD container " + bad_id));
  CHECK(fx.IpamAllocations().empty());
  CHECK(network.AttachedContainers().empty());
}

TEST_CASE("real plugins: a function reaches past the host, masqueraded", "[live]") {
  REQUIRE(geteuid() == 0);
  LiveFixture fx;
  std::unique_ptr<CniNetwork> network = *CniNetwork::Create(fx.Config());
  // "Outside": a namespace behind a veth from the host on a /30 the test picks, whose server
  // answers with the address it saw the request come from. Without the network's masquerade
  // rule it would see the function's own address and have no route back to answer it.
  std::string outside = fx.AddNamespace("out");
  std::string routes = Run(kIp, {"-4", "route", "show"}).stdout_data;
  std::string link_prefix;
  std::random_device random;
  for (int attempt = 0; attempt < 64 && link_prefix.empty(); ++attempt) {
    std::string candidate = absl::StrCat("10.253.", random() % 256, ".");
    if (!absl::StrContains(routes, candidate)) link_prefix = candidate;
  }
  REQUIRE_FALSE(link_prefix.empty());
  const std::string host_ip = link_prefix + "1", outside_ip = link_prefix + "2";
  const std::string veth = "fdo" + fx.hex;  // goes with `outside` when the fixture deletes it
  REQUIRE(Run(kIp, {"link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", outside})
              .exit_code == 0);
  REQUIRE(Run(kIp, {"addr", "add", host_ip + "/30", "dev", veth}).exit_code == 0);
  REQUIRE(Run(kIp, {"link", "set", veth, "up"}).exit_code == 0);
  REQUIRE(Run(kIp, {"netns", "exec", outside, kIp, "addr", "add", outside_ip + "/30", "dev",
                    "eth0"}).exit_code == 0);
  REQUIRE(Run(kIp, {"netns", "exec", outside, kIp, "link", "set", "eth0", "up"}).exit_code == 0);
  REQUIRE(Run(kIp, {"netns", "exec", outside, kIp, "link", "set", "lo", "up"}).exit_code == 0);
  std::filesystem::create_directories(fx.dir / "out/cgi-bin");
  WriteFile(fx.dir / "out/index.html", "outside\n");
  WriteFile(fx.dir / "out/cgi-bin/from",
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nfrom=%s\\n' "
            "\"$REMOTE_ADDR\"\n",
            0755);
  REQUIRE(fx.StartHttpd(outside, outside_ip, fx.dir / "out") > 0);
  REQUIRE(absl::StrContains(GetWithRetry(outside_ip, "outside"), "outside"));

  std::string ns = fx.AddNamespace("fn");
  std::string id = absl::StrCat("fdt-", fx.hex, "-fn");
  absl::StatusOr<std::string> ip = network->Attach(id, "/run/netns/" + ns);
  INFO(ip.status().ToString());
  REQUIRE(ip.ok());
  ProcessOutput fetched =
      Run(kIp, {"netns", "exec", ns, kBusybox, "wget", "-q", "-O", "-",  // (-T crashes busybox 1.35)
                absl::StrCat("http://", outside_ip, ":8080/cgi-bin/from")});
  INFO(fetched.stdout_data << fetched.stderr_data);
  CHECK(fetched.exit_code == 0);
  CHECK(absl::StrContains(fetched.stdout_data, "from=" + host_ip + "\n"));
  CHECK(network->Detach(id, "/run/netns/" + ns).ok());
}

TEST_CASE("real plugins: detach after the namespace is gone frees the address", "[live]") {
  REQUIRE(geteuid() == 0);
  LiveFixture fx;
  std::unique_ptr<CniNetwork> network = *CniNetwork::Create(fx.Config());
  std::string ns = fx.AddNamespace("gone");
  std::string id = absl::StrCat("fdt-", fx.hex, "-gone");
  absl::StatusOr<std::string> ip = network->Attach(id, "/run/netns/" + ns);
  INFO(ip.status().ToString());
  REQUIRE(ip.ok());
  REQUIRE(fx.IpamAllocations().size() == 1);

  // The task died: its namespace (and the veth inside) went with it.
  REQUIRE(Run(kIp, {"netns", "del", ns}).exit_code == 0);
  absl::Status detached = network->Detach(id, "");
  INFO(detached.ToString());
  CHECK(detached.ok());
  CHECK(fx.IpamAllocations().empty());
  CHECK(network->AttachedContainers().empty());
  CHECK(RulesMentioning("filter", {*ip + "/32"}).empty());
  CHECK(RulesMentioning("nat", {*ip + "/32"}).empty());
}

TEST_CASE("real plugins: concurrent attaches get distinct addresses", "[live]") {
  REQUIRE(geteuid() == 0);
  LiveFixture fx;
  std::unique_ptr<CniNetwork> network = *CniNetwork::Create(fx.Config());
  constexpr int kContainers = 4;
  std::vector<std::string> ids, paths;
  for (int i = 0; i < kContainers; ++i) {
    paths.push_back("/run/netns/" + fx.AddNamespace(absl::StrCat("p", i)));
    ids.push_back(absl::StrCat("fdt-", fx.hex, "-p", i));
  }
  std::vector<absl::StatusOr<std::string>> ips(kContainers, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (int i = 0; i < kContainers; ++i) {
    threads.emplace_back([&, i] { ips[i] = network->Attach(ids[i], paths[i]); });
  }
  for (std::thread& thread : threads) thread.join();
  std::set<std::string> distinct;
  for (const absl::StatusOr<std::string>& ip : ips) {
    INFO(ip.status().ToString());
    REQUIRE(ip.ok());
    distinct.insert(*ip);
  }
  CHECK(distinct.size() == kContainers);
  CHECK(fx.IpamAllocations() == distinct);

  std::vector<absl::Status> results(kContainers);
  threads.clear();
  for (int i = 0; i < kContainers; ++i) {
    threads.emplace_back([&, i] { results[i] = network->Detach(ids[i], paths[i]); });
  }
  for (std::thread& thread : threads) thread.join();
  for (const absl::Status& status : results) CHECK(status.ok());
  CHECK(fx.IpamAllocations().empty());
  CHECK(fx.PerContainerRules("nat").empty());
  CHECK(fx.PerContainerRules("filter").empty());
}

// Restores PATH on scope exit.
struct PathOverride {
  std::string saved;
  explicit PathOverride(const std::string& path) {
    const char* old = std::getenv("PATH");
    saved = old != nullptr ? old : "";
    setenv("PATH", path.c_str(), 1);
  }
  ~PathOverride() { setenv("PATH", saved.c_str(), 1); }
};

TEST_CASE("real plugins: a later plugin failing rolls back the earlier ones", "[live]") {
  REQUIRE(geteuid() == 0);
  LiveFixture fx;
  CniConfig config = fx.Config();
  config.extra_plugins = {"firewall"};
  std::unique_ptr<CniNetwork> network = *CniNetwork::Create(config);
  std::string ns = fx.AddNamespace("fw");
  std::string netns_path = "/run/netns/" + ns;
  std::string id = absl::StrCat("fdt-", fx.hex, "-fw");

  absl::StatusOr<std::string> ip;
  {
    // An iptables that refuses the filter table: bridge (nat masquerade) succeeds and allocates
    // an address, then firewall ADD fails; only our rollback can free that address.
    std::filesystem::create_directories(fx.dir / "fakebin");
    WriteFile(fx.dir / "fakebin/iptables",
              "#!/bin/sh\ncase \" $* \" in *\" -t filter \"*) echo 'filter refused' >&2; exit 1;; "
              "esac\nexec /usr/sbin/iptables \"$@\"\n",
              0755);
    PathOverride path(fx.dir / "fakebin" + ":/usr/sbin:/usr/bin:/sbin:/bin");
    ip = network->Attach(id, netns_path);
  }
  INFO(ip.status().ToString());
  REQUIRE_FALSE(ip.ok());
  CHECK(absl::StrContains(ip.status().message(), "cni firewall ADD container " + id));
  CHECK(absl::StrContains(ip.status().message(), "filter refused"));
  // The rollback ran the bridge's DEL with its result: no address or masquerade rule is held,
  // and nothing is left to clean.
  CHECK(fx.IpamAllocations().empty());
  CHECK(fx.PerContainerRules("nat").empty());
  CHECK(fx.PerContainerRules("filter").empty());
  CHECK(network->AttachedContainers().empty());
  CHECK_FALSE(network->LookupIp(id).has_value());

  // With iptables whole again the same container attaches normally.
  absl::StatusOr<std::string> retry = network->Attach(id, netns_path);
  INFO(retry.status().ToString());
  CHECK(retry.ok());
  CHECK(network->Detach(id, netns_path).ok());
  CHECK(fx.IpamAllocations().empty());
}

}  // namespace
}  // namespace faasd::network
