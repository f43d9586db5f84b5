// GET /ui and /ui/*: the portal's embedded files (ui/assets.h), behind the same basic auth as
// /system/* (GatewayServer::SystemGet); the page's own API calls go to /system/* as any client's.
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gateway/http_errors.h"
#include "gateway/server.h"
#include "ui/assets.h"

namespace faasd::gateway {
namespace {

// Scripts, styles and images come from /ui/ only; API calls go to this origin; no framing.
constexpr char kContentSecurityPolicy[] =
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

// True when If-None-Match ("*" or a list of entity tags, weak or strong) names `etag`.
bool EtagMatches(absl::string_view if_none_match, absl::string_view etag) {
  for (absl::string_view tag : absl::StrSplit(if_none_match, ',', absl::SkipWhitespace())) {
    tag = absl::StripAsciiWhitespace(tag);
    absl::ConsumePrefix(&tag, "W/");
    if (tag == "*" || tag == etag) return true;
  }
  return false;
}

}  // namespace

void GatewayServer::ServeUi(const httplib::Request& req, httplib::Response& res) {
  absl::string_view path = req.path;
  if (!absl::ConsumePrefix(&path, "/ui/")) return res.set_redirect("/ui/", 307);  // "/ui"
  const ui::Asset* asset = ui::FindAsset(path);
  if (asset == nullptr) return WriteError(res, 404, absl::StrCat("ui: no such file: ", req.path));
  res.set_header("ETag", asset->etag);
  // Revalidated on every use (a 304 when unchanged), so a daemon upgrade is seen at once.
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("Content-Security-Policy", kContentSecurityPolicy);
  if (EtagMatches(req.get_header_value("If-None-Match"), asset->etag)) {
    res.status = 304;
    return;
  }
  res.set_content(reinterpret_cast<const char*>(asset->data), asset->size, asset->content_type);
}

}  // namespace faasd::gateway
