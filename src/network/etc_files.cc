// The /etc/hosts and /etc/resolv.conf a function container gets (declared in cni_network.h).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "network/cni_network.h"

namespace faasd::network {
namespace {

bool IsLoopbackNameserver(absl::string_view address) {
  // Strip an IPv6 zone ("fe80::1%eth0") before comparing.
  address = address.substr(0, address.find('%'));
  return absl::StartsWith(address, "127.") || address == "::1" ||
         absl::EqualsIgnoreCase(address, "0:0:0:0:0:0:0:1");
}

constexpr char kSharedBegin[] = "# faasd services\n";
constexpr char kSharedEnd[] = "# end of faasd services\n";

std::string SharedBlock(absl::string_view services) {
  if (services.empty()) return "";
  std::string block = absl::StrCat(kSharedBegin, services);
  if (block.back() != '\n') block += '\n';
  return absl::StrCat(block, kSharedEnd);
}

absl::string_view Absl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace

absl::Status WriteEtcFile(const std::string& path, std::string_view content) {
  // In place, not by rename: runc bind-mounts the file, so it must stay the same inode. The
  // error names the cause (a full state dir: "No space left on device").
  auto failed = [&path](int err) {
    return absl::InternalError(absl::StrCat("write ", path, ": ", std::strerror(err)));
  };
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return failed(errno);
  for (size_t done = 0; done < content.size();) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return failed(err);
    }
    done += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) return failed(errno);
  ::chmod(path.c_str(), 0644);
  return absl::OkStatus();
}

std::string SharedHostsPath(std::string_view state_dir) {
  return absl::StrCat(Absl(state_dir), "/services/hosts");
}

std::string ReadSharedHosts(std::string_view state_dir) {
  std::ifstream in(SharedHostsPath(state_dir));
  std::ostringstream content;
  if (in) content << in.rdbuf();
  return content.str();
}

std::string ReplaceSharedHosts(std::string_view hosts_in, std::string_view services) {
  absl::string_view hosts = Absl(hosts_in);
  const size_t begin = hosts.find(kSharedBegin);
  const size_t end = begin == absl::string_view::npos ? begin : hosts.find(kSharedEnd, begin);
  if (begin != absl::string_view::npos && end != absl::string_view::npos) {
    return absl::StrCat(hosts.substr(0, begin), SharedBlock(Absl(services)),
                        hosts.substr(end + std::strlen(kSharedEnd)));
  }
  // No block yet (a file written before there were services): before the own-name line.
  absl::string_view body = absl::StripSuffix(hosts, "\n");
  const size_t last = body.rfind('\n');
  const size_t cut = last == absl::string_view::npos ? 0 : last + 1;
  return absl::StrCat(hosts.substr(0, cut), SharedBlock(Absl(services)), hosts.substr(cut));
}

std::string HostsFile(std::string_view hostname_in, std::string_view gateway_in,
                      std::string_view own_in, std::string_view services) {
  // Debian's Abseil is built with its own string_view, distinct from std::string_view.
  absl::string_view hostname(hostname_in.data(), hostname_in.size());
  absl::string_view gateway_ip(gateway_in.data(), gateway_in.size());
  absl::string_view own_ip(own_in.data(), own_in.size());
  std::string hosts =
      "127.0.0.1\tlocalhost\n"
      "::1\tlocalhost ip6-localhost ip6-loopback\n";
  if (!gateway_ip.empty()) absl::StrAppend(&hosts, gateway_ip, "\tgateway\n");
  absl::StrAppend(&hosts, SharedBlock(Absl(services)));
  if (!hostname.empty()) {
    absl::StrAppend(&hosts, own_ip.empty() ? "127.0.1.1" : own_ip, "\t", hostname, "\n");
  }
  return hosts;
}

absl::StatusOr<std::string> ResolvConf(const std::vector<std::string>& nameservers,
                                       const std::string& host_resolv_conf) {
  if (!nameservers.empty()) {
    std::string out;
    for (const std::string& server : nameservers) {
      absl::string_view trimmed = absl::StripAsciiWhitespace(server);
      if (trimmed.empty() || trimmed.find_first_of(" \t\n") != absl::string_view::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat("nameserver \"", server, "\" is not an address"));
      }
      absl::StrAppend(&out, "nameserver ", trimmed, "\n");
    }
    return out;
  }

  std::ifstream in(host_resolv_conf);
  if (!in) {
    return absl::FailedPreconditionError(
        absl::StrCat("resolv.conf for functions: cannot read ", host_resolv_conf,
                     "; set --nameserver to the DNS server functions should use"));
  }
  std::ostringstream content;
  content << in.rdbuf();

  std::string kept;
  int servers = 0;
  std::vector<std::string> dropped;
  for (absl::string_view line : absl::StrSplit(content.str(), '\n')) {
    absl::string_view trimmed = absl::StripAsciiWhitespace(line);
    std::vector<absl::string_view> words =
        absl::StrSplit(trimmed, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (words.empty() || words[0][0] == '#' || words[0][0] == ';') continue;
    if (words[0] == "nameserver") {
      if (words.size() < 2) continue;
      if (IsLoopbackNameserver(words[1])) {
        dropped.emplace_back(words[1]);
        continue;
      }
      absl::StrAppend(&kept, "nameserver ", words[1], "\n");
      ++servers;
    } else if (words[0] == "search" || words[0] == "domain" || words[0] == "options") {
      absl::StrAppend(&kept, trimmed, "\n");
    }
  }
  if (servers == 0) {
    std::string why = dropped.empty() ? "has no nameserver"
                                      : absl::StrCat("has only loopback nameservers (",
                                                     absl::StrJoin(dropped, ", "),
                                                     "), which a container cannot reach");
    return absl::FailedPreconditionError(
        absl::StrCat("resolv.conf for functions: ", host_resolv_conf, " ", why,
                     "; set --nameserver to the DNS server functions should use"));
  }
  return kept;
}

}  // namespace faasd::network
