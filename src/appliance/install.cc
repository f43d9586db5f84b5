// `faasd install`: idempotent host set-up for the daemon (see appliance.h).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "appliance/appliance.h"
#include "base/fs.h"
#include "base/private_files.h"
#include "gateway/gateway.h"

namespace faasd::appliance {
namespace {

constexpr char kForwarding[] =
    "# Written by `faasd install`: functions reach the network through the host.\n"
    "net.ipv4.ip_forward = 1\n";

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

std::string Dir(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos || slash == 0 ? "/" : path.substr(0, slash);
}

std::string Base(const std::string& path) { return path.substr(path.find_last_of('/') + 1); }

// Writes `data` to `path` (0644, root) unless it exists; says which.
absl::Status WriteIfAbsent(const std::string& path, const std::string& data, const char* what) {
  if (Exists(path)) {
    std::printf("faasd install: %s %s exists, kept\n", what, path.c_str());
    return absl::OkStatus();
  }
  if (::mkdir(Dir(path).c_str(), 0755) != 0 && errno != EEXIST) {
    return absl::InternalError(absl::StrCat("mkdir ", Dir(path), ": ", std::strerror(errno)));
  }
  if (absl::Status s = WriteFileAtomic(Dir(path), Base(path), data, 0644, ::geteuid(), ::getegid());
      !s.ok()) {
    return s;
  }
  std::printf("faasd install: %s %s written\n", what, path.c_str());
  return absl::OkStatus();
}

// The drop-in lasts across boots; this applies it now. A read-only /proc/sys (a container)
// is a warning: the host must forward then.
void ForwardNow() {
  UniqueFd fd(::open("/proc/sys/net/ipv4/ip_forward", O_WRONLY | O_CLOEXEC));
  if (!fd || ::write(fd.get(), "1\n", 2) != 2) {
    std::printf("faasd install: warning: could not set net.ipv4.ip_forward now (%s); the "
                "drop-in applies at the next boot\n",
                std::strerror(errno));
  }
}

// Runs argv, waits; its exit code, or -1 when it could not run.
int RunCommand(const char* const* argv) {
  const pid_t pid = ::fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    ::execvp(argv[0], const_cast<char* const*>(argv));
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int Fail(const char* step, const absl::Status& s) {
  std::fprintf(stderr, "faasd install: %s: %s\n", step, std::string(s.message()).c_str());
  return 1;
}

}  // namespace

int Install(const InstallOptions& o) {
  ::umask(022);
  if (absl::Status s = EnsurePrivateDir(o.state_dir, 0700); !s.ok()) return Fail("state dir", s);
  std::printf("faasd install: state dir %s (0700)\n", o.state_dir.c_str());

  const std::string secrets = o.state_dir + "/secrets";
  absl::StatusOr<gateway::Credentials> creds = gateway::LoadOrCreateCredentials(secrets);
  if (!creds.ok()) return Fail("basic auth", creds.status());
  std::printf("faasd install: basic auth user %s, password in %s/basic-auth-password (0600)\n",
              creds->user.c_str(), secrets.c_str());

  absl::StatusOr<std::string> conflist = network::RenderConflist(o.cni);
  if (!conflist.ok()) return Fail("CNI conflist", conflist.status());
  const std::string conflist_path = o.cni.conf_dir + "/" + o.cni.conflist_name;
  if (absl::Status s = WriteIfAbsent(conflist_path, *conflist, "CNI conflist"); !s.ok()) {
    return Fail("CNI conflist", s);
  }

  if (absl::Status s = WriteIfAbsent(o.sysctl_dropin, kForwarding, "sysctl drop-in"); !s.ok()) {
    return Fail("IPv4 forwarding", s);
  }
  ForwardNow();

  // sd_booted(3): systemd is PID 1 when this folder exists.
  struct stat st;
  if (::stat("/run/systemd/system", &st) == 0 && S_ISDIR(st.st_mode)) {
    const char* const enable[] = {"systemctl", "enable", "--now", "containerd", nullptr};
    if (RunCommand(enable) != 0) {
      std::printf("faasd install: warning: systemctl enable --now containerd failed\n");
    } else {
      std::printf("faasd install: containerd enabled\n");
    }
  } else {
    std::printf("faasd install: systemd is not PID 1: start containerd yourself\n");
  }

  std::printf(
      "\nLog in with faas-cli:\n"
      "  export OPENFAAS_URL=%s\n"
      "  sudo cat %s/basic-auth-password | faas-cli login -u %s --password-stdin\n",
      o.gateway_url.c_str(), secrets.c_str(), creds->user.c_str());
  return 0;
}

}  // namespace faasd::appliance
