// Private to src/builder: the reproducible pieces an image is made of. Tar archives are written
// by libarchive (pax restricted: ustar, with PAX records only for long names) from an explicit
// entry list, never from the file system's own metadata, so the bytes depend only on paths,
// contents, normalized modes and one fixed mtime: entries sorted by path, uid/gid 0, no user or
// group names. Gzip (zlib) carries no name and a zero timestamp.
//
// Layers stream: file contents are read from disk as the tar is written, the tar goes through
// gzip into the blob file, and both digests are computed on the way. A build holds a few buffers,
// never a layer, whatever the handler's size.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "base/fs.h"
#include "registry/registry.h"

namespace faasd::builder {

struct TarEntry {
  enum class Type { kDir, kFile, kSymlink };
  std::string path;  // relative, no leading '/', no trailing '/': "bin/busybox"
  Type type = Type::kFile;
  uint32_t mode = 0644;  // permission bits only (07777)
  std::string data;      // file contents, unless `source_path` is set
  std::string link;      // symlink target
  // Contents read from disk when the tar is written: `source_path` below `source_dir`, confined
  // to it and never through a symlink (for trees we were handed), or an absolute path of ours
  // (busybox, the watchdog) when `source_dir` is null. The file must still be a regular file of
  // `source_size` bytes then, or the write fails naming it.
  std::shared_ptr<const UniqueFd> source_dir = nullptr;
  std::string source_path = "";
  int64_t source_size = 0;
};

// Receives archive bytes as they are produced.
using ByteSink = std::function<absl::Status(std::string_view)>;

// Streams the archive of `entries` into `sink`: entries sorted by path, missing parent
// directories added (0755), duplicate paths resolved in favour of the last one given.
// InvalidArgument for absolute paths, "..", empty components or a path that is both a file and a
// parent.
absl::Status StreamTar(std::vector<TarEntry> entries, int64_t mtime, const ByteSink& sink);
// StreamTar into memory (tests, small archives).
absl::StatusOr<std::string> WriteTar(std::vector<TarEntry> entries, int64_t mtime);

// Entries of a tar archive (any format libarchive reads; regular files, directories, symlinks).
// Used by tests.
absl::StatusOr<std::vector<TarEntry>> ReadTar(std::string_view archive);

// gzip (RFC 1952) with mtime 0, no file name, OS "unknown": same input, same bytes.
absl::StatusOr<std::string> Gzip(std::string_view data);
// Inflates gzip data; ResourceExhausted past max_bytes.
absl::StatusOr<std::string> Gunzip(std::string_view data, size_t max_bytes);

// Writes one content-addressed blob into an OCI layout's blobs/sha256 folder: bytes go to a
// temporary file while their digest is computed, which Finish() renames to the digest. A blob
// not finished is removed.
class BlobWriter {
 public:
  explicit BlobWriter(std::string blob_dir);
  ~BlobWriter();
  BlobWriter(const BlobWriter&) = delete;
  BlobWriter& operator=(const BlobWriter&) = delete;

  absl::Status Write(std::string_view bytes);
  absl::StatusOr<registry::Descriptor> Finish(std::string media_type);

 private:
  std::string dir_, tmp_;
  UniqueFd fd_;
  registry::Sha256Hasher hash_;
  int64_t size_ = 0;
};

// A small document (config, manifest) as a blob.
absl::StatusOr<registry::Descriptor> WriteBlob(const std::string& blob_dir, std::string media_type,
                                               std::string_view bytes);

struct Layer {
  registry::Descriptor blob;  // the gzipped tar
  std::string diff_id;        // sha256 of the tar
};
// StreamTar through gzip into a blob.
absl::StatusOr<Layer> WriteLayer(std::vector<TarEntry> entries, int64_t mtime,
                                 const std::string& blob_dir);
// A layer whose tar is a given tarball, verbatim after decompression (gzip, xz, zstd, bzip2).
// InvalidArgument when it is not a tar archive.
absl::StatusOr<Layer> WriteLayerFromTarball(const std::string& tarball,
                                            const std::string& blob_dir);

// Adds the tree below the directory `dir` to `entries` below `dest` ("home/app"), contents to
// be read when the layer is written. Modes are normalized: directories 0755, files 0755 when the
// owner may execute them else 0644, symlinks as they are (kept as symlinks, target verbatim,
// never followed). Sockets, devices and FIFOs are an error naming the path.
// `shown` names the directory in errors.
absl::Status AddTreeAt(std::shared_ptr<const UniqueFd> dir, const std::string& shown,
                       const std::string& dest, std::vector<TarEntry>* entries);
// AddTreeAt for the directory at `src_dir` (NotFound when it is not one).
absl::Status AddTree(const std::string& src_dir, const std::string& dest,
                     std::vector<TarEntry>* entries);

// The default base: the static busybox at `busybox` as /bin/busybox, a symlink per applet it
// reports (`busybox --list-full`), /bin/sh, and a minimal /etc, /tmp, /home/app, /root.
absl::StatusOr<std::vector<TarEntry>> BusyboxBase(const std::string& busybox);

// Image config (OCI image-spec config JSON), with keys in a stable order.
struct ConfigInput {
  std::string architecture, os = "linux", variant;
  std::vector<std::string> entrypoint, env;
  std::string working_dir;
  std::vector<std::string> exposed_ports;
  std::map<std::string, std::string> labels;
  std::vector<std::string> diff_ids;
  int64_t created = 0;  // seconds since the epoch
};
std::string ConfigJson(const ConfigInput& in);

// RFC 3339 UTC for `seconds`: "1970-01-01T00:00:00Z".
std::string Rfc3339(int64_t seconds);

}  // namespace faasd::builder
