// LoadOrCreateCredentials: the basic-auth secrets faas-cli logs in with.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "base/private_files.h"
#include "gateway/gateway.h"

namespace faasd::gateway {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr size_t kPasswordLength = 40;

absl::Status ErrnoStatus(const std::string& what, int err) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(err)));
}

// Returns NotFound when the file does not exist.
absl::StatusOr<std::string> ReadTrimmed(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat(path, ": not found"));
    return ErrnoStatus(absl::StrCat("open ", path), errno);
  }
  std::string data;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return ErrnoStatus(absl::StrCat("read ", path), err);
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
    if (data.size() > (1 << 16)) {
      ::close(fd);
      return absl::InvalidArgumentError(absl::StrCat("read ", path, ": file too large"));
    }
  }
  ::close(fd);
  return std::string(absl::StripAsciiWhitespace(data));
}

absl::StatusOr<std::string> RandomPassword() {
  int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("open /dev/urandom", errno);
  unsigned char raw[kPasswordLength];
  size_t got = 0;
  while (got < sizeof(raw)) {
    ssize_t n = ::read(fd, raw + got, sizeof(raw) - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = n < 0 ? errno : EIO;
      ::close(fd);
      return ErrnoStatus("read /dev/urandom", err);
    }
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  std::string out;
  out.reserve(kPasswordLength);
  // 64 symbols: the low 6 bits of each byte are uniform.
  for (unsigned char c : raw) out.push_back(kAlphabet[c & 63]);
  return out;
}

}  // namespace

absl::StatusOr<Credentials> LoadOrCreateCredentials(const std::string& secrets_dir) {
  if (secrets_dir.empty()) return absl::InvalidArgumentError("secrets dir: empty path");
  if (absl::Status s = EnsurePrivateDir(secrets_dir, 0700); !s.ok()) return s;
  // Written atomically under a fresh temporary name, so a crash never leaves half a secret and
  // nothing planted in the folder is written through.
  auto write_secret = [&](const char* name, const std::string& value) {
    return WriteFileAtomic(secrets_dir, name, value, 0600, ::geteuid(), ::getegid());
  };
  Credentials creds;
  const std::string user_path = absl::StrCat(secrets_dir, "/basic-auth-user");
  const std::string password_path = absl::StrCat(secrets_dir, "/basic-auth-password");

  absl::StatusOr<std::string> user = ReadTrimmed(user_path);
  if (user.ok() && !user->empty()) {
    creds.user = *user;
  } else if (user.ok() || absl::IsNotFound(user.status())) {
    creds.user = "admin";
    if (absl::Status s = write_secret("basic-auth-user", creds.user); !s.ok()) return s;
  } else {
    return user.status();
  }

  absl::StatusOr<std::string> password = ReadTrimmed(password_path);
  if (password.ok()) {
    if (password->empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat(password_path, ": empty password; delete the file to generate one"));
    }
    creds.password = *password;
  } else if (absl::IsNotFound(password.status())) {
    absl::StatusOr<std::string> generated = RandomPassword();
    if (!generated.ok()) return generated.status();
    if (absl::Status s = write_secret("basic-auth-password", *generated); !s.ok()) return s;
    creds.password = *generated;
  } else {
    return password.status();
  }
  return creds;
}

}  // namespace faasd::gateway
