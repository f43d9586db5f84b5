#include "network/masquerade.h"

#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "network/process.h"

namespace faasd::network {

std::vector<std::string> SplitIptablesRule(absl::string_view line) {
  std::vector<std::string> args;
  std::string current;
  bool quoted = false;
  bool started = false;  // so that "" yields an empty argument
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted && c == '\\' && i + 1 < line.size()) {
      current += line[++i];
    } else if (c == '"') {
      quoted = !quoted;
      started = true;
    } else if ((c == ' ' || c == '\t') && !quoted) {
      if (started || !current.empty()) args.push_back(std::move(current));
      current.clear();
      started = false;
    } else {
      current += c;
    }
  }
  if (started || !current.empty()) args.push_back(std::move(current));
  return args;
}

std::vector<MasqueradeLeftover> FindMasqueradeLeftovers(absl::string_view postrouting,
                                                        absl::string_view network_name,
                                                        absl::string_view container_id) {
  // The exact comment the plugin writes (utils.FormatComment).
  std::string comment = absl::StrCat("name: \"", network_name, "\" id: \"", container_id, "\"");
  std::vector<MasqueradeLeftover> found;
  for (absl::string_view line : absl::StrSplit(postrouting, '\n', absl::SkipEmpty())) {
    std::vector<std::string> args = SplitIptablesRule(line);
    if (args.size() < 2 || args[0] != "-A" || args[1] != "POSTROUTING") continue;
    bool tagged = false;
    std::string chain;
    for (size_t i = 0; i + 1 < args.size(); ++i) {
      if (args[i] == "--comment" && args[i + 1] == comment) tagged = true;
      if (args[i] == "-j" && absl::StartsWith(args[i + 1], "CNI-")) chain = args[i + 1];
    }
    if (!tagged) continue;
    args[0] = "-D";
    found.push_back({std::move(args), std::move(chain)});
  }
  return found;
}

namespace {

std::string FindIptables(absl::string_view path_env) {
  for (absl::string_view dir : absl::StrSplit(path_env, ':', absl::SkipEmpty())) {
    std::string path = absl::StrCat(dir, "/iptables");
    struct stat st {};
    if (stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(path.c_str(), X_OK) == 0) {
      return path;
    }
  }
  return "";
}

absl::Status RunIptables(const std::string& iptables, absl::string_view table,
                         std::vector<std::string> args, absl::string_view path_env,
                         absl::Duration timeout, std::string* out) {
  args.insert(args.begin(), {"-w", "-t", std::string(table)});
  absl::StatusOr<ProcessOutput> result =
      RunProcess(iptables, args, {absl::StrCat("PATH=", path_env)}, "", timeout);
  std::string what =
      absl::StrCat("iptables -t ", table, " ", args[3], " ", args.size() > 4 ? args[4] : "");
  if (!result.ok())
    return absl::Status(result.status().code(),
                        absl::StrCat(what, ": ", result.status().message()));
  if (result->exit_code != 0) {
    return absl::InternalError(absl::StrCat(what, ": exit status ", result->exit_code, ": ",
                                            absl::StripAsciiWhitespace(result->stderr_data)));
  }
  if (out != nullptr) *out = std::move(result->stdout_data);
  return absl::OkStatus();
}

// `rule` (without the verb) in `chain` unless it is there already (-C); `insert` puts it first.
absl::Status EnsureRule(const std::string& iptables, absl::string_view table,
                        const std::string& chain, const std::vector<std::string>& rule, bool insert,
                        absl::string_view path_env, absl::Duration timeout) {
  std::vector<std::string> check = {"-C", chain};
  check.insert(check.end(), rule.begin(), rule.end());
  if (RunIptables(iptables, table, check, path_env, timeout, nullptr).ok()) {
    return absl::OkStatus();
  }
  std::vector<std::string> add = {insert ? "-I" : "-A", chain};
  if (insert) add.push_back("1");
  add.insert(add.end(), rule.begin(), rule.end());
  return RunIptables(iptables, table, add, path_env, timeout, nullptr);
}

}  // namespace

std::string SubnetChainName(absl::string_view network_name) {
  uint32_t h = 2166136261u;
  for (unsigned char c : network_name) {
    h ^= c;
    h *= 16777619u;
  }
  return absl::StrFormat("FAASD-%08x", h);
}

absl::Status EnsureSubnetRules(absl::string_view network_name, absl::string_view subnet,
                               absl::string_view path_env, absl::Duration timeout) {
  const std::string iptables = FindIptables(path_env);
  if (iptables.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no iptables in PATH (", path_env, "): needed to masquerade the function network ", subnet,
        " (install the iptables package)"));
  }
  const std::string chain = SubnetChainName(network_name);
  const std::string net(subnet);
  const std::string comment = absl::StrCat("faasd network ", network_name);
  struct Rule {
    const char* table;
    std::string chain;
    std::vector<std::string> args;
    bool insert;
  };
  const std::vector<Rule> rules = {
      {"nat", chain, {"-d", net, "-j", "ACCEPT"}, false},
      {"nat", chain, {"!", "-d", "224.0.0.0/4", "-j", "MASQUERADE"}, false},
      {"nat",
       "POSTROUTING",
       {"-s", net, "-m", "comment", "--comment", comment, "-j", chain},
       false},
      {"filter",
       chain,
       {"-d", net, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"},
       false},
      {"filter", chain, {"-s", net, "-j", "ACCEPT"}, false},
      // First in FORWARD: a DROP policy or a REJECT further down (Docker sets both) must not
      // cut the functions off.
      {"filter", "FORWARD", {"-m", "comment", "--comment", comment, "-j", chain}, true},
  };
  for (const char* table : {"nat", "filter"}) {
    if (!RunIptables(iptables, table, {"-S", chain}, path_env, timeout, nullptr).ok()) {
      absl::Status s = RunIptables(iptables, table, {"-N", chain}, path_env, timeout, nullptr);
      // Another daemon on the same network may have made it meanwhile.
      if (!s.ok() && !RunIptables(iptables, table, {"-S", chain}, path_env, timeout, nullptr).ok())
        return s;
    }
  }
  for (const Rule& r : rules) {
    if (absl::Status s =
            EnsureRule(iptables, r.table, r.chain, r.args, r.insert, path_env, timeout);
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status RemoveMasqueradeLeftovers(absl::string_view network_name,
                                       absl::string_view container_id, absl::string_view path_env,
                                       absl::Duration timeout) {
  std::string iptables = FindIptables(path_env);
  if (iptables.empty()) return absl::OkStatus();  // no iptables: the plugin could not masquerade
  std::string listing;
  if (absl::Status status =
          RunIptables(iptables, "nat", {"-S", "POSTROUTING"}, path_env, timeout, &listing);
      !status.ok()) {
    return status;
  }
  for (const MasqueradeLeftover& leftover :
       FindMasqueradeLeftovers(listing, network_name, container_id)) {
    if (absl::Status status =
            RunIptables(iptables, "nat", leftover.rule, path_env, timeout, nullptr);
        !status.ok()) {
      return status;
    }
    if (leftover.chain.empty()) continue;
    for (const char* verb : {"-F", "-X"}) {
      if (absl::Status status =
              RunIptables(iptables, "nat", {verb, leftover.chain}, path_env, timeout, nullptr);
          !status.ok()) {
        return status;
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace faasd::network
