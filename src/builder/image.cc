// Assembling an image (layers, config, manifest) and writing it as an OCI layout or archive.
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "builder/builder.h"
#include "builder/layers.h"
#include "nlohmann/json.hpp"

namespace faasd::builder {
namespace {

constexpr size_t kMaxBaseBytes = size_t{4} << 30;
constexpr char kDefaultPath[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

absl::Status WriteFile(const std::string& path, std::string_view data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("write ", path, ": ", std::strerror(errno)));
  return absl::OkStatus();
}

absl::Status MkdirAll(const std::string& path) {
  std::string cur;
  for (size_t i = 0; i <= path.size(); ++i) {
    if (i == path.size() || (path[i] == '/' && i > 0)) {
      cur = path.substr(0, i);
      if (::mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST)
        return absl::InternalError(absl::StrCat("mkdir ", cur, ": ", std::strerror(errno)));
    }
  }
  return absl::OkStatus();
}

absl::Status RunBuildCommand(const Stack& stack, const FunctionSpec& fn) {
  pid_t pid = ::fork();
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  if (pid == 0) {
    if (::chdir(stack.dir.c_str()) != 0) ::_exit(126);
    // Build output goes to our stderr: stdout of `faasd build` is for the digests.
    ::dup2(2, 1);
    ::execl("/bin/sh", "sh", "-c", fn.build_command.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "function ", fn.name, ": build_command `", fn.build_command, "` in ", stack.dir, " ",
        WIFEXITED(status) ? absl::StrCat("exited ", WEXITSTATUS(status))
                          : absl::StrCat("died of signal ", WTERMSIG(status))));
  }
  return absl::OkStatus();
}

// The base layer's uncompressed tar.
absl::StatusOr<std::string> BaseTar(const BuildOptions& o) {
  if (o.base.empty()) {
    absl::StatusOr<std::vector<TarEntry>> entries = BusyboxBase(o.busybox);
    if (!entries.ok()) return entries.status();
    return WriteTar(std::move(*entries), o.source_date_epoch);
  }
  struct stat st;
  if (::stat(o.base.c_str(), &st) != 0)
    return absl::NotFoundError(absl::StrCat("base ", o.base, ": ", std::strerror(errno)));
  if (S_ISDIR(st.st_mode)) {
    std::vector<TarEntry> entries;
    absl::Status s = AddTree(o.base, "", &entries);
    if (!s.ok()) return s;
    return WriteTar(std::move(entries), o.source_date_epoch);
  }
  // A tarball is taken as it is (after gunzip): its bytes are already fixed.
  absl::StatusOr<std::string> data = ReadFile(o.base);
  if (!data.ok()) return data.status();
  if (data->size() >= 2 && static_cast<unsigned char>((*data)[0]) == 0x1f &&
      static_cast<unsigned char>((*data)[1]) == 0x8b) {
    absl::StatusOr<std::string> raw = Gunzip(*data, kMaxBaseBytes);
    if (!raw.ok())
      return absl::Status(raw.status().code(),
                          absl::StrCat("base ", o.base, ": ", raw.status().message()));
    return raw;
  }
  if (data->size() < 1024 || data->size() % 512 != 0)
    return absl::InvalidArgumentError(absl::StrCat("base ", o.base, ": not a tar archive"));
  return data;
}

registry::Descriptor Put(BuiltImage* img, std::string media_type, std::string bytes) {
  registry::Descriptor d;
  d.media_type = std::move(media_type);
  d.digest = registry::Sha256Digest(bytes);
  d.size = static_cast<int64_t>(bytes.size());
  img->blobs[d.digest] = std::move(bytes);
  return d;
}

nlohmann::json DescriptorJson(const registry::Descriptor& d) {
  nlohmann::json j = {{"mediaType", d.media_type}, {"digest", d.digest}, {"size", d.size}};
  if (!d.annotations.empty()) j["annotations"] = d.annotations;
  if (d.platform) {
    j["platform"] = {{"os", d.platform->os}, {"architecture", d.platform->architecture}};
    if (!d.platform->variant.empty()) j["platform"]["variant"] = d.platform->variant;
  }
  return j;
}

std::string IndexJson(const std::vector<BuiltImage>& images) {
  nlohmann::json manifests = nlohmann::json::array();
  for (const BuiltImage& img : images) {
    registry::Descriptor d = img.manifest;
    d.annotations["org.opencontainers.image.ref.name"] = img.name;
    d.annotations["io.containerd.image.name"] = img.reference;
    manifests.push_back(DescriptorJson(d));
  }
  return nlohmann::json{
      {"schemaVersion", 2}, {"mediaType", registry::kMediaTypeOciIndex}, {"manifests", manifests}}
      .dump();
}

constexpr char kOciLayout[] = "{\"imageLayoutVersion\":\"1.0.0\"}";

}  // namespace

absl::StatusOr<BuiltImage> BuildImage(const Stack& stack, const FunctionSpec& fn,
                                      const BuildOptions& o) {
  auto named = [&](const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat("build ", fn.name, ": ", s.message()));
  };
  if (!fn.build_command.empty() && o.run_build_commands) {
    absl::Status s = RunBuildCommand(stack, fn);
    if (!s.ok()) return s;
  }
  absl::StatusOr<registry::Reference> ref = registry::Reference::Parse(fn.image);
  if (!ref.ok()) return named(ref.status());
  if (o.watchdog.empty())
    return named(absl::InvalidArgumentError("no watchdog binary given (--watchdog)"));

  std::vector<std::string> layer_tars;
  absl::StatusOr<std::string> base = BaseTar(o);
  if (!base.ok()) return named(base.status());
  layer_tars.push_back(std::move(*base));

  absl::StatusOr<std::string> watchdog = ReadFile(o.watchdog);
  if (!watchdog.ok())
    return named(absl::NotFoundError(absl::StrCat("watchdog ", watchdog.status().message())));
  absl::StatusOr<std::string> wd_tar =
      WriteTar({{"usr/bin/fwatchdog", TarEntry::Type::kFile, 0755, std::move(*watchdog), ""}},
               o.source_date_epoch);
  if (!wd_tar.ok()) return named(wd_tar.status());
  layer_tars.push_back(std::move(*wd_tar));

  std::vector<TarEntry> fn_entries{{"home/app", TarEntry::Type::kDir, 0755, "", ""}};
  absl::Status walked = AddTree(fn.handler, "home/app", &fn_entries);
  if (!walked.ok())
    return named(absl::Status(walked.code(), absl::StrCat("handler: ", walked.message())));
  absl::StatusOr<std::string> fn_tar = WriteTar(std::move(fn_entries), o.source_date_epoch);
  if (!fn_tar.ok()) return named(fn_tar.status());
  layer_tars.push_back(std::move(*fn_tar));

  BuiltImage img;
  img.name = fn.image;
  img.reference = ref->String();
  ConfigInput config;
  registry::Platform host = registry::Platform::Host();
  config.architecture = o.architecture.empty() ? host.architecture : o.architecture;
  config.variant = o.architecture.empty() ? host.variant : "";
  config.entrypoint = {"/usr/bin/fwatchdog"};
  config.working_dir = "/home/app";
  config.exposed_ports = {"8080/tcp"};
  config.created = o.source_date_epoch;
  std::map<std::string, std::string> env = fn.environment;
  if (!fn.fprocess.empty()) env["fprocess"] = fn.fprocess;
  for (const auto& [k, v] : o.env) env[k] = v;
  config.env.push_back(env.count("PATH") ? "PATH=" + env["PATH"] : kDefaultPath);
  for (const auto& [k, v] : env) {
    if (k != "PATH") config.env.push_back(absl::StrCat(k, "=", v));
  }
  for (std::string& tar : layer_tars) {
    config.diff_ids.push_back(registry::Sha256Digest(tar));
    absl::StatusOr<std::string> gz = Gzip(tar);
    if (!gz.ok()) return named(gz.status());
    tar.clear();
    tar.shrink_to_fit();
    img.layers.push_back(Put(&img, registry::kMediaTypeOciLayerGzip, std::move(*gz)));
  }
  img.config = Put(&img, registry::kMediaTypeOciConfig, ConfigJson(config));
  nlohmann::json layers = nlohmann::json::array();
  for (const registry::Descriptor& l : img.layers) layers.push_back(DescriptorJson(l));
  nlohmann::json manifest = {{"schemaVersion", 2},
                             {"mediaType", registry::kMediaTypeOciManifest},
                             {"config", DescriptorJson(img.config)},
                             {"layers", layers}};
  img.manifest = Put(&img, registry::kMediaTypeOciManifest, manifest.dump());
  img.manifest.platform = registry::Platform{"linux", config.architecture, config.variant};
  return img;
}

absl::Status WriteLayout(const std::string& dir, const std::vector<BuiltImage>& images) {
  struct stat st;
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode))
      return absl::FailedPreconditionError(absl::StrCat("output ", dir, ": not a directory"));
    bool layout = ::access((dir + "/oci-layout").c_str(), F_OK) == 0;
    DIR* d = ::opendir(dir.c_str());
    bool empty = true;
    while (d != nullptr && empty) {
      struct dirent* de = ::readdir(d);
      if (de == nullptr) break;
      empty = std::strcmp(de->d_name, ".") == 0 || std::strcmp(de->d_name, "..") == 0;
    }
    if (d != nullptr) ::closedir(d);
    if (!empty && !layout)
      return absl::FailedPreconditionError(absl::StrCat(
          "output ", dir, ": not empty and not an OCI layout; refusing to write into it"));
    // Replace an earlier layout: drop its blobs so only this build's remain.
    std::string blobs = dir + "/blobs/sha256";
    if (DIR* bd = ::opendir(blobs.c_str())) {
      while (struct dirent* de = ::readdir(bd)) {
        if (de->d_name[0] != '.') ::unlink((blobs + "/" + de->d_name).c_str());
      }
      ::closedir(bd);
    }
  }
  absl::Status s = MkdirAll(dir + "/blobs/sha256");
  if (!s.ok()) return s;
  for (const BuiltImage& img : images) {
    for (const auto& [digest, bytes] : img.blobs) {
      s = WriteFile(absl::StrCat(dir, "/blobs/sha256/", digest.substr(7)), bytes);
      if (!s.ok()) return s;
    }
  }
  s = WriteFile(dir + "/oci-layout", kOciLayout);
  if (!s.ok()) return s;
  return WriteFile(dir + "/index.json", IndexJson(images));
}

absl::Status WriteArchive(const std::string& path, const std::vector<BuiltImage>& images) {
  std::vector<TarEntry> entries;
  entries.push_back({"oci-layout", TarEntry::Type::kFile, 0644, kOciLayout, ""});
  entries.push_back({"index.json", TarEntry::Type::kFile, 0644, IndexJson(images), ""});
  for (const BuiltImage& img : images) {
    for (const auto& [digest, bytes] : img.blobs) {
      entries.push_back({absl::StrCat("blobs/sha256/", digest.substr(7)), TarEntry::Type::kFile,
                         0644, bytes, ""});
    }
  }
  absl::StatusOr<std::string> tar = WriteTar(std::move(entries), 0);
  if (!tar.ok()) return tar.status();
  return WriteFile(path, *tar);
}

}  // namespace faasd::builder
