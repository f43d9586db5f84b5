#include "network/masquerade.h"

#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
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

absl::Status RunIptables(const std::string& iptables, std::vector<std::string> args,
                         absl::string_view path_env, absl::Duration timeout, std::string* out) {
  args.insert(args.begin(), {"-w", "-t", "nat"});
  absl::StatusOr<ProcessOutput> result =
      RunProcess(iptables, args, {absl::StrCat("PATH=", path_env)}, "", timeout);
  std::string what = absl::StrCat("iptables -t nat ", args[3], " ", args.size() > 4 ? args[4] : "");
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

}  // namespace

absl::Status RemoveMasqueradeLeftovers(absl::string_view network_name,
                                       absl::string_view container_id, absl::string_view path_env,
                                       absl::Duration timeout) {
  std::string iptables = FindIptables(path_env);
  if (iptables.empty()) return absl::OkStatus();  // no iptables: the plugin could not masquerade
  std::string listing;
  if (absl::Status status =
          RunIptables(iptables, {"-S", "POSTROUTING"}, path_env, timeout, &listing);
      !status.ok()) {
    return status;
  }
  for (const MasqueradeLeftover& leftover :
       FindMasqueradeLeftovers(listing, network_name, container_id)) {
    if (absl::Status status = RunIptables(iptables, leftover.rule, path_env, timeout, nullptr);
        !status.ok()) {
      return status;
    }
    if (leftover.chain.empty()) continue;
    for (const char* verb : {"-F", "-X"}) {
      if (absl::Status status =
              RunIptables(iptables, {verb, leftover.chain}, path_env, timeout, nullptr);
          !status.ok()) {
        return status;
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace faasd::network
