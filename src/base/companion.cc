#include "base/companion.h"

#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <vector>

namespace faasd {

std::string FindCompanionBinary(const std::string& name, const std::string& build_subdir) {
  std::vector<std::string> candidates;
  char exe[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n > 0) {
    std::string dir(exe, static_cast<size_t>(n));
    dir = dir.substr(0, dir.find_last_of('/'));
    // Installed: faasd in sbin, fwatchdog in bin. Build tree: src/faasd, src/<subdir>/<name>.
    candidates = {dir + "/" + name, dir + "/../bin/" + name, dir + "/../sbin/" + name,
                  dir + "/" + build_subdir + "/" + name};
  }
  candidates.push_back("/usr/lib/faasd/" + name);
  for (const std::string& c : candidates) {
    if (::access(c.c_str(), X_OK) != 0) continue;
    char resolved[PATH_MAX];
    return ::realpath(c.c_str(), resolved) != nullptr ? std::string(resolved) : c;
  }
  return "";
}

}  // namespace faasd
