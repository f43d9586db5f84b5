#include "base/private_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"
#include "base/fs.h"
#include "base/log.h"

namespace faasd {
namespace {

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

std::string TempName(const std::string& name) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return absl::StrCat(".", name, ".tmp-", rng() % 1000000000);
}

}  // namespace

absl::Status EnsurePrivateDir(const std::string& path, mode_t mode) {
  if (::mkdir(path.c_str(), mode) == 0) return absl::OkStatus();
  if (errno != EEXIST) return Errno(absl::StrCat("mkdir ", path));
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return Errno(absl::StrCat("stat ", path));
  if (S_ISLNK(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": is a symbolic link; refusing to keep secrets there"));
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": not a directory"));
  }
  if (st.st_uid != ::geteuid()) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": owned by uid ", st.st_uid,
                                                      ", not by the daemon's uid ", ::geteuid(),
                                                      "; refusing to keep secrets there"));
  }
  if ((st.st_mode & 07777) != mode) {
    char had[8], want[8];
    std::snprintf(had, sizeof had, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    std::snprintf(want, sizeof want, "%04o", static_cast<unsigned>(mode));
    LogWarning("secrets: ", path, " had mode ", had, "; setting it to ", want);
    if (::chmod(path.c_str(), mode) != 0) return Errno(absl::StrCat("chmod ", path));
  }
  return absl::OkStatus();
}

absl::Status WriteFileAtomic(const std::string& dir, const std::string& name,
                             const std::string& data, uint32_t mode, uint32_t uid, uint32_t gid) {
  UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dfd) return Errno(absl::StrCat("open ", dir));
  // A fresh name each try: a leftover of a crashed run (or anything planted) is never reused.
  std::string tmp;
  UniqueFd fd;
  for (int attempt = 0; attempt < 8 && !fd; ++attempt) {
    tmp = TempName(name);
    fd = UniqueFd(::openat(dfd.get(), tmp.c_str(),
                           O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd && errno != EEXIST) break;
  }
  if (!fd) return Errno(absl::StrCat("create ", dir, "/", tmp));
  auto fail = [&](const std::string& what) {
    absl::Status s = Errno(absl::StrCat(what, " ", dir, "/", tmp));
    ::unlinkat(dfd.get(), tmp.c_str(), 0);
    return s;
  };
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd.get(), data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail("write");
    off += static_cast<size_t>(n);
  }
  if (::fchown(fd.get(), uid, gid) != 0) return fail("chown");
  if (::fchmod(fd.get(), mode) != 0) return fail("chmod");
  if (::fsync(fd.get()) != 0) return fail("fsync");
  if (::renameat(dfd.get(), tmp.c_str(), dfd.get(), name.c_str()) != 0) return fail("rename");
  if (::fsync(dfd.get()) != 0) return Errno(absl::StrCat("fsync ", dir));
  return absl::OkStatus();
}

}  // namespace faasd
