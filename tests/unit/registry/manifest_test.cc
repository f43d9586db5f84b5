#include "catch.hpp"
#include "registry/registry.h"

namespace r = faasd::registry;

namespace {
std::string D(char c) { return "sha256:" + std::string(64, c); }

r::Descriptor Entry(const std::string& platform, char digest_char,
                    const std::string& media_type = r::kMediaTypeOciManifest) {
  r::Descriptor d;
  d.media_type = media_type;
  d.digest = D(digest_char);
  d.size = 100;
  d.platform = *r::Platform::Parse(platform);
  return d;
}

std::string Select(const r::Index& index, const std::string& want) {
  auto d = r::SelectPlatform(index, *r::Platform::Parse(want));
  return d.ok() ? d->digest : std::string(d.status().message());
}
}  // namespace

TEST_CASE("media type predicates", "[manifest]") {
  CHECK(r::IsIndexMediaType(r::kMediaTypeOciIndex));
  CHECK(r::IsIndexMediaType(r::kMediaTypeDockerManifestList));
  CHECK_FALSE(r::IsIndexMediaType(r::kMediaTypeOciManifest));
  CHECK(r::IsManifestMediaType(r::kMediaTypeOciManifest));
  CHECK(r::IsManifestMediaType(r::kMediaTypeDockerManifest));
  CHECK_FALSE(r::IsManifestMediaType("application/json"));
}

TEST_CASE("parse a Docker schema2 manifest", "[manifest]") {
  std::string body = R"({"schemaVersion":2,
    "mediaType":"application/vnd.docker.distribution.manifest.v2+json",
    "config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":1469,
              "digest":")" +
                     D('a') + R"("},
    "layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":2818413,
               "digest":")" +
                     D('b') + R"("},
              {"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":10,
               "digest":")" +
                     D('c') + R"(","annotations":{"k":"v"}}]})";
  auto m = r::ParseManifest(body);
  REQUIRE(m.ok());
  CHECK(m->config.digest == D('a'));
  CHECK(m->config.size == 1469);
  CHECK(m->config.media_type == r::kMediaTypeDockerConfig);
  REQUIRE(m->layers.size() == 2);
  CHECK(m->layers[0].size == 2818413);
  CHECK(m->layers[1].annotations.at("k") == "v");
}

TEST_CASE("parse an OCI manifest without mediaType", "[manifest]") {
  std::string body = R"({"schemaVersion":2,
    "config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":")" +
                     D('1') + R"("},"layers":[]})";
  auto m = r::ParseManifest(body);
  REQUIRE(m.ok());
  CHECK(m->layers.empty());
}

TEST_CASE("manifest junk, schema1, indexes and bad descriptors are rejected", "[manifest]") {
  CHECK(r::ParseManifest("not json").status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(r::ParseManifest("[]").status().code() == absl::StatusCode::kInvalidArgument);
  auto s1 = r::ParseManifest(R"({"schemaVersion":1,"name":"x","fsLayers":[]})");
  CHECK(s1.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(s1.status().message()).find("schema1") != std::string::npos);
  // Found by tests/fuzz/manifest: a schemaVersion of another type threw nlohmann's type_error
  // out of the parser (and the daemon) instead of being read as "not schema1".
  auto odd = r::ParseManifest(R"({"schemaVersion":"interfaces","tag":"y","fsLayers":[]})");
  REQUIRE_FALSE(odd.ok());
  CHECK(odd.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_FALSE(r::ParseManifest(R"({"schemaVersion":null,"config":[]})").ok());
  CHECK_FALSE(r::ParseManifest(R"({"schemaVersion":2,"manifests":[]})").ok());
  CHECK_FALSE(r::ParseManifest(R"({"schemaVersion":2,"layers":[]})").ok());
  CHECK_FALSE(r::ParseManifest(R"({"config":{"digest":"sha256:zz","size":1},"layers":[]})").ok());
  CHECK_FALSE(
      r::ParseManifest(R"({"config":{"digest":")" + D('a') + R"(","size":-1},"layers":[]})").ok());
}

TEST_CASE("parse OCI index and Docker manifest list", "[manifest]") {
  std::string body =
      R"({"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json",
    "manifests":[
      {"mediaType":"application/vnd.docker.distribution.manifest.v2+json","size":528,"digest":")" +
      D('a') + R"(","platform":{"architecture":"amd64","os":"linux"}},
      {"mediaType":"application/vnd.docker.distribution.manifest.v2+json","size":528,"digest":")" +
      D('b') + R"(","platform":{"architecture":"arm","os":"linux","variant":"v7"}}]})";
  auto index = r::ParseIndex(body);
  REQUIRE(index.ok());
  REQUIRE(index->manifests.size() == 2);
  CHECK(index->manifests[1].platform->String() == "linux/arm/v7");
  CHECK(r::ParseIndex(R"({"manifests":[]})").ok());  // OCI index may omit mediaType
  CHECK_FALSE(r::ParseIndex(R"({"mediaType":"application/vnd.oci.image.manifest.v1+json"})").ok());
  CHECK_FALSE(r::ParseIndex("{").ok());
}

TEST_CASE("platform selection follows containerd's matcher", "[platform]") {
  r::Index index;
  index.manifests = {Entry("linux/amd64", '1'), Entry("linux/arm64/v8", '2'),
                     Entry("linux/arm/v6", '3'), Entry("linux/arm/v7", '4')};
  CHECK(Select(index, "linux/amd64") == D('1'));
  CHECK(Select(index, "linux/amd64/v3") == D('1'));  // amd64 ignores variants
  CHECK(Select(index, "linux/arm64") == D('2'));     // "" == v8
  CHECK(Select(index, "linux/arm64/v8") == D('2'));
  CHECK(Select(index, "linux/arm/v7") == D('4'));  // exact beats compatible
  CHECK(Select(index, "linux/arm/v6") == D('3'));

  r::Index arm_no_variant;
  arm_no_variant.manifests = {Entry("linux/arm64", '5')};
  CHECK(Select(arm_no_variant, "linux/arm64/v8") == D('5'));

  r::Index only_v6_v5;
  only_v6_v5.manifests = {Entry("linux/arm/v5", '5'), Entry("linux/arm/v6", '6')};
  CHECK(Select(only_v6_v5, "linux/arm/v7") == D('6'));  // newest the host runs
  CHECK(Select(only_v6_v5, "linux/arm/v5") == D('5'));

  r::Index only_v7;
  only_v7.manifests = {Entry("linux/arm/v7", '7'), Entry("linux/amd64", '8')};
  std::string miss = Select(only_v7, "linux/arm/v6");  // a v6 host cannot run v7 code
  CHECK(miss.find("no image for platform linux/arm/v6") != std::string::npos);
  CHECK(miss.find("linux/arm/v7, linux/amd64") != std::string::npos);
  CHECK(r::SelectPlatform(only_v7, *r::Platform::Parse("linux/s390x")).status().code() ==
        absl::StatusCode::kNotFound);
  CHECK(r::SelectPlatform(only_v7, *r::Platform::Parse("windows/amd64")).status().code() ==
        absl::StatusCode::kNotFound);
}

TEST_CASE("platform selection skips attestations and entries without platform", "[platform]") {
  r::Index index;
  r::Descriptor no_platform;
  no_platform.media_type = r::kMediaTypeOciManifest;
  no_platform.digest = D('0');
  index.manifests = {no_platform, Entry("unknown/unknown", '9'),
                     Entry("linux/amd64", 'a', "application/vnd.in-toto+json"),
                     Entry("linux/amd64", 'b')};
  CHECK(Select(index, "linux/amd64") == D('b'));
}

TEST_CASE("parse an image config", "[config]") {
  std::string body = R"({"architecture":"arm","variant":"v7","os":"linux",
    "config":{"User":"app","Env":["PATH=/usr/bin","fprocess=cat"],"Entrypoint":null,
      "Cmd":["fwatchdog"],"WorkingDir":"/home/app","Labels":{"com.openfaas.x":"1"},
      "ExposedPorts":{"8080/tcp":{}}},
    "rootfs":{"type":"layers","diff_ids":[")" +
                     D('a') + R"(",")" + D('b') + R"("]}})";
  auto c = r::ParseImageConfig(body);
  REQUIRE(c.ok());
  CHECK(c->architecture == "arm");
  CHECK(c->variant == "v7");
  CHECK(c->os == "linux");
  CHECK(c->user == "app");
  CHECK(c->env == std::vector<std::string>{"PATH=/usr/bin", "fprocess=cat"});
  CHECK(c->entrypoint.empty());
  CHECK(c->cmd == std::vector<std::string>{"fwatchdog"});
  CHECK(c->working_dir == "/home/app");
  CHECK(c->labels.at("com.openfaas.x") == "1");
  CHECK(c->exposed_ports == std::vector<std::string>{"8080/tcp"});
  CHECK(c->diff_ids.size() == 2);

  CHECK_FALSE(r::ParseImageConfig(R"({"os":"linux"})").ok());  // no rootfs
  CHECK_FALSE(r::ParseImageConfig(R"({"rootfs":{"diff_ids":["md5:1"]}})").ok());
  CHECK_FALSE(r::ParseImageConfig("nope").ok());
}
