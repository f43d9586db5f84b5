// Assembling an image (layers, config, manifest) and writing it as an OCI layout or archive.
#include <dirent.h>
#include <fcntl.h>
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

// The base layer: busybox, a rootfs directory, or a tarball taken as it is.
absl::StatusOr<Layer> BaseLayer(const BuildOptions& o, const std::string& blob_dir) {
  if (o.base.empty()) {
    absl::StatusOr<std::vector<TarEntry>> entries = BusyboxBase(o.busybox);
    if (!entries.ok()) return entries.status();
    return WriteLayer(std::move(*entries), o.source_date_epoch, blob_dir);
  }
  struct stat st;
  if (::stat(o.base.c_str(), &st) != 0)
    return absl::NotFoundError(absl::StrCat("base ", o.base, ": ", std::strerror(errno)));
  if (S_ISDIR(st.st_mode)) {
    std::vector<TarEntry> entries;
    absl::Status s = AddTree(o.base, "", &entries);
    if (!s.ok()) return s;
    return WriteLayer(std::move(entries), o.source_date_epoch, blob_dir);
  }
  return WriteLayerFromTarball(o.base, blob_dir);
}

// The handler folder, opened inside the stack's folder: `..` or a symlink leading out of it is
// refused, so a cloned stack.yml cannot pack the host's files.
absl::StatusOr<std::shared_ptr<const UniqueFd>> OpenHandler(const Stack& stack,
                                                            const FunctionSpec& fn) {
  UniqueFd top(::open(stack.dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!top) return absl::NotFoundError(absl::StrCat(stack.dir, ": ", std::strerror(errno)));
  absl::StatusOr<UniqueFd> fd =
      OpenConfined(top.get(), fn.handler, O_RDONLY | O_DIRECTORY, Confine::kBeneath);
  if (fd.ok()) return std::make_shared<const UniqueFd>(std::move(*fd));
  const std::string what = absl::StrCat("handler \"", fn.handler, "\"");
  switch (fd.status().code()) {
    case absl::StatusCode::kPermissionDenied:
      return absl::PermissionDeniedError(absl::StrCat(
          what, " leads out of the stack folder ", stack.dir,
          " (through '..' or a symlink); only folders inside it can go into an image"));
    case absl::StatusCode::kNotFound:
      return absl::NotFoundError(absl::StrCat(what, ": no such folder in ", stack.dir));
    default:
      return absl::Status(fd.status().code(), absl::StrCat(what, ": ", fd.status().message()));
  }
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

std::string BlobPath(const std::string& layout_dir, const std::string& digest) {
  return absl::StrCat(layout_dir, "/blobs/sha256/", digest.substr(digest.find(':') + 1));
}

absl::Status PrepareLayout(const std::string& dir) {
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
        if (std::strcmp(de->d_name, ".") != 0 && std::strcmp(de->d_name, "..") != 0)
          ::unlink((blobs + "/" + de->d_name).c_str());
      }
      ::closedir(bd);
    }
  }
  return MkdirAll(dir + "/blobs/sha256");
}

absl::StatusOr<BuiltImage> BuildImage(const Stack& stack, const FunctionSpec& fn,
                                      const BuildOptions& o, const std::string& layout_dir) {
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
  absl::StatusOr<std::shared_ptr<const UniqueFd>> handler = OpenHandler(stack, fn);
  if (!handler.ok()) return named(handler.status());
  struct stat wd;
  if (::stat(o.watchdog.c_str(), &wd) != 0 || !S_ISREG(wd.st_mode))
    return named(absl::NotFoundError(absl::StrCat("watchdog ", o.watchdog, ": not a file")));
  const std::string blob_dir = layout_dir + "/blobs/sha256";
  if (absl::Status s = MkdirAll(blob_dir); !s.ok()) return named(s);

  std::vector<Layer> layers;
  absl::StatusOr<Layer> base = BaseLayer(o, blob_dir);
  if (!base.ok()) return named(base.status());
  layers.push_back(std::move(*base));

  absl::StatusOr<Layer> wd_layer = WriteLayer(
      {{"usr/bin/fwatchdog", TarEntry::Type::kFile, 0755, "", "", nullptr, o.watchdog, wd.st_size}},
      o.source_date_epoch, blob_dir);
  if (!wd_layer.ok()) return named(wd_layer.status());
  layers.push_back(std::move(*wd_layer));

  std::vector<TarEntry> fn_entries{{"home/app", TarEntry::Type::kDir, 0755, "", ""}};
  absl::Status walked = AddTreeAt(*handler, stack.dir + "/" + fn.handler, "home/app", &fn_entries);
  if (!walked.ok())
    return named(absl::Status(walked.code(), absl::StrCat("handler: ", walked.message())));
  absl::StatusOr<Layer> fn_layer = WriteLayer(std::move(fn_entries), o.source_date_epoch, blob_dir);
  if (!fn_layer.ok()) return named(fn_layer.status());
  layers.push_back(std::move(*fn_layer));

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
  for (Layer& l : layers) {
    config.diff_ids.push_back(l.diff_id);
    img.layers.push_back(std::move(l.blob));
  }
  absl::StatusOr<registry::Descriptor> config_blob =
      WriteBlob(blob_dir, registry::kMediaTypeOciConfig, ConfigJson(config));
  if (!config_blob.ok()) return named(config_blob.status());
  img.config = std::move(*config_blob);
  nlohmann::json layer_list = nlohmann::json::array();
  for (const registry::Descriptor& l : img.layers) layer_list.push_back(DescriptorJson(l));
  nlohmann::json manifest = {{"schemaVersion", 2},
                             {"mediaType", registry::kMediaTypeOciManifest},
                             {"config", DescriptorJson(img.config)},
                             {"layers", layer_list}};
  absl::StatusOr<registry::Descriptor> manifest_blob =
      WriteBlob(blob_dir, registry::kMediaTypeOciManifest, manifest.dump());
  if (!manifest_blob.ok()) return named(manifest_blob.status());
  img.manifest = std::move(*manifest_blob);
  img.manifest.platform = registry::Platform{"linux", config.architecture, config.variant};
  return img;
}

absl::Status WriteLayout(const std::string& dir, const std::vector<BuiltImage>& images) {
  absl::Status s = WriteFile(dir + "/oci-layout", kOciLayout);
  if (!s.ok()) return s;
  return WriteFile(dir + "/index.json", IndexJson(images));
}

absl::Status WriteArchive(const std::string& path, const std::string& layout_dir,
                          const std::vector<BuiltImage>& images) {
  UniqueFd layout(::open(layout_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!layout) return absl::NotFoundError(absl::StrCat(layout_dir, ": ", std::strerror(errno)));
  auto dir = std::make_shared<const UniqueFd>(std::move(layout));
  std::vector<TarEntry> entries;
  entries.push_back({"oci-layout", TarEntry::Type::kFile, 0644, kOciLayout, ""});
  entries.push_back({"index.json", TarEntry::Type::kFile, 0644, IndexJson(images), ""});
  for (const BuiltImage& img : images) {
    std::vector<registry::Descriptor> blobs = img.layers;
    blobs.push_back(img.config);
    blobs.push_back(img.manifest);
    for (const registry::Descriptor& d : blobs) {
      const std::string rel = absl::StrCat("blobs/sha256/", d.digest.substr(7));
      entries.push_back({rel, TarEntry::Type::kFile, 0644, "", "", dir, rel, d.size});
    }
  }
  UniqueFd out(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!out) return absl::InternalError(absl::StrCat("write ", path, ": ", std::strerror(errno)));
  absl::Status s = StreamTar(std::move(entries), 0, [&](std::string_view b) -> absl::Status {
    while (!b.empty()) {
      ssize_t n = ::write(out.get(), b.data(), b.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0)
        return absl::InternalError(absl::StrCat("write ", path, ": ", std::strerror(errno)));
      b.remove_prefix(static_cast<size_t>(n));
    }
    return absl::OkStatus();
  });
  if (!s.ok()) ::unlink(path.c_str());
  return s;
}

}  // namespace faasd::builder
