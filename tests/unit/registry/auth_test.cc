#include "registry/auth.h"

#include "catch.hpp"

namespace r = faasd::registry;

TEST_CASE("WWW-Authenticate: Docker Hub style bearer challenge", "[auth]") {
  auto c = r::ParseWwwAuthenticate(
      R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull,push")");
  REQUIRE(c.size() == 1);
  CHECK(c[0].scheme == "bearer");
  CHECK(c[0].params.at("realm") == "https://auth.docker.io/token");
  CHECK(c[0].params.at("service") == "registry.docker.io");
  CHECK(c[0].params.at("scope") == "repository:library/alpine:pull,push");  // comma in quotes
}

TEST_CASE("WWW-Authenticate: basic, tokens, escapes, several challenges", "[auth]") {
  auto basic = r::ParseWwwAuthenticate(R"(Basic realm="Registry Realm")");
  REQUIRE(basic.size() == 1);
  CHECK(basic[0].scheme == "basic");
  CHECK(basic[0].params.at("realm") == "Registry Realm");

  auto two = r::ParseWwwAuthenticate(R"(Basic realm=x, Bearer REALM="a\"b", service = s)");
  REQUIRE(two.size() == 2);
  CHECK(two[0].params.at("realm") == "x");
  CHECK(two[1].scheme == "bearer");
  CHECK(two[1].params.at("realm") == "a\"b");
  CHECK(two[1].params.at("service") == "s");

  CHECK(r::ParseWwwAuthenticate("").empty());
  CHECK(r::ParseWwwAuthenticate(R"(Bearer realm="unterminated)").empty());
  CHECK(r::ParseWwwAuthenticate("(junk)").empty());
}

TEST_CASE("docker config.json credentials", "[auth]") {
  // dXNlcjpwYTpzcw== is base64("user:pa:ss"): the password may contain ':'.
  const std::string config = R"({"auths":{
      "https://index.docker.io/v1/":{"auth":"dXNlcjpwYTpzcw=="},
      "127.0.0.1:5000":{"username":"alice","password":"secret"},
      "ghcr.io":{"auth":"!!!"},
      "quay.io":{"auth":"bm9jb2xvbg=="},
      "empty.io":{}}, "credsStore":"desktop"})";
  auto hub = r::CredentialsFromDockerConfig(config, "docker.io");
  REQUIRE(hub.ok());
  REQUIRE(hub->has_value());
  CHECK((*hub)->username == "user");
  CHECK((*hub)->password == "pa:ss");

  auto local = r::CredentialsFromDockerConfig(config, "127.0.0.1:5000");
  REQUIRE(local.ok());
  REQUIRE(local->has_value());
  CHECK((*local)->username == "alice");
  CHECK((*local)->password == "secret");

  auto none = r::CredentialsFromDockerConfig(config, "example.com");
  REQUIRE(none.ok());
  CHECK_FALSE(none->has_value());
  auto empty = r::CredentialsFromDockerConfig(config, "empty.io");
  REQUIRE(empty.ok());
  CHECK_FALSE(empty->has_value());

  CHECK(r::CredentialsFromDockerConfig(config, "ghcr.io").status().code() ==
        absl::StatusCode::kInvalidArgument);
  auto no_colon = r::CredentialsFromDockerConfig(config, "quay.io");
  CHECK(std::string(no_colon.status().message()).find("quay.io") != std::string::npos);
  CHECK_FALSE(r::CredentialsFromDockerConfig("{not json", "docker.io").ok());
  auto no_auths = r::CredentialsFromDockerConfig("{}", "docker.io");
  REQUIRE(no_auths.ok());
  CHECK_FALSE(no_auths->has_value());
}

TEST_CASE("credential helpers are named, not run", "[auth]") {
  const std::string config = R"({"auths":{}, "credsStore":"desktop",
      "credHelpers":{"123.dkr.ecr.us-east-1.amazonaws.com":"ecr-login","gcr.io":"gcloud"}})";
  CHECK(r::CredentialHelperFor(config, "123.dkr.ecr.us-east-1.amazonaws.com") == "ecr-login");
  CHECK(r::CredentialHelperFor(config, "gcr.io") == "gcloud");
  CHECK(r::CredentialHelperFor(config, "docker.io") == "desktop");  // credsStore for the rest
  CHECK(r::CredentialHelperFor(R"({"auths":{}})", "docker.io").empty());
  CHECK(r::CredentialHelperFor("{not json", "docker.io").empty());
}

TEST_CASE("an unauthorized hint says whether the config has credentials for the host", "[auth]") {
  const std::string path = "/etc/faasd/config.json";
  const std::string config =
      R"({"auths":{"127.0.0.1:5000":{"auth":"YWxpY2U6c2VjcmV0"}},"credHelpers":{"gcr.io":"gcloud"}})";
  CHECK(r::CredentialsHint("", "", "127.0.0.1:5000") == "no docker config is set for credentials");
  CHECK(r::CredentialsHint(path, config, "127.0.0.1:5000") == "check credentials in " + path);
  // No entry (an anonymous token is no credentials): say so, not "check credentials".
  CHECK(r::CredentialsHint(path, config, "127.0.0.1:5001") ==
        path + " has no credentials for 127.0.0.1:5001: put them under \"auths\"");
  CHECK(r::CredentialsHint(path, "", "127.0.0.1:5001") ==
        path + " has no credentials for 127.0.0.1:5001: put them under \"auths\"");  // no file
  CHECK(r::CredentialsHint(path, config, "gcr.io") ==
        path +
            " leaves gcr.io to the credential helper docker-credential-gcloud, which faasd "
            "does not run: put the credentials under \"auths\"");
  CHECK(r::CredentialsHint(path, "{not json", "127.0.0.1:5000") == "check credentials in " + path);
}

TEST_CASE("hosts, loopback, URLs", "[auth]") {
  CHECK(r::RegistryHost("docker.io") == "registry-1.docker.io");
  CHECK(r::RegistryHost("ghcr.io") == "ghcr.io");
  CHECK(r::IsLoopbackHost("127.0.0.1:5000"));
  CHECK(r::IsLoopbackHost("127.1.2.3"));
  CHECK(r::IsLoopbackHost("localhost:5000"));
  CHECK(r::IsLoopbackHost("[::1]:5000"));
  CHECK_FALSE(r::IsLoopbackHost("127.0.0.1.evil.com"));
  CHECK_FALSE(r::IsLoopbackHost("10.0.0.1:5000"));
  CHECK_FALSE(r::IsLoopbackHost("localhost.evil.com"));

  auto u = r::ParseUrl("https://auth.docker.io/token?x=1");
  REQUIRE(u.ok());
  CHECK(u->Origin() == "https://auth.docker.io");
  CHECK(u->path_query == "/token?x=1");
  CHECK(r::ParseUrl("http://h:1")->path_query == "/");
  CHECK_FALSE(r::ParseUrl("ftp://h/").ok());
  CHECK_FALSE(r::ParseUrl("https://user@h/").ok());

  auto other = r::ResolveLocation(*u, "https://cdn.example.com/blob?sig=1");
  REQUIRE(other.ok());
  CHECK(other->host_port == "cdn.example.com");
  CHECK(r::ResolveLocation(*u, "/v2/x")->Origin() == "https://auth.docker.io");
  CHECK(r::ResolveLocation(*u, "//cdn.io/p")->Origin() == "https://cdn.io");
  CHECK_FALSE(r::ResolveLocation(*u, "relative").ok());
  CHECK(r::QueryEscape("repository:a/b:pull") == "repository%3Aa%2Fb%3Apull");
}
