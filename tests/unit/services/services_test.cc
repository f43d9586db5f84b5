// services.yaml parsing, start order, port specs and restart arithmetic (services/config.cc);
// which image archives are imported at start (services/archives.cc).
#include "services/services.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "catch.hpp"

using namespace faasd::services;

namespace {

std::string Message(const absl::Status& s) { return std::string(s.message()); }

absl::StatusOr<std::vector<ServiceSpec>> Parse(const std::string& yaml) {
  return ParseServicesFile(yaml, "/var/lib/faasd");
}

ServiceSpec Named(const std::string& name, std::vector<std::string> deps = {}) {
  ServiceSpec s;
  s.name = name;
  s.image = "x";
  s.depends_on = std::move(deps);
  return s;
}

std::vector<std::string> Names(const std::vector<ServiceSpec>& specs) {
  std::vector<std::string> out;
  for (const auto& s : specs) out.push_back(s.name);
  return out;
}

}  // namespace

TEST_CASE("every key of a service is parsed", "[yaml]") {
  auto specs = Parse(R"(
version: "3.7"
services:
  nats:
    image: docker.io/library/nats:2.9.10
    command: ["-js", "-sd", "/data"]
    volumes:
      - ./nats:/data
      - /etc/ssl:/etc/ssl:ro
    ports:
      - "127.0.0.1:4222:4222"
      - "8222:8222/tcp"
    restart: on-failure
  web:
    image: web:1
    entrypoint: /bin/busybox
    command: httpd -f -p "8000" -h '/w w'
    environment:
      MODE: fast
      EMPTY:
    user: "65534:65534"
    cap_add: [NET_ADMIN, CAP_SYS_TIME]
    depends_on: [nats]
    restart: "no"
    stop_grace_period: 1m30s
  list-env:
    image: x
    environment: ["A=1", "B=x=y"]
    depends_on:
      nats: {condition: service_started}
)");
  REQUIRE(specs.ok());
  REQUIRE(specs->size() == 3);
  const ServiceSpec& nats = (*specs)[0];
  CHECK(nats.name == "nats");
  CHECK(nats.line == 5);
  CHECK(nats.image == "docker.io/library/nats:2.9.10");
  CHECK(nats.command == std::vector<std::string>{"-js", "-sd", "/data"});
  REQUIRE(nats.volumes.size() == 2);
  CHECK(nats.volumes[0].host == "/var/lib/faasd/nats");
  CHECK(nats.volumes[0].container == "/data");
  CHECK_FALSE(nats.volumes[0].read_only);
  CHECK(nats.volumes[1].host == "/etc/ssl");
  CHECK(nats.volumes[1].read_only);
  REQUIRE(nats.ports.size() == 2);
  CHECK(nats.ports[0].host_ip == "127.0.0.1");
  CHECK(nats.ports[1].host_ip == "127.0.0.1");
  CHECK(nats.ports[1].host_port == 8222);
  CHECK(nats.restart == RestartPolicy::kOnFailure);

  const ServiceSpec& web = (*specs)[1];
  CHECK(web.entrypoint == std::vector<std::string>{"/bin/busybox"});
  CHECK(web.command == std::vector<std::string>{"httpd", "-f", "-p", "8000", "-h", "/w w"});
  CHECK(web.environment ==
        std::vector<std::pair<std::string, std::string>>{{"MODE", "fast"}, {"EMPTY", ""}});
  CHECK(web.user == "65534:65534");
  CHECK(web.cap_add == std::vector<std::string>{"CAP_NET_ADMIN", "CAP_SYS_TIME"});
  CHECK(web.depends_on == std::vector<std::string>{"nats"});
  CHECK(web.restart == RestartPolicy::kNo);
  CHECK(web.stop_grace == absl::Seconds(90));
  CHECK(nats.stop_grace == absl::Seconds(10));

  const ServiceSpec& list_env = (*specs)[2];
  CHECK(list_env.environment ==
        std::vector<std::pair<std::string, std::string>>{{"A", "1"}, {"B", "x=y"}});
  CHECK(list_env.depends_on == std::vector<std::string>{"nats"});
  CHECK(list_env.restart == RestartPolicy::kAlways);  // the default here, unlike compose
}

TEST_CASE("an empty file or no services is no services", "[yaml]") {
  CHECK(Parse("").value().empty());
  CHECK(Parse("services:\n").value().empty());
}

TEST_CASE("bad input is an error naming the line and the key", "[yaml]") {
  struct Case {
    std::string yaml, want;
  };
  const std::vector<Case> cases = {
      {"services:\n  nats:\n    image: x\n    enviroment: {A: 1}\n",
       "services.yaml line 4: service nats: enviroment: unknown key"},
      {"services:\n  nats:\n    command: [a]\n", "line 3: service nats: image: missing"},
      {"services:\n  Nats:\n    image: x\n", "line 2: service Nats: the name must be a DNS label"},
      {"services:\n  gateway:\n    image: x\n", "service gateway: the name is taken"},
      {"services:\n  a:\n    image: x\n    ports: [\"99999:1\"]\n",
       "line 4: service a: ports: port \"99999:1\": host port is not 1-65535"},
      {"services:\n  a:\n    image: x\n    volumes: [\"data\"]\n",
       "line 4: service a: volumes: \"data\": want HOST_PATH:CONTAINER_PATH"},
      {"services:\n  a:\n    image: x\n    volumes: [\"../etc:/etc\"]\n",
       "no \"..\" in host paths"},
      {"services:\n  a:\n    image: x\n    volumes: [\"./d:/d:rx\"]\n",
       "mode \"rx\" is not ro or rw"},
      {"services:\n  a:\n    image: x\n    restart: sometimes\n",
       "line 4: service a: restart: \"sometimes\" is not always, on-failure or no"},
      {"services:\n  a:\n    image: x\n    depends_on: [b]\n",
       "line 3: service a: depends_on: \"b\" is not a service of this file"},
      {"services:\n  a:\n    image: x\n    cap_add: [\"NET ADMIN\"]\n", "is not a capability"},
      {"services:\n  a:\n    image: x\n    environment: [\"=x\"]\n", "want NAME=VALUE"},
      {"services:\n  a:\n    image: [x]\n", "line 3: service a: image: want a non-empty string"},
      {"services:\n  a:\n    image: x\n    command: \"unterminated 'quote\"\n",
       "command: unterminated quote"},
      {"service:\n  a: {}\n", "line 1: service: unknown key (want `services`)"},
      {"services:\n  a:\n    image: x\n  b: [\n", "services.yaml line"},
      {"- a\n- b\n", "want a map with the key `services`"},
      {"services:\n  a:\n    image: x\n    stop_grace_period: soon\n",
       "line 4: service a: stop_grace_period: \"soon\" is not a duration"},
  };
  for (const Case& c : cases) {
    INFO(c.yaml);
    auto parsed = Parse(c.yaml);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK_THAT(Message(parsed.status()), Catch::Contains(c.want));
  }
}

TEST_CASE("port specs", "[ports]") {
  auto p = ParsePort("4222:4222");
  REQUIRE(p.ok());
  CHECK(p->host_ip == "127.0.0.1");  // loopback unless an address is given
  CHECK(p->host_port == 4222);
  CHECK(p->container_port == 4222);
  CHECK(p->protocol == "tcp");
  p = ParsePort("0.0.0.0:9091:9090");
  REQUIRE(p.ok());
  CHECK(p->host_ip == "0.0.0.0");
  CHECK(p->host_port == 9091);
  CHECK(p->container_port == 9090);
  p = ParsePort("8080");
  REQUIRE(p.ok());
  CHECK(p->host_port == 8080);
  p = ParsePort("53:53/udp");
  REQUIRE(p.ok());
  CHECK(p->protocol == "udp");
  p = ParsePort("[::1]:80:8080");
  REQUIRE(p.ok());
  CHECK(p->host_ip == "::1");
  CHECK(p->container_port == 8080);
  for (const char* bad :
       {"", "0:1", "1:0", "a:1", "1:2:3:4", "1/sctp", ":1:1", "[::1:1:1", "70000"}) {
    INFO(bad);
    CHECK_FALSE(ParsePort(bad).ok());
  }
}

TEST_CASE("start order puts dependencies first and keeps file order otherwise", "[order]") {
  auto order = StartOrder(
      {Named("web", {"db", "nats"}), Named("nats"), Named("db", {"nats"}), Named("prometheus")});
  REQUIRE(order.ok());
  CHECK(Names(*order) == std::vector<std::string>{"nats", "db", "web", "prometheus"});
  CHECK(Names(StartOrder({}).value()).empty());
}

TEST_CASE("a depends_on cycle is an error naming it", "[order]") {
  auto order = StartOrder({Named("a", {"b"}), Named("b", {"c"}), Named("c", {"a"}), Named("d")});
  REQUIRE_FALSE(order.ok());
  CHECK(Message(order.status()) == "depends_on cycle: a -> b -> c -> a");
  auto self = StartOrder({Named("a", {"a"})});
  REQUIRE_FALSE(self.ok());
  CHECK(Message(self.status()) == "depends_on cycle: a -> a");
  auto missing = StartOrder({Named("a", {"zz"})});
  REQUIRE_FALSE(missing.ok());
  CHECK_THAT(Message(missing.status()), Catch::Contains("\"zz\" is not a service"));
}

TEST_CASE("restart back-off doubles from 250 ms to at most 30 s", "[backoff]") {
  CHECK(RestartDelay(0) == absl::Milliseconds(250));
  CHECK(RestartDelay(1) == absl::Milliseconds(250));
  CHECK(RestartDelay(2) == absl::Milliseconds(500));
  CHECK(RestartDelay(3) == absl::Seconds(1));
  CHECK(RestartDelay(7) == absl::Seconds(16));
  CHECK(RestartDelay(8) == absl::Seconds(30));
  CHECK(RestartDelay(1000) == absl::Seconds(30));
}

TEST_CASE("restart policies", "[backoff]") {
  CHECK(ShouldRestart(RestartPolicy::kAlways, 0));
  CHECK(ShouldRestart(RestartPolicy::kAlways, 137));
  CHECK_FALSE(ShouldRestart(RestartPolicy::kOnFailure, 0));
  CHECK(ShouldRestart(RestartPolicy::kOnFailure, 1));
  CHECK_FALSE(ShouldRestart(RestartPolicy::kNo, 137));
}

TEST_CASE("the default file parses: NATS and Prometheus on the given addresses", "[defaults]") {
  DefaultsOptions o;
  o.nats_address = "127.0.0.1:14222";
  o.nats_image = "local/nats:1";
  auto specs = ParseServicesFile(DefaultServicesFile(o), "/s");
  REQUIRE(specs.ok());
  REQUIRE(Names(*specs) == std::vector<std::string>{"nats", "prometheus"});
  CHECK((*specs)[0].image == "local/nats:1");
  CHECK((*specs)[0].ports[0].host_port == 14222);
  CHECK((*specs)[0].ports[0].container_port == 4222);
  CHECK((*specs)[0].volumes[0].host == "/s/nats");
  CHECK((*specs)[1].ports[0].host_port == 9090);
  CHECK((*specs)[1].volumes[0].host == "/s/prometheus/prometheus.yml");
  CHECK_THAT(PrometheusConfig(8081), Catch::Contains("targets: [\"gateway:8081\"]"));
}

TEST_CASE("image archives: the package's folder first, then the operator's", "[archives]") {
  char base_template[] = "/tmp/faasd-archives-XXXXXX";
  REQUIRE(::mkdtemp(base_template) != nullptr);
  const std::string base = base_template;
  const std::string packaged = base + "/share", own = base + "/state";
  REQUIRE(::mkdir(packaged.c_str(), 0755) == 0);
  REQUIRE(::mkdir(own.c_str(), 0755) == 0);
  const std::vector<std::string> files = {packaged + "/prometheus.tar", packaged + "/nats.tar",
                                          packaged + "/README", own + "/nats.tar",
                                          own + "/nats.tar.part"};
  for (const std::string& f : files) std::ofstream(f) << "x";
  const std::vector<std::string> in_order = {packaged + "/nats.tar", packaged + "/prometheus.tar",
                                             own + "/nats.tar"};
  CHECK(ImageArchives({packaged, own}) == in_order);
  // Without the package's folder (a source install), or with --images-dir naming it.
  CHECK(ImageArchives({base + "/missing", own}) == std::vector<std::string>{own + "/nats.tar"});
  CHECK(ImageArchives({packaged, packaged}).size() == 2);
  CHECK(ImageArchives({"", ""}).empty());
  for (const std::string& f : files) ::unlink(f.c_str());
  ::rmdir(packaged.c_str());
  ::rmdir(own.c_str());
  ::rmdir(base.c_str());
}
