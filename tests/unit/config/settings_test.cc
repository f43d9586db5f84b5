// The config file and the flags of `faasd up`: what parses, what is refused (naming the key and
// the line), and that flags win over the file.
#include "config/settings.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "catch.hpp"

namespace faasd::config {
namespace {

std::string Error(absl::string_view text) {
  absl::StatusOr<Settings> s = ParseConfigText(text, "/etc/faasd/faasd.conf");
  REQUIRE_FALSE(s.ok());
  return std::string(s.status().message());
}

absl::StatusOr<Settings> Flags(std::vector<std::string> args, std::string* config_path) {
  static std::vector<std::string> keep;
  keep = std::move(args);
  std::vector<char*> argv;
  for (auto& a : keep) argv.push_back(a.data());
  return ParseFlags(argv, config_path);
}

TEST_CASE("config file: keys, blanks, comments and repeatable keys") {
  absl::StatusOr<Settings> s = ParseConfigText(
      "# faasd\n"
      "\n"
      "listen = 127.0.0.1:9090\n"
      "  stop-grace=5   # seconds\n"
      "state-dir = /srv/faasd#not-a-comment\n"
      "nameserver = 10.0.0.2\n"
      "nameserver = 10.0.0.3\n"
      "\tpull-policy =\tIfNotPresent\t\n",
      "f.conf");
  REQUIRE(s.ok());
  CHECK(s->Get("listen", "") == "127.0.0.1:9090");
  CHECK(s->Get("stop-grace", "") == "5");
  CHECK(s->Get("state-dir", "") == "/srv/faasd#not-a-comment");
  CHECK(s->All("nameserver") == std::vector<std::string>{"10.0.0.2", "10.0.0.3"});
  CHECK(s->Get("pull-policy", "") == "IfNotPresent");
  CHECK(s->Get("paused-ttl", "600") == "600");
  CHECK(s->origins.at("stop-grace") == "f.conf:4");
}

TEST_CASE("config file: an unknown key names itself and its line") {
  CHECK(Error("listen = 0.0.0.0:8080\nlisten-port = 8080\n") ==
        "/etc/faasd/faasd.conf:2: unknown key \"listen-port\" (`faasd config` lists the keys)");
  CHECK(Error("config = /etc/other.conf\n").find(":1: unknown key \"config\"") !=
        std::string::npos);
}

TEST_CASE("config file: bad values name the key, the value, the line and why") {
  CHECK(Error("\nstop-grace = soon\n") ==
        "/etc/faasd/faasd.conf:2: stop-grace = soon: not a whole number of seconds");
  CHECK(Error("paused-ttl = -1") ==
        "/etc/faasd/faasd.conf:1: paused-ttl = -1: not a whole number of seconds");
  CHECK(Error("paused-max = 1.5") ==
        "/etc/faasd/faasd.conf:1: paused-max = 1.5: not a whole number");
  CHECK(Error("max-body-bytes = 0") ==
        "/etc/faasd/faasd.conf:1: max-body-bytes = 0: not a whole number above 0");
  CHECK(Error("max-image-bytes = 99999999999999999999999") ==
        "/etc/faasd/faasd.conf:1: max-image-bytes = 99999999999999999999999: not a whole "
        "number above 0");
  CHECK(Error("pull-policy = always") ==
        "/etc/faasd/faasd.conf:1: pull-policy = always: not one of Always, IfNotPresent, Never");
  CHECK(Error("log-level = verbose") ==
        "/etc/faasd/faasd.conf:1: log-level = verbose: not one of debug, info, warning, error");
  CHECK(Error("listen = 8080") ==
        "/etc/faasd/faasd.conf:1: listen = 8080: not HOST:PORT (PORT 0-65535)");
  CHECK(Error("listen = 0.0.0.0:70000") ==
        "/etc/faasd/faasd.conf:1: listen = 0.0.0.0:70000: not HOST:PORT (PORT 0-65535)");
  CHECK(Error("listen = :80") == "/etc/faasd/faasd.conf:1: listen = :80: not HOST:PORT (PORT 0-65535)");
  CHECK(Error("state-dir = var/lib/faasd") ==
        "/etc/faasd/faasd.conf:1: state-dir = var/lib/faasd: not an absolute path");
  CHECK(Error("log-file =") == "/etc/faasd/faasd.conf:1: log-file = : empty value");
  // nats-url alone may be empty: that turns async off.
  absl::StatusOr<Settings> no_async = ParseConfigText("nats-url =", "/etc/faasd/faasd.conf");
  REQUIRE(no_async.ok());
  CHECK(no_async->Get("nats-url", "nats://127.0.0.1:4222").empty());
  CHECK(Error("stop-grace = 30 seconds") ==
        "/etc/faasd/faasd.conf:1: stop-grace = 30 seconds: not a whole number of seconds");
}

TEST_CASE("config file: a line without '=' and a key given twice are refused") {
  CHECK(Error("listen 0.0.0.0:8080") ==
        "/etc/faasd/faasd.conf:1: \"listen 0.0.0.0:8080\" is not `key = value`");
  CHECK(Error("stop-grace = 1\n# x\nstop-grace = 2\n") ==
        "/etc/faasd/faasd.conf:3: stop-grace given twice (first at /etc/faasd/faasd.conf:1); "
        "only insecure-registry and nameserver repeat");
}

TEST_CASE("flags: --name=value and --name value; a repeated flag replaces; --config is taken out") {
  std::string config;
  absl::StatusOr<Settings> f = Flags({"--stop-grace=1", "--stop-grace", "2", "--nameserver=a",
                                      "--nameserver=b", "--config=/tmp/x.conf"},
                                     &config);
  REQUIRE(f.ok());
  CHECK(f->All("stop-grace") == std::vector<std::string>{"2"});
  CHECK(f->All("nameserver") == std::vector<std::string>{"a", "b"});
  CHECK(config == "/tmp/x.conf");
  CHECK(f->values.count("config") == 0);
}

TEST_CASE("flags: --autoscale-all alone means true and leaves the next argument alone") {
  std::string config;
  absl::StatusOr<Settings> f = Flags({"--autoscale-all", "--stop-grace=3"}, &config);
  REQUIRE(f.ok());
  CHECK(f->Get("autoscale-all", "") == "true");
  CHECK(f->Get("stop-grace", "") == "3");
  CHECK(Flags({"--autoscale-all=false"}, &config)->Get("autoscale-all", "") == "false");
  CHECK(Error("autoscale-all = yes") ==
        "/etc/faasd/faasd.conf:1: autoscale-all = yes: not one of true, false");
}

TEST_CASE("flags: unknown flags, bare words and bad values are refused") {
  std::string config;
  CHECK(Flags({"--nope=1"}, &config).status().message() == "unknown flag --nope");
  CHECK(Flags({"up"}, &config).status().message() == "unexpected argument up");
  CHECK(Flags({"--stop-grace=x"}, &config).status().message() ==
        "--stop-grace: stop-grace = x: not a whole number of seconds");
  CHECK(Flags({"--config="}, &config).status().message() == "--config: empty path");
}

TEST_CASE("merge: a flag replaces all of the file's values of its key") {
  absl::StatusOr<Settings> file =
      ParseConfigText("nameserver = 1.1.1.1\nnameserver = 2.2.2.2\nstop-grace = 9\n", "f");
  REQUIRE(file.ok());
  std::string config;
  absl::StatusOr<Settings> flags = Flags({"--nameserver=3.3.3.3"}, &config);
  REQUIRE(flags.ok());
  Settings merged = Merge(*file, *flags);
  CHECK(merged.All("nameserver") == std::vector<std::string>{"3.3.3.3"});
  CHECK(merged.origins.at("nameserver") == "--nameserver");
  CHECK(merged.Get("stop-grace", "") == "9");
  const std::string shown = Render(merged);
  CHECK(shown.find("nameserver = 3.3.3.3  # --nameserver\n") != std::string::npos);
  CHECK(shown.find("stop-grace = 9  # f:3\n") != std::string::npos);
  CHECK(shown.find("# listen = 0.0.0.0:8080  (default)\n") != std::string::npos);
}

TEST_CASE("files: the default path may be missing, a given one may not; every key renders") {
  char tmpl[] = "/tmp/config-test-XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  const std::string dir = tmpl;
  CHECK(LoadConfigFile(dir + "/missing.conf").status().message() ==
        "config " + dir + "/missing.conf: No such file or directory");
  std::ofstream(dir + "/ok.conf") << "log-level = debug\n";
  absl::StatusOr<Settings> s = LoadConfigFile(dir + "/ok.conf");
  REQUIRE(s.ok());
  CHECK(s->Get("log-level", "") == "debug");
  CHECK(LoadConfigFile(dir).status().message().find("not a regular file") !=
        absl::string_view::npos);
  std::system(("rm -rf '" + dir + "'").c_str());
  // The shipped file (packaging/faasd.conf) is every key commented out: it must parse as empty.
  for (const Key& k : Keys()) {
    CHECK(ParseConfigText(std::string("# ") + k.name + " = x\n", "f")->values.empty());
  }
}

}  // namespace
}  // namespace faasd::config
