#include "provider/spec.h"

#include <algorithm>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"

namespace faasd::provider {
namespace {

using nlohmann::json;

// containerd's defaultUnixCaps; CAP_NET_RAW is among them, as faasd grants.
const char* const kCapabilities[] = {
    "CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
    "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
    "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
    "CAP_KILL",    "CAP_AUDIT_WRITE",
};

json Mount(const std::string& dest, const std::string& type, const std::string& source,
           std::vector<std::string> options) {
  return json{{"destination", dest}, {"type", type}, {"source", source}, {"options", options}};
}

struct PasswdEntry {
  std::string name;
  uint32_t uid = 0, gid = 0;
};

std::vector<std::vector<std::string>> ParseColonFile(std::string_view text) {
  std::vector<std::vector<std::string>> rows;
  for (absl::string_view line : absl::StrSplit(absl::string_view(text.data(), text.size()), '\n')) {
    if (line.empty() || line[0] == '#') continue;
    rows.push_back(absl::StrSplit(line, ':'));
  }
  return rows;
}

}  // namespace

absl::StatusOr<ProcessUser> ResolveUser(std::string_view user_sv, std::string_view passwd,
                                        std::string_view group) {
  ProcessUser out;
  std::string user(user_sv);
  if (user.empty()) return out;
  std::string user_part = user, group_part;
  if (auto colon = user.find(':'); colon != std::string::npos) {
    user_part = user.substr(0, colon);
    group_part = user.substr(colon + 1);
  }
  auto passwd_rows = ParseColonFile(passwd);
  auto group_rows = ParseColonFile(group);
  std::string user_name;
  uint32_t n = 0;
  if (absl::SimpleAtoi(user_part, &n)) {
    out.uid = n;
    out.gid = 0;  // no passwd entry: gid 0, as docker and containerd do
    for (const auto& r : passwd_rows) {
      uint32_t uid = 0;
      if (r.size() >= 4 && absl::SimpleAtoi(r[2], &uid) && uid == n) {
        absl::SimpleAtoi(r[3], &out.gid);
        user_name = r[0];
        break;
      }
    }
  } else {
    bool found = false;
    for (const auto& r : passwd_rows) {
      if (r.size() >= 4 && r[0] == user_part) {
        if (!absl::SimpleAtoi(r[2], &out.uid) || !absl::SimpleAtoi(r[3], &out.gid)) break;
        user_name = r[0];
        found = true;
        break;
      }
    }
    if (!found) {
      return absl::NotFoundError(
          absl::StrCat("user \"", user_part, "\" is not in the image's /etc/passwd"));
    }
  }
  if (!group_part.empty()) {
    if (!absl::SimpleAtoi(group_part, &n)) {
      bool found = false;
      for (const auto& r : group_rows) {
        if (r.size() >= 3 && r[0] == group_part && absl::SimpleAtoi(r[2], &n)) {
          found = true;
          break;
        }
      }
      if (!found) {
        return absl::NotFoundError(
            absl::StrCat("group \"", group_part, "\" is not in the image's /etc/group"));
      }
    }
    out.gid = n;
  }
  if (!user_name.empty()) {
    for (const auto& r : group_rows) {
      if (r.size() < 4) continue;
      for (absl::string_view member : absl::StrSplit(r[3], ',')) {
        uint32_t gid = 0;
        if (member == user_name && absl::SimpleAtoi(r[2], &gid) && gid != out.gid) {
          out.additional_gids.push_back(gid);
        }
      }
    }
  }
  return out;
}

std::vector<std::string> MergeEnv(const std::vector<std::string>& image_env,
                                  const FunctionDeployment& d) {
  std::vector<std::string> order;
  std::map<std::string, std::string> values;
  auto set = [&](const std::string& k, const std::string& v) {
    if (values.find(k) == values.end()) order.push_back(k);
    values[k] = v;
  };
  for (const auto& kv : image_env) {
    auto eq = kv.find('=');
    if (eq == std::string::npos) continue;
    set(kv.substr(0, eq), kv.substr(eq + 1));
  }
  for (const auto& [k, v] : d.env_vars) set(k, v);
  if (!d.env_process.empty()) set("fprocess", d.env_process);
  if (values.find("PATH") == values.end()) {
    set("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  }
  std::vector<std::string> env;
  env.reserve(order.size());
  for (const auto& k : order) env.push_back(k + "=" + values[k]);
  return env;
}

absl::StatusOr<std::vector<std::string>> ProcessArgs(const std::vector<std::string>& entrypoint,
                                                     const std::vector<std::string>& cmd) {
  std::vector<std::string> args = entrypoint;
  args.insert(args.end(), cmd.begin(), cmd.end());
  if (args.empty()) {
    return absl::InvalidArgumentError("image has neither Entrypoint nor Cmd: nothing to run");
  }
  return args;
}

absl::StatusOr<std::string> BuildRuntimeSpec(const SpecInputs& in) {
  if (in.args.empty()) return absl::InvalidArgumentError("spec: no process args");
  std::vector<std::string> caps(std::begin(kCapabilities), std::end(kCapabilities));
  for (const std::string& cap : in.extra_capabilities) {
    if (std::find(caps.begin(), caps.end(), cap) == caps.end()) caps.push_back(cap);
  }
  json user = {{"uid", in.user.uid}, {"gid", in.user.gid}};
  if (!in.user.additional_gids.empty()) user["additionalGids"] = in.user.additional_gids;
  json process = {
      {"terminal", false},
      {"user", user},
      {"args", in.args},
      {"env", in.env},
      {"cwd", in.cwd.empty() ? "/" : in.cwd},
      {"capabilities", {{"bounding", caps}, {"effective", caps}, {"permitted", caps}}},
      {"rlimits",
       json::array(
           {{{"type", "RLIMIT_NOFILE"}, {"hard", in.nofile_limit}, {"soft", in.nofile_limit}}})},
      {"noNewPrivileges", true},
  };
  json mounts = json::array({
      Mount("/proc", "proc", "proc", {"nosuid", "noexec", "nodev"}),
      Mount("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}),
      Mount("/dev/pts", "devpts", "devpts",
            {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}),
      Mount("/dev/shm", "tmpfs", "shm", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}),
      Mount("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}),
      Mount("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}),
      Mount("/run", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}),
  });
  if (!in.hosts_file.empty()) {
    mounts.push_back(Mount("/etc/hosts", "bind", in.hosts_file, {"rbind", "ro"}));
  }
  if (!in.resolv_conf_file.empty()) {
    mounts.push_back(Mount("/etc/resolv.conf", "bind", in.resolv_conf_file, {"rbind", "ro"}));
  }
  if (!in.secrets_dir.empty()) {
    mounts.push_back(Mount("/var/openfaas/secrets", "bind", in.secrets_dir, {"rbind", "ro"}));
  }
  if (in.read_only_rootfs) {
    mounts.push_back(
        Mount("/tmp", "tmpfs", "tmpfs", {"nosuid", "nodev", "mode=1777", "size=65536k"}));
  }
  for (const BindMount& b : in.binds) {
    std::vector<std::string> options = {"rbind", b.read_only ? "ro" : "rw"};
    mounts.push_back(Mount(b.destination, "bind", b.source, options));
  }
  json resources = {{"devices", json::array({{{"allow", false}, {"access", "rwm"}}})}};
  if (in.memory_limit_bytes > 0) resources["memory"] = {{"limit", in.memory_limit_bytes}};
  json cpu = json::object();
  if (in.cpu_limit_millis > 0) {
    cpu["period"] = 100000;
    cpu["quota"] = in.cpu_limit_millis * 100;
  }
  if (in.cpu_request_millis > 0)
    cpu["shares"] = std::max<int64_t>(2, in.cpu_request_millis * 1024 / 1000);
  if (!cpu.empty()) resources["cpu"] = cpu;
  json linux_section = {
      {"resources", resources},
      {"cgroupsPath", in.cgroups_path},
      {"namespaces",
       json::array({{{"type", "pid"}},
                    {{"type", "ipc"}},
                    {{"type", "uts"}},
                    {{"type", "mount"}},
                    in.netns_path.empty() ? json{{"type", "network"}}
                                          : json{{"type", "network"}, {"path", in.netns_path}}})},
      {"maskedPaths",
       {"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
        "/proc/scsi"}},
      {"readonlyPaths", {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}},
  };
  json spec = {
      {"ociVersion", "1.0.2-dev"},
      {"process", process},
      {"root", {{"path", "rootfs"}, {"readonly", in.read_only_rootfs}}},
      {"hostname", in.hostname},
      {"mounts", mounts},
      {"linux", linux_section},
  };
  return spec.dump();
}

}  // namespace faasd::provider
