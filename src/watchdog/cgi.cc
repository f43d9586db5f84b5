#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "watchdog/handlers.h"

extern char** environ;

namespace faasd::watchdog {
namespace {

const std::vector<std::string>& ProcessEnvironment() {
  // Snapshot once: environ is not thread-safe to walk while someone calls setenv, and the
  // watchdog never changes its own environment after start.
  static const std::vector<std::string>* env = [] {
    auto* v = new std::vector<std::string>;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) v->emplace_back(*e);
    return v;
  }();
  return *env;
}

void JsonString(std::string* out, absl::string_view s) {
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (c < 0x20) {
          absl::StrAppend(out, "\\u00", absl::Hex(c, absl::kZeroPad2));
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

}  // namespace

std::string CanonicalHeaderKey(absl::string_view name) {
  for (char c : name) {
    // Go leaves keys with non-token characters (space, etc.) untouched.
    if (c == ' ' || c == ':' || static_cast<unsigned char>(c) < 0x21) return std::string(name);
  }
  std::string out(name);
  bool upper = true;
  for (char& c : out) {
    c = upper ? absl::ascii_toupper(c) : absl::ascii_tolower(c);
    upper = c == '-';
  }
  return out;
}

std::vector<std::string> CgiEnvironment(const Config& config, const MessageHead& head) {
  std::vector<std::string> env = ProcessEnvironment();
  if (!config.cgi_headers) return env;
  std::set<std::string> seen;
  for (const Header& h : head.headers) {
    std::string key = CanonicalHeaderKey(h.name);
    // Go moves Host and Transfer-Encoding out of the header map; they are added below.
    if (key == "Host" || key == "Transfer-Encoding") continue;
    if (!seen.insert(key).second) continue;  // upstream passes the first value only
    env.push_back(absl::StrCat(CgiEnvName(key), "=", h.value));
  }
  int64_t length = head.chunked ? -1 : (head.content_length >= 0 ? head.content_length : 0);
  env.push_back(absl::StrCat("Http_Method=", head.method));
  env.push_back(absl::StrCat("Http_ContentLength=", length));
  if (seen.count("Content-Length") == 0) {
    env.push_back(absl::StrCat("Http_Content_Length=", length));
  }
  if (head.chunked) env.push_back("Http_Transfer_Encoding=chunked");
  if (!head.query.empty()) env.push_back(absl::StrCat("Http_Query=", head.query));
  if (!head.path.empty()) env.push_back(absl::StrCat("Http_Path=", head.path));
  if (const std::string* host = head.Find("Host"); host != nullptr && !host->empty()) {
    env.push_back(absl::StrCat("Http_Host=", *host));
  }
  return env;
}

std::string MarshalRequestJson(const MessageHead& head, absl::string_view body) {
  // Go marshals http.Header (a map) with sorted keys; repeated headers become one array.
  std::map<std::string, std::vector<std::string>> headers;
  for (const Header& h : head.headers) {
    std::string key = CanonicalHeaderKey(h.name);
    if (key == "Host" || key == "Transfer-Encoding") continue;
    headers[key].push_back(h.value);
  }
  std::string out = "{\"header\":{";
  bool first = true;
  for (const auto& [key, values] : headers) {
    if (!first) out.push_back(',');
    first = false;
    JsonString(&out, key);
    out.append(":[");
    for (size_t i = 0; i < values.size(); ++i) {
      if (i > 0) out.push_back(',');
      JsonString(&out, values[i]);
    }
    out.push_back(']');
  }
  out.append("},\"body\":{\"raw\":\"");
  out.append(absl::Base64Escape(body));
  out.append("\"}}");
  return out;
}

void ContinueIfExpected(RequestContext& ctx) {
  if (ctx.head.expect_continue && ctx.head.http11 && !ctx.body.done()) {
    ctx.writer.Continue();
  }
}

}  // namespace faasd::watchdog
