// RotatingFile: appends and rotation that stay within max_bytes per file with many writers.
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "logs/logs.h"

namespace faasd::logs {
namespace {

absl::Status Errno(absl::string_view what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

int OpenAppend(const std::string& path) {
  return ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
}

// flock that survives EINTR.
void Flock(int fd, int op) {
  while (::flock(fd, op) != 0 && errno == EINTR) {
  }
}

}  // namespace

absl::Status CheckRotationOptions(const RotationOptions& o) {
  if (o.max_bytes < kMinFileBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("log file size ", o.max_bytes, " is below the minimum of ", kMinFileBytes));
  }
  if (o.files < 1 || o.files > kMaxFiles) {
    return absl::InvalidArgumentError(
        absl::StrCat("log file count ", o.files, " is not between 1 and ", kMaxFiles));
  }
  return absl::OkStatus();
}

absl::Status MakeDirs(const std::string& dir, mode_t mode) {
  for (size_t i = 1; i <= dir.size(); ++i) {
    if (i != dir.size() && dir[i] != '/') continue;
    const std::string part = dir.substr(0, i);
    if (::mkdir(part.c_str(), mode) != 0 && errno != EEXIST) return Errno("mkdir", part);
  }
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return Errno("stat", dir);
  if (!S_ISDIR(st.st_mode)) return absl::FailedPreconditionError(dir + ": not a directory");
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<RotatingFile>> RotatingFile::Open(std::string path,
                                                                 RotationOptions o) {
  if (absl::Status s = CheckRotationOptions(o); !s.ok()) return s;
  const std::string lock_path = path + ".lock";
  int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0) return Errno("open", lock_path);
  int fd = OpenAppend(path);
  if (fd < 0) {
    absl::Status s = Errno("open", path);
    ::close(lock_fd);
    return s;
  }
  return std::unique_ptr<RotatingFile>(new RotatingFile(std::move(path), o, fd, lock_fd));
}

RotatingFile::RotatingFile(std::string path, RotationOptions o, int fd, int lock_fd)
    : path_(std::move(path)), options_(o), fd_(fd), lock_fd_(lock_fd) {}

RotatingFile::~RotatingFile() {
  absl::MutexLock l(&mu_);
  if (fd_ >= 0) ::close(fd_);
  ::close(lock_fd_);
}

absl::Status RotatingFile::Reopen() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = OpenAppend(path_);
  if (fd_ < 0) return Errno("open", path_);
  return absl::OkStatus();
}

absl::Status RotatingFile::Rotate() {
  // Oldest first: drop path.<files-1> and anything past it (left by a larger --log-files),
  // then shift each file up by one.
  for (int n = options_.files - 1;; ++n) {
    if (n == 0) continue;  // files == 1: the current file itself is dropped below
    const std::string old = absl::StrCat(path_, ".", n);
    if (::unlink(old.c_str()) != 0 && errno == ENOENT && n > options_.files - 1) break;
  }
  for (int n = options_.files - 2; n >= 1; --n) {
    const std::string from = absl::StrCat(path_, ".", n);
    if (::rename(from.c_str(), absl::StrCat(path_, ".", n + 1).c_str()) != 0 && errno != ENOENT) {
      return Errno("rename", from);
    }
  }
  if (options_.files == 1) {
    if (::unlink(path_.c_str()) != 0 && errno != ENOENT) return Errno("unlink", path_);
  } else if (::rename(path_.c_str(), (path_ + ".1").c_str()) != 0 && errno != ENOENT) {
    return Errno("rename", path_);
  }
  return Reopen();
}

absl::Status RotatingFile::WritePiece(absl::string_view piece, uint64_t* size) {
  if (*size > 0 && *size + piece.size() > options_.max_bytes) {
    if (absl::Status s = Rotate(); !s.ok()) return s;
    *size = 0;
  }
  while (!piece.empty()) {
    ssize_t n = ::write(fd_, piece.data(), piece.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Errno("write", path_);
    *size += static_cast<uint64_t>(n);
    piece.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status RotatingFile::Append(absl::string_view lines) {
  if (lines.empty()) return absl::OkStatus();
  absl::MutexLock l(&mu_);
  Flock(lock_fd_, LOCK_EX);
  struct Unlock {
    int fd;
    ~Unlock() { Flock(fd, LOCK_UN); }
  } unlock{lock_fd_};

  // Another writer may have rotated our file away (or someone deleted it): follow the path.
  struct stat at_path, ours;
  if (fd_ < 0 || ::fstat(fd_, &ours) != 0 || ::stat(path_.c_str(), &at_path) != 0 ||
      at_path.st_ino != ours.st_ino || at_path.st_dev != ours.st_dev) {
    if (absl::Status s = Reopen(); !s.ok()) return s;
    if (::fstat(fd_, &ours) != 0) return Errno("stat", path_);
  }
  uint64_t size = static_cast<uint64_t>(ours.st_size);
  const uint64_t max = options_.max_bytes;
  while (!lines.empty()) {
    // Take as many whole lines as fit in one file; a single longer line is cut to fit.
    absl::string_view piece = lines;
    if (piece.size() > max) {
      const size_t nl = piece.substr(0, max).rfind('\n');
      if (nl != absl::string_view::npos) {
        piece = piece.substr(0, nl + 1);
      } else {
        const size_t end = lines.find('\n');
        std::string cut(lines.substr(0, max - 1));
        cut.push_back('\n');
        if (absl::Status s = WritePiece(cut, &size); !s.ok()) return s;
        lines.remove_prefix(end == absl::string_view::npos ? lines.size() : end + 1);
        continue;
      }
    }
    if (absl::Status s = WritePiece(piece, &size); !s.ok()) return s;
    lines.remove_prefix(piece.size());
  }
  return absl::OkStatus();
}

}  // namespace faasd::logs
