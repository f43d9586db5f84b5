// `faasd export`'s stack.yml: every field faas-cli deploys from, read back with yaml-cpp.
#include <string>
#include <vector>

#include "appliance/appliance.h"
#include "catch.hpp"
#include "yaml-cpp/yaml.h"

namespace faasd::appliance {
namespace {

using nlohmann::json;

TEST_CASE("export: a function's fields land where faas-cli's stack.yml has them") {
  const std::vector<json> fns = {
      json::parse(R"({"name": "echo", "image": "reg:5000/echo:1", "namespace": "openfaas-fn",
        "envProcess": "cat", "envVars": {"A": "1", "B": "x: y"},
        "labels": {"team": "a"}, "annotations": {"faasd.pull-policy": "IfNotPresent"},
        "secrets": ["db"], "constraints": ["node=a"],
        "limits": {"memory": "64Mi", "cpu": "500m"}, "requests": {"cpu": "100m"},
        "readOnlyRootFilesystem": true, "replicas": 1, "invocationCount": 3})"),
      json::parse(R"({"name": "other", "image": "reg:5000/o:2", "namespace": "team-b"})"),
  };
  absl::StatusOr<std::string> text = RenderStack(fns, "http://127.0.0.1:8080", "openfaas-fn");
  REQUIRE(text.ok());
  YAML::Node stack = YAML::Load(*text);
  CHECK(stack["provider"]["name"].as<std::string>() == "openfaas");
  CHECK(stack["provider"]["gateway"].as<std::string>() == "http://127.0.0.1:8080");
  YAML::Node echo = stack["functions"]["echo"];
  CHECK(echo["image"].as<std::string>() == "reg:5000/echo:1");
  CHECK_FALSE(echo["namespace"]);
  CHECK(echo["fprocess"].as<std::string>() == "cat");
  CHECK(echo["environment"]["B"].as<std::string>() == "x: y");
  CHECK(echo["labels"]["team"].as<std::string>() == "a");
  CHECK(echo["annotations"]["faasd.pull-policy"].as<std::string>() == "IfNotPresent");
  CHECK(echo["secrets"][0].as<std::string>() == "db");
  CHECK(echo["constraints"][0].as<std::string>() == "node=a");
  CHECK(echo["limits"]["memory"].as<std::string>() == "64Mi");
  CHECK(echo["limits"]["cpu"].as<std::string>() == "500m");
  CHECK(echo["requests"]["cpu"].as<std::string>() == "100m");
  CHECK(echo["readonly_root_filesystem"].as<bool>());
  CHECK_FALSE(echo["replicas"]);
  CHECK(stack["functions"]["other"]["namespace"].as<std::string>() == "team-b");
  CHECK_FALSE(stack["functions"]["other"]["environment"]);
}

TEST_CASE("export: one name in two namespaces is refused, naming both") {
  const std::vector<json> fns = {json::parse(R"({"name": "f", "image": "i", "namespace": "a"})"),
                                 json::parse(R"({"name": "f", "image": "i", "namespace": "b"})")};
  CHECK(RenderStack(fns, "http://g", "openfaas-fn").status().message() ==
        "function f is in namespaces a and b; a stack.yml names each function once: export "
        "each with --namespace");
  CHECK(RenderStack({json::parse(R"({"image": "i"})")}, "http://g", "openfaas-fn")
            .status()
            .message() == "a function without a name");
}

TEST_CASE("export: a field of the wrong type is an error naming the function, never a throw") {
  // nlohmann's value(key, default) throws type_error for a present key of another type.
  for (const char* bad : {R"({"name": "f", "image": 5})", R"({"name": "f", "image": "i",
                           "namespace": ["a"]})", R"({"name": "f", "image": "i",
                           "readOnlyRootFilesystem": "yes"})", R"({"name": 7})", R"([1, 2])"}) {
    INFO(bad);
    absl::StatusOr<std::string> text = RenderStack({json::parse(bad)}, "http://g", "openfaas-fn");
    REQUIRE_FALSE(text.ok());
    CHECK(text.status().code() == absl::StatusCode::kInvalidArgument);
  }
}

TEST_CASE("export: nothing deployed is an empty functions map") {
  absl::StatusOr<std::string> text = RenderStack({}, "http://g", "openfaas-fn");
  REQUIRE(text.ok());
  CHECK(YAML::Load(*text)["functions"].size() == 0);
}

}  // namespace
}  // namespace faasd::appliance
