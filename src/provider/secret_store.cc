#include "provider/secret_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/fs.h"
#include "base/private_files.h"
#include "provider/types.h"

namespace faasd::provider {
namespace {

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

}  // namespace

SecretStore::SecretStore(std::string root) : root_(std::move(root)) {}

absl::Status SecretStore::Init() {
  absl::Status s = EnsurePrivateDir(root_, 0700);
  if (!s.ok()) return s;
  DIR* d = ::opendir(root_.c_str());
  if (d == nullptr) return Errno(absl::StrCat("open ", root_));
  std::vector<std::string> namespaces;
  while (struct dirent* de = ::readdir(d)) {
    if (de->d_name[0] != '.') namespaces.push_back(de->d_name);
  }
  ::closedir(d);
  for (const std::string& ns : namespaces) {
    s = EnsurePrivateDir(absl::StrCat(root_, "/", ns), 0700);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

std::string SecretStore::Path(const std::string& ns, const std::string& name) const {
  return absl::StrCat(root_, "/", ns, "/", name);
}

absl::StatusOr<std::vector<std::string>> SecretStore::List(const std::string& ns) const {
  std::vector<std::string> out;
  DIR* d = ::opendir(absl::StrCat(root_, "/", ns).c_str());
  if (d == nullptr) {
    if (errno == ENOENT) return out;
    return Errno(absl::StrCat("list secrets of ", ns));
  }
  while (struct dirent* de = ::readdir(d)) {
    std::string n = de->d_name;
    if (n[0] != '.' && ValidateName("secret name", n).ok()) out.push_back(n);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

bool SecretStore::Exists(const std::string& ns, const std::string& name) const {
  struct stat st;
  return ::lstat(Path(ns, name).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

absl::Status SecretStore::Write(const std::string& ns, const std::string& name,
                                const std::string& value, bool must_exist) {
  if (value.size() > kMaxSecretBytes) {
    return absl::InvalidArgumentError(absl::StrCat("secret \"", name, "\": ", value.size(),
                                                   " bytes, over the limit of ", kMaxSecretBytes));
  }
  const bool exists = Exists(ns, name);
  if (must_exist && !exists) {
    return absl::NotFoundError(absl::StrCat("secret \"", name, "\" not found in namespace ", ns));
  }
  if (!must_exist && exists) {
    return absl::AlreadyExistsError(
        absl::StrCat("secret \"", name, "\" already exists in namespace ", ns));
  }
  const std::string dir = absl::StrCat(root_, "/", ns);
  absl::Status s = EnsurePrivateDir(dir, 0700);
  if (!s.ok()) return s;
  return WriteFileAtomic(dir, name, value, 0400, ::geteuid(), ::getegid());
}

absl::Status SecretStore::Create(const std::string& ns, const std::string& name,
                                 const std::string& value) {
  absl::MutexLock l(&mu_);
  return Write(ns, name, value, /*must_exist=*/false);
}

absl::Status SecretStore::Update(const std::string& ns, const std::string& name,
                                 const std::string& value) {
  absl::MutexLock l(&mu_);
  return Write(ns, name, value, /*must_exist=*/true);
}

absl::Status SecretStore::Delete(const std::string& ns, const std::string& name) {
  absl::MutexLock l(&mu_);
  if (::unlink(Path(ns, name).c_str()) != 0) {
    if (errno == ENOENT) {
      return absl::NotFoundError(absl::StrCat("secret \"", name, "\" not found in namespace ", ns));
    }
    return Errno(absl::StrCat("delete secret ", name, " of ", ns));
  }
  ::rmdir(absl::StrCat(root_, "/", ns).c_str());  // only succeeds once empty
  return absl::OkStatus();
}

absl::StatusOr<std::string> SecretStore::Read(const std::string& ns,
                                              const std::string& name) const {
  UniqueFd root(::open(root_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) return Errno(absl::StrCat("open ", root_));
  absl::StatusOr<std::string> v =
      ReadConfinedFile(root.get(), absl::StrCat(ns, "/", name), Confine::kBeneath, kMaxSecretBytes);
  if (v.status().code() == absl::StatusCode::kNotFound) {
    return absl::NotFoundError(absl::StrCat("secret \"", name, "\" not found in namespace ", ns));
  }
  return v;
}

absl::Status SecretStore::Materialize(const std::string& ns, const std::vector<std::string>& names,
                                      const std::string& dir, uint32_t uid, uint32_t gid) const {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return Errno(absl::StrCat("mkdir ", dir));
  // By descriptor, never following a link: what gets chown-ed, chmod-ed and emptied is this
  // folder, not wherever a symlink in its place points.
  UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dfd) {
    struct stat st;
    if (::lstat(dir.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat(dir, ": is a symbolic link; refusing to put secrets there"));
    }
    return Errno(absl::StrCat("open ", dir));
  }
  if (::fchown(dfd.get(), 0, 0) != 0 || ::fchmod(dfd.get(), 0700) != 0)
    return Errno(absl::StrCat("prepare ", dir));
  // Whatever an earlier container of this id left is dropped: only the named secrets stay.
  if (DIR* d = ::fdopendir(::fcntl(dfd.get(), F_DUPFD_CLOEXEC, 0))) {
    std::vector<std::string> old;
    while (struct dirent* de = ::readdir(d)) {
      if (std::strcmp(de->d_name, ".") != 0 && std::strcmp(de->d_name, "..") != 0)
        old.push_back(de->d_name);
    }
    ::closedir(d);
    for (const std::string& n : old) ::unlinkat(dfd.get(), n.c_str(), 0);
  }
  for (const std::string& name : names) {
    absl::StatusOr<std::string> value = Read(ns, name);
    if (!value.ok()) return value.status();
    absl::Status s = WriteFileAtomic(dir, name, *value, 0400, uid, gid);
    if (!s.ok()) return s;
  }
  if (::fchown(dfd.get(), uid, gid) != 0 || ::fchmod(dfd.get(), 0500) != 0)
    return Errno(absl::StrCat("prepare ", dir));
  return absl::OkStatus();
}

absl::Status SecretStore::Refresh(const std::string& ns, const std::string& name,
                                  const std::string& dir) const {
  struct stat st;
  if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::NotFoundError(absl::StrCat(dir, ": no secrets folder"));
  }
  absl::StatusOr<std::string> value = Read(ns, name);
  if (!value.ok()) return value.status();
  return WriteFileAtomic(dir, name, *value, 0400, st.st_uid, st.st_gid);
}

}  // namespace faasd::provider
