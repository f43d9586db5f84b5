#include "catch.hpp"
#include "registry/registry.h"

using faasd::registry::Platform;
using faasd::registry::Reference;

namespace {
const std::string kDigest =
    "sha256:ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb";

Reference MustParse(const std::string& s) {
  auto r = Reference::Parse(s);
  INFO(s << ": " << r.status().ToString());
  REQUIRE(r.ok());
  return *r;
}
}  // namespace

TEST_CASE("docker.io single names get library/ and latest", "[reference]") {
  Reference r = MustParse("alpine");
  CHECK(r.domain == "docker.io");
  CHECK(r.path == "library/alpine");
  CHECK(r.tag == "latest");
  CHECK(r.digest.empty());
  CHECK(r.String() == "docker.io/library/alpine:latest");
  CHECK(r.TagOrDigest() == "latest");
}

TEST_CASE("docker.io user repos and index.docker.io", "[reference]") {
  CHECK(MustParse("openfaas/of-watchdog:0.9.10").String() ==
        "docker.io/openfaas/of-watchdog:0.9.10");
  CHECK(MustParse("docker.io/alpine:3.18").String() == "docker.io/library/alpine:3.18");
  CHECK(MustParse("index.docker.io/library/alpine").String() == "docker.io/library/alpine:latest");
}

TEST_CASE("registry hosts with ports, localhost and nested paths", "[reference]") {
  Reference r = MustParse("127.0.0.1:5000/fn:1");
  CHECK(r.domain == "127.0.0.1:5000");
  CHECK(r.path == "fn");  // no library/ outside docker.io
  CHECK(r.tag == "1");
  CHECK(MustParse("localhost/a/b/c").String() == "localhost/a/b/c:latest");
  CHECK(MustParse("ghcr.io/openfaas/queue-worker:latest").domain == "ghcr.io");
  // A port-looking suffix on the last component is a tag, not a port.
  Reference t = MustParse("host:5000/fn:5000");
  CHECK(t.domain == "host:5000");
  CHECK(t.tag == "5000");
  CHECK(MustParse("[::1]:5000/fn").domain == "[::1]:5000");
  CHECK(MustParse("docker.io/a-b.c_d__e.f--g/x").path == "a-b.c_d__e.f--g/x");
}

TEST_CASE("digests with and without tags", "[reference]") {
  Reference d = MustParse("host:5000/fn@" + kDigest);
  CHECK(d.tag.empty());
  CHECK(d.digest == kDigest);
  CHECK(d.String() == "host:5000/fn@" + kDigest);
  CHECK(d.TagOrDigest() == kDigest);
  Reference td = MustParse("name:tag@" + kDigest);
  CHECK(td.String() == "docker.io/library/name:tag@" + kDigest);
  CHECK(td.TagOrDigest() == kDigest);
}

TEST_CASE("bad references are rejected with the input named", "[reference]") {
  for (const char* bad :
       {"", "Alpine", "docker.io/Library/alpine", "a//b", "a/", "/a", "alpine@sha256:abc",
        "alpine@md5:ca978112ca1bbdcafac231b39a23dc4d", "alpine:", "alpine:-x", "a..b", "a-/b",
        ":tag", "host:port/x",
        "alpine@sha256:CA978112CA1BBDCAFAC231B39A23DC4DA786EFF8147C4E72B9807785AFEE48BB"}) {
    auto r = Reference::Parse(bad);
    INFO("input: \"" << bad << "\"");
    CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
    if (!r.ok()) CHECK(std::string(r.status().message()).find("image reference") == 0);
  }
  CHECK(std::string(Reference::Parse("Alpine").status().message()).find("lowercase") !=
        std::string::npos);
}

TEST_CASE("platform parsing and printing", "[platform]") {
  auto p = Platform::Parse("linux/arm/v7");
  REQUIRE(p.ok());
  CHECK(p->os == "linux");
  CHECK(p->architecture == "arm");
  CHECK(p->variant == "v7");
  CHECK(p->String() == "linux/arm/v7");
  CHECK(Platform::Parse("linux/x86_64")->String() == "linux/amd64");
  CHECK(Platform::Parse("linux/aarch64")->String() == "linux/arm64");
  CHECK(Platform::Parse("linux/armhf")->String() == "linux/arm/v7");
  CHECK(Platform::Parse("linux/arm/6")->String() == "linux/arm/v6");
  CHECK_FALSE(Platform::Parse("linux").ok());
  CHECK_FALSE(Platform::Parse("linux//v7").ok());
  CHECK_FALSE(Platform::Parse("a/b/c/d").ok());
}

TEST_CASE("host platform is a known GOARCH", "[platform]") {
  Platform h = Platform::Host();
  CHECK(h.os == "linux");
#if defined(__x86_64__)
  CHECK(h.architecture == "amd64");
#elif defined(__aarch64__)
  CHECK(h.architecture == "arm64");
  CHECK(h.variant == "v8");
#endif
  CHECK_FALSE(h.architecture.empty());
}
