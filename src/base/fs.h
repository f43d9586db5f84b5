// Opening files inside a directory that someone else controls: a container's root file system
// made from an image, or a stack.yml folder from a cloned repository. Nothing opened here may be
// reached through a symlink or ".." that leads out of that directory, and reads never block on a
// FIFO or a device, nor grow without a bound.
//
// The kernel's openat2(2) does the resolution where it exists (Linux 5.6+); older kernels get an
// equivalent component-by-component walk over O_PATH descriptors. Both are exposed so tests can
// hold them to the same cases. All functions are thread-safe; descriptors are O_CLOEXEC.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace faasd {

// An owned file descriptor, closed on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd();
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

enum class Confine {
  // Symlinks and ".." resolve as if `root` were "/": an absolute symlink target, or ".." at
  // the top, stays inside (what a process chrooted there would see). For container root fs.
  kInRoot,
  // Any step that would leave `root` (absolute target, ".." above it) fails with
  // PermissionDenied. For a source tree: a handler folder outside the stack folder is refused.
  kBeneath,
};

// Opens `path` (relative, or absolute meaning relative to `root`) below the directory `root_fd`.
// `flags` are open(2) flags; O_NOFOLLOW applies to the last component too. NotFound when a
// component is missing; PermissionDenied, naming `path`, for an escape under kBeneath;
// InvalidArgument for a symlink loop (more than 40 links). Crossing into another mount is
// refused too (an image cannot mount anything; a source tree should not need to).
absl::StatusOr<UniqueFd> OpenConfined(int root_fd, const std::string& path, int flags,
                                      Confine mode);
// The same resolution without openat2, always by walking components. Used by OpenConfined when
// the kernel lacks openat2 (ENOSYS); public for tests.
absl::StatusOr<UniqueFd> OpenConfinedByWalk(int root_fd, const std::string& path, int flags,
                                            Confine mode);

// Reads the whole of an open file, which must be a regular file (FailedPrecondition naming
// `what` otherwise: a FIFO, socket, device or directory) of at most `max_bytes`
// (ResourceExhausted naming the limit).
absl::StatusOr<std::string> ReadRegularFile(int fd, size_t max_bytes, const std::string& what);

// OpenConfined(root_fd, path, O_RDONLY | O_NONBLOCK, mode) then ReadRegularFile: symlinks are
// followed, confined; a FIFO cannot block the open and is refused.
absl::StatusOr<std::string> ReadConfinedFile(int root_fd, const std::string& path, Confine mode,
                                             size_t max_bytes);

// The text of a small file such as /proc/self/stat or a pid file (procfs files report size 0:
// this reads to the end), through ReadRegularFile; "" when it cannot be opened or read or holds
// more than `max_bytes`.
std::string ReadSmallFile(const std::string& path, size_t max_bytes = 1 << 20);

// Between fork and exec (async-signal-safe): marks every descriptor from `first_fd` up
// close-on-exec, so none that other threads opened without O_CLOEXEC (Asio's sockets) leaks
// into the program; on a kernel without close_range(CLOSE_RANGE_CLOEXEC) closes them instead,
// all but `keep_fd`.
void CloseOnExecFrom(int first_fd, int keep_fd = -1);

}  // namespace faasd
