// RegistryClient: the distribution API over cpp-httplib. One httplib::Client per exchange keeps the
// class thread-safe without locking sockets; only the token cache is shared.
#include <algorithm>
#include <cerrno>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/log.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "openssl/err.h"
#include "openssl/ssl.h"
#include "openssl/x509_vfy.h"
#include "registry/auth.h"
#include "registry/json_fields.h"
#include "registry/registry.h"

namespace faasd::registry {
namespace {

// httplib's own names ("Connection", "Read") are too terse for an operator's log.
// What went wrong in a TLS handshake whose certificate was refused, with what to do about it.
std::string DescribeVerifyFailure(long verify_result, const std::string& host,
                                  const RegistryOptions& o) {
  const std::string ca = o.ca_file.empty() ? "/etc/ssl/certs/ca-certificates.crt" : o.ca_file;
  if (verify_result == X509_V_OK) {  // the chain was trusted; cpp-httplib's name check failed
    return absl::StrCat("TLS certificate does not name ", host,
                        " (its subject alternative names and common name are for another host)");
  }
  const std::string why = X509_verify_cert_error_string(verify_result);
  switch (verify_result) {
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
      return absl::StrCat("TLS certificate of ", host, " is signed by an unknown authority (", why,
                          "): add that CA to ", ca,
                          " (update-ca-certificates) or pass --registry-ca=FILE, or, for a "
                          "registry you trust in the clear, --insecure-registry=", host);
    default:
      return absl::StrCat("TLS certificate of ", host, " refused: ", why);
  }
}

bool IsInsecureRegistry(const RegistryOptions& o, std::string_view domain) {
  for (const std::string& r : o.insecure_registries) {
    if (r == domain) return true;
  }
  return false;
}

// Why OpenSSL failed an exchange: the oldest reason on this thread's error queue, which it
// empties. cpp-httplib's SSL_shutdown of a failed handshake adds "shutdown while in init"
// after the cause, and alone when there was no TLS error (the peer closed or reset): not a cause.
struct TlsFailure {
  std::string reason;  // "" when OpenSSL gave none
  bool unexpected_eof = false;
};
TlsFailure DrainTlsError() {
  TlsFailure f;
  bool seen = false;
  while (unsigned long e = ERR_get_error()) {
    const bool ssl = ERR_GET_LIB(e) == ERR_LIB_SSL;
    if (seen || (ssl && ERR_GET_REASON(e) == SSL_R_SHUTDOWN_WHILE_IN_INIT)) continue;
    seen = true;
    f.unexpected_eof = ssl && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
    if (const char* reason = ERR_reason_error_string(e)) {
      f.reason = reason;
    } else {
      char code[256];
      ERR_error_string_n(e, code, sizeof code);
      f.reason = code;
    }
  }
  return f;
}

std::string DescribeError(httplib::Error e) {
  switch (e) {
    case httplib::Error::Connection:
      return "cannot connect (refused, unreachable or timed out)";
    case httplib::Error::Read:
      return "connection broken while reading";
    case httplib::Error::Write:
      return "connection broken while writing";
    case httplib::Error::ConnectionTimeout:
      return "connect timed out";
    case httplib::Error::SSLConnection:
      return "TLS handshake failed";
    case httplib::Error::SSLServerVerification:
      return "TLS certificate verification failed";
    default:
      return httplib::to_string(e);
  }
}

constexpr size_t kMaxManifestBytes = 4 << 20;  // containerd's limit too
constexpr size_t kMaxErrorBodyBytes = 64 << 10;
constexpr int kMaxRedirects = 5;
constexpr int kTransportAttempts = 3;
constexpr absl::Duration kTransportPauses[kTransportAttempts - 1] = {absl::Milliseconds(200),
                                                                     absl::Seconds(1)};
constexpr char kDefaultCaFile[] = "/etc/ssl/certs/ca-certificates.crt";

const char* const kManifestAccept =
    "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.docker.distribution.manifest.v2+json";

std::string MediaTypeOf(const std::string& content_type) {
  std::string_view t = content_type;
  t = t.substr(0, t.find(';'));
  return absl::AsciiStrToLower(absl::StripAsciiWhitespace(Av(t)));
}

// The registry's own words from an error body ({"errors":[{"code","message"}]}), else "".
std::string RegistryErrorText(const std::string& body) {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return "";
  auto errors = j.find("errors");
  if (errors == j.end() || !errors->is_array() || errors->empty()) return "";
  const nlohmann::json& e = (*errors)[0];
  if (!e.is_object()) return "";
  std::string message = GetString(e, "message");
  if (!message.empty()) return message;
  return absl::AsciiStrToLower(GetString(e, "code"));
}

std::string HeaderValue(const httplib::Headers& headers, const std::string& key) {
  auto it = headers.find(key);  // httplib::Headers compares keys case-insensitively
  return it == headers.end() ? std::string() : it->second;
}

bool IsRedirect(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

}  // namespace

// One request to a registry and what came back. Bodies of 2xx responses go to `on_body` (or into
// `body` when it is unset); other bodies are kept, bounded, for error messages.
struct RegistryClient::Exchange {
  std::string method = "GET";  // or "HEAD"
  std::string path;            // "/v2/<repo>/manifests/<ref>"
  httplib::Headers headers;
  std::string what;            // "pull 127.0.0.1:5000/echo:nope", the prefix of every error
  std::string not_found_text;  // for bodiless 404s: "manifest unknown"
  bool follow_redirects = false;
  std::function<absl::Status(std::string_view)> on_body;
  // For a blob: its size. A 2xx answer announcing another Content-Length fails at once, before
  // any byte of its body is awaited.
  int64_t expect_length = -1;

  int status = 0;
  httplib::Headers response_headers;
  std::string body;
  std::string error_body;
};

RegistryClient::RegistryClient(RegistryOptions options) : options_(std::move(options)) {}

std::string RegistryClient::SchemeFor(const std::string& domain) {
  if (IsInsecureRegistry(options_, domain)) return "http";
  if (IsLoopbackHost(domain)) {
    absl::MutexLock lock(&mu_);
    auto it = schemes_.find(domain);
    if (it != schemes_.end()) return it->second;
  }
  return "https";
}

namespace {

void Configure(httplib::Client& cli, const RegistryOptions& o) {
  cli.set_connection_timeout(o.connect_timeout_seconds, 0);
  cli.set_read_timeout(o.read_timeout_seconds, 0);
  cli.set_write_timeout(o.read_timeout_seconds, 0);
  cli.set_follow_location(false);  // we follow by hand, to drop Authorization across hosts
  cli.set_decompress(false);       // digests are over the bytes as stored
  cli.set_keep_alive(false);
  cli.set_ca_cert_path(o.ca_file.empty() ? kDefaultCaFile : o.ca_file);
  cli.enable_server_certificate_verification(true);
}

bool UsesPlainHttp(const RegistryOptions& o, std::string_view domain) {
  if (IsLoopbackHost(domain)) return true;
  return IsInsecureRegistry(o, domain);
}

// The docker config's text; NotFound when the file is missing.
absl::StatusOr<std::string> ReadDockerConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const std::string why = absl::StrCat("read ", path, ": ", std::strerror(errno));
    if (errno == ENOENT) return absl::NotFoundError(why);
    return absl::FailedPreconditionError(why);
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Reads the docker config each time credentials are needed, so edits apply without a restart.
absl::StatusOr<std::optional<Credentials>> LoadCredentials(const RegistryOptions& o,
                                                           std::string_view domain) {
  if (o.docker_config_path.empty()) return std::optional<Credentials>();
  absl::StatusOr<std::string> config = ReadDockerConfig(o.docker_config_path);
  if (absl::IsNotFound(config.status())) return std::optional<Credentials>();
  if (!config.ok()) return config.status();
  absl::StatusOr<std::optional<Credentials>> c = CredentialsFromDockerConfig(*config, domain);
  if (!c.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(o.docker_config_path, ": ", c.status().message()));
  }
  return c;
}

// What an "unauthorized" error tells the operator to look at.
std::string CredentialsHintFor(const RegistryOptions& o, std::string_view domain) {
  absl::StatusOr<std::string> config =
      o.docker_config_path.empty() ? std::string() : ReadDockerConfig(o.docker_config_path);
  return CredentialsHint(o.docker_config_path, config.ok() ? *config : "", domain);
}

std::string BasicAuthorization(const Credentials& c) {
  return "Basic " + absl::Base64Escape(absl::StrCat(c.username, ":", c.password));
}

absl::Status PerformExchange(const RegistryOptions& o, Url url, const std::string& authorization,
                             std::string& method, httplib::Headers& extra, bool follow,
                             const std::string& what,
                             const std::function<absl::Status(std::string_view)>& on_body,
                             int64_t expect_length, int& status, httplib::Headers& response_headers,
                             std::string& body, std::string& error_body,
                             httplib::Error* transport_error = nullptr) {
  const std::string origin = url.Origin();
  for (int hop = 0;; ++hop) {
    httplib::Client cli(url.Origin());
    if (!cli.is_valid()) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": bad URL ", url.Origin()));
    }
    Configure(cli, o);
    httplib::Headers headers = extra;
    headers.emplace("User-Agent", o.user_agent);
    headers.emplace("Accept-Encoding", "identity");
    if (!authorization.empty() && url.Origin() == origin) {
      headers.emplace("Authorization", authorization);
    }
    // A connection that breaks before any answer (reset, closed in the handshake) is tried
    // again, twice, after a pause: a GET or HEAD before its response has no effect to repeat.
    // Refusals, TLS alerts, certificates and timeouts (cpp-httplib 0.11 reports a read timeout
    // as a broken read: told apart by the time it took) are not retried.
    const absl::Duration timeout =
        absl::Seconds(std::min(o.connect_timeout_seconds, o.read_timeout_seconds));
    httplib::Result res(nullptr, httplib::Error::Unknown);
    for (int attempt = 1;; ++attempt) {
      const absl::Time began = absl::Now();
      status = 0;
      response_headers.clear();
      body.clear();
      error_body.clear();
      absl::Status body_error;
      ERR_clear_error();  // so that what is there after a failure is this exchange's
      if (method == "HEAD") {
        res = cli.Head(url.path_query, headers);
      } else {
        res = cli.Get(
            url.path_query, headers,
            [&](const httplib::Response& r) {
              status = r.status;
              response_headers = r.headers;
              int64_t announced = 0;
              if (expect_length >= 0 && status >= 200 && status <= 299 &&
                  absl::SimpleAtoi(r.get_header_value("Content-Length"), &announced) &&
                  announced != expect_length) {
                body_error = absl::DataLossError(
                    absl::StrCat(what, ": the registry announces ", announced,
                                 " bytes, the descriptor says ", expect_length));
                return false;
              }
              return true;
            },
            [&](const char* data, size_t n) {
              std::string_view chunk(data, n);
              if (status < 200 || status > 299) {
                if (error_body.size() < kMaxErrorBodyBytes) error_body.append(chunk);
                return true;
              }
              if (on_body) {
                body_error = on_body(chunk);
                return body_error.ok();
              }
              if (body.size() + n > kMaxManifestBytes) {
                body_error = absl::ResourceExhaustedError(
                    absl::StrCat("manifest larger than ", kMaxManifestBytes, " bytes"));
                return false;
              }
              body.append(chunk);
              return true;
            });
      }
      if (!body_error.ok()) return body_error;
      if (res) break;
      std::string cause =
          res.error() == httplib::Error::SSLServerVerification
              ? DescribeVerifyFailure(cli.get_openssl_verify_result(), url.host_port, o)
              : DescribeError(res.error());
      const TlsFailure tls = DrainTlsError();
      if (res.error() == httplib::Error::SSLConnection) {
        absl::StrAppend(&cause, " (",
                        tls.reason.empty() ? "the connection closed or broke" : tls.reason, ")");
      }
      const std::string failure =
          absl::StrCat(what, ": ", method, " ", url.Origin(), url.path_query, ": ", cause);
      const bool broke =
          status == 0 && absl::Now() - began < timeout &&
          (res.error() == httplib::Error::Read || res.error() == httplib::Error::Write ||
           (res.error() == httplib::Error::SSLConnection &&
            (tls.reason.empty() || tls.unexpected_eof)));
      if (!broke || attempt >= kTransportAttempts) {
        if (transport_error != nullptr) *transport_error = res.error();
        return absl::UnavailableError(failure);
      }
      const absl::Duration pause = kTransportPauses[attempt - 1];
      LogWarning(failure, "; trying again in ", absl::FormatDuration(pause), " (attempt ",
                 attempt + 1, " of ", kTransportAttempts, ")");
      absl::SleepFor(pause);
    }
    status = res->status;
    response_headers = res->headers;
    if (!follow || !IsRedirect(status)) return absl::OkStatus();
    if (hop >= kMaxRedirects) {
      return absl::UnavailableError(
          absl::StrCat(what, ": more than ", kMaxRedirects, " redirects"));
    }
    absl::StatusOr<Url> next = ResolveLocation(url, res->get_header_value("Location"));
    if (!next.ok())
      return absl::UnavailableError(absl::StrCat(what, ": ", next.status().message()));
    if (url.scheme == "https" && next->scheme == "http" && !IsLoopbackHost(next->host_port)) {
      return absl::UnavailableError(
          absl::StrCat(what, ": refusing redirect from https to ", next->Origin()));
    }
    url = *std::move(next);
  }
}

}  // namespace

std::string RegistryClient::CachedToken(const std::string& key) {
  absl::MutexLock lock(&mu_);
  auto it = tokens_.find(key);
  if (it == tokens_.end()) return "";
  if (absl::Now() >= it->second.expires) {
    tokens_.erase(it);
    return "";
  }
  return it->second.token;
}

absl::StatusOr<std::string> RegistryClient::FetchToken(const Reference& ref,
                                                       const std::string& scope,
                                                       const std::string& cache_key,
                                                       const std::string& realm,
                                                       const std::string& service,
                                                       const std::string& challenge_scope) {
  const std::string what = absl::StrCat("pull ", ref.Name(), ": token from ", realm);
  absl::StatusOr<Url> url = ParseUrl(realm);
  if (!url.ok()) {
    return absl::UnavailableError(
        absl::StrCat("pull ", ref.Name(), ": bad token realm: ", url.status().message()));
  }
  std::string query;
  if (!service.empty()) absl::StrAppend(&query, "service=", QueryEscape(service));
  absl::StrAppend(&query, query.empty() ? "" : "&",
                  "scope=", QueryEscape(challenge_scope.empty() ? scope : challenge_scope));
  url->path_query += (url->path_query.find('?') == std::string::npos ? "?" : "&") + query;

  absl::StatusOr<std::optional<Credentials>> creds = LoadCredentials(options_, ref.domain);
  if (!creds.ok()) return creds.status();
  std::string authorization;
  // Credentials travel only over TLS, or to hosts the operator already trusts in the clear.
  if (*creds && (url->scheme == "https" || UsesPlainHttp(options_, url->host_port))) {
    authorization = BasicAuthorization(**creds);
  }
  std::string method = "GET";
  httplib::Headers headers;
  int status = 0;
  httplib::Headers response_headers;
  std::string body, error_body;
  absl::Status s = PerformExchange(options_, *url, authorization, method, headers,
                                   /*follow=*/false, what, nullptr, -1, status, response_headers,
                                   body, error_body);
  if (!s.ok()) return s;
  if (status == 401 || status == 403) {
    return absl::UnauthenticatedError(
        absl::StrCat(what, ": unauthorized: ", CredentialsHintFor(options_, ref.domain)));
  }
  if (status != 200) {
    return absl::UnavailableError(absl::StrCat(what, ": HTTP ", status));
  }
  nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  std::string token;
  int64_t expires_in = 60;  // the distribution spec's default
  if (j.is_object()) {
    token = GetString(j, "token");
    if (token.empty()) token = GetString(j, "access_token");
    if (auto e = j.find("expires_in"); e != j.end() && e->is_number_integer()) {
      expires_in = std::max<int64_t>(e->get<int64_t>(), 0);
    }
  }
  if (token.empty()) {
    return absl::UnavailableError(absl::StrCat(what, ": no token in response"));
  }
  // Renew a little early so a token does not expire between cache lookup and use.
  absl::Time expires = absl::Now() + absl::Seconds(expires_in) - absl::Seconds(5);
  absl::MutexLock lock(&mu_);
  tokens_[cache_key] = {token, expires};
  return token;
}

absl::Status RegistryClient::Send(const Reference& ref, Exchange& ex) {
  const std::string scope = absl::StrCat("repository:", ref.path, ":pull");
  // A token is what these credentials were granted: keyed by them too, so a changed password
  // (or removed credentials) applies at once, not when the token expires.
  // A config that cannot be read matters only once the registry asks for credentials.
  absl::StatusOr<std::optional<Credentials>> key_creds = LoadCredentials(options_, ref.domain);
  const std::string key = absl::StrCat(
      ref.domain, "|", scope, "|",
      !key_creds.ok() ? "unreadable"
      : *key_creds
          ? Sha256Digest(absl::StrCat((*key_creds)->username, ":", (*key_creds)->password))
          : "anonymous");
  Url url;
  url.scheme = SchemeFor(ref.domain);
  url.host_port = RegistryHost(ref.domain);
  url.path_query = ex.path;
  // Loopback registries are tried over TLS first and over plain HTTP when the handshake fails
  // (the server speaks HTTP), as containerd does; the answer is kept per domain.
  const bool probe_tls = IsLoopbackHost(ref.domain) && !IsInsecureRegistry(options_, ref.domain);

  bool fetched_token = false, tried_basic = false;
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::string authorization;
    if (std::string token = CachedToken(key); !token.empty()) {
      authorization = "Bearer " + token;
    } else {
      bool basic;
      {
        absl::MutexLock lock(&mu_);
        basic = basic_domains_.count(ref.domain) > 0;
      }
      if (basic) {  // the config read once above, for the token key
        if (!key_creds.ok()) return key_creds.status();
        if (*key_creds) authorization = BasicAuthorization(**key_creds);
      }
    }
    httplib::Error transport = httplib::Error::Success;
    absl::Status s = PerformExchange(options_, url, authorization, ex.method, ex.headers,
                                     ex.follow_redirects, ex.what, ex.on_body, ex.expect_length,
                                     ex.status, ex.response_headers, ex.body, ex.error_body,
                                     &transport);
    if (!s.ok() && probe_tls && url.scheme == "https" &&
        transport == httplib::Error::SSLConnection) {
      url.scheme = "http";
      s = PerformExchange(options_, url, authorization, ex.method, ex.headers,
                          ex.follow_redirects, ex.what, ex.on_body, ex.expect_length, ex.status,
                          ex.response_headers, ex.body, ex.error_body);
    }
    if (!s.ok()) return s;
    if (probe_tls) {
      absl::MutexLock lock(&mu_);
      schemes_[ref.domain] = url.scheme;
    }
    if (ex.status != 401) break;

    std::vector<AuthChallenge> challenges =
        ParseWwwAuthenticate(HeaderValue(ex.response_headers, "WWW-Authenticate"));
    const AuthChallenge* bearer = nullptr;
    const AuthChallenge* basic = nullptr;
    for (const AuthChallenge& c : challenges) {
      if (c.scheme == "bearer" && bearer == nullptr) bearer = &c;
      if (c.scheme == "basic" && basic == nullptr) basic = &c;
    }
    if (bearer != nullptr && !fetched_token) {
      auto realm = bearer->params.find("realm");
      if (realm == bearer->params.end()) {
        return absl::UnavailableError(absl::StrCat(ex.what, ": Bearer challenge without realm"));
      }
      auto param = [&](const char* name) {
        auto it = bearer->params.find(name);
        return it == bearer->params.end() ? std::string() : it->second;
      };
      absl::StatusOr<std::string> token =
          FetchToken(ref, scope, key, realm->second, param("service"), param("scope"));
      if (!token.ok()) return token.status();
      fetched_token = true;
      continue;
    }
    if (basic != nullptr && !tried_basic) {
      tried_basic = true;
      absl::MutexLock lock(&mu_);
      basic_domains_[ref.domain] = true;
      continue;
    }
    break;
  }

  if (ex.status >= 200 && ex.status <= 399) return absl::OkStatus();
  std::string text = RegistryErrorText(ex.error_body);
  auto with = [&](std::string fallback) {
    return absl::StrCat(ex.what, ": ", text.empty() ? fallback : text);
  };
  // Whether we had credentials to offer, not whether an Authorization went out: an anonymous
  // token (a private repository on a registry that grants them) is no credentials.
  const bool have_credentials = key_creds.ok() && key_creds->has_value();
  const std::string hint = CredentialsHintFor(options_, ref.domain);
  switch (ex.status) {
    case 401:
      return absl::UnauthenticatedError(absl::StrCat(
          ex.what, ": unauthorized: ", have_credentials ? "" : "registry wants credentials; ",
          hint));
    case 403:
      return absl::PermissionDeniedError(absl::StrCat(with("denied"), ": ", hint));
    case 404:
      return absl::NotFoundError(with(ex.not_found_text));
    case 429:
      return absl::ResourceExhaustedError(with("toomanyrequests"));
    default:
      break;
  }
  if (ex.status >= 500) {
    return absl::UnavailableError(with(absl::StrCat("registry answered HTTP ", ex.status)));
  }
  return absl::InvalidArgumentError(with(absl::StrCat("registry answered HTTP ", ex.status)));
}

absl::StatusOr<std::pair<Descriptor, std::string>> RegistryClient::FetchManifest(
    const Reference& ref, std::string_view tag_or_digest) {
  std::string target(tag_or_digest.empty() ? ref.TagOrDigest() : tag_or_digest);
  const bool by_digest = IsValidDigest(target);
  Exchange ex;
  ex.path = absl::StrCat("/v2/", ref.path, "/manifests/", target);
  ex.headers.emplace("Accept", kManifestAccept);
  ex.what = absl::StrCat("pull ", ref.Name(), by_digest ? "@" : ":", target);
  ex.not_found_text = "manifest unknown";
  ex.follow_redirects = true;
  if (absl::Status s = Send(ref, ex); !s.ok()) return s;
  if (ex.status != 200) {
    return absl::UnavailableError(absl::StrCat(ex.what, ": unexpected HTTP ", ex.status));
  }

  Descriptor d;
  d.digest = Sha256Digest(ex.body);
  d.size = static_cast<int64_t>(ex.body.size());
  d.media_type = MediaTypeOf(HeaderValue(ex.response_headers, "Content-Type"));
  if (!IsIndexMediaType(d.media_type) && !IsManifestMediaType(d.media_type)) {
    // Some registries answer application/json; the document says what it is.
    nlohmann::json j = nlohmann::json::parse(ex.body, nullptr, /*allow_exceptions=*/false);
    std::string declared = j.is_object() ? GetString(j, "mediaType") : "";
    if (j.is_object() && IsSchema1(j)) {
      return absl::InvalidArgumentError(
          absl::StrCat(ex.what, ": Docker schema1 manifests are not supported; re-push the image"));
    }
    if (IsIndexMediaType(declared) || IsManifestMediaType(declared)) {
      d.media_type = declared;
    } else if (j.is_object() && j.contains("manifests")) {
      d.media_type = kMediaTypeOciIndex;
    } else if (j.is_object() && j.contains("config") && j.contains("layers")) {
      d.media_type = kMediaTypeOciManifest;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(ex.what, ": unsupported manifest type \"", d.media_type, "\""));
    }
  }
  if (by_digest && absl::StartsWith(target, "sha256:") && d.digest != target) {
    return absl::DataLossError(absl::StrCat(ex.what, ": manifest content has digest ", d.digest));
  }
  std::string header = HeaderValue(ex.response_headers, "Docker-Content-Digest");
  if (absl::StartsWith(header, "sha256:") && header != d.digest) {
    return absl::DataLossError(
        absl::StrCat(ex.what, ": registry says digest ", header, " but content has ", d.digest));
  }
  return std::make_pair(std::move(d), std::move(ex.body));
}

absl::StatusOr<Descriptor> RegistryClient::Resolve(const Reference& ref) {
  Exchange ex;
  ex.method = "HEAD";
  ex.path = absl::StrCat("/v2/", ref.path, "/manifests/", ref.TagOrDigest());
  ex.headers.emplace("Accept", kManifestAccept);
  ex.what = absl::StrCat("pull ", ref.String());
  ex.not_found_text = "manifest unknown";
  absl::Status s = Send(ref, ex);
  if (!s.ok() && !absl::IsInvalidArgument(s)) return s;
  if (s.ok() && ex.status == 200) {
    Descriptor d;
    d.digest = HeaderValue(ex.response_headers, "Docker-Content-Digest");
    d.media_type = MediaTypeOf(HeaderValue(ex.response_headers, "Content-Type"));
    int64_t size = -1;
    bool has_size = absl::SimpleAtoi(HeaderValue(ex.response_headers, "Content-Length"), &size);
    if (IsValidDigest(d.digest) && has_size && size >= 0 &&
        (IsIndexMediaType(d.media_type) || IsManifestMediaType(d.media_type))) {
      if (!ref.digest.empty() && d.digest != ref.digest) {
        return absl::DataLossError(absl::StrCat(ex.what, ": registry says digest ", d.digest));
      }
      d.size = size;
      return d;
    }
  }
  // HEAD unsupported (405 and friends) or not informative: the body tells us for certain.
  absl::StatusOr<std::pair<Descriptor, std::string>> fetched = FetchManifest(ref);
  if (!fetched.ok()) return fetched.status();
  return fetched->first;
}

absl::Status RegistryClient::FetchBlob(
    const Reference& ref, const Descriptor& blob,
    const std::function<absl::Status(std::string_view chunk)>& sink) {
  const std::string what = absl::StrCat("pull ", ref.String(), ": blob ", blob.digest);
  if (!absl::StartsWith(blob.digest, "sha256:") || !IsValidDigest(blob.digest)) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": only sha256 digests are supported"));
  }
  Sha256Hasher hasher;
  int64_t received = 0;
  absl::Status sink_error;
  Exchange ex;
  ex.path = absl::StrCat("/v2/", ref.path, "/blobs/", blob.digest);
  ex.what = what;
  ex.not_found_text = "blob unknown";
  ex.follow_redirects = true;
  ex.expect_length = blob.size;
  ex.on_body = [&](std::string_view chunk) -> absl::Status {
    received += static_cast<int64_t>(chunk.size());
    if (received > blob.size) {
      return absl::DataLossError(
          absl::StrCat(what, ": more than the descriptor's ", blob.size, " bytes"));
    }
    hasher.Update(chunk);
    sink_error = sink(chunk);
    if (!sink_error.ok()) {
      return absl::Status(sink_error.code(), absl::StrCat(what, ": ", sink_error.message()));
    }
    return absl::OkStatus();
  };
  if (absl::Status s = Send(ref, ex); !s.ok()) return s;
  if (ex.status != 200) {
    return absl::UnavailableError(absl::StrCat(what, ": unexpected HTTP ", ex.status));
  }
  if (received != blob.size) {
    return absl::DataLossError(
        absl::StrCat(what, ": got ", received, " bytes, descriptor says ", blob.size));
  }
  std::string got = hasher.Digest();
  if (got != blob.digest) {
    return absl::DataLossError(absl::StrCat(what, ": content has digest ", got));
  }
  return absl::OkStatus();
}

}  // namespace faasd::registry
