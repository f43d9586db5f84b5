#include "base/private_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"
#include "base/fs.h"

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
