// The OCI archives the supervisor imports at start (declared in services.h).
#include <dirent.h>

#include <algorithm>
#include <set>

#include "absl/strings/match.h"
#include "services/services.h"

namespace faasd::services {

std::vector<std::string> ImageArchives(const std::vector<std::string>& dirs) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const std::string& dir : dirs) {
    if (dir.empty() || !seen.insert(dir).second) continue;
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) continue;
    std::vector<std::string> files;
    while (struct dirent* de = ::readdir(d)) {
      if (absl::EndsWith(de->d_name, ".tar")) files.push_back(dir + "/" + de->d_name);
    }
    ::closedir(d);
    std::sort(files.begin(), files.end());
    out.insert(out.end(), files.begin(), files.end());
  }
  return out;
}

}  // namespace faasd::services
