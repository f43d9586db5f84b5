#include "network/netns.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"

namespace faasd::network {
namespace {
constexpr long kNsfsMagic = 0x6e736673;  // NSFS_MAGIC
}

bool IsNetns(const std::string& path) {
  struct statfs fs;
  return ::statfs(path.c_str(), &fs) == 0 && static_cast<long>(fs.f_type) == kNsfsMagic;
}

absl::Status CreateNetns(const std::string& path) {
  if (IsNetns(path)) return absl::AlreadyExistsError(absl::StrCat("netns ", path, " exists"));
  ::unlink(path.c_str());  // a plain file left by a reboot
  int fd = ::open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("netns ", path, ": create: ", std::strerror(errno)));
  }
  ::close(fd);
  // unshare() moves only the calling thread; a short-lived thread does it, pins its new
  // namespace, and takes the namespace switch with it when it exits.
  int err = 0;
  const char* step = "";
  std::thread([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      err = errno;
      step = "unshare";
    } else if (::mount("/proc/thread-self/ns/net", path.c_str(), "none", MS_BIND, nullptr) != 0) {
      err = errno;
      step = "bind mount";
    }
  }).join();
  if (err != 0) {
    ::unlink(path.c_str());
    return absl::InternalError(absl::StrCat("netns ", path, ": ", step, ": ", std::strerror(err)));
  }
  return absl::OkStatus();
}

absl::Status DeleteNetns(const std::string& path) {
  if (IsNetns(path) && ::umount2(path.c_str(), MNT_DETACH) != 0) {
    return absl::InternalError(absl::StrCat("netns ", path, ": unmount: ", std::strerror(errno)));
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return absl::InternalError(absl::StrCat("netns ", path, ": remove: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace faasd::network
