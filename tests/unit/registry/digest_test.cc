#include "catch.hpp"
#include "registry/registry.h"

namespace r = faasd::registry;

TEST_CASE("sha256 digests, whole and streamed", "[digest]") {
  const std::string a = "sha256:ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb";
  CHECK(r::Sha256Digest("a") == a);
  CHECK(r::Sha256Digest("") ==
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  r::Sha256Hasher h;
  h.Update("hello ");
  h.Update("");
  h.Update("world");
  CHECK(h.Digest() == r::Sha256Digest("hello world"));
  CHECK(r::IsValidDigest(a));
  CHECK_FALSE(r::IsValidDigest("sha256:abc"));
  CHECK_FALSE(r::IsValidDigest(a + "0"));
  CHECK_FALSE(r::IsValidDigest("md5:" + std::string(64, '0')));
}

TEST_CASE("chain IDs match the OCI image spec (vector computed with sha256sum)", "[digest]") {
  // diff_ids are sha256 of "a", "b", "c"; chain = sha256("<prev> <diff>") as printed by
  //   printf "%s %s" $prev $diff | sha256sum
  const std::vector<std::string> diff_ids = {
      "sha256:ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb",
      "sha256:3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d",
      "sha256:2e7d2c03a9507ae265ecf5b5356885a53393a2029d241394997265a1a25aefc6"};
  std::vector<std::string> chain = r::ChainIds(diff_ids);
  REQUIRE(chain.size() == 3);
  CHECK(chain[0] == diff_ids[0]);
  CHECK(chain[1] == "sha256:51c0c8ace48498d6f5fee6b0592cc06f2da0f3cbe09c5a34a97dce85c3889676");
  CHECK(chain[2] == "sha256:2fce7f8ce91bcf0a1428b36e1024639fdbd9469eea762dba98aa749631885106");
  CHECK(r::ChainIds({}).empty());
}
