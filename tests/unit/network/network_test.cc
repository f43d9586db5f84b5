// Unit tests for src/network: pure protocol logic, the process runner with ordinary binaries,
// and the ADD/DEL chaining of CniNetwork against fake plugins (shell scripts that record what
// they were given). The real plugins are exercised by network_live_test.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "catch.hpp"
#include "network/cni_network.h"
#include "network/cni_protocol.h"
#include "network/masquerade.h"
#include "network/process.h"
#include "network/subnet.h"
#include "nlohmann/json.hpp"
#include "test_util.h"

namespace faasd::network {
namespace {

using nlohmann::json;
using testing::Exists;
using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;

TEST_CASE("Ipv4Subnet parses and does the arithmetic", "[subnet]") {
  absl::StatusOr<Ipv4Subnet> subnet = Ipv4Subnet::Parse("10.62.0.0/16");
  REQUIRE(subnet.ok());
  CHECK(subnet->prefix_length() == 16);
  CHECK(FormatIpv4(subnet->FirstHost()) == "10.62.0.1");
  CHECK(FormatIpv4(subnet->Broadcast()) == "10.62.255.255");
  CHECK(subnet->ToString() == "10.62.0.0/16");
  CHECK(subnet->Contains("10.62.200.3"));
  CHECK_FALSE(subnet->Contains("10.63.0.1"));
  CHECK_FALSE(subnet->Contains("not-an-ip"));

  absl::StatusOr<Ipv4Subnet> small = Ipv4Subnet::Parse("192.168.7.8/30");
  REQUIRE(small.ok());
  CHECK(FormatIpv4(small->FirstHost()) == "192.168.7.9");
}

TEST_CASE("Ipv4Subnet rejects bad input with a message naming it", "[subnet]") {
  for (const char* bad : {"10.62.0.0", "10.62.0.1/16", "10.62.0.0/31", "10.62.0.0/0",
                          "10.62.0.0/33", "10.62.0/16", "10.62.0.256/24", "010.62.0.0/16",
                          "10.62.0.0/1x", "10.62..0/16", "", "/16", "10.62.0.0/"}) {
    INFO(bad);
    absl::StatusOr<Ipv4Subnet> subnet = Ipv4Subnet::Parse(bad);
    REQUIRE_FALSE(subnet.ok());
    CHECK(subnet.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(std::string(subnet.status().message()).find(bad) != std::string::npos);
  }
  // The host-bits message suggests the network the operator probably meant.
  CHECK(std::string(Ipv4Subnet::Parse("10.62.0.1/16").status().message()).find("10.62.0.0/16") !=
        std::string::npos);
}

TEST_CASE("ParseIpv4 and FormatIpv4 round-trip", "[subnet]") {
  for (const char* ip : {"0.0.0.0", "10.62.0.1", "255.255.255.255", "192.168.100.7"}) {
    absl::StatusOr<uint32_t> parsed = ParseIpv4(ip);
    REQUIRE(parsed.ok());
    CHECK(FormatIpv4(*parsed) == ip);
  }
  CHECK_FALSE(ParseIpv4("1.2.3").ok());
  CHECK_FALSE(ParseIpv4("1.2.3.4.5").ok());
  CHECK_FALSE(ParseIpv4("1.2.3.-4").ok());
  CHECK_FALSE(ParseIpv4("1.2.3.4 ").ok());
}

TEST_CASE("default conflist is faasd's layout and matches cni/10-openfaas.conflist", "[conflist]") {
  CniConfig config;
  json conflist = BuildConflist(config, *Ipv4Subnet::Parse(config.subnet));
  CHECK(conflist["cniVersion"] == "1.0.0");
  CHECK(conflist["name"] == "openfaas-cni-bridge");
  REQUIRE(conflist["plugins"].size() == 1);
  const json& bridge = conflist["plugins"][0];
  CHECK(bridge["type"] == "bridge");
  CHECK(bridge["bridge"] == "openfaas0");
  CHECK(bridge["isGateway"] == true);
  CHECK(bridge["ipMasq"] == false);  // masquerade is one subnet-wide rule (EnsureSubnetRules)
  CHECK(bridge["hairpinMode"] == true);
  CHECK(bridge["ipam"]["type"] == "host-local");
  CHECK(bridge["ipam"]["dataDir"] == "/var/lib/cni/networks");
  CHECK(bridge["ipam"]["ranges"] ==
        json::parse(R"([[{"subnet":"10.62.0.0/16","gateway":"10.62.0.1"}]])"));
  CHECK(bridge["ipam"]["routes"] == json::parse(R"([{"dst":"0.0.0.0/0"}])"));
  config.extra_plugins = {"firewall", "tuning"};
  json extra = BuildConflist(config, *Ipv4Subnet::Parse(config.subnet));
  REQUIRE(extra["plugins"].size() == 3);
  CHECK(extra["plugins"][0] == conflist["plugins"][0]);
  CHECK(extra["plugins"][1] == json{{"type", "firewall"}});
  CHECK(extra["plugins"][2] == json{{"type", "tuning"}});

  const char* reference = std::getenv("FAASD_CNI_REFERENCE");
  REQUIRE(reference != nullptr);
  json packaged = json::parse(ReadFile(reference), nullptr, false);
  REQUIRE_FALSE(packaged.is_discarded());
  CHECK(packaged == conflist);
  // Byte for byte what Create() writes, so packaging and daemon never drift apart.
  CHECK(ReadFile(reference) == conflist.dump(2) + "\n");
}

TEST_CASE("conflist follows the config", "[conflist]") {
  CniConfig config;
  config.network_name = "testnet";
  config.bridge = "fdt123abc";
  config.subnet = "10.254.7.0/24";
  config.ipam_data_dir = "/tmp/x/ipam";
  json conflist = BuildConflist(config, *Ipv4Subnet::Parse(config.subnet));
  CHECK(conflist["name"] == "testnet");
  CHECK(conflist["plugins"][0]["bridge"] == "fdt123abc");
  CHECK(conflist["plugins"][0]["ipam"]["ranges"][0][0]["gateway"] == "10.254.7.1");
  CHECK(conflist["plugins"][0]["ipam"]["ranges"][0][0]["subnet"] == "10.254.7.0/24");
  CHECK(conflist["plugins"][0]["ipam"]["dataDir"] == "/tmp/x/ipam");
}

TEST_CASE("PluginStdin injects name, cniVersion and prevResult", "[protocol]") {
  json conflist = {{"cniVersion", "1.0.0"}, {"name", "net"}, {"plugins", json::array()}};
  json plugin = {{"type", "firewall"}, {"backend", "iptables"}};
  json first = PluginStdin(conflist, plugin, nullptr);
  CHECK(first == json{{"type", "firewall"},
                      {"backend", "iptables"},
                      {"name", "net"},
                      {"cniVersion", "1.0.0"}});
  json prev = {{"ips", json::array({{{"address", "10.0.0.2/24"}}})}};
  json chained = PluginStdin(conflist, plugin, &prev);
  CHECK(chained["prevResult"] == prev);
  CHECK(chained["type"] == "firewall");
}

TEST_CASE("PluginEnv carries the CNI variables and omits an empty netns", "[protocol]") {
  PluginCall call{"ADD", "abc", "/run/netns/x", "eth1", {"/usr/lib/cni", "/opt/cni/bin"}, ""};
  std::vector<std::string> env = PluginEnv(call, "/usr/sbin:/usr/bin");
  auto has = [&env](const std::string& entry) {
    return std::find(env.begin(), env.end(), entry) != env.end();
  };
  CHECK(has("CNI_COMMAND=ADD"));
  CHECK(has("CNI_CONTAINERID=abc"));
  CHECK(has("CNI_NETNS=/run/netns/x"));
  CHECK(has("CNI_IFNAME=eth1"));
  CHECK(has("CNI_PATH=/usr/lib/cni:/opt/cni/bin"));
  CHECK(has("PATH=/usr/sbin:/usr/bin"));
  CHECK(env.size() == 6);

  call.command = "DEL";
  call.netns = "";
  call.cni_args = "IgnoreUnknown=1";
  env = PluginEnv(call, "/bin");
  CHECK(has("CNI_ARGS=IgnoreUnknown=1"));
  CHECK(std::none_of(env.begin(), env.end(),
                     [](const std::string& e) { return e.rfind("CNI_NETNS=", 0) == 0; }));
}

TEST_CASE("plugin error JSON becomes a Status naming the call", "[protocol]") {
  ProcessOutput ok{0, "{}", ""};
  CHECK(PluginExitStatus("cni bridge ADD container c1", ok).ok());

  ProcessOutput config_error{
      1, R"({"cniVersion":"1.0.0","code":7,"msg":"invalid config","details":"bad bridge"})",
      "ignored"};
  absl::Status status = PluginExitStatus("cni bridge ADD container c1", config_error);
  CHECK(status.code() == absl::StatusCode::kInvalidArgument);
  CHECK(status.message() ==
        "cni bridge ADD container c1: invalid config: bad bridge (CNI error code 7)");

  ProcessOutput busy{1, R"({"code":11,"msg":"try later"})", ""};
  CHECK(PluginExitStatus("x", busy).code() == absl::StatusCode::kUnavailable);
  ProcessOutput unknown{1, R"({"code":3,"msg":"gone"})", ""};
  CHECK(PluginExitStatus("x", unknown).code() == absl::StatusCode::kNotFound);
  ProcessOutput plugin_specific{1, R"({"code":100,"msg":"failed to allocate"})", ""};
  status = PluginExitStatus("x", plugin_specific);
  CHECK(status.code() == absl::StatusCode::kInternal);
  CHECK(status.message() == "x: failed to allocate (CNI error code 100)");

  ProcessOutput crash{2, "panic: oops", "goroutine 1 [running]:\n  main.go:10\n"};
  status = PluginExitStatus("cni firewall DEL container c1", crash);
  CHECK(status.code() == absl::StatusCode::kInternal);
  CHECK(status.message() ==
        "cni firewall DEL container c1: exit status 2: goroutine 1 [running]:\n  main.go:10");
  ProcessOutput silent{1, "", ""};
  CHECK(PluginExitStatus("y", silent).message() == "y: exit status 1: no output");

  // Found by tests/fuzz/cni_result: error JSON without "code" threw (nlohmann type_error)
  // out of the daemon instead of becoming a status.
  ProcessOutput no_code{1, R"({"msg":"failed to allocate"})", ""};
  status = PluginExitStatus("z", no_code);
  CHECK(status.code() == absl::StatusCode::kInternal);
  CHECK(status.message() == "z: failed to allocate (CNI error code 0)");
  ProcessOutput string_code{1, R"({"code":"7","msg":"m"})", ""};
  CHECK(PluginExitStatus("z", string_code).message() == "z: m (CNI error code 0)");
}

TEST_CASE("ContainerIpv4 reads CNI 1.0.0 and 0.4.0 results", "[protocol]") {
  json v1 = json::parse(R"({
    "cniVersion": "1.0.0",
    "interfaces": [{"name": "openfaas0", "mac": "aa"}, {"name": "veth1", "mac": "bb"},
                   {"name": "eth1", "mac": "cc", "sandbox": "/run/netns/x"}],
    "ips": [{"address": "fd00::5/64", "interface": 2},
            {"address": "10.62.0.1/16", "interface": 0},
            {"address": "10.62.0.9/16", "gateway": "10.62.0.1", "interface": 2}]})");
  CHECK(*ContainerIpv4(v1) == "10.62.0.9");

  json v04 = json::parse(R"({"cniVersion": "0.4.0",
    "ips": [{"version": "4", "address": "10.62.3.4/16", "gateway": "10.62.0.1"}]})");
  CHECK(*ContainerIpv4(v04) == "10.62.3.4");

  CHECK(ContainerIpv4(json::parse(R"({"ips": []})")).status().code() ==
        absl::StatusCode::kNotFound);
  CHECK(ContainerIpv4(json::parse(R"({"ips": [{"address": "fd00::1/64"}]})")).status().code() ==
        absl::StatusCode::kNotFound);
  CHECK_FALSE(ContainerIpv4(json::parse(R"({"cniVersion": "1.0.0"})")).ok());
  CHECK_FALSE(ContainerIpv4(json::parse(R"([1,2])")).ok());
}

TEST_CASE("ParseAddResult refuses non-objects", "[protocol]") {
  CHECK(ParseAddResult("w", R"({"ips":[]})").ok());
  absl::Status status = ParseAddResult("w", "").status();
  CHECK_FALSE(status.ok());
  CHECK(std::string(status.message()).rfind("w: ", 0) == 0);
  CHECK_FALSE(ParseAddResult("w", "[]").ok());
  CHECK_FALSE(ParseAddResult("w", "{truncated").ok());
}

TEST_CASE("container ids are safe file names", "[protocol]") {
  CHECK(ValidateContainerId("figlet").ok());
  CHECK(ValidateContainerId("fn-1.2_x").ok());
  CHECK_FALSE(ValidateContainerId("").ok());
  CHECK_FALSE(ValidateContainerId("../etc").ok());
  CHECK_FALSE(ValidateContainerId("a/b").ok());
  CHECK_FALSE(ValidateContainerId(".hidden").ok());
  CHECK_FALSE(ValidateContainerId("a b").ok());
  CHECK_FALSE(ValidateContainerId(std::string(257, 'a')).ok());
}

TEST_CASE("HostsFile has localhost, gateway and the hostname", "[etc]") {
  std::string hosts = HostsFile("figlet", "10.62.0.1");
  CHECK(hosts ==
        "127.0.0.1\tlocalhost\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
        "10.62.0.1\tgateway\n"
        "127.0.1.1\tfiglet\n");
  CHECK(HostsFile("figlet", "10.62.0.1", "10.62.0.7").find("10.62.0.7\tfiglet\n") !=
        std::string::npos);
  CHECK(HostsFile("", "10.62.0.1").find("figlet") == std::string::npos);
}

TEST_CASE("HostsFile carries the services' shared block, replaceable in place", "[etc]") {
  const std::string hosts = HostsFile("fn-1 fn", "10.62.0.1", "10.62.0.7", "10.62.0.2\tnats\n");
  CHECK(hosts ==
        "127.0.0.1\tlocalhost\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
        "10.62.0.1\tgateway\n"
        "# faasd services\n"
        "10.62.0.2\tnats\n"
        "# end of faasd services\n"
        "10.62.0.7\tfn-1 fn\n");
  const std::string moved = ReplaceSharedHosts(hosts, "10.62.0.9\tnats\n10.62.0.3\tweb\n");
  CHECK(moved ==
        HostsFile("fn-1 fn", "10.62.0.1", "10.62.0.7", "10.62.0.9\tnats\n10.62.0.3\tweb\n"));
  // No services left: the block goes, the own lines stay.
  CHECK(ReplaceSharedHosts(hosts, "") == HostsFile("fn-1 fn", "10.62.0.1", "10.62.0.7"));
  // A file written before there were services gets the block before its own name.
  CHECK(ReplaceSharedHosts(HostsFile("fn-1 fn", "10.62.0.1", "10.62.0.7"), "10.62.0.2\tnats") ==
        hosts);
}

TEST_CASE("ResolvConf uses explicit nameservers first", "[etc]") {
  absl::StatusOr<std::string> conf = ResolvConf({"1.1.1.1", " 9.9.9.9 "}, "/nonexistent");
  REQUIRE(conf.ok());
  CHECK(*conf == "nameserver 1.1.1.1\nnameserver 9.9.9.9\n");
  CHECK(ResolvConf({"1.1.1.1 evil"}).status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("ResolvConf copies the host's file minus loopback servers", "[etc]") {
  TempDir dir;
  REQUIRE_FALSE(dir.path().empty());
  WriteFile(dir / "resolv.conf",
            "# generated\n"
            "nameserver 127.0.0.53\n"
            "nameserver 10.0.0.2\n"
            "nameserver ::1\n"
            "nameserver\tfd00::53\n"
            "search example.com corp\n"
            "options edns0 trust-ad\n"
            "sortlist 130.155.160.0\n");
  absl::StatusOr<std::string> conf = ResolvConf({}, dir / "resolv.conf");
  REQUIRE(conf.ok());
  CHECK(*conf ==
        "nameserver 10.0.0.2\n"
        "nameserver fd00::53\n"
        "search example.com corp\n"
        "options edns0 trust-ad\n");
}

TEST_CASE("ResolvConf refuses to invent a nameserver", "[etc]") {
  TempDir dir;
  WriteFile(dir / "resolv.conf", "nameserver 127.0.0.53\nsearch lan\n");
  absl::Status status = ResolvConf({}, dir / "resolv.conf").status();
  CHECK(status.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(std::string(status.message()).find("--nameserver") != std::string::npos);
  CHECK(std::string(status.message()).find("127.0.0.53") != std::string::npos);

  WriteFile(dir / "empty.conf", "");
  CHECK(ResolvConf({}, dir / "empty.conf").status().code() ==
        absl::StatusCode::kFailedPrecondition);
  status = ResolvConf({}, dir / "missing.conf").status();
  CHECK(status.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(std::string(status.message()).find("--nameserver") != std::string::npos);
}

TEST_CASE("RunProcess feeds stdin and captures output and exit status", "[process]") {
  absl::StatusOr<ProcessOutput> out =
      RunProcess("/bin/cat", {}, {}, "hello plugin", absl::Seconds(10));
  REQUIRE(out.ok());
  CHECK(out->exit_code == 0);
  CHECK(out->stdout_data == "hello plugin");

  // A large stdin must not deadlock against a program that writes while it reads.
  std::string big(1 << 20, 'x');
  out = RunProcess("/bin/cat", {}, {}, big, absl::Seconds(10));
  REQUIRE(out.ok());
  CHECK(out->stdout_data.size() == big.size());

  out = RunProcess("/bin/sh", {"-c", "echo out; echo err >&2; echo \"$FOO\"; exit 3"}, {"FOO=bar"},
                   "", absl::Seconds(10));
  REQUIRE(out.ok());
  CHECK(out->exit_code == 3);
  CHECK(out->stdout_data == "out\nbar\n");
  CHECK(out->stderr_data == "err\n");

  // A program that does not read its stdin must not hurt the caller (no SIGPIPE).
  out = RunProcess("/bin/true", {}, {}, big, absl::Seconds(10));
  REQUIRE(out.ok());
  CHECK(out->exit_code == 0);
}

TEST_CASE("RunProcess kills a program that outlives its timeout", "[process]") {
  absl::Time start = absl::Now();
  absl::StatusOr<ProcessOutput> out =
      RunProcess("/bin/sleep", {"30"}, {}, "", absl::Milliseconds(300));
  CHECK(out.status().code() == absl::StatusCode::kDeadlineExceeded);
  CHECK(absl::Now() - start < absl::Seconds(10));

  // Closing stdout does not let a program escape the timeout.
  start = absl::Now();
  out = RunProcess("/bin/sh", {"-c", "exec >&- 2>&-; sleep 30"}, {}, "", absl::Milliseconds(300));
  CHECK(out.status().code() == absl::StatusCode::kDeadlineExceeded);
  CHECK(absl::Now() - start < absl::Seconds(10));
}

TEST_CASE("RunProcess reports a missing program", "[process]") {
  absl::StatusOr<ProcessOutput> out =
      RunProcess("/nonexistent/plugin", {}, {}, "", absl::Seconds(5));
  CHECK(out.status().code() == absl::StatusCode::kNotFound);
  CHECK(std::string(out.status().message()).find("/nonexistent/plugin") != std::string::npos);
}

// Fake plugins: each logs "<COMMAND> <type> <container> <netns>" and saves its stdin, so the
// test can check order, environment and prevResult. `fail-<type>-<COMMAND>` files make a plugin
// fail with a CNI error.
struct FakePlugins {
  TempDir dir;
  std::string bin = dir / "bin";
  std::string log = dir / "calls.log";

  FakePlugins() {
    std::filesystem::create_directories(bin);
    const std::string result =
        R"({"cniVersion":"1.0.0","interfaces":[{"name":"br"},{"name":"eth1","sandbox":"'"$CNI_NETNS"'"}],)"
        R"("ips":[{"address":"10.99.0.7/24","gateway":"10.99.0.1","interface":1}]})";
    for (const char* type : {"bridge", "firewall", "host-local"}) {
      std::string script = std::string("#!/bin/sh\n") + "in=$(cat)\n" + "echo \"$CNI_COMMAND " +
                           type + " $CNI_CONTAINERID $CNI_NETNS\" >> " + log + "\n" +
                           "printf '%s' \"$in\" > " + dir.path() + "/" + type +
                           ".$CNI_COMMAND.stdin\n" + "if [ -e " + dir.path() + "/fail-" + type +
                           "-$CNI_COMMAND ]; then\n" +
                           "  echo '{\"cniVersion\":\"1.0.0\",\"code\":100,\"msg\":\"" + type +
                           " broke\"}'; exit 1\nfi\n" + "[ \"$CNI_COMMAND\" = ADD ] && echo '" +
                           result + "'\nexit 0\n";
      WriteFile(bin + "/" + type, script, 0755);
    }
    // iptables is found through PATH (masquerade cleanup); this one logs its arguments and
    // lists `postrouting` for -S.
    WriteFile(bin + "/iptables",
              "#!/bin/sh\necho \"$*\" >> " + dir.path() +
                  "/iptables.log\n"
                  "case \"$*\" in *-S*) cat " +
                  dir.path() + "/postrouting 2>/dev/null;; esac\nexit 0\n",
              0755);
    const char* path = std::getenv("PATH");
    saved_path = path != nullptr ? path : "";
    setenv("PATH", (bin + ":/usr/bin:/bin").c_str(), 1);
  }
  ~FakePlugins() { setenv("PATH", saved_path.c_str(), 1); }
  std::string saved_path;
  std::vector<std::string> IptablesCalls() const {
    std::vector<std::string> calls;
    std::istringstream in(ReadFile(dir / "iptables.log"));
    for (std::string line; std::getline(in, line);) calls.push_back(line);
    return calls;
  }
  CniConfig Config() const {
    CniConfig config;
    config.network_name = "fake-net";
    config.bridge = "fdtfake";
    config.subnet = "10.99.0.0/24";
    config.conf_dir = dir / "conf";
    config.plugin_dirs = {dir / "missing", bin};
    config.ipam_data_dir = dir / "ipam";
    config.extra_plugins = {"firewall"};  // a chain of two: prevResult, undo order
    config.cache_dir = dir / "cache";
    config.plugin_timeout_seconds = 10;
    return config;
  }
  std::vector<std::string> Calls() const {
    std::vector<std::string> calls;
    std::istringstream in(ReadFile(log));
    for (std::string line; std::getline(in, line);) calls.push_back(line);
    return calls;
  }
  json Stdin(const std::string& type, const std::string& command) const {
    return json::parse(ReadFile(dir / (type + "." + command + ".stdin")), nullptr, false);
  }
  void Fail(const std::string& type, const std::string& command) const {
    WriteFile(dir / ("fail-" + type + "-" + command), "");
  }
};

TEST_CASE("Create writes the conflist and creates dirs", "[cni]") {
  FakePlugins fake;
  absl::StatusOr<std::unique_ptr<CniNetwork>> network = CniNetwork::Create(fake.Config());
  REQUIRE(network.ok());
  CHECK((*network)->GatewayIp() == "10.99.0.1");
  json written = json::parse(ReadFile(fake.dir / "conf/10-openfaas.conflist"), nullptr, false);
  CHECK(written == BuildConflist(fake.Config(), *Ipv4Subnet::Parse("10.99.0.0/24")));
  CHECK(Exists(fake.dir / "cache"));
  CHECK(Exists(fake.dir / "ipam"));
  CHECK((*network)->AttachedContainers().empty());
}

TEST_CASE("Create reports missing plugins and bad config", "[cni]") {
  FakePlugins fake;
  CniConfig config = fake.Config();
  std::filesystem::remove(fake.bin + "/firewall");
  absl::Status status = CniNetwork::Create(config).status();
  CHECK(status.code() == absl::StatusCode::kNotFound);
  std::string message(status.message());
  CHECK(message.find("\"firewall\"") != std::string::npos);
  CHECK(message.find(fake.dir / "missing") != std::string::npos);
  CHECK(message.find(fake.bin) != std::string::npos);

  config = fake.Config();
  config.subnet = "10.99.0.1/24";
  CHECK(CniNetwork::Create(config).status().code() == absl::StatusCode::kInvalidArgument);
  config = fake.Config();
  config.bridge = "a-very-long-bridge-name";
  CHECK(CniNetwork::Create(config).status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("Attach chains ADD with prevResult; Detach runs DEL in reverse", "[cni]") {
  FakePlugins fake;
  std::unique_ptr<CniNetwork> network = *CniNetwork::Create(fake.Config());

  absl::StatusOr<std::string> ip = network->Attach("fn1", "/run/netns/fake1");
  REQUIRE(ip.ok());
  CHECK(*ip == "10.99.0.7");
  CHECK(fake.Calls() == std::vector<std::string>{"ADD bridge fn1 /run/netns/fake1",
                                                 "ADD firewall fn1 /run/netns/fake1"});
  json bridge_in = fake.Stdin("bridge", "ADD");
  CHECK(bridge_in["name"] == "fake-net");
  CHECK(bridge_in["cniVersion"] == "1.0.0");
  CHECK(bridge_in["bridge"] == "fdtfake");
  CHECK_FALSE(bridge_in.contains("prevResult"));
  json firewall_in = fake.Stdin("firewall", "ADD");
  REQUIRE(firewall_in.contains("prevResult"));
  CHECK(firewall_in["prevResult"]["ips"][0]["address"] == "10.99.0.7/24");
  CHECK(firewall_in["prevResult"]["interfaces"][1]["sandbox"] == "/run/netns/fake1");

  CHECK(network->LookupIp("fn1") == std::optional<std::string>("10.99.0.7"));
  CHECK(network->AttachedContainers() == std::vector<std::string>{"fn1"});
  // A second Attach to the same namespace is answered from the cache, not a second ADD.
  CHECK(*network->Attach("fn1", "/run/netns/fake1") == "10.99.0.7");
  CHECK(fake.Calls().size() == 2);

  // A fresh CniNetwork (daemon restart) rediscovers the attachment.
  std::unique_ptr<CniNetwork> restarted = *CniNetwork::Create(fake.Config());
  CHECK(restarted->LookupIp("fn1") == std::optional<std::string>("10.99.0.7"));

  REQUIRE(restarted->Detach("fn1", "").ok());
  std::vector<std::string> calls = fake.Calls();
  REQUIRE(calls.size() == 4);
  CHECK(calls[2] == "DEL firewall fn1 ");
  CHECK(calls[3] == "DEL bridge fn1 ");
  CHECK(fake.Stdin("bridge", "DEL")["prevResult"]["ips"][0]["address"] == "10.99.0.7/24");
  CHECK(fake.Stdin("firewall", "DEL")["prevResult"]["ips"][0]["address"] == "10.99.0.7/24");
  CHECK_FALSE(restarted->LookupIp("fn1").has_value());
  CHECK(restarted->AttachedContainers().empty());

  // Idempotent: nothing cached, nothing run.
  CHECK(restarted->Detach("fn1", "").ok());
  CHECK(fake.Calls().size() == 4);
}

TEST_CASE("Detach removes masquerade rules the bridge plugin left behind", "[cni]") {
  FakePlugins fake;
  std::unique_ptr<CniNetwork> network = *CniNetwork::Create(fake.Config());
  std::filesystem::remove(fake.dir / "iptables.log");  // Create's subnet rules: tested below
  REQUIRE(network->Attach("fn5", "/run/netns/fake5").ok());
  WriteFile(fake.dir / "postrouting",
            "-P POSTROUTING ACCEPT\n"
            "-A POSTROUTING -s 10.99.0.7/32 -m comment --comment \"name: \\\"fake-net\\\" id: "
            "\\\"fn5\\\"\" -j CNI-0123456789abcdef01234567\n"
            "-A POSTROUTING -s 10.99.0.8/32 -m comment --comment \"name: \\\"fake-net\\\" id: "
            "\\\"other\\\"\" -j CNI-fedcba9876543210fedcba98\n");
  REQUIRE(network->Detach("fn5", "").ok());
  CHECK(fake.IptablesCalls() ==
        std::vector<std::string>{
            "-w -t nat -S POSTROUTING",
            "-w -t nat -D POSTROUTING -s 10.99.0.7/32 -m comment --comment name: \"fake-net\" id: "
            "\"fn5\" -j CNI-0123456789abcdef01234567",
            "-w -t nat -F CNI-0123456789abcdef01234567",
            "-w -t nat -X CNI-0123456789abcdef01234567"});
}

TEST_CASE("FindMasqueradeLeftovers matches the plugin's comment exactly", "[protocol]") {
  std::string listing =
      "-P POSTROUTING ACCEPT\n"
      "-A POSTROUTING -s 10.62.0.5/32 -m comment --comment \"name: \\\"openfaas-cni-bridge\\\" "
      "id: \\\"fn\\\"\" -j CNI-aaa\n"
      "-A POSTROUTING -s 10.62.0.6/32 -m comment --comment \"name: \\\"openfaas-cni-bridge\\\" "
      "id: \\\"fn2\\\"\" -j CNI-bbb\n"
      "-A POSTROUTING -s 10.62.0.7/32 -m comment --comment \"name: \\\"other\\\" id: "
      "\\\"fn\\\"\" -j CNI-ccc\n";
  std::vector<MasqueradeLeftover> found =
      FindMasqueradeLeftovers(listing, "openfaas-cni-bridge", "fn");
  REQUIRE(found.size() == 1);
  CHECK(found[0].chain == "CNI-aaa");
  CHECK(found[0].rule == std::vector<std::string>{"-D", "POSTROUTING", "-s", "10.62.0.5/32", "-m",
                                                  "comment", "--comment",
                                                  "name: \"openfaas-cni-bridge\" id: \"fn\"", "-j",
                                                  "CNI-aaa"});
  CHECK(FindMasqueradeLeftovers(listing, "openfaas-cni-bridge", "f").empty());
  CHECK(SplitIptablesRule("a \"\" \"b c\"") == std::vector<std::string>{"a", "", "b c"});
}

TEST_CASE("EnsureSubnetRules adds the network's rules once, and only what is missing", "[iptables]") {
  TempDir dir;
  // An iptables with an empty ruleset: -S and -C fail until the rule (or chain) was added.
  // (PATH is only `dir` for it, so its tools go by absolute path.)
  const std::string state = dir / "rules";
  WriteFile(dir / "iptables",
            "#!/bin/sh\necho \"$*\" >> " + dir.path() + "/calls\n"
            "key=$(echo \"$*\" | /bin/sed -e 's/ -[ACIN] / X /' -e 's/ -S / X /' -e 's/ X \\([^ ]*\\) 1 / X \\1 /')\n"
            "case \"$*\" in\n"
            "  *' -C '*|*' -S '*) /bin/grep -qxF -- \"$key\" " + state + " 2>/dev/null; exit $?;;\n"
            "  *) echo \"$key\" >> " + state + "; exit 0;;\n"
            "esac\n",
            0755);
  const std::string path = dir.path();
  REQUIRE(EnsureSubnetRules("fn-net", "10.99.0.0/24", path, absl::Seconds(10)).ok());
  std::vector<std::string> calls;
  {
    std::istringstream in(ReadFile(dir / "calls"));
    for (std::string line; std::getline(in, line);) calls.push_back(line);
  }
  const std::string chain = SubnetChainName("fn-net");
  CHECK(chain.size() == 14);
  CHECK(chain.rfind("FAASD-", 0) == 0);
  CHECK(chain != SubnetChainName("other-net"));
  std::vector<std::string> changes;
  for (const std::string& c : calls) {
    if (c.find(" -C ") == std::string::npos && c.find(" -S ") == std::string::npos) {
      changes.push_back(c);
    }
  }
  CHECK(changes ==
        std::vector<std::string>{
            "-w -t nat -N " + chain,
            "-w -t filter -N " + chain,
            "-w -t nat -A " + chain + " -d 10.99.0.0/24 -j ACCEPT",
            "-w -t nat -A " + chain + " ! -d 224.0.0.0/4 -j MASQUERADE",
            "-w -t nat -A POSTROUTING -s 10.99.0.0/24 -m comment --comment faasd network fn-net "
            "-j " + chain,
            "-w -t filter -A " + chain +
                " -d 10.99.0.0/24 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            "-w -t filter -A " + chain + " -s 10.99.0.0/24 -j ACCEPT",
            "-w -t filter -I FORWARD 1 -m comment --comment faasd network fn-net -j " + chain});
  // A second start finds everything in place and changes nothing.
  std::filesystem::remove(dir / "calls");
  REQUIRE(EnsureSubnetRules("fn-net", "10.99.0.0/24", path, absl::Seconds(10)).ok());
  std::istringstream again(ReadFile(dir / "calls"));
  for (std::string line; std::getline(again, line);) {
    INFO(line);
    CHECK((line.find(" -C ") != std::string::npos || line.find(" -S ") != std::string::npos));
  }
  // Without iptables the daemon cannot masquerade: a clear error, not a silent network.
  absl::Status none = EnsureSubnetRules("fn-net", "10.99.0.0/24", dir / "empty", absl::Seconds(1));
  CHECK(none.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(std::string(none.message()).find("iptables") != std::string::npos);
}

TEST_CASE("a failed ADD is undone and leaves no cache entry", "[cni]") {
  FakePlugins fake;
  std::unique_ptr<CniNetwork> network = *CniNetwork::Create(fake.Config());
  fake.Fail("firewall", "ADD");
  absl::StatusOr<std::string> ip = network->Attach("fn2", "/run/netns/fake2");
  REQUIRE_FALSE(ip.ok());
  CHECK(ip.status().message() ==
        "cni firewall ADD container fn2: firewall broke (CNI error code 100)");
  CHECK(fake.Calls() == std::vector<std::string>{"ADD bridge fn2 /run/netns/fake2",
                                                 "ADD firewall fn2 /run/netns/fake2",
                                                 "DEL firewall fn2 /run/netns/fake2",
                                                 "DEL bridge fn2 /run/netns/fake2"});
  // The undo tells the bridge what it had added.
  CHECK(fake.Stdin("bridge", "DEL")["prevResult"]["ips"][0]["address"] == "10.99.0.7/24");
  CHECK(network->AttachedContainers().empty());
  CHECK_FALSE(network->LookupIp("fn2").has_value());
}

TEST_CASE("an ADD whose undo fails stays listed for cleanup", "[cni]") {
  FakePlugins fake;
  std::unique_ptr<CniNetwork> network = *CniNetwork::Create(fake.Config());
  fake.Fail("bridge", "ADD");
  fake.Fail("bridge", "DEL");
  absl::Status status = network->Attach("fn3", "/run/netns/fake3").status();
  CHECK(status.code() == absl::StatusCode::kInternal);
  CHECK(std::string(status.message()).find("undo failed") != std::string::npos);
  CHECK(network->AttachedContainers() == std::vector<std::string>{"fn3"});
  CHECK_FALSE(network->LookupIp("fn3").has_value());  // never got an address

  // Detach keeps the entry while DEL fails, and clears it once DEL works.
  CHECK_FALSE(network->Detach("fn3", "").ok());
  CHECK(network->AttachedContainers() == std::vector<std::string>{"fn3"});
  std::filesystem::remove(fake.dir / "fail-bridge-DEL");
  CHECK(network->Detach("fn3", "").ok());
  CHECK(network->AttachedContainers().empty());
}

TEST_CASE("a plugin removed after Create fails ADD as the host's fault, naming it", "[cni]") {
  FakePlugins fake;
  std::unique_ptr<CniNetwork> network = *CniNetwork::Create(fake.Config());
  std::filesystem::remove(fake.bin + "/bridge");
  absl::Status status = network->Attach("fn4", "/run/netns/fake4").status();
  // Not NotFound (exec's ENOENT): the gateway would answer 404, as for an unknown function.
  CHECK(status.code() == absl::StatusCode::kInternal);
  CHECK(std::string(status.message()).find(fake.bin + "/bridge") != std::string::npos);
  CHECK(std::string(status.message()).find("--cni-bin-dir") != std::string::npos);
}

TEST_CASE("Attach to a new namespace releases the old attachment first", "[cni]") {
  FakePlugins fake;
  std::unique_ptr<CniNetwork> network = *CniNetwork::Create(fake.Config());
  REQUIRE(network->Attach("fn4", "/run/netns/old").ok());
  REQUIRE(network->Attach("fn4", "/run/netns/new").ok());
  std::vector<std::string> calls = fake.Calls();
  REQUIRE(calls.size() == 6);
  // The old netns path is not reused: it may name someone else's namespace by now.
  CHECK(calls[2] == "DEL firewall fn4 ");
  CHECK(calls[3] == "DEL bridge fn4 ");
  CHECK(calls[4] == "ADD bridge fn4 /run/netns/new");
  REQUIRE(network->Detach("fn4", "/run/netns/new").ok());
}

TEST_CASE("concurrent Attach and Detach of many containers", "[cni]") {
  FakePlugins fake;
  std::unique_ptr<CniNetwork> network = *CniNetwork::Create(fake.Config());
  constexpr int kThreads = 6;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Two threads share each id, so same-container serialisation is exercised too.
      std::string id = "fn-c" + std::to_string(t / 2);
      for (int round = 0; round < 3; ++round) {
        if (!network->Attach(id, "/run/netns/c" + std::to_string(t / 2)).ok()) ++failures;
        if (!network->Detach(id, "").ok()) ++failures;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  CHECK(failures == 0);
  CHECK(network->AttachedContainers().empty());
}

TEST_CASE("Attach and Detach refuse unsafe ids", "[cni]") {
  FakePlugins fake;
  std::unique_ptr<CniNetwork> network = *CniNetwork::Create(fake.Config());
  CHECK(network->Attach("../x", "/run/netns/x").status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(network->Attach("ok", "").status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(network->Detach("a/b", "").code() == absl::StatusCode::kInvalidArgument);
  CHECK_FALSE(Exists(fake.log));  // no plugin ran
}

}  // namespace
}  // namespace faasd::network
