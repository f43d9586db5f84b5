// /ui/ over real loopback HTTP: basic auth as /system/*, content types, ETag revalidation, 404.
#include "absl/strings/match.h"
#include "catch.hpp"
#include "test_support.h"
#include "ui/assets.h"

namespace faasd::gateway::testing {
namespace {

TEST_CASE("the portal needs the same basic auth as /system", "[gateway][ui]") {
  GatewayFixture f;
  httplib::Client anon("127.0.0.1", f.gateway->port());
  for (const char* path : {"/ui/", "/ui/js/app.js", "/ui/nope", "/ui"}) {
    INFO(path);
    auto r = anon.Get(path);
    REQUIRE(r);
    CHECK(r->status == 401);
    CHECK(r->get_header_value("WWW-Authenticate") == "Basic realm=\"Restricted\"");
    CHECK(!absl::StrContains(r->body, "<html"));
  }
  httplib::Client wrong("127.0.0.1", f.gateway->port());
  wrong.set_basic_auth("admin", "wrong");
  CHECK(wrong.Get("/ui/")->status == 401);
}

TEST_CASE("the portal's files come with their type, ETag and revalidation", "[gateway][ui]") {
  GatewayFixture f;
  auto index = f.client->Get("/ui/");
  REQUIRE(index);
  CHECK(index->status == 200);
  CHECK(index->get_header_value("Content-Type") == "text/html; charset=utf-8");
  CHECK(index->body == std::string(ui::FindAsset("index.html")->body()));
  CHECK(index->get_header_value("Cache-Control") == "no-cache");
  CHECK(index->get_header_value("X-Content-Type-Options") == "nosniff");
  CHECK(absl::StrContains(index->get_header_value("Content-Security-Policy"), "default-src 'self'"));
  const std::string etag = index->get_header_value("ETag");
  CHECK(etag == ui::FindAsset("index.html")->etag);

  auto js = f.client->Get("/ui/js/app.js");
  REQUIRE(js);
  CHECK(js->status == 200);
  CHECK(js->get_header_value("Content-Type") == "text/javascript; charset=utf-8");
  CHECK(js->get_header_value("ETag") != etag);
  CHECK(f.client->Get("/ui/app.css")->get_header_value("Content-Type") == "text/css; charset=utf-8");

  auto same = f.client->Get("/ui/index.html", {{"If-None-Match", etag}});
  REQUIRE(same);
  CHECK(same->status == 304);
  CHECK(same->body.empty());
  CHECK(same->get_header_value("ETag") == etag);
  CHECK(f.client->Get("/ui/", {{"If-None-Match", "W/\"x\", " + etag}})->status == 304);
  CHECK(f.client->Get("/ui/", {{"If-None-Match", "\"other\""}})->status == 200);
}

TEST_CASE("unknown portal files are 404 and /ui redirects to /ui/", "[gateway][ui]") {
  GatewayFixture f;
  auto missing = f.client->Get("/ui/nope.js");
  REQUIRE(missing);
  CHECK(missing->status == 404);
  CHECK(absl::StrContains(missing->body, "/ui/nope.js"));
  CHECK(f.client->Get("/ui/js/")->status == 404);
  CHECK(f.client->Get("/ui/../system/functions")->status != 200);

  auto bare = f.client->Get("/ui");
  REQUIRE(bare);
  CHECK(bare->status == 307);
  CHECK(bare->get_header_value("Location") == "/ui/");
  auto root = f.client->Get("/");
  REQUIRE(root);
  CHECK(root->status == 307);
}

}  // namespace
}  // namespace faasd::gateway::testing
