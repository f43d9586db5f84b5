// /system/* routes, auth, credentials, healthz, metrics and redirects over real loopback HTTP.
#include "gateway/gateway.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "catch.hpp"
#include "nlohmann/json.hpp"
#include "test_support.h"

namespace faasd::gateway::testing {
namespace {

using Fixture = GatewayFixture;

const char kDeploy[] = R"({"service":"echo","image":"127.0.0.1:5000/echo:1"})";

TEST_CASE("basic auth guards /system and not /healthz", "[gateway][auth]") {
  Fixture f;
  httplib::Client anon("127.0.0.1", f.gateway->port());
  auto r = anon.Get("/system/functions");
  REQUIRE(r);
  CHECK(r->status == 401);
  CHECK(r->get_header_value("WWW-Authenticate") == "Basic realm=\"Restricted\"");
  CHECK(r->body.find("invalid credentials") == 0);

  httplib::Client wrong("127.0.0.1", f.gateway->port());
  wrong.set_basic_auth("admin", "s3cres");
  CHECK(wrong.Get("/system/functions")->status == 401);
  wrong.set_basic_auth("admin", "s3cret-longer");
  CHECK(wrong.Get("/system/functions")->status == 401);
  wrong.set_basic_auth("root", "s3cret");
  CHECK(wrong.Get("/system/info")->status == 401);
  httplib::Headers garbage = {{"Authorization", "Basic !!!notbase64"}};
  CHECK(anon.Get("/system/functions", garbage)->status == 401);
  CHECK(anon.Post("/system/functions", kDeploy, "application/json")->status == 401);
  CHECK(f.provider.functions.empty());

  CHECK(f.client->Get("/system/functions")->status == 200);
  auto h = anon.Get("/healthz");
  REQUIRE(h);
  CHECK(h->status == 200);
  CHECK(h->body == "OK");
  CHECK(anon.Get("/metrics")->status == 200);
}

TEST_CASE("function-stats gives the portal its chart points", "[gateway][stats]") {
  Fixture f;
  REQUIRE(f.client->Post("/system/functions", kDeploy, "application/json")->status == 202);
  metrics::Metrics::FunctionCounters* c = f.metrics.For("echo.openfaas-fn");
  for (int i = 0; i < 4; ++i) {
    metrics::Metrics::Started(c);
    metrics::Metrics::Finished(c, i == 0 ? 500 : 200, 2'000'000);
  }
  f.history.Sample(absl::FromUnixSeconds(1'800'000'000));
  auto r = f.client->Get("/system/function-stats/echo?namespace=openfaas-fn");
  REQUIRE(r);
  REQUIRE(r->status == 200);
  const auto j = nlohmann::json::parse(r->body);
  CHECK(j["function"] == "echo.openfaas-fn");
  CHECK(j["intervalSeconds"] == 10);
  REQUIRE(j["points"].size() == 1);
  const auto& p = j["points"][0];
  CHECK(p["t"] == 1'800'000'000);
  CHECK(p["requests"] == 4);
  CHECK(p["errors"] == 1);
  CHECK(p["rps"].get<double>() == Approx(0.4));
  CHECK(p["p50Ms"].get<double>() == Approx(2.5));
  CHECK(p["p99Ms"].is_number());

  CHECK(f.client->Get("/system/function-stats/nope")->status == 404);
  CHECK(f.client->Get("/system/function-stats/BAD")->status == 400);
  CHECK(f.client->Get("/system/function-stats/echo?namespace=../x")->status == 400);
  httplib::Client anon("127.0.0.1", f.gateway->port());
  CHECK(anon.Get("/system/function-stats/echo")->status == 401);
}

TEST_CASE("healthz follows the provider", "[gateway]") {
  Fixture f;
  f.provider.healthy = false;
  CHECK(f.client->Get("/healthz")->status == 503);
  f.provider.healthy = true;
  CHECK(f.client->Get("/healthz")->status == 200);
}

TEST_CASE("root redirects to the UI", "[gateway]") {
  Fixture f;
  auto r = f.client->Get("/");
  REQUIRE(r);
  CHECK(r->status / 100 == 3);
  CHECK(r->get_header_value("Location") == "/ui/");
}

TEST_CASE("deploy answers 202, duplicate 409, update absent 404", "[gateway][deploy]") {
  Fixture f;
  auto put = f.client->Put("/system/functions", kDeploy, "application/json");
  REQUIRE(put);
  CHECK(put->status == 404);  // faas-cli then POSTs
  auto post = f.client->Post("/system/functions", kDeploy, "application/json");
  REQUIRE(post);
  CHECK(post->status == 202);
  REQUIRE(f.provider.functions.count("echo.openfaas-fn") == 1);
  CHECK(f.provider.functions["echo.openfaas-fn"].image == "127.0.0.1:5000/echo:1");
  CHECK(f.client->Post("/system/functions", kDeploy, "application/json")->status == 409);
  CHECK(f.client->Put("/system/functions", kDeploy, "application/json")->status == 202);

  // ?namespace= fills the body's empty namespace.
  CHECK(f.client->Post("/system/functions?namespace=other", kDeploy, "application/json")->status ==
        202);
  CHECK(f.provider.functions.count("echo.other") == 1);
  // The autoscaler's wake-up: after the deploys and the update accepted, not the refused ones.
  CHECK(f.functions_changed.load() == 3);
}

TEST_CASE("deploy rejects malformed bodies and bad names with 400", "[gateway][deploy]") {
  Fixture f;
  auto status = [&](const std::string& body) {
    auto r = f.client->Post("/system/functions", body, "application/json");
    REQUIRE(r);
    return r->status;
  };
  CHECK(status("{not json") == 400);
  CHECK(status("[]") == 400);
  CHECK(status("") == 400);
  CHECK(status(R"({"image":"x:1"})") == 400);     // missing service
  CHECK(status(R"({"service":"echo"})") == 400);  // missing image
  CHECK(status(R"({"service":"../x","image":"x:1"})") == 400);
  CHECK(status(R"({"service":"","image":"x:1"})") == 400);
  CHECK(status(R"({"service":"Echo","image":"x:1"})") == 400);
  CHECK(status(absl::StrCat(R"({"service":")", std::string(300, 'a'), R"(","image":"x:1"})")) ==
        400);
  CHECK(status(R"({"service":"echo","image":"x:1","namespace":"../etc"})") == 400);
  CHECK(f.client->Put("/system/functions", "{oops", "application/json")->status == 400);
  CHECK(f.provider.functions.empty());
  CHECK(f.functions_changed.load() == 0);
}

TEST_CASE("provider errors map to HTTP, including the http-status payload", "[gateway]") {
  Fixture f;
  absl::Status registry = absl::UnavailableError("pull 127.0.0.1:5000/echo:1: manifest unknown");
  registry.SetPayload("faasd/http-status", absl::Cord("502"));
  f.provider.next_deploy_error = registry;
  auto r = f.client->Post("/system/functions", kDeploy, "application/json");
  REQUIRE(r);
  CHECK(r->status == 502);
  CHECK(r->body.find("manifest unknown") != std::string::npos);
  f.provider.next_deploy_error = absl::UnavailableError("containerd: connection refused");
  CHECK(f.client->Post("/system/functions", kDeploy, "application/json")->status == 503);
  f.provider.next_deploy_error = absl::InternalError("boom");
  CHECK(f.client->Post("/system/functions", kDeploy, "application/json")->status == 500);
  CHECK(f.functions_changed.load() == 0);
}

TEST_CASE("oversized /system body is 413", "[gateway]") {
  Fixture f;
  std::string big = absl::StrCat(R"({"service":"echo","image":"x:1","envProcess":")",
                                 std::string(2 << 20, 'a'), R"("})");
  auto r = f.client->Post("/system/functions", big, "application/json");
  REQUIRE(r);
  CHECK(r->status == 413);
  CHECK(f.provider.functions.empty());
}

TEST_CASE("list, get, delete, scale and 404 on unknown functions", "[gateway]") {
  Fixture f;
  REQUIRE(f.client->Post("/system/functions", kDeploy, "application/json")->status == 202);

  auto list = f.client->Get("/system/functions");
  REQUIRE(list);
  CHECK(list->status == 200);
  auto j = nlohmann::json::parse(list->body);
  REQUIRE(j.is_array());
  REQUIRE(j.size() == 1);
  CHECK(j[0]["name"] == "echo");
  CHECK(f.client->Get("/system/functions?namespace=other")->status == 200);
  CHECK(f.client->Get("/system/functions?namespace=Bad")->status == 400);
  CHECK(f.client->Get("/system/functions?namespace=..%2Fx")->status == 400);
  CHECK(f.client->Get("/system/functions?namespace=missing")->status == 400);

  auto get = f.client->Get("/system/function/echo");
  REQUIRE(get);
  CHECK(get->status == 200);
  CHECK(nlohmann::json::parse(get->body)["image"] == "127.0.0.1:5000/echo:1");
  CHECK(f.client->Get("/system/function/nope")->status == 404);
  CHECK(f.client->Get("/system/function/Echo")->status == 400);
  CHECK(f.client->Get("/system/function/echo?namespace=BAD")->status == 400);
  CHECK(f.client->Get(("/system/function/" + std::string(300, 'a')).c_str())->status == 400);

  const std::string scale = R"({"serviceName":"echo","replicas":3})";
  CHECK(f.client->Post("/system/scale-function/echo", scale, "application/json")->status == 202);
  CHECK(f.provider.scaled["echo.openfaas-fn"] == 3);
  CHECK(f.client->Post("/system/scale-function/nope", scale, "application/json")->status == 404);
  CHECK(f.client->Post("/system/scale-function/echo", "{", "application/json")->status == 400);
  CHECK(f.client->Post("/system/scale-function/echo", R"({"replicas":-1})", "application/json")
            ->status == 400);
  CHECK(f.client->Post("/system/scale-function/UP", scale, "application/json")->status == 400);
  CHECK(f.client->Post("/system/scale-function/echo?namespace=..", scale, "application/json")
            ->status == 400);

  CHECK(f.client->Delete("/system/functions", R"({"functionName":"nope"})", "application/json")
            ->status == 404);
  CHECK(f.client->Delete("/system/functions", R"({"functionName":"../x"})", "application/json")
            ->status == 400);
  CHECK(
      f.client->Delete("/system/functions", R"({"functionName":""})", "application/json")->status ==
      400);
  CHECK(f.client->Delete("/system/functions", "nope", "application/json")->status == 400);
  CHECK(f.client->Delete("/system/functions", R"({"functionName":"echo"})", "application/json")
            ->status == 202);
  CHECK(f.provider.functions.empty());
  CHECK(f.client->Get("/system/function/echo")->status == 404);
}

TEST_CASE("info and namespaces", "[gateway]") {
  Fixture f;
  auto info = f.client->Get("/system/info");
  REQUIRE(info);
  CHECK(info->status == 200);
  auto j = nlohmann::json::parse(info->body);
  CHECK(j["provider"]["provider"] == "faasd-cpp");
  CHECK(j["provider"]["orchestration"] == "containerd");
  CHECK(j["provider"]["version"]["sha"] == "abc123");
  CHECK(j["version"]["release"] == "0.1.0");
  CHECK(j["arch"].is_string());
  auto ns = f.client->Get("/system/namespaces");
  REQUIRE(ns);
  CHECK(ns->status == 200);
  CHECK(nlohmann::json::parse(ns->body) == nlohmann::json({"openfaas-fn", "other"}));
}

TEST_CASE("namespace CRUD as faas-cli and go-sdk send it", "[gateway][namespaces]") {
  Fixture f;
  const std::string body = R"({"name":"team-a","labels":{"openfaas":"1","x":"y"},)"
                           R"("annotations":{"openfaas":"1"}})";
  auto created = f.client->Post("/system/namespace/", body, "application/json");
  REQUIRE(created);
  CHECK(created->status == 201);
  CHECK(f.client->Post("/system/namespace/", body, "application/json")->status == 409);
  auto got = f.client->Get("/system/namespace/team-a");
  REQUIRE(got);
  CHECK(got->status == 200);
  auto j = nlohmann::json::parse(got->body);
  CHECK(j["name"] == "team-a");
  CHECK(j["labels"]["x"] == "y");
  auto updated =
      f.client->Put("/system/namespace/team-a",
                    R"({"name":"team-a","labels":{"openfaas":"1","x":"z"}})", "application/json");
  REQUIRE(updated);
  CHECK(updated->status == 202);
  CHECK(f.client->Put("/system/namespace/team-a", R"({"name":"team-b"})", "application/json")
            ->status == 400);
  CHECK(f.client->Put("/system/namespace/nope", R"({"name":"nope"})", "application/json")->status ==
        404);
  CHECK(f.client->Get("/system/namespace/nope")->status == 404);
  for (const char* bad : {"UPPER", "a_b", "-x"}) {
    INFO(bad);
    CHECK(f.client->Get((std::string("/system/namespace/") + bad).c_str())->status == 400);
    CHECK(f.client
              ->Post("/system/namespace/", std::string(R"({"name":")") + bad + R"("})",
                     "application/json")
              ->status == 400);
  }
  CHECK(f.client->Post("/system/namespace/", "{nope", "application/json")->status == 400);
  auto deleted =
      f.client->Delete("/system/namespace/team-a", R"({"name":"team-a"})", "application/json");
  REQUIRE(deleted);
  CHECK(deleted->status == 202);
  CHECK(f.client->Delete("/system/namespace/team-a")->status == 404);
  CHECK(f.client->Get("/system/namespace/team-a", httplib::Headers{})->status == 404);
  httplib::Client anon("127.0.0.1", f.gateway->port());
  CHECK(anon.Post("/system/namespace/", body, "application/json")->status == 401);
}

TEST_CASE("Start names the address when the port is taken", "[gateway]") {
  Fixture f;
  FakeProvider other;
  GatewayOptions o;
  o.listen_host = "127.0.0.1";
  o.port = f.gateway->port();
  metrics::Metrics metrics;
  Gateway second(o, other, metrics);
  absl::Status s = second.Start();
  CHECK(!s.ok());
  CHECK(std::string(s.message()).find(absl::StrCat("127.0.0.1:", o.port)) != std::string::npos);
}

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/gateway-test-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  // Whatever a test made inside (a secrets folder, a symlink to another one), never following
  // a link out of it.
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
};

std::string ReadFile(const std::string& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST_CASE("credentials are created once, then read back trimmed", "[gateway][credentials]") {
  TempDir tmp;
  const std::string dir = tmp.path + "/secrets";
  auto first = LoadOrCreateCredentials(dir);
  REQUIRE(first.ok());
  CHECK(first->user == "admin");
  CHECK(first->password.size() >= 32);
  for (char c : first->password)
    CHECK((std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'));
  struct stat st;
  REQUIRE(::stat(dir.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  REQUIRE(::stat((dir + "/basic-auth-password").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(ReadFile(dir + "/basic-auth-password") == first->password);

  auto second = LoadOrCreateCredentials(dir);
  REQUIRE(second.ok());
  CHECK(second->password == first->password);

  { std::ofstream(dir + "/basic-auth-password") << "  hunter2 \n"; }
  { std::ofstream(dir + "/basic-auth-user") << "\toperator\n"; }
  auto third = LoadOrCreateCredentials(dir);
  REQUIRE(third.ok());
  CHECK(third->user == "operator");
  CHECK(third->password == "hunter2");

  { std::ofstream(dir + "/basic-auth-password") << "  \n"; }
  CHECK(!LoadOrCreateCredentials(dir).ok());
  CHECK(!LoadOrCreateCredentials("").ok());
}

TEST_CASE("credentials never follow a symlink planted at a temp path", "[gateway][credentials]") {
  TempDir tmp;
  const std::string dir = tmp.path + "/secrets";
  const std::string outside = tmp.path + "/outside";
  REQUIRE(::mkdir(dir.c_str(), 0700) == 0);
  { std::ofstream(outside) << "keep"; }
  // The name the old code wrote through; a crashed run can also leave a stale one behind.
  REQUIRE(::symlink(outside.c_str(), (dir + "/basic-auth-password.tmp").c_str()) == 0);
  auto creds = LoadOrCreateCredentials(dir);
  REQUIRE(creds.ok());
  CHECK(ReadFile(outside) == "keep");
  struct stat st;
  REQUIRE(::lstat((dir + "/basic-auth-password").c_str(), &st) == 0);
  CHECK(S_ISREG(st.st_mode));
  CHECK(ReadFile(dir + "/basic-auth-password") == creds->password);
}

TEST_CASE("an existing secrets dir is narrowed to 0700 when it is ours", "[gateway][credentials]") {
  TempDir tmp;
  const std::string dir = tmp.path + "/secrets";
  REQUIRE(::mkdir(dir.c_str(), 0700) == 0);
  REQUIRE(::chmod(dir.c_str(), 0755) == 0);
  REQUIRE(LoadOrCreateCredentials(dir).ok());
  struct stat st;
  REQUIRE(::stat(dir.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0700);
}

// `dir` is refused with an error naming it and `cause`, and nothing is written into `target`.
void CheckSecretsDirRefused(const std::string& dir, const std::string& cause,
                            const std::string& target) {
  auto creds = LoadOrCreateCredentials(dir);
  REQUIRE(!creds.ok());
  CHECK(creds.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(creds.status().message().find(absl::StrCat(dir, ": ", cause)) != std::string::npos);
  CHECK(::access((target + "/basic-auth-password").c_str(), F_OK) != 0);
}

TEST_CASE("a secrets dir that is a symlink is refused", "[gateway][credentials]") {
  TempDir tmp;
  const std::string real = tmp.path + "/real";
  const std::string dir = tmp.path + "/secrets";
  REQUIRE(::mkdir(real.c_str(), 0700) == 0);
  REQUIRE(::symlink(real.c_str(), dir.c_str()) == 0);
  CheckSecretsDirRefused(dir, "is a symbolic link", real);
}

TEST_CASE("a secrets dir owned by another user is refused", "[gateway][credentials]") {
  if (::geteuid() != 0) {
    WARN("needs root to chown; not run");
    return;
  }
  TempDir tmp;
  const std::string dir = tmp.path + "/secrets";
  REQUIRE(::mkdir(dir.c_str(), 0700) == 0);
  REQUIRE(::chown(dir.c_str(), 65534, 65534) == 0);
  CheckSecretsDirRefused(dir, "owned by uid 65534", dir);
}

TEST_CASE("POST /system/alert steps functions up on firing and back to min on resolved",
          "[gateway]") {
  Fixture f;
  REQUIRE(f.client
              ->Post("/system/functions",
                     R"({"service":"echo","image":"r/echo:1","labels":{
                       "com.openfaas.scale.min":"2","com.openfaas.scale.max":"10",
                       "com.openfaas.scale.factor":"30"}})",
                     "application/json")
              ->status == 202);
  REQUIRE(f.client->Post("/system/functions", R"({"service":"plain","image":"r/echo:1"})",
                         "application/json")
              ->status == 202);
  f.provider.scaled["echo.openfaas-fn"] = 2;
  f.provider.scaled["plain.openfaas-fn"] = 1;
  auto alert = [&](const std::string& status, const std::string& fn) {
    return f.client->Post("/system/alert",
                          R"({"status":")" + status + R"(","receiver":"scale-up","alerts":[
                            {"status":")" + status + R"(","labels":{"alertname":"APIHighInvocationRate",
                             "function_name":")" + fn + R"("}}]})",
                          "application/json");
  };
  // factor 30 of max 10: +3 per firing alert, never past max.
  CHECK(alert("firing", "echo")->status == 200);
  CHECK(f.provider.scaled["echo.openfaas-fn"] == 5);
  CHECK(alert("firing", "echo.openfaas-fn")->status == 200);
  CHECK(f.provider.scaled["echo.openfaas-fn"] == 8);
  CHECK(alert("firing", "echo")->status == 200);
  CHECK(f.provider.scaled["echo.openfaas-fn"] == 10);
  CHECK(alert("resolved", "echo")->status == 200);
  CHECK(f.provider.scaled["echo.openfaas-fn"] == 2);
  // Defaults: factor 20 of max 20 = +4.
  CHECK(alert("firing", "plain")->status == 200);
  CHECK(f.provider.scaled["plain.openfaas-fn"] == 5);
  // A function that is gone is skipped, as upstream; an empty payload does nothing.
  CHECK(alert("firing", "gone")->status == 200);
  CHECK(f.client->Post("/system/alert", R"({"alerts":[]})", "application/json")->status == 200);
  CHECK(f.client->Post("/system/alert", R"({"status":"firing"})", "application/json")->status ==
        200);
  // Not a webhook payload: 400.
  for (const char* bad : {"{", "[]", "\"firing\"", R"({"alerts":{}})", R"({"alerts":[1]})",
                          R"({"alerts":[{"status":5}]})",
                          R"({"alerts":[{"labels":{"function_name":7}}]})"}) {
    INFO(bad);
    auto r = f.client->Post("/system/alert", bad, "application/json");
    REQUIRE(r);
    CHECK(r->status == 400);
  }
  // A bad function name fails its own alert (500, numbered); the others still apply.
  auto r = f.client->Post("/system/alert", R"({"alerts":[
      {"status":"firing","labels":{"function_name":"../etc"}},
      {"status":"resolved","labels":{"function_name":"plain"}}]})",
                          "application/json");
  REQUIRE(r);
  CHECK(r->status == 500);
  CHECK(r->body.find("[0] alert for ../etc") != std::string::npos);
  CHECK(f.provider.scaled["plain.openfaas-fn"] == 1);
  // Behind basic auth like every /system route.
  httplib::Client anon("127.0.0.1", f.gateway->port());
  CHECK(anon.Post("/system/alert", R"({"alerts":[]})", "application/json")->status == 401);
}

}  // namespace
}  // namespace faasd::gateway::testing
