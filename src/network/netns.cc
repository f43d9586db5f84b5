#include "network/netns.h"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"

namespace faasd::network {
namespace {
constexpr long kNsfsMagic = 0x6e736673;  // NSFS_MAGIC

// A new namespace's `lo` is down; functions (of-watchdog http mode, sidecar-style upstreams)
// talk to 127.0.0.1, so bring it up as CNI's loopback plugin would.
bool BringUpLoopback() {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof ifr);
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  bool ok = ::ioctl(fd, SIOCGIFFLAGS, &ifr) == 0;
  if (ok && !(ifr.ifr_flags & IFF_UP)) {
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    ok = ::ioctl(fd, SIOCSIFFLAGS, &ifr) == 0;
  }
  int saved = errno;
  ::close(fd);
  errno = saved;
  return ok;
}
}  // namespace

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
    } else if (!BringUpLoopback()) {
      err = errno;
      step = "bring up lo";
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
