// OCI distribution client: image references, platforms, manifests, image configs, digests, and a
// registry client that fetches manifests and blobs over HTTP(S) with Bearer/Basic auth.
//
// Contract:
// - Pure registry protocol; nothing here knows containerd. The pull recipe (resolve, pick the
//   platform, fetch config + layers into the content store) is built on top of this API.
// - Every fallible call returns absl::Status/StatusOr; no exceptions escape. Error messages name
//   the image and the cause ("pull 127.0.0.1:5000/echo:nope: manifest unknown").
// - Status codes: NotFound (manifest/blob unknown), Unauthenticated / PermissionDenied (401 / 403
//   after auth), Unavailable (connection failures, 5xx), ResourceExhausted (429 rate limits),
//   DataLoss (digest or size mismatch), InvalidArgument (malformed references and documents).
// - Content is verified: manifests against the requested digest and Docker-Content-Digest, blobs
//   against the descriptor's size and digest. A blob sink sees bytes before they are verified, so
//   it must not commit them until FetchBlob returns OK.
// - RegistryClient is thread-safe; parsing functions are pure.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace faasd::registry {

inline constexpr char kMediaTypeOciIndex[] = "application/vnd.oci.image.index.v1+json";
inline constexpr char kMediaTypeOciManifest[] = "application/vnd.oci.image.manifest.v1+json";
inline constexpr char kMediaTypeOciConfig[] = "application/vnd.oci.image.config.v1+json";
inline constexpr char kMediaTypeOciLayerGzip[] = "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr char kMediaTypeDockerManifestList[] =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr char kMediaTypeDockerManifest[] =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr char kMediaTypeDockerConfig[] = "application/vnd.docker.container.image.v1+json";
inline constexpr char kMediaTypeDockerLayerGzip[] =
    "application/vnd.docker.image.rootfs.diff.tar.gzip";

// A docker image reference, normalized like containerd/docker do.
struct Reference {
  std::string domain;  // "docker.io" by default; "127.0.0.1:5000", "ghcr.io"
  std::string path;    // "library/alpine" ("library/" added only for docker.io single names)
  std::string tag;     // "latest" when neither tag nor digest is given
  std::string digest;  // "sha256:<64 hex>" or ""

  // Rejects empty input, upper-case repository names, empty path components ("a//b"), bad tags
  // and malformed digests (InvalidArgument naming the input).
  static absl::StatusOr<Reference> Parse(std::string_view s);
  // "docker.io/library/alpine:latest", "host:5000/fn@sha256:..", "name:tag@digest".
  std::string String() const;
  // The digest when set, else the tag.
  std::string TagOrDigest() const;
  // "domain/path", the repository without tag or digest.
  std::string Name() const;
};

struct Platform {
  std::string os;            // "linux"
  std::string architecture;  // GOARCH names: "amd64", "arm64", "arm", "386", ...
  std::string variant;       // "v7", "v8", or ""

  // The machine we run on, from uname(2): amd64, arm64 (variant v8), arm (v7/v6/v5).
  static Platform Host();
  // "linux/arm/v7", "linux/amd64"; architecture aliases (x86_64, aarch64, armhf) are normalized.
  static absl::StatusOr<Platform> Parse(std::string_view s);
  // "linux/arm/v7", or "linux/amd64" when there is no variant.
  std::string String() const;
};

struct Descriptor {
  std::string media_type;
  std::string digest;
  int64_t size = 0;
  std::optional<Platform> platform;
  std::map<std::string, std::string> annotations;
};

bool IsIndexMediaType(std::string_view media_type);     // OCI index, Docker manifest list
bool IsManifestMediaType(std::string_view media_type);  // OCI manifest, Docker schema2 manifest

struct Manifest {
  Descriptor config;
  std::vector<Descriptor> layers;
};
struct Index {
  std::vector<Descriptor> manifests;
};

// InvalidArgument on junk or on an index; Docker schema1 manifests are rejected by name.
absl::StatusOr<Manifest> ParseManifest(std::string_view body);
absl::StatusOr<Index> ParseIndex(std::string_view body);

// Best match for `want`: os and architecture must match; the variant must match exactly or be
// compatible per containerd's platform matcher (arm64 "" == "v8"; an arm v7 host accepts v6 and
// v5, preferring the highest; amd64 ignores variants). Exact matches win; ties go to index order.
// NotFound lists the platforms the index offers.
absl::StatusOr<Descriptor> SelectPlatform(const Index& index, const Platform& want);

struct ImageConfig {
  std::vector<std::string> env, entrypoint, cmd;
  std::string working_dir, user;
  std::vector<std::string> diff_ids;
  std::map<std::string, std::string> labels;
  std::vector<std::string> exposed_ports;  // "8080/tcp"
  std::string os, architecture, variant;
};
// The OCI image config JSON (also Docker's, which is the same document).
absl::StatusOr<ImageConfig> ParseImageConfig(std::string_view body);

// "sha256:<64 lower-case hex>".
std::string Sha256Digest(std::string_view data);
// True for "sha256:<64 hex>" and "sha512:<128 hex>" (lower-case hex).
bool IsValidDigest(std::string_view digest);

// Streaming SHA-256. Not thread-safe; Digest() ends the stream.
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(const Sha256Hasher&) = delete;
  Sha256Hasher& operator=(const Sha256Hasher&) = delete;

  void Update(std::string_view data);
  std::string Digest();  // "sha256:<hex>"

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Chain IDs per the OCI image spec: ChainID(L0) = DiffID(L0);
// ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)). These name snapshots in containerd.
std::vector<std::string> ChainIds(const std::vector<std::string>& diff_ids);

struct RegistryOptions {
  // "host:port" registries spoken to over plain HTTP. Loopback (127.0.0.0/8, localhost, [::1])
  // is tried over TLS first, then over plain HTTP when the handshake fails.
  std::vector<std::string> insecure_registries;
  // Docker config.json with "auths": {host: {"auth": base64(user:pass)} or {"username",
  // "password"}}. "" = no credentials; a missing file = no credentials. Read when a registry asks
  // for credentials, so edits apply without a restart. credsStore/credHelpers are not run (an
  // "unauthorized" error names the helper the config leaves the registry to).
  std::string docker_config_path;
  std::string ca_file;  // "" = system CA store (/etc/ssl/certs/ca-certificates.crt)
  int connect_timeout_seconds = 10;
  int read_timeout_seconds = 60;  // per socket read, not for the whole transfer
  std::string user_agent = "faasd-cpp";
};

// Thread-safe; caches bearer tokens per (domain, scope, credentials) until they expire.
class RegistryClient {
 public:
  explicit RegistryClient(RegistryOptions options);

  // GETs the manifest or index at `tag_or_digest` ("" = ref.TagOrDigest()) of ref's repository,
  // accepting OCI index, OCI manifest, Docker list and Docker schema2. Returns the descriptor
  // (media type from Content-Type, or from the body when the registry sends a generic type;
  // digest = sha256 of the body, checked against the requested digest and against
  // Docker-Content-Digest when present) and the body.
  absl::StatusOr<std::pair<Descriptor, std::string>> FetchManifest(
      const Reference& ref, std::string_view tag_or_digest = "");

  // HEAD to learn the current digest of ref's tag (or to confirm its digest) without downloading;
  // falls back to GET when HEAD is unsupported or gives no digest.
  absl::StatusOr<Descriptor> Resolve(const Reference& ref);

  // Streams the blob to `sink` in chunks, following redirects (e.g. to S3/CDN) without sending the
  // registry's Authorization to another host; verifies size and digest at the end (DataLoss on
  // mismatch). An error from `sink` stops the transfer and is returned with context.
  absl::Status FetchBlob(const Reference& ref, const Descriptor& blob,
                         const std::function<absl::Status(std::string_view chunk)>& sink);

 private:
  struct Exchange;
  // Sends one request to ref's registry, answering auth challenges; see client.cc.
  absl::Status Send(const Reference& ref, Exchange& exchange);
  absl::StatusOr<std::string> FetchToken(const Reference& ref, const std::string& scope,
                                         const std::string& cache_key, const std::string& realm, const std::string& service,
                                         const std::string& challenge_scope);
  std::string CachedToken(const std::string& key);
  // "http" for --insecure-registry hosts; for loopback what worked last ("https" first).
  std::string SchemeFor(const std::string& domain);

  const RegistryOptions options_;
  absl::Mutex mu_;
  struct CachedBearer {
    std::string token;
    absl::Time expires;
  };
  std::map<std::string, CachedBearer> tokens_ ABSL_GUARDED_BY(mu_);
  // Domains that answered with a Basic challenge: send credentials up front next time.
  std::map<std::string, bool> basic_domains_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> schemes_ ABSL_GUARDED_BY(mu_);  // loopback domain → scheme
};

}  // namespace faasd::registry
