// RegistryClient against tiny registries on loopback that demand bearer tokens or basic auth,
// redirect blobs to another origin, and lie about digests.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "absl/strings/escaping.h"
#include "catch.hpp"
#include "openssl/err.h"
#include "registry/registry.h"
#include "test_server.h"

namespace r = faasd::registry;
using faasd::registry::testing::TempDir;
using faasd::registry::testing::TestServer;

namespace {

const std::string kManifest =
    R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
    R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,)"
    R"("digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},)"
    R"("layers":[]})";
const std::string kBlob = "layer bytes, pretend gzip";

r::Reference Ref(const TestServer& s, const std::string& rest) {
  auto ref = r::Reference::Parse(s.Host() + "/" + rest);
  REQUIRE(ref.ok());
  return *ref;
}

r::Descriptor BlobDescriptor(const std::string& content) {
  r::Descriptor d;
  d.digest = r::Sha256Digest(content);
  d.size = static_cast<int64_t>(content.size());
  return d;
}

std::string Basic(const std::string& user, const std::string& pass) {
  return "Basic " + absl::Base64Escape(user + ":" + pass);
}

// A registry that wants "Bearer tok-N" for everything under /v2/, issuing tokens at /token to
// alice:secret. It counts token requests and remembers the last scope asked for.
struct BearerRegistry {
  TestServer registry;
  TestServer cdn;  // another origin, for blob redirects
  std::atomic<int> tokens_issued{0};
  std::atomic<bool> cdn_saw_authorization{false};
  std::mutex mu;
  std::string last_scope, last_service;

  BearerRegistry() {
    registry.server.Get("/token", [this](const httplib::Request& req, httplib::Response& res) {
      if (req.get_header_value("Authorization") != Basic("alice", "secret")) {
        res.status = 401;
        return;
      }
      {
        std::lock_guard<std::mutex> lock(mu);
        last_scope = req.get_param_value("scope");
        last_service = req.get_param_value("service");
      }
      int n = ++tokens_issued;
      res.set_content(R"({"access_token":"tok-)" + std::to_string(n) + R"(","expires_in":300})",
                      "application/json");
    });
    registry.server.Get(R"(/v2/.*)", [this](const httplib::Request& req, httplib::Response& res) {
      if (req.get_header_value("Authorization").rfind("Bearer tok-", 0) != 0) {
        res.status = 401;
        res.set_header("WWW-Authenticate",
                       "Bearer realm=\"http://" + registry.Host() +
                           "/token\",service=\"test-registry\",scope=\"repository:team/fn:pull\"");
        res.set_content(
            R"({"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]})",
            "application/json");
        return;
      }
      if (req.path == "/v2/team/fn/manifests/1") {
        res.set_header("Docker-Content-Digest", r::Sha256Digest(kManifest));
        res.set_content(kManifest, r::kMediaTypeOciManifest);
      } else if (req.path == "/v2/team/fn/blobs/" + r::Sha256Digest(kBlob)) {
        res.status = 307;
        res.set_header("Location", "http://" + cdn.Host() + "/cdn/blob?sig=xyz");
      } else {
        res.status = 404;
        res.set_content(R"({"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]})",
                        "application/json");
      }
    });
    cdn.server.Get("/cdn/blob", [this](const httplib::Request& req, httplib::Response& res) {
      if (req.has_header("Authorization")) cdn_saw_authorization = true;
      res.set_content(kBlob, "application/octet-stream");
    });
    REQUIRE(registry.Start());
    REQUIRE(cdn.Start());
  }
};

std::string DockerConfig(const TempDir& dir, const std::string& host, const std::string& user,
                         const std::string& pass) {
  return dir.Write("config.json", R"({"auths":{")" + host + R"(":{"auth":")" +
                                      absl::Base64Escape(user + ":" + pass) + R"("}}})");
}

}  // namespace

TEST_CASE("bearer flow: 401, token with basic credentials, retry, token cached", "[client]") {
  BearerRegistry reg;
  TempDir dir;
  REQUIRE(!dir.path().empty());
  r::RegistryOptions opts;
  opts.docker_config_path = DockerConfig(dir, reg.registry.Host(), "alice", "secret");
  r::RegistryClient client(opts);
  r::Reference ref = Ref(reg.registry, "team/fn:1");

  auto got = client.FetchManifest(ref);
  INFO(got.status().ToString());
  REQUIRE(got.ok());
  CHECK(got->first.digest == r::Sha256Digest(kManifest));
  CHECK(got->first.media_type == r::kMediaTypeOciManifest);
  CHECK(got->first.size == static_cast<int64_t>(kManifest.size()));
  CHECK(got->second == kManifest);
  CHECK(reg.tokens_issued == 1);
  {
    std::lock_guard<std::mutex> lock(reg.mu);
    CHECK(reg.last_scope == "repository:team/fn:pull");
    CHECK(reg.last_service == "test-registry");
  }

  // Cached token: HEAD and blob fetch need no new one.
  auto resolved = client.Resolve(ref);
  REQUIRE(resolved.ok());
  CHECK(resolved->digest == r::Sha256Digest(kManifest));
  CHECK(resolved->size == static_cast<int64_t>(kManifest.size()));

  std::string received;
  absl::Status blob = client.FetchBlob(ref, BlobDescriptor(kBlob), [&](std::string_view chunk) {
    received.append(chunk);
    return absl::OkStatus();
  });
  INFO(blob.ToString());
  CHECK(blob.ok());
  CHECK(received == kBlob);
  CHECK_FALSE(reg.cdn_saw_authorization);  // the registry's token stayed with the registry
  CHECK(reg.tokens_issued == 1);

  auto missing = client.FetchManifest(ref, "nope");
  CHECK(missing.status().code() == absl::StatusCode::kNotFound);
  CHECK(std::string(missing.status().message()) ==
        "pull " + reg.registry.Host() + "/team/fn:nope: manifest unknown");
}

TEST_CASE("a changed password applies at once, not when the cached token expires", "[client]") {
  BearerRegistry reg;
  TempDir dir;
  r::RegistryOptions opts;
  opts.docker_config_path = DockerConfig(dir, reg.registry.Host(), "alice", "secret");
  r::RegistryClient client(opts);
  r::Reference ref = Ref(reg.registry, "team/fn:1");
  REQUIRE(client.FetchManifest(ref).ok());
  CHECK(reg.tokens_issued == 1);

  DockerConfig(dir, reg.registry.Host(), "alice", "wrong");  // the operator edits config.json
  auto got = client.FetchManifest(ref);
  CHECK(got.status().code() == absl::StatusCode::kUnauthenticated);

  DockerConfig(dir, reg.registry.Host(), "alice", "secret");  // and back: its token again
  REQUIRE(client.FetchManifest(ref).ok());
  CHECK(reg.tokens_issued == 1);
}

TEST_CASE("unauthorized names the credential helper that faasd does not run", "[client]") {
  BearerRegistry reg;
  TempDir dir;
  r::RegistryOptions opts;
  opts.docker_config_path =
      dir.Write("config.json", R"({"credHelpers":{")" + reg.registry.Host() + R"(":"pass"}})");
  auto got = r::RegistryClient(opts).FetchManifest(Ref(reg.registry, "team/fn:1"));
  CHECK(got.status().code() == absl::StatusCode::kUnauthenticated);
  CHECK(std::string(got.status().message())
            .find("credential helper docker-credential-pass, which faasd does not run") !=
        std::string::npos);
}

TEST_CASE("bearer flow with wrong or missing credentials is Unauthenticated", "[client]") {
  BearerRegistry reg;
  TempDir dir;
  r::RegistryOptions opts;
  opts.docker_config_path = DockerConfig(dir, reg.registry.Host(), "alice", "wrong");
  r::RegistryClient client(opts);
  auto got = client.FetchManifest(Ref(reg.registry, "team/fn:1"));
  CHECK(got.status().code() == absl::StatusCode::kUnauthenticated);
  CHECK(
      std::string(got.status().message()).find("check credentials in " + opts.docker_config_path) !=
      std::string::npos);

  r::RegistryOptions no_config;
  no_config.docker_config_path = dir.path() + "/does-not-exist.json";  // missing file = none
  auto anon = r::RegistryClient(no_config).FetchManifest(Ref(reg.registry, "team/fn:1"));
  CHECK(anon.status().code() == absl::StatusCode::kUnauthenticated);
}

TEST_CASE("an anonymous token a private repository refuses: the registry wants credentials",
          "[client]") {
  TestServer s;  // grants anonymous tokens, as docker-registry's token servers may
  s.server.Get("/token", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"token":"anonymous","expires_in":300})", "application/json");
  });
  s.server.Get(R"(/v2/.*)", [&s](const httplib::Request&, httplib::Response& res) {
    res.status = 401;
    res.set_header("WWW-Authenticate", "Bearer realm=\"http://" + s.Host() + "/token\"");
  });
  REQUIRE(s.Start());
  TempDir dir;
  r::RegistryOptions opts;
  opts.docker_config_path = dir.Write("config.json", R"({"auths":{}})");
  auto got = r::RegistryClient(opts).FetchManifest(Ref(s, "team/fn:1"));
  CHECK(got.status().code() == absl::StatusCode::kUnauthenticated);
  CHECK(std::string(got.status().message()) ==
        "pull " + s.Host() + "/team/fn:1: unauthorized: registry wants credentials; " +
            opts.docker_config_path + " has no credentials for " + s.Host() +
            ": put them under \"auths\"");
}

TEST_CASE("basic challenge uses docker config credentials", "[client]") {
  TestServer s;
  std::atomic<int> unauthorized{0};
  s.server.Get(R"(/v2/.*)", [&](const httplib::Request& req, httplib::Response& res) {
    if (req.get_header_value("Authorization") != Basic("bob", "pw")) {
      ++unauthorized;
      res.status = 401;
      res.set_header("WWW-Authenticate", R"(Basic realm="Registry Realm")");
      return;
    }
    res.set_content(kManifest, "application/json");  // generic type: the body decides
  });
  REQUIRE(s.Start());
  TempDir dir;
  r::RegistryOptions opts;
  opts.docker_config_path = DockerConfig(dir, s.Host(), "bob", "pw");
  r::RegistryClient client(opts);
  auto got = client.FetchManifest(Ref(s, "fn:1"));
  INFO(got.status().ToString());
  REQUIRE(got.ok());
  CHECK(got->first.media_type == r::kMediaTypeOciManifest);
  CHECK(unauthorized == 1);
  REQUIRE(client.FetchManifest(Ref(s, "fn:2")).ok());
  CHECK(unauthorized == 1);  // credentials now go up front

  r::RegistryOptions wrong;
  wrong.docker_config_path = DockerConfig(dir, s.Host(), "bob", "nope");
  auto denied = r::RegistryClient(wrong).FetchManifest(Ref(s, "fn:1"));
  CHECK(denied.status().code() == absl::StatusCode::kUnauthenticated);
}

TEST_CASE("digest and size checks, HEAD fallback, server and connection errors", "[client]") {
  const std::string other = R"({"schemaVersion":2,"manifests":[]})";
  TestServer s;
  s.server.Get(R"(/v2/.*)", [&](const httplib::Request& req, httplib::Response& res) {
    const std::string& p = req.path;
    if (p == "/v2/fn/manifests/lying") {
      res.set_header("Docker-Content-Digest", r::Sha256Digest(other));
      res.set_content(kManifest, r::kMediaTypeOciManifest);
    } else if (p == "/v2/fn/manifests/nohead") {
      if (req.method == "HEAD") {
        res.status = 405;
        return;
      }
      res.set_content(other, r::kMediaTypeOciIndex);
    } else if (p.rfind("/v2/fn/manifests/sha256:", 0) == 0) {
      res.set_content(kManifest, r::kMediaTypeOciManifest);  // whatever digest was asked for
    } else if (p.rfind("/v2/fn/blobs/", 0) == 0) {
      res.set_content(kBlob, "application/octet-stream");
    } else if (p == "/v2/fn/manifests/schema1") {
      res.set_content(R"({"schemaVersion":1,"fsLayers":[]})", "application/json");
    } else if (p == "/v2/fn/manifests/broken") {
      res.status = 503;
    } else if (p == "/v2/fn/manifests/limited") {
      res.status = 429;
      res.set_content(R"({"errors":[{"code":"TOOMANYREQUESTS","message":"pull rate limit"}]})",
                      "application/json");
    } else {
      res.status = 404;
    }
  });
  REQUIRE(s.Start());
  r::RegistryClient client({});
  r::Reference ref = Ref(s, "fn:1");

  CHECK(client.FetchManifest(ref, "lying").status().code() == absl::StatusCode::kDataLoss);

  const std::string wrong_digest = "sha256:" + std::string(64, 'e');
  auto by_digest = client.FetchManifest(ref, wrong_digest);
  CHECK(by_digest.status().code() == absl::StatusCode::kDataLoss);
  CHECK(std::string(by_digest.status().message()).find("@" + wrong_digest) != std::string::npos);
  REQUIRE(client.FetchManifest(ref, r::Sha256Digest(kManifest)).ok());

  auto resolved = client.Resolve(Ref(s, "fn:nohead"));
  INFO(resolved.status().ToString());
  REQUIRE(resolved.ok());
  CHECK(resolved->digest == r::Sha256Digest(other));
  CHECK(resolved->media_type == r::kMediaTypeOciIndex);

  auto missing = client.Resolve(Ref(s, "fn:gone"));
  CHECK(missing.status().code() == absl::StatusCode::kNotFound);
  CHECK(std::string(missing.status().message()) ==
        "pull " + s.Host() + "/fn:gone: manifest unknown");

  auto schema1 = client.FetchManifest(ref, "schema1");
  CHECK(schema1.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(schema1.status().message()).find("schema1") != std::string::npos);
  CHECK(client.FetchManifest(ref, "broken").status().code() == absl::StatusCode::kUnavailable);
  auto limited = client.FetchManifest(ref, "limited");
  CHECK(limited.status().code() == absl::StatusCode::kResourceExhausted);
  CHECK(std::string(limited.status().message()).find("pull rate limit") != std::string::npos);

  auto discard = [](std::string_view) { return absl::OkStatus(); };
  r::Descriptor lie = BlobDescriptor(kBlob);
  lie.digest = wrong_digest;
  CHECK(client.FetchBlob(ref, lie, discard).code() == absl::StatusCode::kDataLoss);
  r::Descriptor too_small = BlobDescriptor(kBlob);
  too_small.size -= 1;
  CHECK(client.FetchBlob(ref, too_small, discard).code() == absl::StatusCode::kDataLoss);
  r::Descriptor too_big = BlobDescriptor(kBlob);
  too_big.size += 1;
  CHECK(client.FetchBlob(ref, too_big, discard).code() == absl::StatusCode::kDataLoss);

  absl::Status sink_failed = client.FetchBlob(ref, BlobDescriptor(kBlob), [](std::string_view) {
    return absl::ResourceExhaustedError("disk full");
  });
  CHECK(sink_failed.code() == absl::StatusCode::kResourceExhausted);
  CHECK(std::string(sink_failed.message()).find("disk full") != std::string::npos);

  int port = s.port();
  s.server.stop();
  auto refused = r::RegistryClient({}).FetchManifest(
      *r::Reference::Parse("127.0.0.1:" + std::to_string(port) + "/fn:1"));
  CHECK(refused.status().code() == absl::StatusCode::kUnavailable);
}

namespace {

// openssl(1) makes a CA and a server certificate for 127.0.0.1 (or `san`) signed by it.
struct Certs {
  std::string ca, cert, key;
};
Certs MakeCerts(const TempDir& dir, const std::string& san) {
  const std::string d = dir.path();
  const std::string cmd =
      "cd " + d + " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
      "-nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=faasd-test-ca 2>/dev/null && "
      "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout srv.key "
      "-out srv.csr -subj /CN=registry 2>/dev/null && printf 'subjectAltName=" + san +
      "' > ext && openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
      "-out srv.pem -days 2 -extfile ext 2>/dev/null";
  REQUIRE(std::system(cmd.c_str()) == 0);
  return {d + "/ca.pem", d + "/srv.pem", d + "/srv.key"};
}

// A registry on 127.0.0.1 over TLS serving one manifest.
struct TlsRegistry {
  explicit TlsRegistry(const Certs& c) : server(c.cert.c_str(), c.key.c_str()) {
    server.Get("/v2/fn/manifests/1", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(kManifest, r::kMediaTypeOciManifest);
    });
    port = server.bind_to_any_port("127.0.0.1");
    thread = std::thread([this] { server.listen_after_bind(); });
    for (int i = 0; i < 500 && !server.is_running(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  ~TlsRegistry() {
    server.stop();
    thread.join();
  }
  r::Reference Ref(const std::string& rest) const {
    auto ref = r::Reference::Parse("127.0.0.1:" + std::to_string(port) + "/" + rest);
    REQUIRE(ref.ok());
    return *ref;
  }
  httplib::SSLServer server;
  int port = 0;
  std::thread thread;
};

}  // namespace

TEST_CASE("a loopback registry speaking TLS is reached over TLS, its CA from --registry-ca",
          "[client][tls]") {
  TempDir dir;
  Certs certs = MakeCerts(dir, "IP:127.0.0.1");
  TlsRegistry reg(certs);
  REQUIRE(reg.server.is_running());

  r::RegistryOptions trusted;
  trusted.ca_file = certs.ca;
  auto got = r::RegistryClient(trusted).FetchManifest(reg.Ref("fn:1"));
  INFO(got.status().ToString());
  REQUIRE(got.ok());
  CHECK(got->second == kManifest);

  // The system store does not know the test CA: the error says so and what to do.
  auto unknown = r::RegistryClient(r::RegistryOptions()).FetchManifest(reg.Ref("fn:1"));
  REQUIRE_FALSE(unknown.ok());
  const std::string why(unknown.status().message());
  INFO(why);
  CHECK(why.find("signed by an unknown authority") != std::string::npos);
  CHECK(why.find("--registry-ca=FILE") != std::string::npos);
  CHECK(why.find("--insecure-registry=127.0.0.1:" + std::to_string(reg.port)) !=
        std::string::npos);
  CHECK(why.find("HTTP 400") == std::string::npos);  // not the plain-HTTP fallback's answer
}

TEST_CASE("a certificate for another name is refused, naming the host", "[client][tls]") {
  TempDir dir;
  Certs certs = MakeCerts(dir, "DNS:registry.example.com");
  TlsRegistry reg(certs);
  REQUIRE(reg.server.is_running());
  r::RegistryOptions trusted;
  trusted.ca_file = certs.ca;
  auto got = r::RegistryClient(trusted).FetchManifest(reg.Ref("fn:1"));
  REQUIRE_FALSE(got.ok());
  INFO(got.status().ToString());
  CHECK(std::string(got.status().message())
            .find("does not name 127.0.0.1:" + std::to_string(reg.port)) != std::string::npos);
}

namespace {

// A server on 127.0.0.1 that hands each connection, with its number (0, 1, ...), to `serve`
// and closes it after; for 10 s at most.
struct RawServer {
  explicit RawServer(std::function<void(int fd, int n)> serve) {
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), len) == 0);
    REQUIRE(listen(fd, 8) == 0);
    REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port = ntohs(a.sin_port);
    thread = std::thread([this, serve] {
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (!stop && std::chrono::steady_clock::now() < deadline) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 50) != 1) continue;
        const int c = accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) continue;
        serve(c, connections++);
        close(c);
      }
    });
  }
  ~RawServer() {
    stop = true;
    thread.join();
    close(fd);
  }
  std::string Host() const { return "127.0.0.1:" + std::to_string(port); }

  // What `serve` may do with a connection.
  static std::string ReadRequest(int c) {  // its first bytes (a request's head, a client hello)
    pollfd in{c, POLLIN, 0};
    char buf[4096];
    if (poll(&in, 1, 5000) != 1) return "";
    const ssize_t n = read(c, buf, sizeof buf);
    return n > 0 ? std::string(buf, n) : "";
  }
  static void Reset(int c) {  // close sends RST
    const linger now{1, 0};
    setsockopt(c, SOL_SOCKET, SO_LINGER, &now, sizeof now);
  }
  static void Write(int c, const std::string& text) { (void)!write(c, text.data(), text.size()); }

  int fd = -1;
  int port = 0;
  std::atomic<int> connections{0};
  std::atomic<bool> stop{false};
  std::thread thread;
};

std::string ManifestAnswer() {
  return "HTTP/1.1 200 OK\r\nContent-Type: " + std::string(r::kMediaTypeOciManifest) +
         "\r\nContent-Length: " + std::to_string(kManifest.size()) +
         "\r\nConnection: close\r\n\r\n" + kManifest;
}

// A registry at `host` in the clear (no https probe), with short timeouts.
r::RegistryOptions PlainRegistry(const std::string& host) {
  r::RegistryOptions o;
  o.insecure_registries = {host};
  o.connect_timeout_seconds = 2;
  o.read_timeout_seconds = 1;
  return o;
}

// Starts `s` as a registry whose every answer is a Bearer challenge with the realm
// https://<realm_host()>/token.
void StartWithTokenRealm(TestServer& s, std::function<std::string()> realm_host) {
  s.server.Get(R"(/v2/.*)", [realm_host](const httplib::Request&, httplib::Response& res) {
    res.status = 401;
    res.set_header("WWW-Authenticate",
                   "Bearer realm=\"https://" + realm_host() + "/token\",service=\"test-registry\"");
  });
  REQUIRE(s.Start());
}

}  // namespace

TEST_CASE("a failed TLS handshake says what OpenSSL saw", "[client][tls]") {
  // The registry sends its token clients to an https realm on its own plain-HTTP port.
  TestServer s;
  StartWithTokenRealm(s, [&s] { return s.Host(); });
  auto got = r::RegistryClient({}).FetchManifest(Ref(s, "fn:1"));
  REQUIRE_FALSE(got.ok());
  const std::string why(got.status().message());
  INFO(why);
  CHECK(why.find("token from https://" + s.Host() + "/token: GET https://" + s.Host() +
                 "/token?service=test-registry") != std::string::npos);
  CHECK(why.find(": TLS handshake failed (wrong version number)") != std::string::npos);
  CHECK(ERR_peek_error() == 0);  // nothing left on the thread's queue for its next user
}

TEST_CASE("a connection that breaks before any answer is tried three times in all",
          "[client][tls]") {
  // The token realm (https) breaks each connection in the handshake: closes it at once, or
  // resets it once the client hello is in.
  std::string cause;
  std::function<void(int, int)> serve;
  SECTION("closed") {
    serve = [](int, int) {};
    cause = ": TLS handshake failed (";  // "unexpected eof while reading", or a broken write
  }
  SECTION("reset") {
    serve = [](int c, int) {
      RawServer::ReadRequest(c);
      RawServer::Reset(c);
    };
    cause = ": TLS handshake failed (the connection closed or broke)";
  }
  RawServer realm(serve);
  TestServer s;
  StartWithTokenRealm(s, [&realm] { return realm.Host(); });
  const auto began = std::chrono::steady_clock::now();
  auto got = r::RegistryClient({}).FetchManifest(Ref(s, "fn:1"));
  const auto took = std::chrono::steady_clock::now() - began;
  REQUIRE_FALSE(got.ok());
  const std::string why(got.status().message());
  INFO(why);
  CHECK(why.find("token from https://" + realm.Host() + "/token") != std::string::npos);
  CHECK(why.find(cause) != std::string::npos);
  CHECK(realm.connections == 3);
  CHECK(took >= std::chrono::milliseconds(1200));  // the pauses between: 200 ms, then 1 s
  CHECK(ERR_peek_error() == 0);
}

TEST_CASE("a connection broken before the answer is tried again and the pull goes on", "[client]") {
  RawServer flaky([](int c, int n) {
    RawServer::ReadRequest(c);
    if (n == 0) {
      RawServer::Reset(c);
    } else {
      RawServer::Write(c, ManifestAnswer());
    }
  });
  auto ref = r::Reference::Parse(flaky.Host() + "/fn:1");
  REQUIRE(ref.ok());
  auto got = r::RegistryClient(PlainRegistry(flaky.Host())).FetchManifest(*ref);
  INFO(got.status().ToString());
  REQUIRE(got.ok());
  CHECK(got->second == kManifest);
  CHECK(flaky.connections == 2);
}

TEST_CASE("a GET is not tried again once its answer began, nor after a timeout", "[client]") {
  std::function<void(int, int)> serve;
  SECTION("the answer breaks off") {
    serve = [](int c, int) {
      RawServer::ReadRequest(c);
      RawServer::Write(c, ManifestAnswer().substr(0, ManifestAnswer().size() - 10));
      RawServer::Reset(c);
    };
  }
  SECTION("no answer within the read timeout (1 s)") {
    serve = [](int c, int) {
      RawServer::ReadRequest(c);
      pollfd hold{c, POLLIN, 0};
      poll(&hold, 1, 3000);  // until the client gives up and closes
    };
  }
  RawServer server(serve);
  auto ref = r::Reference::Parse(server.Host() + "/fn:1");
  REQUIRE(ref.ok());
  auto got = r::RegistryClient(PlainRegistry(server.Host())).FetchManifest(*ref);
  REQUIRE_FALSE(got.ok());
  INFO(got.status().ToString());
  CHECK(std::string(got.status().message()).find("connection broken while reading") !=
        std::string::npos);
  CHECK(server.connections == 1);
}
