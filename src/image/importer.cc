#include "image/importer.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "image/archive_filters.h"
#include "image/gc_labels.h"
#include "image/puller.h"
#include "registry/registry.h"

namespace faasd::image {
namespace {

constexpr int64_t kMaxDocumentBytes = 8 << 20;
constexpr size_t kChunk = 1 << 20;

std::string RandomHex() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return absl::StrCat(absl::Hex(rng(), absl::kZeroPad16));
}

class Import {
 public:
  Import(containerd::Client& client, std::string layout, containerd::CallScope scope)
      : client_(client), layout_(std::move(layout)), scope_(std::move(scope)) {}

  std::string BlobPath(const std::string& digest) const {
    return absl::StrCat(layout_, "/blobs/", digest.substr(0, digest.find(':')), "/",
                        digest.substr(digest.find(':') + 1));
  }

  absl::StatusOr<std::string> ReadDocument(const registry::Descriptor& d) const {
    if (!registry::IsValidDigest(d.digest))
      return absl::InvalidArgumentError(absl::StrCat("bad digest \"", d.digest, "\""));
    if (d.size > kMaxDocumentBytes)
      return absl::InvalidArgumentError(absl::StrCat("blob ", d.digest, ": too large"));
    std::ifstream in(BlobPath(d.digest), std::ios::binary);
    if (!in) return absl::NotFoundError(absl::StrCat("blob ", d.digest, ": not found"));
    std::ostringstream ss;
    ss << in.rdbuf();
    std::string body = ss.str();
    if (registry::Sha256Digest(body) != d.digest)
      return absl::DataLossError(absl::StrCat("blob ", d.digest, ": content does not match"));
    return body;
  }

  // Streams a blob file into the content store; only labels are added when it is there already.
  // Either way the import's lease holds it from before that check (LeaseService::HoldContent).
  absl::Status Put(const registry::Descriptor& d, const containerd::Labels& labels) {
    if (!registry::IsValidDigest(d.digest))
      return absl::InvalidArgumentError(absl::StrCat("bad digest \"", d.digest, "\""));
    absl::Status held = client_.leases.HoldContent(scope_, d.digest);
    if (!held.ok()) return held;
    auto copy = [&](containerd::ContentWriter& w, containerd::Labels*) -> absl::Status {
      std::ifstream in(BlobPath(d.digest), std::ios::binary);
      if (!in) return absl::NotFoundError(absl::StrCat("blob ", d.digest, ": not found"));
      std::string buf(kChunk, '\0');
      while (in) {
        in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
        std::streamsize n = in.gcount();
        if (n <= 0) break;
        absl::Status s = w.Write(std::string_view(buf.data(), static_cast<size_t>(n)));
        if (!s.ok()) return s;
      }
      if (in.bad()) return absl::DataLossError(absl::StrCat("blob ", d.digest, ": read failed"));
      return absl::OkStatus();
    };
    return client_.content
        .Ingest(scope_, absl::StrCat("faasd-import-", d.digest, "-", RandomHex()), d.digest, d.size,
                labels, copy)
        .status();
  }

  absl::StatusOr<ImportedImage> One(const registry::Descriptor& desc) {
    ImportedImage out;
    auto ann = desc.annotations;
    if (auto it = ann.find("io.containerd.image.name"); it != ann.end()) {
      out.name = it->second;
    } else if (auto it = ann.find("org.opencontainers.image.ref.name"); it != ann.end()) {
      out.name = it->second;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("manifest ", desc.digest, " has no image name annotation"));
    }
    absl::StatusOr<registry::Reference> ref = registry::Reference::Parse(out.name);
    if (!ref.ok()) return ref.status();
    out.name = ref->String();
    out.manifest_digest = desc.digest;
    if (!registry::IsManifestMediaType(desc.media_type))
      return absl::InvalidArgumentError(
          absl::StrCat(out.name, ": ", desc.media_type, " is not an image manifest"));
    absl::StatusOr<std::string> manifest_body = ReadDocument(desc);
    if (!manifest_body.ok()) return manifest_body.status();
    absl::StatusOr<registry::Manifest> manifest = registry::ParseManifest(*manifest_body);
    if (!manifest.ok()) return manifest.status();
    absl::StatusOr<std::string> config_body = ReadDocument(manifest->config);
    if (!config_body.ok()) return config_body.status();
    absl::StatusOr<registry::ImageConfig> config = registry::ParseImageConfig(*config_body);
    if (!config.ok()) return config.status();
    if (config->diff_ids.size() != manifest->layers.size())
      return absl::InvalidArgumentError(absl::StrCat(out.name, ": manifest has ",
                                                     manifest->layers.size(), " layers, config ",
                                                     config->diff_ids.size(), " diff IDs"));
    for (size_t i = 0; i < manifest->layers.size(); ++i) {
      absl::Status s =
          Put(manifest->layers[i], {{"containerd.io/uncompressed", config->diff_ids[i]}});
      if (!s.ok()) return s;
    }
    std::vector<std::string> chain = registry::ChainIds(config->diff_ids);
    out.chain_id = chain.empty() ? "" : chain.back();
    absl::Status s =
        Put(manifest->config, ConfigGcLabels(client_.snapshots.snapshotter(), out.chain_id));
    if (!s.ok()) return s;
    s = Put(desc, ManifestGcLabels(*manifest));
    if (!s.ok()) return s;
    containerd::api::services::images::v1::Image record;
    record.set_name(out.name);
    record.mutable_target()->set_media_type(desc.media_type);
    record.mutable_target()->set_digest(desc.digest);
    record.mutable_target()->set_size(desc.size);
    s = client_.images.Put(scope_, record);
    if (!s.ok()) return s;
    return out;
  }

 private:
  containerd::Client& client_;
  const std::string layout_;
  const containerd::CallScope scope_;
};

absl::Status Named(const std::string& layout, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat("import ", layout, ": ", s.message()));
}

}  // namespace

absl::StatusOr<std::vector<ImportedImage>> ImportOciLayout(containerd::Client& client,
                                                           const std::string& ns,
                                                           const std::string& layout_dir) {
  std::ifstream in(layout_dir + "/index.json", std::ios::binary);
  if (!in) return Named(layout_dir, absl::NotFoundError("index.json: cannot read"));
  std::ostringstream text;
  text << in.rdbuf();
  absl::StatusOr<registry::Index> index = registry::ParseIndex(text.str());
  if (!index.ok()) return Named(layout_dir, index.status());
  if (index->manifests.empty())
    return Named(layout_dir, absl::InvalidArgumentError("index.json lists no manifests"));

  containerd::CallScope lease_scope{ns, "", absl::Seconds(10)};
  absl::StatusOr<std::string> lease = client.leases.Create(lease_scope, absl::Hours(1));
  if (!lease.ok()) return Named(layout_dir, lease.status());
  containerd::CallScope scope{ns, *lease, absl::Minutes(10)};
  Import import(client, layout_dir, scope);
  std::vector<ImportedImage> out;
  absl::Status failed;
  for (const registry::Descriptor& d : index->manifests) {
    absl::StatusOr<ImportedImage> img = import.One(d);
    if (!img.ok()) {
      failed = Named(layout_dir, img.status());
      break;
    }
    out.push_back(std::move(*img));
  }
  // Unpack with the puller's content-store path (no registry is contacted with policy Never):
  // it creates the snapshots under the chain IDs the config's GC label names.
  if (failed.ok()) {
    registry::RegistryClient no_registry(registry::RegistryOptions{});
    ImagePuller puller(client, no_registry, ns, registry::Platform::Host());
    for (const ImportedImage& img : out) {
      absl::StatusOr<PulledImage> unpacked = puller.Pull(img.name, PullPolicy::kNever);
      if (!unpacked.ok()) {
        failed = Named(layout_dir, unpacked.status());
        break;
      }
    }
  }
  absl::Status del = client.leases.Delete(lease_scope, *lease);
  if (!del.ok()) LogWarning("import ", layout_dir, ": ", del.message());
  if (!failed.ok()) return failed;
  return out;
}

namespace {

// Unpacks the layout tar at `archive` into `dir` (which exists and is empty).
absl::Status ExtractLayout(const std::string& archive, const std::string& dir) {
  struct archive* a = archive_read_new();
  archive_read_support_format_tar(a);
  SupportArchiveFilters(a);
  absl::Status status;
  if (archive_read_open_filename(a, archive.c_str(), 1 << 16) != ARCHIVE_OK) {
    status = absl::InvalidArgumentError(archive_error_string(a));
  }
  struct archive_entry* entry = nullptr;
  while (status.ok()) {
    const int r = archive_read_next_header(a, &entry);
    if (r == ARCHIVE_EOF) break;
    if (r != ARCHIVE_OK) {
      status = absl::InvalidArgumentError(archive_error_string(a));
      break;
    }
    std::string path = archive_entry_pathname(entry);
    while (path.rfind("./", 0) == 0) path = path.substr(2);
    while (!path.empty() && path.back() == '/') path.pop_back();
    if (path.empty() || path == ".") continue;
    if (path[0] == '/' || path == ".." || path.rfind("../", 0) == 0 ||
        path.find("/../") != std::string::npos || absl::EndsWith(path, "/..")) {
      status = absl::InvalidArgumentError(absl::StrCat("entry \"", path, "\" leaves the layout"));
      break;
    }
    const std::string target = absl::StrCat(dir, "/", path);
    const mode_t type = archive_entry_filetype(entry);
    if (type == AE_IFDIR) {
      if (::mkdir(target.c_str(), 0755) != 0 && errno != EEXIST) {
        status = absl::InternalError(absl::StrCat("mkdir ", target, ": ", std::strerror(errno)));
      }
      continue;
    }
    if (type != AE_IFREG) continue;  // a layout holds folders and files only
    // Parents of a file listed before its folder.
    for (size_t i = dir.size() + 1; i < target.size(); ++i) {
      if (target[i] == '/') ::mkdir(target.substr(0, i).c_str(), 0755);
    }
    const int fd =
        ::open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
      status = absl::InternalError(absl::StrCat("create ", target, ": ", std::strerror(errno)));
      break;
    }
    const void* buf = nullptr;
    size_t size = 0;
    la_int64_t offset = 0;
    int rr;
    while ((rr = archive_read_data_block(a, &buf, &size, &offset)) == ARCHIVE_OK) {
      if (::pwrite(fd, buf, size, offset) != static_cast<ssize_t>(size)) {
        status = absl::InternalError(absl::StrCat("write ", target, ": ", std::strerror(errno)));
        break;
      }
    }
    if (status.ok() && rr != ARCHIVE_EOF)
      status = absl::InvalidArgumentError(archive_error_string(a));
    ::close(fd);
  }
  archive_read_free(a);
  return status;
}

void RemoveTree(const std::string& dir) {
  ::nftw(
      dir.c_str(),
      [](const char* path, const struct stat*, int, struct FTW*) { return ::remove(path); }, 16,
      FTW_DEPTH | FTW_PHYS);
}

}  // namespace

absl::StatusOr<std::vector<ImportedImage>> ImportOciArchive(containerd::Client& client,
                                                            const std::string& ns,
                                                            const std::string& archive_path,
                                                            const std::string& scratch_dir) {
  ::mkdir(scratch_dir.c_str(), 0700);
  std::string dir = absl::StrCat(scratch_dir, "/import-XXXXXX");
  if (::mkdtemp(dir.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("import ", archive_path, ": mkdtemp in ", scratch_dir,
                                            ": ", std::strerror(errno)));
  }
  absl::Status s = ExtractLayout(archive_path, dir);
  absl::StatusOr<std::vector<ImportedImage>> imported =
      s.ok() ? ImportOciLayout(client, ns, dir)
             : absl::StatusOr<std::vector<ImportedImage>>(absl::Status(
                   s.code(), absl::StrCat("import ", archive_path, ": ", s.message())));
  RemoveTree(dir);
  return imported;
}

}  // namespace faasd::image
