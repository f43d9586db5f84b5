// Helpers shared by the network tests: a temporary directory removed on scope exit, and small
// file helpers. Header-only so both test binaries can use it.
#pragma once

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace faasd::network::testing {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/faasd-net-test-XXXXXX";
    char* made = mkdtemp(tmpl);
    if (made != nullptr) path_ = made;
  }
  ~TempDir() {
    if (!path_.empty() && path_.rfind("/tmp/faasd-net-test-", 0) == 0) {
      std::error_code ignored;
      std::filesystem::remove_all(path_, ignored);
    }
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline void WriteFile(const std::string& path, const std::string& content, mode_t mode = 0644) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
  chmod(path.c_str(), mode);
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

inline bool Exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

}  // namespace faasd::network::testing
