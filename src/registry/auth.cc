#include "registry/auth.h"

#include <cctype>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"

namespace faasd::registry {
namespace {

bool IsTokenChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~/").find(c) != std::string_view::npos;
}

void SkipSpaceAndCommas(std::string_view s, size_t& i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == ',')) ++i;
}

std::string ReadToken(std::string_view s, size_t& i) {
  size_t start = i;
  while (i < s.size() && IsTokenChar(s[i])) ++i;
  return std::string(s.substr(start, i - start));
}

// Docker writes config keys as bare hosts or as URLs; compare on the host part.
std::string HostOfConfigKey(std::string_view key) {
  if (size_t scheme = key.find("://"); scheme != std::string_view::npos) {
    key = key.substr(scheme + 3);
  }
  key = key.substr(0, key.find('/'));
  return absl::AsciiStrToLower(Av(key));
}

bool HostMatchesDomain(const std::string& host, std::string_view domain) {
  if (host == domain) return true;
  if (domain == "docker.io") {
    return host == "index.docker.io" || host == "registry-1.docker.io";
  }
  return false;
}

}  // namespace

std::vector<AuthChallenge> ParseWwwAuthenticate(std::string_view s) {
  std::vector<AuthChallenge> out;
  size_t i = 0;
  while (true) {
    SkipSpaceAndCommas(s, i);
    if (i >= s.size()) break;
    std::string token = ReadToken(s, i);
    if (token.empty()) return {};  // junk: refuse to guess
    size_t after = i;
    while (after < s.size() && s[after] == ' ') ++after;
    if (after < s.size() && s[after] == '=' && !out.empty()) {
      // A parameter of the current challenge: key=value or key="quoted, value".
      i = after + 1;
      while (i < s.size() && s[i] == ' ') ++i;
      std::string value;
      if (i < s.size() && s[i] == '"') {
        ++i;
        while (i < s.size() && s[i] != '"') {
          if (s[i] == '\\' && i + 1 < s.size()) ++i;
          value.push_back(s[i++]);
        }
        if (i >= s.size()) return {};  // unterminated quote
        ++i;
      } else {
        value = ReadToken(s, i);
      }
      out.back().params[absl::AsciiStrToLower(token)] = value;
    } else {
      out.push_back({absl::AsciiStrToLower(token), {}});
    }
  }
  return out;
}

absl::StatusOr<std::optional<Credentials>> CredentialsFromDockerConfig(std::string_view config_json,
                                                                       std::string_view domain) {
  using nlohmann::json;
  json j = json::parse(config_json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("docker config: not a JSON object");
  }
  auto auths = j.find("auths");
  if (auths == j.end() || !auths->is_object()) return std::optional<Credentials>();
  std::string want = absl::AsciiStrToLower(Av(domain));
  // Exact host keys win over the docker.io aliases.
  const json* entry = nullptr;
  std::string entry_key;
  for (int pass = 0; pass < 2 && entry == nullptr; ++pass) {
    for (auto& [key, value] : auths->items()) {
      std::string host = HostOfConfigKey(key);
      if (pass == 0 ? host == want : HostMatchesDomain(host, want)) {
        entry = &value;
        entry_key = key;
        break;
      }
    }
  }
  if (entry == nullptr || !entry->is_object()) return std::optional<Credentials>();
  Credentials c;
  auto auth = entry->find("auth");
  if (auth != entry->end() && auth->is_string() && !auth->get<std::string>().empty()) {
    std::string decoded;
    if (!absl::Base64Unescape(auth->get<std::string>(), &decoded)) {
      return absl::InvalidArgumentError(
          absl::StrCat("docker config: auths[\"", entry_key, "\"].auth is not base64"));
    }
    size_t colon = decoded.find(':');
    if (colon == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("docker config: auths[\"", entry_key, "\"].auth is not user:password"));
    }
    c.username = decoded.substr(0, colon);
    c.password = decoded.substr(colon + 1);
  } else {
    auto user = entry->find("username");
    auto pass = entry->find("password");
    if (user == entry->end() || !user->is_string() || pass == entry->end() || !pass->is_string()) {
      return std::optional<Credentials>();
    }
    c.username = user->get<std::string>();
    c.password = pass->get<std::string>();
  }
  return std::optional<Credentials>(c);
}

std::string CredentialHelperFor(std::string_view config_json, std::string_view domain) {
  using nlohmann::json;
  json j = json::parse(config_json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return "";
  const std::string want = absl::AsciiStrToLower(Av(domain));
  if (auto helpers = j.find("credHelpers"); helpers != j.end() && helpers->is_object()) {
    for (auto& [key, value] : helpers->items()) {
      if (value.is_string() && HostMatchesDomain(HostOfConfigKey(key), want)) {
        return value.get<std::string>();
      }
    }
  }
  if (auto store = j.find("credsStore"); store != j.end() && store->is_string()) {
    return store->get<std::string>();
  }
  return "";
}

std::string CredentialsHint(std::string_view config_path, std::string_view config_json,
                            std::string_view domain) {
  if (config_path.empty()) return "no docker config is set for credentials";
  absl::StatusOr<std::optional<Credentials>> creds =
      CredentialsFromDockerConfig(config_json.empty() ? "{}" : config_json, domain);
  if (!creds.ok() || creds->has_value()) {
    return absl::StrCat("check credentials in ", Av(config_path));
  }
  if (const std::string helper = CredentialHelperFor(config_json, domain); !helper.empty()) {
    return absl::StrCat(Av(config_path), " leaves ", Av(domain),
                        " to the credential helper docker-credential-", helper,
                        ", which faasd does not run: put the credentials under \"auths\"");
  }
  return absl::StrCat(Av(config_path), " has no credentials for ", Av(domain),
                      ": put them under \"auths\"");
}

std::string RegistryHost(std::string_view domain) {
  if (domain == "docker.io") return "registry-1.docker.io";
  return std::string(domain);
}

bool IsLoopbackHost(std::string_view host_port) {
  std::string_view host = host_port;
  if (absl::StartsWith(Av(host), "[")) {
    host = host.substr(0, host.find(']') + 1);
    return host == "[::1]";
  }
  host = host.substr(0, host.find(':'));
  if (host == "localhost") return true;
  if (!absl::StartsWith(Av(host), "127.")) return false;
  int dots = 0;
  for (char c : host) {
    if (c == '.') {
      ++dots;
    } else if (!std::isdigit(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return dots == 3;
}

absl::StatusOr<Url> ParseUrl(std::string_view url) {
  Url u;
  size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("URL \"", Av(url), "\": no scheme"));
  }
  u.scheme = absl::AsciiStrToLower(Av(url.substr(0, scheme_end)));
  if (u.scheme != "http" && u.scheme != "https") {
    return absl::InvalidArgumentError(
        absl::StrCat("URL \"", Av(url), "\": scheme must be http(s)"));
  }
  std::string_view rest = url.substr(scheme_end + 3);
  size_t path_start = rest.find_first_of("/?");
  u.host_port = std::string(rest.substr(0, path_start));
  if (u.host_port.empty() || u.host_port.find('@') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("URL \"", Av(url), "\": bad host"));
  }
  u.path_query = path_start == std::string_view::npos ? "/" : std::string(rest.substr(path_start));
  if (u.path_query[0] == '?') u.path_query.insert(0, "/");
  if (size_t hash = u.path_query.find('#'); hash != std::string::npos) u.path_query.resize(hash);
  return u;
}

absl::StatusOr<Url> ResolveLocation(const Url& base, std::string_view location) {
  if (location.find("://") != std::string_view::npos) return ParseUrl(location);
  if (absl::StartsWith(Av(location), "//"))
    return ParseUrl(absl::StrCat(base.scheme, ":", Av(location)));
  if (absl::StartsWith(Av(location), "/")) {
    return ParseUrl(absl::StrCat(base.Origin(), Av(location)));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("redirect Location \"", Av(location), "\" is not absolute"));
}

std::string QueryEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
        c == '~') {
      out.push_back(c);
    } else {
      absl::StrAppend(&out, absl::StrFormat("%%%02X", static_cast<unsigned char>(c)));
    }
  }
  return out;
}

}  // namespace faasd::registry
