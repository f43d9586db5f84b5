// Tarballs given to `faasd build --base` (any compression libarchive reads):
// builder::WriteLayerFromTarball into a blob folder; and builder::ReadTar of the raw bytes.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <string_view>

#include "builder/layers.h"

namespace {

// Each run's blob is removed again: a long run would otherwise fill the disk with them.
void RemoveFilesIn(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;
  while (struct dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ::unlink((dir + "/" + e->d_name).c_str());
  }
  ::closedir(d);
}

const std::string& WorkDir() {
  // Never destroyed: the atexit handler below runs after static destructors would have.
  static const std::string& dir = *new std::string([] {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                        "/fuzz-oci-tar-XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) std::abort();
    std::atexit([] {
      RemoveFilesIn(WorkDir() + "/blobs");
      ::rmdir((WorkDir() + "/blobs").c_str());
      ::unlink((WorkDir() + "/base.tar").c_str());
      ::rmdir(WorkDir().c_str());
    });
    return templ;
  }());
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const std::string tarball = WorkDir() + "/base.tar";
  const std::string blobs = WorkDir() + "/blobs";
  {
    std::ofstream out(tarball, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  ::mkdir(blobs.c_str(), 0700);
  (void)faasd::builder::WriteLayerFromTarball(tarball, blobs);
  RemoveFilesIn(blobs);
  (void)faasd::builder::ReadTar(bytes);
  return 0;
}
