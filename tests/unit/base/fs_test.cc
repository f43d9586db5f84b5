// OpenConfined / ReadConfinedFile: both resolutions (openat2 and the component walk) keep every
// path inside its directory, the way a container or a stack folder needs.
#include "base/fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "catch.hpp"

namespace faasd {
namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/fs-test-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
  void Write(const std::string& rel, const std::string& data) const {
    std::string full = path + "/" + rel;
    std::system(("mkdir -p \"$(dirname '" + full + "')\"").c_str());
    std::ofstream(full, std::ios::binary) << data;
  }
  void Link(const std::string& target, const std::string& rel) const {
    REQUIRE(::symlink(target.c_str(), (path + "/" + rel).c_str()) == 0);
  }
};

using OpenFn = absl::StatusOr<UniqueFd> (*)(int, const std::string&, int, Confine);

std::string ReadWith(OpenFn open_fn, int root, const std::string& path, Confine mode,
                     absl::StatusCode* code) {
  absl::StatusOr<UniqueFd> fd = open_fn(root, path, O_RDONLY | O_NONBLOCK, mode);
  *code = fd.status().code();
  if (!fd.ok()) return "";
  absl::StatusOr<std::string> data = ReadRegularFile(fd->get(), 1 << 20, path);
  *code = data.status().code();
  return data.ok() ? *data : "";
}

TEST_CASE("confined opens: symlinks and '..' stay inside, the same with openat2 and the walk") {
  TempDir host;  // stands for the host: "outside" must never be read
  host.Write("outside/passwd", "HOST\n");
  const std::string root_path = host.path + "/root";
  host.Write("root/etc/passwd", "IMAGE\n");
  host.Write("root/usr/share/group", "GROUP\n");
  host.Link("../usr/share/group", "root/etc/group");  // legitimate, relative, inside
  host.Link(host.path + "/outside", "root/abs");      // absolute: the container's own path
  host.Link("../../outside/passwd", "root/etc/rel");  // climbs above the root
  host.Link("loop2", "root/loop1");
  host.Link("loop1", "root/loop2");
  REQUIRE(::mkfifo((root_path + "/fifo").c_str(), 0644) == 0);
  UniqueFd root(::open(root_path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  REQUIRE(root);

  for (OpenFn fn : {&OpenConfined, &OpenConfinedByWalk}) {
    INFO((fn == &OpenConfined ? "openat2" : "walk"));
    absl::StatusCode code;
    // In-root: every path resolves as if root were "/".
    CHECK(ReadWith(fn, root.get(), "/etc/passwd", Confine::kInRoot, &code) == "IMAGE\n");
    CHECK(ReadWith(fn, root.get(), "etc/group", Confine::kInRoot, &code) == "GROUP\n");
    CHECK(ReadWith(fn, root.get(), "../../../etc/passwd", Confine::kInRoot, &code) == "IMAGE\n");
    CHECK(ReadWith(fn, root.get(), "/etc/rel", Confine::kInRoot, &code).empty());
    CHECK(code == absl::StatusCode::kNotFound);  // "../../outside" is /outside in the root
    CHECK(ReadWith(fn, root.get(), "/abs/passwd", Confine::kInRoot, &code).empty());
    CHECK(code == absl::StatusCode::kNotFound);
    CHECK(ReadWith(fn, root.get(), "/loop1", Confine::kInRoot, &code).empty());
    CHECK(code == absl::StatusCode::kInvalidArgument);
    // A FIFO opens without blocking and is refused as not a regular file.
    CHECK(ReadWith(fn, root.get(), "/fifo", Confine::kInRoot, &code).empty());
    CHECK(code == absl::StatusCode::kFailedPrecondition);

    // Beneath: the same escapes are refused outright; inside paths work.
    CHECK(ReadWith(fn, root.get(), "etc/group", Confine::kBeneath, &code) == "GROUP\n");
    CHECK(ReadWith(fn, root.get(), "etc/../etc/passwd", Confine::kBeneath, &code) == "IMAGE\n");
    for (const char* escape : {"../outside/passwd", "/etc/passwd", "etc/rel", "abs/passwd"}) {
      INFO(escape);
      CHECK(ReadWith(fn, root.get(), escape, Confine::kBeneath, &code).empty());
      CHECK(code == absl::StatusCode::kPermissionDenied);
    }
    // O_NOFOLLOW refuses a final symlink even inside.
    absl::StatusOr<UniqueFd> nofollow =
        fn(root.get(), "etc/group", O_RDONLY | O_NOFOLLOW, Confine::kBeneath);
    CHECK(nofollow.status().code() == absl::StatusCode::kInvalidArgument);
    // A directory opens as the root itself or below it.
    CHECK(fn(root.get(), "", O_RDONLY | O_DIRECTORY, Confine::kBeneath).ok());
    CHECK(fn(root.get(), "etc/..", O_RDONLY | O_DIRECTORY, Confine::kBeneath).ok());
  }
}

TEST_CASE("ReadRegularFile bounds what it reads") {
  TempDir d;
  d.Write("big", std::string(5000, 'x'));
  UniqueFd dir(::open(d.path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  auto small = ReadConfinedFile(dir.get(), "big", Confine::kBeneath, 4096);
  CHECK(small.status().code() == absl::StatusCode::kResourceExhausted);
  CHECK(std::string(small.status().message()).find("4096") != std::string::npos);
  auto whole = ReadConfinedFile(dir.get(), "big", Confine::kBeneath, 5000);
  REQUIRE(whole.ok());
  CHECK(whole->size() == 5000);
  CHECK(ReadConfinedFile(dir.get(), "missing", Confine::kBeneath, 10).status().code() ==
        absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace faasd
