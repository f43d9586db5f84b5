// The embedded portal's asset table: what the build put in, and how it is typed and tagged.
#include "ui/assets.h"

#include <set>
#include <string>

#include "absl/strings/match.h"
#include "catch.hpp"

namespace faasd::ui {
namespace {

TEST_CASE("the index and the app's modules are embedded with their content types", "[ui]") {
  const Asset* index = FindAsset("");
  REQUIRE(index != nullptr);
  CHECK(index == FindAsset("index.html"));
  CHECK(std::string(index->content_type) == "text/html; charset=utf-8");
  CHECK(absl::StrContains(index->body(), "<script type=\"module\" src=\"js/app.js\">"));

  const Asset* app = FindAsset("js/app.js");
  REQUIRE(app != nullptr);
  CHECK(std::string(app->content_type) == "text/javascript; charset=utf-8");
  REQUIRE(FindAsset("app.css") != nullptr);
  CHECK(std::string(FindAsset("app.css")->content_type) == "text/css; charset=utf-8");
  REQUIRE(FindAsset("icon.svg") != nullptr);
  CHECK(std::string(FindAsset("icon.svg")->content_type) == "image/svg+xml");
}

TEST_CASE("every module the index or a module imports is embedded", "[ui]") {
  for (const Asset& a : AllAssets()) {
    if (!absl::EndsWith(a.path, ".js")) continue;
    absl::string_view body = a.body();
    for (size_t at = body.find("from './"); at != absl::string_view::npos;
         at = body.find("from './", at + 1)) {
      const size_t start = at + 8, end = body.find('\'', start);
      const std::string dep = "js/" + std::string(body.substr(start, end - start));
      INFO(a.path << " imports " << dep);
      CHECK(FindAsset(dep) != nullptr);
    }
  }
}

TEST_CASE("every file the index names is embedded", "[ui]") {
  const absl::string_view index = FindAsset("index.html")->body();
  int named = 0;
  for (absl::string_view attr : {"href=\"", "src=\""}) {
    for (size_t at = index.find(attr); at != absl::string_view::npos;
         at = index.find(attr, at + 1)) {
      const size_t start = at + attr.size(), end = index.find('"', start);
      const absl::string_view ref = index.substr(start, end - start);
      if (absl::StartsWith(ref, "#")) continue;  // the app's own routes
      INFO("index.html names " << ref);
      CHECK(FindAsset(ref) != nullptr);
      ++named;
    }
  }
  CHECK(named >= 3);
}

TEST_CASE("ETags are quoted, distinct per content and stable", "[ui]") {
  std::set<std::string> tags;
  for (const Asset& a : AllAssets()) {
    const std::string tag = a.etag;
    INFO(a.path << " " << tag);
    CHECK(tag.size() == 22);
    CHECK(tag.front() == '"');
    CHECK(tag.back() == '"');
    CHECK(tags.insert(tag).second);
    CHECK(FindAsset(a.path)->etag == a.etag);
  }
}

TEST_CASE("unknown paths find nothing", "[ui]") {
  CHECK(FindAsset("nope.js") == nullptr);
  CHECK(FindAsset("/index.html") == nullptr);
  CHECK(FindAsset("js/../index.html") == nullptr);
  CHECK(FindAsset("index.html/") == nullptr);
  CHECK(FindAsset("INDEX.HTML") == nullptr);
}

TEST_CASE("the portal stays under 300 KiB in all", "[ui]") {
  size_t total = 0;
  for (const Asset& a : AllAssets()) total += a.size;
  INFO("total asset bytes: " << total);
  CHECK(total > 0);
  CHECK(total < 300 * 1024);
  WARN("ui assets: " << AllAssets().size() << " files, " << total << " bytes");
}

}  // namespace
}  // namespace faasd::ui
