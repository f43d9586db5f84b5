#include "provider/rootfs.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/fs.h"

namespace faasd::provider {
namespace {

constexpr size_t kMaxFileBytes = 1 << 20;

}  // namespace

absl::StatusOr<std::map<std::string, std::string>> ReadRootfsFiles(
    const containerd::Mounts& mounts, const std::vector<std::string>& paths,
    const std::string& scratch_dir) {
  if (mounts.size() != 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("rootfs: expected one mount, got ", mounts.size()));
  }
  const auto& m = mounts[0];
  ::mkdir(scratch_dir.c_str(), 0700);
  std::string dir = absl::StrCat(scratch_dir, "/rootfs-XXXXXX");
  if (::mkdtemp(dir.data()) == nullptr) {
    return absl::InternalError(
        absl::StrCat("rootfs: mkdtemp in ", scratch_dir, ": ", std::strerror(errno)));
  }
  // Read-only, and nothing on it may run or open a device: we only read two text files.
  unsigned long flags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;
  std::vector<std::string> data;
  for (const auto& opt : m.options()) {
    if (opt == "ro" || opt == "rw")
      continue;
    else if (opt == "bind")
      flags |= MS_BIND;
    else if (opt == "rbind")
      flags |= MS_BIND | MS_REC;
    else
      data.push_back(opt);
  }
  std::string data_str = absl::StrJoin(data, ",");
  std::string type = m.type() == "bind" ? "" : m.type();
  if (::mount(m.source().c_str(), dir.c_str(), type.empty() ? nullptr : type.c_str(), flags,
              data_str.empty() ? nullptr : data_str.c_str()) != 0) {
    int err = errno;
    ::rmdir(dir.c_str());
    return absl::InternalError(
        absl::StrCat("rootfs: mount ", m.type(), " at ", dir, ": ", std::strerror(err)));
  }
  // Every path resolves as inside the container: an image's `etc -> /etc` symlink leads to its
  // own /etc, never the host's; FIFOs and devices are refused rather than read.
  absl::Status failed;
  std::map<std::string, std::string> out;
  {
    UniqueFd root(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!root)
      failed = absl::InternalError(absl::StrCat("rootfs: open ", dir, ": ", std::strerror(errno)));
    for (const auto& p : paths) {
      if (!failed.ok()) break;
      absl::StatusOr<std::string> content =
          ReadConfinedFile(root.get(), p, Confine::kInRoot, kMaxFileBytes);
      if (content.ok()) {
        out[p] = std::move(*content);
      } else if (content.status().code() == absl::StatusCode::kNotFound ||
                 content.status().code() == absl::StatusCode::kInvalidArgument) {
        out[p] = "";  // missing, or a symlink loop such as `etc -> /etc`: as Docker, no file
      } else {
        failed =
            absl::InvalidArgumentError(absl::StrCat("image file ", content.status().message()));
      }
    }
  }
  if (::umount2(dir.c_str(), MNT_DETACH) != 0) {
    return absl::InternalError(absl::StrCat("rootfs: umount ", dir, ": ", std::strerror(errno)));
  }
  ::rmdir(dir.c_str());
  if (!failed.ok()) return failed;
  return out;
}

}  // namespace faasd::provider
