#include "provider/rootfs.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace faasd::provider {
namespace {

std::string ReadNoFollow(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return "";
  std::string out;
  char buf[65536];
  while (out.size() < (1 << 20)) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

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
  unsigned long flags = 0;
  std::vector<std::string> data;
  for (const auto& opt : m.options()) {
    if (opt == "ro")
      flags |= MS_RDONLY;
    else if (opt == "rw")
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
  std::map<std::string, std::string> out;
  for (const auto& p : paths) out[p] = ReadNoFollow(dir + p);
  ::umount2(dir.c_str(), MNT_DETACH);
  ::rmdir(dir.c_str());
  return out;
}

}  // namespace faasd::provider
