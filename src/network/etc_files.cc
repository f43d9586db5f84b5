// The /etc/hosts and /etc/resolv.conf a function container gets (declared in cni_network.h).
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "network/cni_network.h"

namespace faasd::network {
namespace {

bool IsLoopbackNameserver(absl::string_view address) {
  // Strip an IPv6 zone ("fe80::1%eth0") before comparing.
  address = address.substr(0, address.find('%'));
  return absl::StartsWith(address, "127.") || address == "::1" ||
         absl::EqualsIgnoreCase(address, "0:0:0:0:0:0:0:1");
}

}  // namespace

std::string HostsFile(std::string_view hostname_in, std::string_view gateway_in,
                      std::string_view own_in) {
  // Debian's Abseil is built with its own string_view, distinct from std::string_view.
  absl::string_view hostname(hostname_in.data(), hostname_in.size());
  absl::string_view gateway_ip(gateway_in.data(), gateway_in.size());
  absl::string_view own_ip(own_in.data(), own_in.size());
  std::string hosts =
      "127.0.0.1\tlocalhost\n"
      "::1\tlocalhost ip6-localhost ip6-loopback\n";
  if (!gateway_ip.empty()) absl::StrAppend(&hosts, gateway_ip, "\tgateway\n");
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
