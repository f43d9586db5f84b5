// Pure logic of the provider: request parsing and validation, quantities, users, env, spec.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "catch.hpp"
#include "nlohmann/json.hpp"
#include "provider/quantity.h"
#include "provider/replicas.h"
#include "provider/secret_store.h"
#include "provider/spec.h"
#include "provider/types.h"

using namespace faasd::provider;
using nlohmann::json;

TEST_CASE("ParseDeployment reads every field with upstream's names") {
  auto d = ParseDeployment(R"({"service":"echo","image":"r/echo:1","namespace":"openfaas-fn",
    "envProcess":"cat","envVars":{"A":"1"},"constraints":["c"],"secrets":["s"],
    "labels":{"l":"v"},"annotations":{"a":"b"},"limits":{"memory":"128Mi","cpu":"500m"},
    "requests":{"memory":"64Mi"},"readOnlyRootFilesystem":true})");
  REQUIRE(d.ok());
  CHECK(d->service == "echo");
  CHECK(d->image == "r/echo:1");
  CHECK(d->env_process == "cat");
  CHECK(d->env_vars.at("A") == "1");
  CHECK(d->secrets == std::vector<std::string>{"s"});
  CHECK(d->limits->memory == "128Mi");
  CHECK(d->limits->cpu == "500m");
  CHECK(d->requests->memory == "64Mi");
  CHECK(d->read_only_root_filesystem);
  json round = ToJson(*d);
  CHECK(round["envProcess"] == "cat");
  CHECK(round["limits"]["memory"] == "128Mi");
  CHECK(round["readOnlyRootFilesystem"] == true);
}

TEST_CASE("ParseDeployment rejects malformed bodies with the field named") {
  CHECK(ParseDeployment("{").status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(ParseDeployment("[]").status().code() == absl::StatusCode::kInvalidArgument);
  auto s = ParseDeployment(R"({"service":"x","image":"y","envVars":["a=b"]})").status();
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(s.message()).find("envVars") != std::string::npos);
  CHECK(!ParseDeployment(R"({"service":1,"image":"y"})").ok());
  CHECK(!ParseDeployment(R"({"service":"x","image":"y","readOnlyRootFilesystem":"yes"})").ok());
}

TEST_CASE("ValidateName accepts DNS labels only") {
  CHECK(ValidateName("function name", "echo").ok());
  CHECK(ValidateName("function name", "a-1").ok());
  CHECK(ValidateName("function name", std::string(63, 'a')).ok());
  for (std::string bad : {"", "../x", "a/b", "Echo", "-a", "a-", "a.b", "a_b", "a b"}) {
    INFO(bad);
    CHECK(ValidateName("function name", bad).code() == absl::StatusCode::kInvalidArgument);
  }
  CHECK(!ValidateName("function name", std::string(64, 'a')).ok());
  CHECK(!ValidateName("function name", std::string(300, 'a')).ok());
}

TEST_CASE("ValidateDeployment requires service and image and checks quantities") {
  FunctionDeployment d;
  CHECK(std::string(ValidateDeployment(d).message()).find("service") != std::string::npos);
  d.service = "echo";
  CHECK(std::string(ValidateDeployment(d).message()).find("image") != std::string::npos);
  d.image = "r/echo:1";
  CHECK(ValidateDeployment(d).ok());
  d.limits = FunctionResources{"lots", ""};
  CHECK(std::string(ValidateDeployment(d).message()).find("memory") != std::string::npos);
  d.limits = FunctionResources{"", "fast"};
  CHECK(!ValidateDeployment(d).ok());
  d.limits.reset();
  d.image = "r/echo 1";
  CHECK(!ValidateDeployment(d).ok());
  d.image = "r/echo:1";
  d.secrets = {"../etc"};
  CHECK(!ValidateDeployment(d).ok());
}

TEST_CASE("ValidateDeployment: kernel bounds of limits, keys with newlines, empty label keys") {
  FunctionDeployment d;
  d.service = "echo";
  d.image = "r/echo:1";
  auto message = [&] { return std::string(ValidateDeployment(d).message()); };
  d.limits = FunctionResources{"", "0.0000001"};
  CHECK(message().find("limits.cpu") != std::string::npos);
  CHECK(message().find("10m") != std::string::npos);
  d.limits = FunctionResources{"", "9m"};
  CHECK(!ValidateDeployment(d).ok());
  d.limits = FunctionResources{"", "10m"};
  CHECK(ValidateDeployment(d).ok());
  d.limits = FunctionResources{"3Mi", ""};
  CHECK(message().find("limits.memory") != std::string::npos);
  d.limits = FunctionResources{"4Mi", "0"};  // 0 = no limit
  CHECK(ValidateDeployment(d).ok());
  d.requests = FunctionResources{"1", "1m"};  // requests are not bounded by the kernel
  CHECK(ValidateDeployment(d).ok());
  d.limits.reset();
  d.requests.reset();

  for (auto field : {&d.env_vars, &d.labels, &d.annotations}) {
    for (std::string key :
         {std::string("A\nB"), std::string("a\rb"), std::string(), std::string("a\0b", 3)}) {
      INFO(key);
      *field = {{key, "x"}};
      CHECK(ValidateDeployment(d).code() == absl::StatusCode::kInvalidArgument);
    }
    *field = {{"ok-key", "multi\nline value"}};
    CHECK(ValidateDeployment(d).ok());
    field->clear();
  }
  d.labels = {{"", "z"}};
  CHECK(message().find("labels") != std::string::npos);
  d.labels = {{"k", std::string(5000, 'v')}};
  CHECK(message().find("4032") != std::string::npos);
}

TEST_CASE("Kubernetes quantities") {
  CHECK(*ParseMemoryQuantity("128Mi") == 128 * 1024 * 1024);
  CHECK(*ParseMemoryQuantity("1G") == 1000000000);
  CHECK(*ParseMemoryQuantity("1Gi") == 1073741824);
  CHECK(*ParseMemoryQuantity("512000") == 512000);
  CHECK(*ParseMemoryQuantity("1e3") == 1000);
  CHECK(*ParseMemoryQuantity("64k") == 64000);
  CHECK(*ParseCpuQuantity("500m") == 500);
  CHECK(*ParseCpuQuantity("2") == 2000);
  CHECK(*ParseCpuQuantity("0.25") == 250);
  CHECK(*ParseCpuQuantity("9m") == 9);
  CHECK(*ParseCpuQuantity("0.0001") == 1);  // a fraction of a millicore rounds up
  for (const char* bad : {"", "lots", "-1", "1Xi", "Mi", "1..2"}) {
    INFO(bad);
    CHECK(!ParseMemoryQuantity(bad).ok());
  }
}

TEST_CASE("ResolveUser follows Docker's rules") {
  const char* passwd = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n";
  const char* group = "root:x:0:\napp:x:1001:\nextra:x:2000:app,other\n";
  auto u = ResolveUser("", passwd, group);
  CHECK(u->uid == 0);
  CHECK(u->gid == 0);
  u = ResolveUser("app", passwd, group);
  REQUIRE(u.ok());
  CHECK(u->uid == 1000);
  CHECK(u->gid == 1001);
  CHECK(u->additional_gids == std::vector<uint32_t>{2000});
  u = ResolveUser("1000", passwd, group);
  CHECK(u->gid == 1001);
  u = ResolveUser("4242", passwd, group);
  CHECK(u->uid == 4242);
  CHECK(u->gid == 0);
  u = ResolveUser("app:extra", passwd, group);
  CHECK(u->gid == 2000);
  u = ResolveUser("5:7", "", "");
  CHECK(u->uid == 5);
  CHECK(u->gid == 7);
  CHECK(ResolveUser("nobody", passwd, group).status().code() == absl::StatusCode::kNotFound);
  CHECK(ResolveUser("app:nogroup", passwd, group).status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("MergeEnv: deployment overrides image, fprocess from envProcess, PATH kept") {
  FunctionDeployment d;
  d.env_vars = {{"greeting", "from-deploy"}, {"NEW", "1"}};
  d.env_process = "cat";
  auto env = MergeEnv({"PATH=/bin", "greeting=from-image", "fprocess=old"}, d);
  CHECK(env ==
        std::vector<std::string>{"PATH=/bin", "greeting=from-deploy", "fprocess=cat", "NEW=1"});
  auto bare = MergeEnv({}, FunctionDeployment{});
  REQUIRE(bare.size() == 1);
  CHECK(bare[0].rfind("PATH=", 0) == 0);
}

TEST_CASE("ProcessArgs joins entrypoint and cmd") {
  CHECK(*ProcessArgs({"/fwatchdog"}, {"-x"}) == std::vector<std::string>{"/fwatchdog", "-x"});
  CHECK(!ProcessArgs({}, {}).ok());
}

TEST_CASE("BuildRuntimeSpec: namespaces, mounts, limits, user") {
  SpecInputs in;
  in.cgroups_path = "/openfaas-fn/echo-1";
  in.hostname = "echo";
  in.args = {"/usr/bin/fnserver"};
  in.env = {"A=1"};
  in.user = ProcessUser{1000, 1001, {2000}};
  in.hosts_file = "/run/x/hosts";
  in.resolv_conf_file = "/run/x/resolv.conf";
  in.memory_limit_bytes = 64 << 20;
  in.cpu_limit_millis = 500;
  in.nofile_limit = 4096;
  auto spec = BuildRuntimeSpec(in);
  REQUIRE(spec.ok());
  json j = json::parse(*spec);
  CHECK(j["hostname"] == "echo");
  CHECK(j["process"]["args"][0] == "/usr/bin/fnserver");
  CHECK(j["process"]["user"]["uid"] == 1000);
  CHECK(j["process"]["user"]["additionalGids"][0] == 2000);
  CHECK(j["process"]["rlimits"][0]["hard"] == 4096);
  CHECK(j["linux"]["cgroupsPath"] == "/openfaas-fn/echo-1");
  CHECK(j["linux"]["resources"]["memory"]["limit"] == 64 << 20);
  CHECK(j["linux"]["resources"]["cpu"]["quota"] == 50000);
  CHECK(j["linux"]["resources"]["cpu"]["period"] == 100000);
  CHECK(j["root"]["readonly"] == false);
  bool net = false;
  for (const auto& ns : j["linux"]["namespaces"]) net = net || ns["type"] == "network";
  CHECK(net);
  std::map<std::string, json> mounts;
  for (const auto& m : j["mounts"]) mounts[m["destination"]] = m;
  CHECK(mounts.at("/etc/hosts")["source"] == "/run/x/hosts");
  CHECK(mounts.at("/etc/resolv.conf")["options"] == json({"rbind", "ro"}));
  CHECK(mounts.count("/var/openfaas/secrets") == 0);
  CHECK(mounts.count("/tmp") == 0);
  auto caps = j["process"]["capabilities"]["bounding"];
  CHECK(std::find(caps.begin(), caps.end(), "CAP_NET_RAW") != caps.end());
  CHECK(std::find(caps.begin(), caps.end(), "CAP_SYS_ADMIN") == caps.end());

  in.read_only_rootfs = true;
  in.secrets_dir = "/var/lib/faasd/secrets/openfaas-fn";
  j = json::parse(*BuildRuntimeSpec(in));
  CHECK(j["root"]["readonly"] == true);
  mounts.clear();
  for (const auto& m : j["mounts"]) mounts[m["destination"]] = m;
  CHECK(mounts.at("/tmp")["type"] == "tmpfs");
  CHECK(mounts.at("/var/openfaas/secrets")["source"] == "/var/lib/faasd/secrets/openfaas-fn");
}

TEST_CASE("SecretStore: private files, atomic writes, copies of only the named secrets") {
  char tmpl[] = "/tmp/secret-store-XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  const std::string root = std::string(tmpl) + "/store";
  struct Cleanup {
    std::string dir;
    ~Cleanup() { std::system(("rm -rf '" + dir + "'").c_str()); }
  } cleanup{tmpl};
  REQUIRE(::mkdir(root.c_str(), 0755) == 0);  // too open: Init narrows it
  SecretStore store(root);
  REQUIRE(store.Init().ok());
  struct stat st;
  REQUIRE(::stat(root.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0700);

  REQUIRE(store.Create("ns", "a", "alpha").ok());
  REQUIRE(store.Create("ns", "b", std::string("\0bin\n", 5)).ok());
  CHECK(store.Create("ns", "a", "again").code() == absl::StatusCode::kAlreadyExists);
  CHECK(store.Update("ns", "zzz", "x").code() == absl::StatusCode::kNotFound);
  CHECK(store.Create("ns", "big", std::string(kMaxSecretBytes + 1, 'x')).code() ==
        absl::StatusCode::kInvalidArgument);
  REQUIRE(::stat((root + "/ns/a").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0400);
  CHECK(*store.List("ns") == std::vector<std::string>{"a", "b"});
  CHECK(store.List("empty")->empty());

  const std::string copy = std::string(tmpl) + "/copy";
  REQUIRE(store.Materialize("ns", {"b"}, copy, 1234, 5678).ok());
  REQUIRE(::stat(copy.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0500);
  CHECK(st.st_uid == 1234);
  REQUIRE(::stat((copy + "/b").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0400);
  CHECK(st.st_gid == 5678);
  CHECK(::access((copy + "/a").c_str(), F_OK) != 0);  // not named, not there
  CHECK(store.Materialize("ns", {"nope"}, copy, 0, 0).code() == absl::StatusCode::kNotFound);

  REQUIRE(store.Update("ns", "b", "beta").ok());
  REQUIRE(store.Materialize("ns", {"b"}, copy, 1234, 5678).ok());
  REQUIRE(store.Update("ns", "b", "gamma").ok());
  REQUIRE(store.Refresh("ns", "b", copy).ok());
  std::ifstream in(copy + "/b");
  std::string got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(got == "gamma");
  REQUIRE(::stat((copy + "/b").c_str(), &st) == 0);
  CHECK(st.st_uid == 1234);  // the refreshed copy keeps the function's owner

  CHECK(store.Delete("ns", "a").ok());
  CHECK(store.Delete("ns", "a").code() == absl::StatusCode::kNotFound);
  CHECK(store.Delete("ns", "b").ok());
  CHECK(::access((root + "/ns").c_str(), F_OK) != 0);  // an empty namespace folder goes
}

// A fresh folder under /tmp for one test, removed with everything in it at the end.
struct ScratchDir {
  std::string path;
  ScratchDir() {
    char tmpl[] = "/tmp/secret-store-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~ScratchDir() { std::system(("rm -rf '" + path + "'").c_str()); }
};

TEST_CASE("SecretStore: a container's secrets folder that is a symlink is refused, not followed") {
  ScratchDir scratch;
  const std::string tmpl = scratch.path;
  SecretStore store(std::string(tmpl) + "/store");
  REQUIRE(store.Init().ok());
  REQUIRE(store.Create("ns", "s", "value").ok());
  const std::string outside = std::string(tmpl) + "/outside";
  REQUIRE(::mkdir(outside.c_str(), 0755) == 0);
  REQUIRE(::close(::open((outside + "/keep").c_str(), O_CREAT | O_WRONLY, 0644)) == 0);
  const std::string copy = std::string(tmpl) + "/copy";
  REQUIRE(::symlink(outside.c_str(), copy.c_str()) == 0);

  absl::Status s = store.Materialize("ns", {"s"}, copy, 1234, 5678);
  CHECK(s.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(std::string(s.message()).find("symbolic link") != std::string::npos);
  struct stat st;
  REQUIRE(::stat(outside.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0755);  // neither chmod-ed nor chown-ed through the link
  CHECK(st.st_uid == ::getuid());
  CHECK(::access((outside + "/keep").c_str(), F_OK) == 0);  // nor emptied
  CHECK(::access((outside + "/s").c_str(), F_OK) != 0);     // nor written to
}

TEST_CASE("SecretStore: a root that is a symlink or another user's folder is refused") {
  ScratchDir scratch;
  const std::string tmpl = scratch.path;
  const std::string real = std::string(tmpl) + "/real";
  const std::string link = std::string(tmpl) + "/link";
  REQUIRE(::mkdir(real.c_str(), 0700) == 0);
  REQUIRE(::symlink(real.c_str(), link.c_str()) == 0);
  absl::Status s = SecretStore(link).Init();
  CHECK(s.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(s.message().find(link + ": is a symbolic link") != std::string::npos);

  if (::geteuid() != 0) {
    WARN("needs root to chown; foreign owner not checked");
    return;
  }
  REQUIRE(::chown(real.c_str(), 65534, 65534) == 0);
  s = SecretStore(real).Init();
  CHECK(s.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(s.message().find(real + ": owned by uid 65534") != std::string::npos);
}

TEST_CASE("ParseSecret: value, base64 rawValue, bad types") {
  auto s = ParseSecret(R"({"name":"a","namespace":"ns","value":"v","rawValue":"AAEC"})");
  REQUIRE(s.ok());
  CHECK(s->bytes() == std::string("\0\1\2", 3));
  CHECK(ParseSecret(R"({"name":"a","value":"v"})")->bytes() == "v");
  CHECK(!ParseSecret(R"({"name":"a","rawValue":"%%%"})").ok());
  CHECK(!ParseSecret(R"({"name":1})").ok());
  CHECK(!ParseSecret("[]").ok());
}

TEST_CASE("ParseScaleRequest: namespace, replicas, bad types") {
  auto r = ParseScaleRequest(R"({"serviceName":"f","namespace":"ns","replicas":3})");
  REQUIRE(r.ok());
  CHECK(r->namespace_ == "ns");
  CHECK(r->replicas == 3);
  CHECK(ParseScaleRequest(R"({"replicas":0,"namespace":null})")->namespace_.empty());
  CHECK(!ParseScaleRequest(R"({"replicas":-1})").ok());
  CHECK(!ParseScaleRequest(R"({"replicas":1.5})").ok());
  CHECK(!ParseScaleRequest(R"({"replicas":"2"})").ok());
  CHECK(!ParseScaleRequest(R"({"replicas":9223372036854775808})").ok());  // past INT64_MAX
  CHECK(!ParseScaleRequest(R"({"namespace":1,"replicas":1})").ok());
  CHECK(!ParseScaleRequest(R"({})").ok());
  CHECK(!ParseScaleRequest("[1]").ok());
  CHECK(!ParseScaleRequest("{").ok());
}

TEST_CASE("Scale range: labels, defaults, zero always allowed, never a clamp") {
  auto r = ParseScaleRange({});
  REQUIRE(r.ok());
  CHECK(r->min == 1);
  CHECK(r->max == 20);
  r = ParseScaleRange({{kScaleMinLabel, "2"}, {kScaleMaxLabel, "3"}});
  REQUIRE(r.ok());
  CHECK(CheckReplicas("f", 0, *r).ok());
  CHECK(CheckReplicas("f", 2, *r).ok());
  CHECK(CheckReplicas("f", 3, *r).ok());
  for (uint64_t bad : {1, 4, 1000}) {
    INFO(bad);
    auto s = CheckReplicas("f", bad, *r);
    CHECK(s.code() == absl::StatusCode::kInvalidArgument);
    CHECK(std::string(s.message()).find("0 or 2..3") != std::string::npos);
  }
  CHECK(!ParseScaleRange({{kScaleMaxLabel, "x"}}).ok());
  CHECK(!ParseScaleRange({{kScaleMinLabel, "5"}, {kScaleMaxLabel, "3"}}).ok());
  CHECK(!ParseScaleRange({{kScaleMaxLabel, "100000"}}).ok());
}

TEST_CASE("Alert steps: firing adds factor% of max up to max, resolved goes to min") {
  CHECK(*ParseScaleFactor({}) == 20);
  CHECK(*ParseScaleFactor({{kScaleFactorLabel, "0"}}) == 0);
  CHECK(*ParseScaleFactor({{kScaleFactorLabel, "100"}}) == 100);
  for (const char* bad : {"101", "-1", "x", "", "2.5"}) {
    INFO(bad);
    CHECK(!ParseScaleFactor({{kScaleFactorLabel, bad}}).ok());
  }
  const ScaleRange range{1, 20};
  CHECK(AlertReplicas(true, 1, range, 20) == 5);   // +ceil(20 x 20%) = +4
  CHECK(AlertReplicas(true, 18, range, 20) == 20);  // never past max
  CHECK(AlertReplicas(true, 1, {1, 3}, 10) == 2);   // ceil(0.3) = 1
  CHECK(AlertReplicas(true, 1, range, 100) == 20);
  CHECK(AlertReplicas(true, 3, range, 0) == 3);     // factor 0: no scaling
  CHECK(AlertReplicas(true, 0, range, 20) == 4);    // from zero
  CHECK(AlertReplicas(false, 12, {2, 20}, 20) == 2);
  CHECK(AlertReplicas(false, 0, {2, 20}, 20) == 0);  // at zero it stays: a request wakes it
}

TEST_CASE("PlanReplicas brings replicas to the wanted count") {
  auto st = [](std::string id, bool task, bool running, bool ready, bool backoff = false) {
    return ReplicaState{id, task, running, ready, backoff};
  };
  // Up: the missing ones are created, a dead one restarted, a backing-off one left alone.
  auto p = PlanReplicas(4, {st("a", true, true, true), st("b", true, false, false),
                            st("c", true, false, false, true)});
  CHECK(p.create == 1);
  CHECK(p.start == std::vector<std::string>{"b"});
  CHECK(p.retire.empty());
  // Down: not-ready ones go first, then the newest; the ready oldest stays.
  p = PlanReplicas(
      1, {st("a", true, true, true), st("b", true, false, false), st("c", true, true, true)});
  CHECK(p.retire == std::vector<std::string>{"b", "c"});
  CHECK(p.create == 0);
  // Zero: one container stays as the record, its task stopped; the rest go.
  p = PlanReplicas(0, {st("a", true, true, true), st("b", true, true, true)});
  CHECK(p.stop == std::vector<std::string>{"a"});
  CHECK(p.retire == std::vector<std::string>{"b"});
  p = PlanReplicas(0, {st("a", false, false, false)});
  CHECK(p.stop.empty());
  CHECK(p.retire.empty());
  // Steady: nothing to do.
  p = PlanReplicas(2, {st("a", true, true, true), st("b", true, true, false)});
  CHECK(p.create == 0);
  CHECK(p.start.empty());
  CHECK(p.retire.empty());
  CHECK(p.stop.empty());
}

TEST_CASE("PlanReplicas pauses the kept task at zero when it may, and resumes it") {
  auto st = [](std::string id, bool running, bool paused, bool may_pause) {
    ReplicaState r;
    r.id = std::move(id);
    r.has_task = running || paused;
    r.running = running;
    r.paused = paused;
    r.may_pause = may_pause;
    return r;
  };
  // To zero: the kept replica's running task is paused, the others retired.
  auto p = PlanReplicas(0, {st("a", true, false, true), st("b", true, false, true)});
  CHECK(p.pause == std::vector<std::string>{"a"});
  CHECK(p.stop.empty());
  CHECK(p.retire == std::vector<std::string>{"b"});
  // Paused and still allowed: nothing to do; no longer allowed (too old, too many): stopped.
  p = PlanReplicas(0, {st("a", false, true, true)});
  CHECK(p.pause.empty());
  CHECK(p.stop.empty());
  p = PlanReplicas(0, {st("a", false, true, false)});
  CHECK(p.stop == std::vector<std::string>{"a"});
  // Not allowed to pause: stopped as before.
  p = PlanReplicas(0, {st("a", true, false, false)});
  CHECK(p.stop == std::vector<std::string>{"a"});
  CHECK(p.pause.empty());
  // Up from zero: the paused task is resumed, not started again; the rest are created.
  p = PlanReplicas(2, {st("a", false, true, true)});
  CHECK(p.resume == std::vector<std::string>{"a"});
  CHECK(p.start.empty());
  CHECK(p.create == 1);
}

TEST_CASE("Crash back-off grows and is capped") {
  CHECK(RestartDelay(0) == absl::ZeroDuration());
  CHECK(RestartDelay(1) == absl::Milliseconds(250));
  CHECK(RestartDelay(2) == absl::Milliseconds(500));
  CHECK(RestartDelay(5) == absl::Seconds(4));
  CHECK(RestartDelay(50) == absl::Minutes(5));
}
