// Private to src/registry: the pieces of registry authentication that are pure logic, kept apart
// from the HTTP client so they can be tested without a server.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace faasd::registry {

// Debian builds Abseil with its own absl::string_view (not an alias of std::string_view), so
// std::string_view needs an explicit bridge into absl::StrCat and friends.
inline absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// One challenge of a WWW-Authenticate header: `Bearer realm="..",service="..",scope=".."`.
struct AuthChallenge {
  std::string scheme;                         // lower-case: "bearer", "basic"
  std::map<std::string, std::string> params;  // keys lower-case, values unquoted
};
// Parses every challenge in the header value; unparsable input gives an empty vector.
std::vector<AuthChallenge> ParseWwwAuthenticate(std::string_view header);

struct Credentials {
  std::string username;
  std::string password;
};

// Credentials for `domain` (a Reference domain such as "docker.io" or "127.0.0.1:5000") from the
// text of a docker config.json. Keys may be bare hosts or URLs ("https://index.docker.io/v1/");
// docker.io also matches index.docker.io and registry-1.docker.io. nullopt when there is no entry;
// InvalidArgument for malformed JSON or an undecodable "auth".
absl::StatusOr<std::optional<Credentials>> CredentialsFromDockerConfig(std::string_view config_json,
                                                                       std::string_view domain);

// The credential helper a docker config.json names for `domain` ("desktop" for
// "credHelpers": {"host": "desktop"}, else "credsStore"), or "" when none. faasd does not run
// helpers; this is for telling the operator why no credentials were found.
std::string CredentialHelperFor(std::string_view config_json, std::string_view domain);

// What an "unauthorized" error tells the operator to look at, given the docker config named
// `config_path` ("" = none set) and its text (`config_json`, "" when the file is missing): the
// credential helper the config leaves `domain` to (faasd does not run helpers), that it holds no
// credentials for `domain`, or to check the ones it holds.
std::string CredentialsHint(std::string_view config_path, std::string_view config_json,
                            std::string_view domain);

// The host that serves the registry API for a reference domain (docker.io: registry-1.docker.io).
std::string RegistryHost(std::string_view domain);

// True for 127.0.0.0/8, localhost and [::1], with or without a port.
bool IsLoopbackHost(std::string_view host_port);

// An absolute http(s) URL split into what httplib::Client and its calls take.
struct Url {
  std::string scheme;      // "http" or "https"
  std::string host_port;   // "registry-1.docker.io", "127.0.0.1:5000", "[::1]:5000"
  std::string path_query;  // "/v2/..?x=y", at least "/"
  std::string Origin() const { return scheme + "://" + host_port; }
};
absl::StatusOr<Url> ParseUrl(std::string_view url);
// Resolves a Location header against the URL it came from (absolute, or absolute path).
absl::StatusOr<Url> ResolveLocation(const Url& base, std::string_view location);

// application/x-www-form-urlencoded escaping for token query parameters.
std::string QueryEscape(std::string_view s);

}  // namespace faasd::registry
