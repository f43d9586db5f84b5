#include <cctype>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "watchdog/watchdog.h"

namespace faasd::watchdog {
namespace {

bool ParseBool(const char* value, bool fallback) {
  if (value == nullptr || *value == '\0') return fallback;
  // Upstream treats exactly "true" as true (and any other set value as false).
  return absl::string_view(value) == "true";
}

absl::Status ReadDuration(const char* name, const char* value, absl::Duration* out) {
  if (value == nullptr || *value == '\0') return absl::OkStatus();
  auto parsed = ParseDuration(value);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("env ", name, "=", value, ": ", parsed.status().message()));
  }
  *out = *parsed;
  return absl::OkStatus();
}

absl::Status ReadInt(const char* name, const char* value, int min, int max, int* out) {
  if (value == nullptr || *value == '\0') return absl::OkStatus();
  int parsed = 0;
  if (!absl::SimpleAtoi(value, &parsed) || parsed < min || parsed > max) {
    return absl::InvalidArgumentError(
        absl::StrCat("env ", name, "=", value, ": want an integer in [", min, ", ", max, "]"));
  }
  *out = parsed;
  return absl::OkStatus();
}

}  // namespace

const char* ModeName(Mode mode) {
  switch (mode) {
    case Mode::kClassic:
      return "classic";
    case Mode::kStreaming:
      return "streaming";
    case Mode::kSerializing:
      return "serializing";
    case Mode::kHttp:
      return "http";
    case Mode::kStatic:
      return "static";
  }
  return "classic";
}

absl::StatusOr<absl::Duration> ParseDuration(absl::string_view text) {
  if (text.empty()) return absl::InvalidArgumentError("empty duration");
  bool all_digits = true;
  for (char c : text) all_digits = all_digits && std::isdigit(static_cast<unsigned char>(c));
  if (all_digits) {
    int64_t seconds = 0;
    if (!absl::SimpleAtoi(text, &seconds)) {
      return absl::InvalidArgumentError(absl::StrCat("duration \"", text, "\" out of range"));
    }
    return absl::Seconds(seconds);
  }
  // Go's time.ParseDuration grammar: [-+]?([0-9]*(\.[0-9]*)?[a-z]+)+ ; absl's parser accepts
  // the same units (ns us ms s m h) but not "µs"; negative durations make no sense here.
  std::string normalized(text);
  for (size_t at; (at = normalized.find("\xc2\xb5s")) != std::string::npos;) {
    normalized.replace(at, 3, "us");
  }
  absl::Duration d;
  if (!absl::ParseDuration(normalized, &d) || normalized == "inf" || normalized == "-inf") {
    return absl::InvalidArgumentError(
        absl::StrCat("duration \"", text, "\": want Go syntax like 10s, 500ms, 1m30s or seconds"));
  }
  if (d < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("duration \"", text, "\" is negative"));
  }
  return d;
}

std::string CgiEnvName(absl::string_view header_name) {
  std::string out = "Http_";
  out.reserve(5 + header_name.size());
  for (char c : header_name) out.push_back(c == '-' ? '_' : c);
  return out;
}

absl::Status ParseUpstreamUrl(absl::string_view url, std::string* host, int* port) {
  absl::string_view rest = url;
  if (absl::StartsWith(rest, "http://")) {
    rest.remove_prefix(7);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("upstream_url \"", url, "\": only http:// is supported"));
  }
  size_t slash = rest.find('/');
  if (slash != absl::string_view::npos) rest = rest.substr(0, slash);
  size_t colon = rest.rfind(':');
  absl::string_view h = rest;
  int p = 80;
  if (colon != absl::string_view::npos) {
    h = rest.substr(0, colon);
    if (!absl::SimpleAtoi(rest.substr(colon + 1), &p) || p <= 0 || p > 65535) {
      return absl::InvalidArgumentError(absl::StrCat("upstream_url \"", url, "\": bad port"));
    }
  }
  if (h == "localhost" || h.empty()) h = "127.0.0.1";
  // A static binary cannot use NSS, so only IPv4 literals (and localhost) are accepted.
  int dots = 0;
  for (char c : h) {
    if (c == '.') {
      ++dots;
    } else if (!std::isdigit(static_cast<unsigned char>(c))) {
      return absl::InvalidArgumentError(
          absl::StrCat("upstream_url \"", url, "\": host must be an IPv4 address or localhost"));
    }
  }
  if (dots != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("upstream_url \"", url, "\": host must be an IPv4 address or localhost"));
  }
  *host = std::string(h);
  *port = p;
  return absl::OkStatus();
}

absl::StatusOr<Config> ConfigFromEnv(const std::function<const char*(const char*)>& getenv) {
  Config c;
  const char* mode = getenv("mode");
  const char* upstream = getenv("upstream_url");
  bool has_upstream = upstream != nullptr && *upstream != '\0';
  if (mode == nullptr || *mode == '\0') {
    c.mode = has_upstream ? Mode::kStreaming : Mode::kClassic;
  } else {
    std::string m = absl::AsciiStrToLower(mode);
    if (m == "streaming") {
      c.mode = Mode::kStreaming;
    } else if (m == "serializing") {
      c.mode = Mode::kSerializing;
    } else if (m == "http") {
      c.mode = Mode::kHttp;
    } else if (m == "static") {
      c.mode = Mode::kStatic;
    } else if (m == "classic") {
      c.mode = Mode::kClassic;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "env mode=", mode, ": want streaming, serializing, http, static or classic"));
    }
  }
  bool classic = c.mode == Mode::kClassic;
  // Upstream defaults: classic 30s read/write and no exec limit; of-watchdog 10s for all three.
  c.read_timeout = c.write_timeout = absl::Seconds(classic ? 30 : 10);
  c.exec_timeout = classic ? absl::ZeroDuration() : absl::Seconds(10);

  const char* fprocess = getenv("fprocess");
  if (fprocess == nullptr || *fprocess == '\0') fprocess = getenv("function_process");
  if (fprocess != nullptr) c.fprocess = fprocess;
  if (c.fprocess.find_first_not_of(' ') == std::string::npos) c.fprocess.clear();
  if (c.fprocess.empty() && c.mode != Mode::kStatic) {
    return absl::InvalidArgumentError(
        absl::StrCat("env fprocess is required in ", ModeName(c.mode), " mode"));
  }

  if (auto s = ReadDuration("read_timeout", getenv("read_timeout"), &c.read_timeout); !s.ok()) {
    return s;
  }
  if (auto s = ReadDuration("write_timeout", getenv("write_timeout"), &c.write_timeout); !s.ok()) {
    return s;
  }
  if (auto s = ReadDuration("exec_timeout", getenv("exec_timeout"), &c.exec_timeout); !s.ok()) {
    return s;
  }
  if (auto s = ReadInt("port", getenv("port"), 1, 65535, &c.port); !s.ok()) return s;
  if (auto s = ReadInt("max_inflight", getenv("max_inflight"), 0, 1 << 20, &c.max_inflight);
      !s.ok()) {
    return s;
  }
  int log_buffer = static_cast<int>(c.log_buffer_size);
  if (auto s = ReadInt("log_buffer_size", getenv("log_buffer_size"), 1, 16 << 20, &log_buffer);
      !s.ok()) {
    return s;
  }
  c.log_buffer_size = static_cast<size_t>(log_buffer);

  c.suppress_lock = ParseBool(getenv("suppress_lock"), false);
  c.prefix_logs = ParseBool(getenv("prefix_logs"), true);
  c.combine_output = ParseBool(getenv("combine_output"), true);
  c.marshal_request = ParseBool(getenv("marshal_request"), false);
  c.cgi_headers = ParseBool(getenv("cgi_headers"), true);
  if (const char* ct = getenv("content_type"); ct != nullptr) c.content_type = ct;
  if (const char* sp = getenv("static_path"); sp != nullptr && *sp != '\0') c.static_path = sp;
  if (const char* tmp = getenv("TMPDIR"); tmp != nullptr && *tmp != '\0') c.lock_dir = tmp;
  if (has_upstream) c.upstream_url = upstream;
  if (c.mode == Mode::kHttp) {
    if (auto s = ParseUpstreamUrl(c.upstream_url, &c.upstream_host, &c.upstream_port); !s.ok()) {
      return s;
    }
  }
  return c;
}

}  // namespace faasd::watchdog
