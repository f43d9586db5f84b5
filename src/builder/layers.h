// Private to src/builder: the reproducible pieces an image is made of. Tar archives are written
// from an explicit entry list, never from the file system's own metadata, so the bytes depend only
// on paths, contents, normalized modes and one fixed mtime: entries sorted by path, uid/gid 0,
// empty user/group names, PAX headers (also with fixed fields) for long names. Gzip carries no
// name and a zero timestamp. Everything is built in memory: images of functions are small, and
// one pass over bytes we already hold is simpler than streaming two digests.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace faasd::builder {

struct TarEntry {
  enum class Type { kDir, kFile, kSymlink };
  std::string path;  // relative, no leading '/', no trailing '/': "bin/busybox"
  Type type = Type::kFile;
  uint32_t mode = 0644;  // permission bits only (07777)
  std::string data;      // file contents
  std::string link;      // symlink target
};

// The archive bytes: entries sorted by path, missing parent directories added (0755), duplicate
// paths resolved in favour of the last one given. InvalidArgument for absolute paths, "..",
// empty components or a path that is both a file and a parent.
absl::StatusOr<std::string> WriteTar(std::vector<TarEntry> entries, int64_t mtime);

// Entries of a tar archive (regular files, directories, symlinks; what WriteTar writes and what
// common tools write, ustar + PAX path/linkpath). Used by tests and by --base tarballs.
absl::StatusOr<std::vector<TarEntry>> ReadTar(std::string_view archive);

// gzip (RFC 1952) with mtime 0, no file name, OS "unknown": same input, same bytes.
absl::StatusOr<std::string> Gzip(std::string_view data);
// Inflates gzip data; ResourceExhausted past max_bytes.
absl::StatusOr<std::string> Gunzip(std::string_view data, size_t max_bytes);

// Adds the tree under `src_dir` to `entries` below `dest` ("home/app"). Modes are normalized:
// directories 0755, files 0755 when the owner may execute them else 0644, symlinks as they are
// (target kept verbatim). Sockets, devices and FIFOs are an error naming the path.
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

// Reads a whole file; NotFound or DataLoss name the path.
absl::StatusOr<std::string> ReadFile(const std::string& path);

}  // namespace faasd::builder
