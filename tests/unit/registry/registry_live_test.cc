// RegistryClient against a real registry: Debian's docker-registry (distribution 2.8) on a free
// loopback port, with images pushed by skopeo from an OCI layout built here. Skopeo and the
// registry verify every digest on the way in, so the fixture itself is checked independently.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "catch.hpp"
#include "registry/registry.h"
#include "test_server.h"

namespace r = faasd::registry;
using faasd::registry::testing::TempDir;

namespace {

int FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The registry process; stopped (SIGTERM, then SIGKILL) and reaped on destruction.
class RegistryProcess {
 public:
  RegistryProcess(const std::string& config, const std::string& log) {
    pid_ = fork();
    if (pid_ == 0) {
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
      }
      execl("/usr/bin/docker-registry", "docker-registry", "serve", config.c_str(), nullptr);
      _exit(127);
    }
  }
  ~RegistryProcess() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (waitpid(pid_, nullptr, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // poll interval, not a sync
    }
  }
  bool Alive() const { return pid_ > 0 && waitpid(pid_, nullptr, WNOHANG) == 0; }

 private:
  pid_t pid_ = -1;
};

struct Blob {
  std::string digest;
  int64_t size;
};

// An OCI image layout under `dir` whose blobs are written as they are added.
class Layout {
 public:
  explicit Layout(std::string dir) : dir_(std::move(dir)) {
    std::filesystem::create_directories(dir_ + "/blobs/sha256");
    std::ofstream(dir_ + "/oci-layout") << R"({"imageLayoutVersion":"1.0.0"})";
  }
  Blob Add(const std::string& content) {
    std::string digest = r::Sha256Digest(content);
    std::ofstream(dir_ + "/blobs/sha256/" + digest.substr(7), std::ios::binary) << content;
    return {digest, static_cast<int64_t>(content.size())};
  }
  void WriteIndex(const std::string& json) { std::ofstream(dir_ + "/index.json") << json; }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

std::string Desc(const std::string& media_type, const Blob& b, const std::string& extra = "") {
  return R"({"mediaType":")" + media_type + R"(","digest":")" + b.digest + R"(","size":)" +
         std::to_string(b.size) + extra + "}";
}

}  // namespace

TEST_CASE("pull from a real docker-registry on loopback", "[live]") {
  TempDir tmp;
  REQUIRE(!tmp.path().empty());
  const std::string t = tmp.path();
  int port = FreeLoopbackPort();
  REQUIRE(port > 0);
  const std::string host = "127.0.0.1:" + std::to_string(port);
  tmp.Write("config.yml",
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
            "    rootdirectory: " +
                t + "/storage\nhttp:\n  addr: " + host + "\n");
  RegistryProcess registry(t + "/config.yml", t + "/registry.log");

  // Wait for the registry to answer /v2/.
  {
    httplib::Client probe("http://" + host);
    probe.set_connection_timeout(1, 0);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    bool up = false;
    while (!up && std::chrono::steady_clock::now() < deadline && registry.Alive()) {
      auto res = probe.Get("/v2/");
      up = res && res->status == 200;
      if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(50));  // poll interval
    }
    INFO("registry log: " << ReadFile(t + "/registry.log"));
    REQUIRE(up);
  }

  // One gzip layer, two platform configs/manifests, an index over them.
  std::filesystem::create_directories(t + "/rootfs");
  std::ofstream(t + "/rootfs/hello.txt") << "hello from the layer\n";
  REQUIRE(std::system(("tar -C " + t + "/rootfs -cf " + t + "/layer.tar hello.txt && gzip -n -c " +
                       t + "/layer.tar > " + t + "/layer.tgz")
                          .c_str()) == 0);
  const std::string layer_tgz = ReadFile(t + "/layer.tgz");
  const std::string diff_id = r::Sha256Digest(ReadFile(t + "/layer.tar"));
  REQUIRE(!layer_tgz.empty());

  Layout layout(t + "/layout");
  Blob layer = layout.Add(layer_tgz);
  auto image = [&](const std::string& arch, const std::string& variant_field) {
    Blob config =
        layout.Add(R"({"architecture":")" + arch + R"(","os":"linux")" + variant_field +
                   R"(,"config":{"Env":["fprocess=cat"],"Cmd":["/hello-)" + arch +
                   R"("],"ExposedPorts":{"8080/tcp":{}}},"rootfs":{"type":"layers","diff_ids":[")" +
                   diff_id + R"("]}})");
    Blob manifest =
        layout.Add(R"({"schemaVersion":2,"mediaType":")" + std::string(r::kMediaTypeOciManifest) +
                   R"(","config":)" + Desc(r::kMediaTypeOciConfig, config) + R"(,"layers":[)" +
                   Desc(r::kMediaTypeOciLayerGzip, layer) + "]}");
    return std::make_pair(config, manifest);
  };
  auto [amd_config, amd_manifest] = image("amd64", "");
  auto [arm_config, arm_manifest] = image("arm", R"(,"variant":"v7")");
  Blob index =
      layout.Add(R"({"schemaVersion":2,"mediaType":")" + std::string(r::kMediaTypeOciIndex) +
                 R"(","manifests":[)" +
                 Desc(r::kMediaTypeOciManifest, amd_manifest,
                      R"(,"platform":{"architecture":"amd64","os":"linux"})") +
                 "," +
                 Desc(r::kMediaTypeOciManifest, arm_manifest,
                      R"(,"platform":{"architecture":"arm","os":"linux","variant":"v7"})") +
                 "]}");
  auto name = [](const std::string& n) {
    return R"(,"annotations":{"org.opencontainers.image.ref.name":")" + n + R"("})";
  };
  layout.WriteIndex(R"({"schemaVersion":2,"manifests":[)" +
                    Desc(r::kMediaTypeOciIndex, index, name("multi")) + "," +
                    Desc(r::kMediaTypeOciManifest, amd_manifest, name("single")) + "]}");
  for (const char* tag : {"multi", "single"}) {
    std::string cmd = std::string("skopeo copy --quiet --all --dest-tls-verify=false oci:") +
                      layout.dir() + ":" + tag + " docker://" + host + "/team/fn:" + tag + " > " +
                      t + "/skopeo.log 2>&1";
    INFO(cmd << "\n" << ReadFile(t + "/skopeo.log"));
    REQUIRE(std::system(cmd.c_str()) == 0);
  }

  r::RegistryClient client({});
  auto multi = r::Reference::Parse(host + "/team/fn:multi");
  REQUIRE(multi.ok());

  // Resolve by HEAD matches what skopeo pushed, byte for byte.
  auto resolved = client.Resolve(*multi);
  INFO(resolved.status().ToString());
  REQUIRE(resolved.ok());
  CHECK(resolved->digest == index.digest);
  CHECK(resolved->size == index.size);
  CHECK(resolved->media_type == r::kMediaTypeOciIndex);

  auto fetched_index = client.FetchManifest(*multi);
  REQUIRE(fetched_index.ok());
  CHECK(fetched_index->first.digest == index.digest);
  auto parsed_index = r::ParseIndex(fetched_index->second);
  REQUIRE(parsed_index.ok());
  auto arm = r::SelectPlatform(*parsed_index, *r::Platform::Parse("linux/arm/v7"));
  REQUIRE(arm.ok());
  CHECK(arm->digest == arm_manifest.digest);

  auto fetched_manifest = client.FetchManifest(*multi, arm->digest);
  REQUIRE(fetched_manifest.ok());
  CHECK(fetched_manifest->first.media_type == r::kMediaTypeOciManifest);
  auto manifest = r::ParseManifest(fetched_manifest->second);
  REQUIRE(manifest.ok());
  CHECK(manifest->config.digest == arm_config.digest);

  std::string config_body;
  REQUIRE(client
              .FetchBlob(*multi, manifest->config,
                         [&](std::string_view c) {
                           config_body.append(c);
                           return absl::OkStatus();
                         })
              .ok());
  auto config = r::ParseImageConfig(config_body);
  REQUIRE(config.ok());
  CHECK(config->architecture == "arm");
  CHECK(config->variant == "v7");
  CHECK(config->cmd == std::vector<std::string>{"/hello-arm"});
  CHECK(config->diff_ids == std::vector<std::string>{diff_id});
  CHECK(r::ChainIds(config->diff_ids) == std::vector<std::string>{diff_id});

  REQUIRE(manifest->layers.size() == 1);
  std::string layer_body;
  size_t chunks = 0;
  absl::Status layer_status =
      client.FetchBlob(*multi, manifest->layers[0], [&](std::string_view c) {
        layer_body.append(c);
        ++chunks;
        return absl::OkStatus();
      });
  INFO(layer_status.ToString());
  REQUIRE(layer_status.ok());
  CHECK(layer_body == layer_tgz);
  CHECK(chunks >= 1);

  // A single-platform tag resolves to the manifest itself.
  auto single = client.Resolve(*r::Reference::Parse(host + "/team/fn:single"));
  REQUIRE(single.ok());
  CHECK(single->digest == amd_manifest.digest);
  CHECK(r::IsManifestMediaType(single->media_type));

  // Failures name the image and the cause.
  auto missing = client.FetchManifest(*multi, "nope");
  CHECK(missing.status().code() == absl::StatusCode::kNotFound);
  CHECK(std::string(missing.status().message()) ==
        "pull " + host + "/team/fn:nope: manifest unknown");
  auto missing_resolve = client.Resolve(*r::Reference::Parse(host + "/team/fn:nope"));
  CHECK(missing_resolve.status().code() == absl::StatusCode::kNotFound);
  auto no_repo = client.FetchManifest(*r::Reference::Parse(host + "/nobody/here:1"));
  CHECK(no_repo.status().code() == absl::StatusCode::kNotFound);

  r::Descriptor wrong_size = manifest->layers[0];
  wrong_size.size += 7;
  auto ignore = [](std::string_view) { return absl::OkStatus(); };
  CHECK(client.FetchBlob(*multi, wrong_size, ignore).code() == absl::StatusCode::kDataLoss);
  r::Descriptor unknown = manifest->layers[0];
  unknown.digest = r::Sha256Digest("not pushed");
  absl::Status unknown_status = client.FetchBlob(*multi, unknown, ignore);
  CHECK(unknown_status.code() == absl::StatusCode::kNotFound);
  CHECK(std::string(unknown_status.message()).find("blob unknown") != std::string::npos);
  // The registry refuses a manifest by a digest it does not have.
  CHECK(client.FetchManifest(*multi, r::Sha256Digest("x")).status().code() ==
        absl::StatusCode::kNotFound);
}
