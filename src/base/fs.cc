#include "base/fs.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace faasd {
namespace {

constexpr int kMaxLinks = 40;  // as the kernel's own limit (MAXSYMLINKS)

absl::Status Errno(int err, const std::string& path) {
  std::string msg = absl::StrCat(path, ": ", std::strerror(err));
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(msg);
    case ELOOP:
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": too many symlinks, or a symlink where none may be"));
    case EXDEV:
      return absl::PermissionDeniedError(
          absl::StrCat(path, ": leads out of its directory (symlink, '..' or another mount)"));
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(msg);
    default:
      return absl::InternalError(msg);
  }
}

absl::Status Escape(const std::string& path) { return Errno(EXDEV, path); }

std::deque<std::string> Components(absl::string_view path) {
  std::deque<std::string> out;
  for (absl::string_view c : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    if (c != ".") out.emplace_back(c);
  }
  return out;
}

}  // namespace

UniqueFd& UniqueFd::operator=(UniqueFd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.release();
  }
  return *this;
}

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

absl::StatusOr<UniqueFd> OpenConfinedByWalk(int root_fd, const std::string& path, int flags,
                                            Confine mode) {
  if (mode == Confine::kBeneath && !path.empty() && path.front() == '/') return Escape(path);
  struct stat root_st;
  if (::fstat(root_fd, &root_st) != 0) return Errno(errno, path);
  std::deque<std::string> todo = Components(path);
  std::vector<UniqueFd> stack;  // directories entered below root_fd; empty = at root
  auto cur = [&] { return stack.empty() ? root_fd : stack.back().get(); };
  int links = 0;
  while (!todo.empty()) {
    const std::string c = std::move(todo.front());
    todo.pop_front();
    if (c == "..") {
      if (!stack.empty()) {
        stack.pop_back();
      } else if (mode == Confine::kBeneath) {
        return Escape(path);
      }
      continue;
    }
    const bool last = todo.empty();
    UniqueFd step(::openat(cur(), c.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!step) return Errno(errno, path);
    struct stat st;
    if (::fstat(step.get(), &st) != 0) return Errno(errno, path);
    if (st.st_dev != root_st.st_dev) return Escape(path);
    if (S_ISLNK(st.st_mode)) {
      if (last && (flags & O_NOFOLLOW)) return Errno(ELOOP, path);
      if (++links > kMaxLinks) return Errno(ELOOP, path);
      char buf[4096];
      ssize_t n = ::readlinkat(step.get(), "", buf, sizeof buf);
      if (n < 0) return Errno(errno, path);
      absl::string_view target(buf, static_cast<size_t>(n));
      if (!target.empty() && target.front() == '/') {
        if (mode == Confine::kBeneath) return Escape(path);
        stack.clear();
      }
      std::deque<std::string> more = Components(target);
      todo.insert(todo.begin(), more.begin(), more.end());
      continue;
    }
    if (last) {
      // Opened again by name with the caller's flags: O_NOFOLLOW refuses a symlink swapped in
      // since the check above.
      UniqueFd fd(::openat(cur(), c.c_str(), flags | O_NOFOLLOW | O_CLOEXEC));
      if (!fd) return Errno(errno, path);
      return fd;
    }
    if (!S_ISDIR(st.st_mode)) return Errno(ENOTDIR, path);
    stack.push_back(std::move(step));
  }
  // The path named a directory already entered (or the root itself).
  UniqueFd fd(::openat(cur(), ".", flags | O_CLOEXEC));
  if (!fd) return Errno(errno, path);
  return fd;
}

absl::StatusOr<UniqueFd> OpenConfined(int root_fd, const std::string& path, int flags,
                                      Confine mode) {
  struct open_how how {};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV |
                (mode == Confine::kInRoot ? RESOLVE_IN_ROOT : RESOLVE_BENEATH);
  const std::string rel = path.empty() ? "." : path;
  for (int attempt = 0; attempt < 8; ++attempt) {
    long fd = ::syscall(SYS_openat2, root_fd, rel.c_str(), &how, sizeof how);
    if (fd >= 0) return UniqueFd(static_cast<int>(fd));
    if (errno == ENOSYS) return OpenConfinedByWalk(root_fd, path, flags, mode);
    // EAGAIN: a concurrent rename made the kernel unsure of "..": try again.
    if (errno != EAGAIN && errno != EINTR) return Errno(errno, path);
  }
  return Errno(EAGAIN, path);
}

absl::StatusOr<std::string> ReadRegularFile(int fd, size_t max_bytes, const std::string& what) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return Errno(errno, what);
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(what, ": not a regular file"));
  }
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat(what, ": ", st.st_size, " bytes, over the limit of ", max_bytes));
  }
  std::string out;
  out.resize(static_cast<size_t>(st.st_size));
  size_t got = 0;
  // Bounded by max_bytes + 1 whatever the file does meanwhile (it may grow).
  while (true) {
    if (got == out.size()) {
      if (out.size() > max_bytes) break;
      out.resize(std::min(max_bytes + 1, std::max<size_t>(out.size() * 2, 4096)));
    }
    ssize_t n = ::read(fd, out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Errno(errno, what);
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  if (got > max_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat(what, ": more than the limit of ", max_bytes, " bytes"));
  }
  out.resize(got);
  return out;
}

absl::StatusOr<std::string> ReadConfinedFile(int root_fd, const std::string& path, Confine mode,
                                             size_t max_bytes) {
  absl::StatusOr<UniqueFd> fd = OpenConfined(root_fd, path, O_RDONLY | O_NONBLOCK | O_NOCTTY, mode);
  if (!fd.ok()) return fd.status();
  return ReadRegularFile(fd->get(), max_bytes, path);
}

std::string ReadSmallFile(const std::string& path, size_t max_bytes) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return "";
  absl::StatusOr<std::string> text = ReadRegularFile(fd.get(), max_bytes, path);
  return text.ok() ? *std::move(text) : "";
}

void CloseOnExecFrom(int first_fd, int keep_fd) {
  if (::close_range(static_cast<unsigned>(first_fd), ~0U, CLOSE_RANGE_CLOEXEC) == 0) return;
  for (int fd = first_fd; fd < 65536; ++fd) {
    if (fd != keep_fd) ::close(fd);
  }
}

}  // namespace faasd
