// Unit tests for faasd build: tar and gzip determinism, image config JSON, stack.yml parsing
// (good and bad input), and whole-image reproducibility from a temporary function folder.
#include "builder/builder.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utime.h>

#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "builder/layers.h"
#include "catch.hpp"
#include "nlohmann/json.hpp"

namespace faasd::builder {
namespace {

using Type = TarEntry::Type;

// A temporary directory removed (recursively) at scope exit, even when a check fails.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/builder-test-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
  void Write(const std::string& rel, const std::string& data, mode_t mode = 0644) const {
    std::string full = path + "/" + rel;
    std::system(("mkdir -p \"$(dirname '" + full + "')\"").c_str());
    std::ofstream(full, std::ios::binary) << data;
    ::chmod(full.c_str(), mode);
  }
};

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Run(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  REQUIRE(::pclose(p) == 0);
  return out;
}

std::vector<TarEntry> Sample() {
  return {
      {"home/app/handler.sh", Type::kFile, 0755, "#!/bin/sh\ncat\n", ""},
      {"bin/sh", Type::kSymlink, 0777, "", "/bin/busybox"},
      {"etc/passwd", Type::kFile, 0644, "root:x:0:0::/root:/bin/sh\n", ""},
      {"tmp", Type::kDir, 01777, "", ""},
  };
}

TEST_CASE("tar: same entries in any order give the same bytes; parents are added") {
  std::vector<TarEntry> a = Sample();
  std::vector<TarEntry> b(a.rbegin(), a.rend());
  auto ta = WriteTar(a, 0), tb = WriteTar(b, 0);
  REQUIRE(ta.ok());
  REQUIRE(tb.ok());
  CHECK(*ta == *tb);
  CHECK(ta->size() % 512 == 0);
  auto read = ReadTar(*ta);
  REQUIRE(read.ok());
  std::vector<std::string> paths;
  for (const TarEntry& e : *read) paths.push_back(e.path);
  CHECK(paths == std::vector<std::string>{"bin", "bin/sh", "etc", "etc/passwd", "home", "home/app",
                                          "home/app/handler.sh", "tmp"});
  CHECK((*read)[6].data == "#!/bin/sh\ncat\n");
  CHECK((*read)[6].mode == 0755);
  CHECK((*read)[7].mode == 01777);
  CHECK((*read)[1].link == "/bin/busybox");
  CHECK(*WriteTar(a, 0) != *WriteTar(a, 1700000000));  // the mtime is in the bytes
}

TEST_CASE("tar: GNU tar reads it with root owner, fixed mtime and long names") {
  std::string long_name = "home/app/" + std::string(120, 'x') + "/file.txt";
  std::vector<TarEntry> entries = Sample();
  entries.push_back({long_name, Type::kFile, 0644, "deep", ""});
  entries.push_back({"lnk", Type::kSymlink, 0777, "", "/" + std::string(150, 'y')});
  auto tar = WriteTar(entries, 86400);
  REQUIRE(tar.ok());
  TempDir dir;
  dir.Write("a.tar", *tar);
  std::string listing = Run("tar --numeric-owner --full-time -tvf '" + dir.path + "/a.tar'");
  CHECK(listing.find("-rwxr-xr-x 0/0") != std::string::npos);
  CHECK(listing.find("drwxrwxrwt 0/0") != std::string::npos);
  CHECK(listing.find("1970-01-02") != std::string::npos);
  CHECK(listing.find(long_name) != std::string::npos);
  CHECK(listing.find(std::string(150, 'y')) != std::string::npos);
  auto back = ReadTar(*tar);
  REQUIRE(back.ok());
  bool found = false;
  for (const TarEntry& e : *back) found = found || (e.path == long_name && e.data == "deep");
  CHECK(found);
}

TEST_CASE("tar: bad paths are refused") {
  for (const char* p : {"/abs", "a/../b", "a//b", "", "./x"}) {
    INFO(p);
    CHECK(WriteTar({{p, Type::kFile, 0644, "", ""}}, 0).status().code() ==
          absl::StatusCode::kInvalidArgument);
  }
  auto clash = WriteTar({{"a", Type::kFile, 0644, "x", ""}, {"a/b", Type::kFile, 0644, "", ""}}, 0);
  CHECK(clash.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(!ReadTar(std::string(1024, 'z')).ok());
  CHECK(!ReadTar(std::string(100, '\0')).ok());
}

TEST_CASE("gzip: deterministic header (no mtime, no name, OS unknown) and round trip") {
  std::string data;
  for (int i = 0; i < 100000; ++i) data += std::to_string(i * 7919 % 1000);
  auto a = Gzip(data), b = Gzip(data);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(*a == *b);
  REQUIRE(a->size() > 10);
  CHECK(static_cast<unsigned char>((*a)[0]) == 0x1f);
  CHECK(static_cast<unsigned char>((*a)[1]) == 0x8b);
  CHECK(((*a)[3] & 0x08) == 0);  // FNAME not set
  CHECK(a->substr(4, 4) == std::string(4, '\0'));
  CHECK(static_cast<unsigned char>((*a)[9]) == 255);
  CHECK(a->size() < data.size());
  auto back = Gunzip(*a, data.size());
  REQUIRE(back.ok());
  CHECK(*back == data);
  CHECK(Gunzip(*a, data.size() / 2).status().code() == absl::StatusCode::kResourceExhausted);
  CHECK(!Gunzip(a->substr(0, a->size() / 2), 1 << 30).ok());
  CHECK(!Gunzip("not gzip at all", 1 << 20).ok());
  // Interoperable: the system's gzip reads it.
  TempDir dir;
  dir.Write("x.gz", *a);
  CHECK(Run("gzip -dc '" + dir.path + "/x.gz'") == data);
}

TEST_CASE("config JSON: stable, complete, sorted keys") {
  ConfigInput in;
  in.architecture = "amd64";
  in.entrypoint = {"/usr/bin/fwatchdog"};
  in.env = {"PATH=/bin", "fprocess=cat"};
  in.working_dir = "/home/app";
  in.exposed_ports = {"8080/tcp"};
  const std::string aa = registry::Sha256Digest("a"), bb = registry::Sha256Digest("b");
  in.diff_ids = {aa, bb};
  std::string a = ConfigJson(in);
  CHECK(a == ConfigJson(in));
  CHECK(a == R"({"architecture":"amd64","config":{"Entrypoint":["/usr/bin/fwatchdog"],)"
             R"("Env":["PATH=/bin","fprocess=cat"],"ExposedPorts":{"8080/tcp":{}},)"
             R"("WorkingDir":"/home/app"},"created":"1970-01-01T00:00:00Z","os":"linux",)"
             R"("rootfs":{"diff_ids":[")" +
                 aa + R"(",")" + bb + R"("],"type":"layers"}})");
  auto parsed = registry::ParseImageConfig(a);
  REQUIRE(parsed.ok());
  CHECK(parsed->entrypoint == in.entrypoint);
  CHECK(parsed->diff_ids == in.diff_ids);
  CHECK(Rfc3339(1700000000) == "2023-11-14T22:13:20Z");
}

constexpr char kStack[] = R"(version: 1.0
provider:
  name: openfaas
  gateway: http://127.0.0.1:8080
functions:
  echo:
    lang: faasd-classic   # comments are fine
    handler: ./echo
    image: echo:latest
    fprocess: cat
    environment:
      mode: streaming
      write_timeout: 10s
      max_inflight: 4
      empty:
    labels:
      team: "qa"
    annotations:
      faasd.pull-policy: IfNotPresent
  site:
    handler: site
    image: 127.0.0.1:5000/site:1
    build_command: "make -C src"
)";

TEST_CASE("stack.yml: the faas-cli fields we need") {
  auto stack = ParseStack(kStack, "/srv/fns");
  REQUIRE(stack.ok());
  CHECK(stack->provider_gateway == "http://127.0.0.1:8080");
  REQUIRE(stack->functions.size() == 2);
  const FunctionSpec& echo = stack->functions[0];
  CHECK(echo.name == "echo");
  CHECK(echo.handler == "./echo");
  CHECK(echo.image == "echo:latest");
  CHECK(echo.fprocess == "cat");
  CHECK(echo.environment ==
        std::map<std::string, std::string>{
            {"mode", "streaming"}, {"write_timeout", "10s"}, {"max_inflight", "4"}, {"empty", ""}});
  CHECK(echo.labels.at("team") == "qa");
  CHECK(echo.annotations.at("faasd.pull-policy") == "IfNotPresent");
  CHECK(stack->functions[1].handler == "site");
  CHECK(stack->functions[1].build_command == "make -C src");
}

TEST_CASE("stack.yml: bad input is refused with the place named") {
  struct Case {
    const char* yaml;
    const char* want;
  };
  const Case cases[] = {
      {"functions: [a, b]", "functions"},
      {"version: 1.0\n", "functions"},
      {"functions:\n  a:\n    handler: ./a\n", "`image` is required"},
      {"functions:\n  a:\n    image: a:1\n", "`handler`"},
      {"functions:\n  a:\n    image: a:1\n    handler: ./a\n    enviroment: {}\n",
       "unknown key `enviroment`"},
      {"functions:\n  Bad_Name:\n    image: a:1\n    handler: ./a\n", "function Bad_Name"},
      {"functions:\n  a:\n    image: UPPER/Case\n    handler: ./a\n", "function a.image"},
      {"functions:\n  a:\n    image: a:1\n    handler: ./a\n    lang: dockerfile\n", "Docker"},
      {"functions:\n  a:\n    image: a:1\n    handler: ./a\n    environment:\n      x: [1, 2]\n",
       "function a.environment.x"},
      {"functions:\n  a:\n    image: a:1\n    handler: [x]\n", "function a.handler"},
      {"functions:\n  a: {image: a:1, handler: ./a\n", "stack.yml"},  // unterminated flow map
      {"templates: {}\nfunctions:\n  a: {image: a:1, handler: ./a}\n", "unknown key `templates`"},
      {"- just\n- a list\n", "top level"},
      {"", "top level"},
  };
  for (const Case& c : cases) {
    INFO(c.yaml);
    auto s = ParseStack(c.yaml, "/d");
    REQUIRE_FALSE(s.ok());
    CHECK(s.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(std::string(s.status().message()).find(c.want) != std::string::npos);
    CHECK(std::string(s.status().message()).rfind("stack.yml", 0) == 0);
  }
}

TEST_CASE("AddTree normalizes modes and keeps symlinks; special files are refused") {
  TempDir dir;
  dir.Write("a/run.sh", "echo", 0700);
  dir.Write("a/data.txt", "d", 0600);
  REQUIRE(::symlink("data.txt", (dir.path + "/a/link").c_str()) == 0);
  std::vector<TarEntry> entries;
  REQUIRE(AddTree(dir.path + "/a", "home/app", &entries).ok());
  std::map<std::string, TarEntry> by;
  for (auto& e : entries) by[e.path] = e;
  CHECK(by.at("home/app/run.sh").mode == 0755);
  CHECK(by.at("home/app/data.txt").mode == 0644);
  CHECK(by.at("home/app/link").type == Type::kSymlink);
  CHECK(by.at("home/app/link").link == "data.txt");
  REQUIRE(::mkfifo((dir.path + "/a/fifo").c_str(), 0644) == 0);
  entries.clear();
  auto s = AddTree(dir.path + "/a", "home/app", &entries);
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(s.message()).find("fifo") != std::string::npos);
  CHECK(AddTree(dir.path + "/missing", "x", &entries).code() == absl::StatusCode::kNotFound);
}

TEST_CASE("BuildImage: same inputs give the same digest; content changes it, mtimes do not") {
  TempDir dir;
  dir.Write("stack.yml",
            "functions:\n  hi:\n    handler: ./fn\n    image: hi:1\n    fprocess: sh run.sh\n"
            "    environment: {mode: streaming}\n");
  dir.Write("fn/run.sh", "echo hi\n", 0755);
  dir.Write("wd", "#!/bin/sh\n# pretend watchdog\n", 0755);
  auto stack = LoadStack(dir.path);
  REQUIRE(stack.ok());
  REQUIRE(stack->functions.size() == 1);
  BuildOptions o;
  o.watchdog = dir.path + "/wd";
  const std::string out = dir.path + "/out";
  REQUIRE(PrepareLayout(out).ok());
  auto a = BuildImage(*stack, stack->functions[0], o, out);
  REQUIRE(a.ok());
  CHECK(a->reference == "docker.io/library/hi:1");
  REQUIRE(a->layers.size() == 3);

  struct utimbuf later {
    1234567, 1234567
  };
  REQUIRE(::utime((dir.path + "/fn/run.sh").c_str(), &later) == 0);
  ::chmod((dir.path + "/fn/run.sh").c_str(), 0700);  // same exec bit: same normalized mode
  auto b = BuildImage(*stack, stack->functions[0], o, out);
  REQUIRE(b.ok());
  CHECK(a->manifest.digest == b->manifest.digest);

  dir.Write("fn/run.sh", "echo ho\n", 0755);
  auto c = BuildImage(*stack, stack->functions[0], o, out);
  REQUIRE(c.ok());
  CHECK(c->manifest.digest != a->manifest.digest);
  CHECK(c->layers[0].digest == a->layers[0].digest);  // base and watchdog layers are shared
  CHECK(c->layers[1].digest == a->layers[1].digest);

  // The config carries the watchdog contract.
  auto config = registry::ParseImageConfig(Slurp(BlobPath(out, a->config.digest)));
  REQUIRE(config.ok());
  CHECK(config->entrypoint == std::vector<std::string>{"/usr/bin/fwatchdog"});
  CHECK(config->working_dir == "/home/app");
  CHECK(config->exposed_ports == std::vector<std::string>{"8080/tcp"});
  CHECK(config->env == std::vector<std::string>{
                           "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                           "fprocess=sh run.sh", "mode=streaming"});
  CHECK(config->architecture == registry::Platform::Host().architecture);

  // The function layer holds the handler under /home/app; the base has busybox and sh.
  auto fn_layer = ReadTar(*Gunzip(Slurp(BlobPath(out, a->layers[2].digest)), 1 << 20));
  REQUIRE(fn_layer.ok());
  bool has_run = false;
  for (const auto& e : *fn_layer) has_run = has_run || e.path == "home/app/run.sh";
  CHECK(has_run);
  auto base = ReadTar(*Gunzip(Slurp(BlobPath(out, a->layers[0].digest)), 64 << 20));
  REQUIRE(base.ok());
  std::set<std::string> base_paths;
  for (const auto& e : *base) base_paths.insert(e.path);
  CHECK(base_paths.count("bin/busybox"));
  CHECK(base_paths.count("bin/sh"));
  CHECK(base_paths.count("tmp"));

  // Layout and archive are written identically twice; a stranger's directory is refused.
  REQUIRE(WriteLayout(out, {*a}).ok());
  std::string index1 = Slurp(out + "/index.json");
  REQUIRE(WriteLayout(out, {*b}).ok());
  CHECK(Slurp(out + "/index.json") == index1);
  auto index = registry::ParseIndex(index1);
  REQUIRE(index.ok());
  REQUIRE(index->manifests.size() == 1);
  CHECK(index->manifests[0].digest == a->manifest.digest);
  CHECK(index->manifests[0].annotations.at("org.opencontainers.image.ref.name") == "hi:1");
  CHECK(registry::Sha256Digest(Slurp(BlobPath(out, a->manifest.digest))) == a->manifest.digest);
  REQUIRE(WriteArchive(dir.path + "/a.tar", out, {*a}).ok());
  REQUIRE(WriteArchive(dir.path + "/b.tar", out, {*b}).ok());
  CHECK(Slurp(dir.path + "/a.tar") == Slurp(dir.path + "/b.tar"));
  auto archived = ReadTar(Slurp(dir.path + "/a.tar"));
  REQUIRE(archived.ok());
  std::set<std::string> archived_paths;
  for (const auto& e : *archived) archived_paths.insert(e.path);
  CHECK(archived_paths.count("index.json"));
  CHECK(archived_paths.count("blobs/sha256/" + a->layers[2].digest.substr(7)));
  CHECK(PrepareLayout(dir.path + "/fn").code() == absl::StatusCode::kFailedPrecondition);
  // Preparing an earlier layout again drops its blobs.
  REQUIRE(PrepareLayout(out).ok());
  CHECK(::access(BlobPath(out, a->manifest.digest).c_str(), F_OK) != 0);

  // SOURCE_DATE_EPOCH changes mtimes and `created`, hence the digest.
  o.source_date_epoch = 1700000000;
  auto d = BuildImage(*stack, stack->functions[0], o, out);
  REQUIRE(d.ok());
  CHECK(d->manifest.digest != a->manifest.digest);
}

TEST_CASE("BuildImage: build_command runs in the stack folder; failures are named") {
  TempDir dir;
  dir.Write("wd", "w", 0755);
  dir.Write("stack.yml",
            "functions:\n  gen:\n    handler: ./out\n    image: gen:1\n"
            "    build_command: mkdir -p out && echo generated > out/file\n"
            "  broken:\n    handler: ./out\n    image: broken:1\n    build_command: exit 3\n");
  auto stack = LoadStack(dir.path + "/stack.yml");
  REQUIRE(stack.ok());
  BuildOptions o;
  o.watchdog = dir.path + "/wd";
  const std::string out = dir.path + "/layout";
  REQUIRE(PrepareLayout(out).ok());
  auto gen = BuildImage(*stack, stack->functions[0], o, out);
  REQUIRE(gen.ok());
  CHECK(Slurp(dir.path + "/out/file") == "generated\n");
  auto broken = BuildImage(*stack, stack->functions[1], o, out);
  REQUIRE_FALSE(broken.ok());
  CHECK(std::string(broken.status().message()).find("function broken: build_command") !=
        std::string::npos);
  CHECK(std::string(broken.status().message()).find("exited 3") != std::string::npos);

  o.watchdog = dir.path + "/no-such-watchdog";
  auto no_wd = BuildImage(*stack, stack->functions[0], o, out);
  CHECK(no_wd.status().code() == absl::StatusCode::kNotFound);
  o.watchdog = dir.path + "/wd";
  o.base = dir.path + "/no-such-base";
  CHECK(BuildImage(*stack, stack->functions[0], o, out).status().code() ==
        absl::StatusCode::kNotFound);
}

TEST_CASE("BuildImage: --base as a directory and as a tarball") {
  TempDir dir;
  dir.Write("wd", "w", 0755);
  dir.Write("fn/x", "x");
  dir.Write("root/bin/tool", "t", 0755);
  auto stack = ParseStack("functions:\n  f:\n    handler: fn\n    image: f:1\n", dir.path);
  REQUIRE(stack.ok());
  BuildOptions o;
  o.watchdog = dir.path + "/wd";
  o.base = dir.path + "/root";
  const std::string out = dir.path + "/layout";
  REQUIRE(PrepareLayout(out).ok());
  auto from_dir = BuildImage(*stack, stack->functions[0], o, out);
  REQUIRE(from_dir.ok());
  std::vector<TarEntry> entries;
  REQUIRE(AddTree(dir.path + "/root", "", &entries).ok());
  auto tar = WriteTar(entries, 0);
  REQUIRE(tar.ok());
  dir.Write("root.tar.gz", *Gzip(*tar));
  o.base = dir.path + "/root.tar.gz";
  auto from_tgz = BuildImage(*stack, stack->functions[0], o, out);
  REQUIRE(from_tgz.ok());
  CHECK(from_tgz->manifest.digest == from_dir->manifest.digest);
  dir.Write("junk.tar", "not a tarball");
  o.base = dir.path + "/junk.tar";
  CHECK(BuildImage(*stack, stack->functions[0], o, out).status().code() ==
        absl::StatusCode::kInvalidArgument);
}

TEST_CASE(
    "BuildImage: a handler leaving the stack folder is refused; symlinks are packed as such") {
  TempDir top;
  top.Write("outside/secret", "host file\n");
  const std::string dir = top.path + "/stack";
  top.Write("stack/wd", "w", 0755);
  top.Write("stack/fn/x", "x");
  REQUIRE(::symlink("/etc", (dir + "/fn/leak").c_str()) == 0);
  REQUIRE(::symlink("/etc", (dir + "/etc-link").c_str()) == 0);
  REQUIRE(::symlink("fn", (dir + "/alias").c_str()) == 0);
  REQUIRE(::symlink("../outside", (dir + "/up-link").c_str()) == 0);
  auto stack = ParseStack(
      "functions:\n"
      "  up:\n    handler: ../outside\n    image: up:1\n"
      "  deep:\n    handler: fn/../../../../../etc\n    image: deep:1\n"
      "  etc:\n    handler: etc-link\n    image: etc:1\n"
      "  uplink:\n    handler: ./up-link\n    image: uplink:1\n"
      "  inner:\n    handler: ./fn\n    image: inner:1\n"
      "  alias:\n    handler: alias\n    image: alias:1\n"
      "  dotted:\n    handler: fn/../fn\n    image: dotted:1\n",
      dir);
  REQUIRE(stack.ok());
  BuildOptions o;
  o.watchdog = dir + "/wd";
  const std::string out = top.path + "/layout";
  REQUIRE(PrepareLayout(out).ok());
  for (int i : {0, 1, 2, 3}) {
    auto img = BuildImage(*stack, stack->functions[i], o, out);
    INFO(stack->functions[i].name);
    REQUIRE_FALSE(img.ok());
    CHECK(img.status().code() == absl::StatusCode::kPermissionDenied);
    CHECK(std::string(img.status().message()).find("leads out of the stack folder") !=
          std::string::npos);
  }
  // Inside the folder, a symlink below the handler goes into the image as a symlink.
  auto inner = BuildImage(*stack, stack->functions[4], o, out);
  REQUIRE(inner.ok());
  auto layer = ReadTar(*Gunzip(Slurp(BlobPath(out, inner->layers[2].digest)), 1 << 20));
  REQUIRE(layer.ok());
  std::map<std::string, TarEntry> by;
  for (auto& e : *layer) by[e.path] = e;
  REQUIRE(by.count("home/app/leak"));
  CHECK(by.at("home/app/leak").type == Type::kSymlink);
  CHECK(by.at("home/app/leak").link == "/etc");
  CHECK(by.count("home/app/leak/passwd") == 0);
  CHECK(by.at("home/app/x").data == "x");
  // A handler reached through a symlink or '..' that stays inside builds the same image.
  for (int i : {5, 6}) {
    auto same = BuildImage(*stack, stack->functions[i], o, out);
    REQUIRE(same.ok());
    CHECK(same->layers[2].digest == inner->layers[2].digest);
  }
  auto abs = ParseStack("functions:\n  a:\n    handler: /etc\n    image: a:1\n", dir);
  REQUIRE_FALSE(abs.ok());
  CHECK(std::string(abs.status().message()).find("not an absolute path") != std::string::npos);
}

TEST_CASE("BuildImage: a file swapped for a symlink after the walk is not followed") {
  TempDir dir;
  dir.Write("wd", "w", 0755);
  dir.Write("fn/data", "0123456789");
  auto stack = ParseStack("functions:\n  f:\n    handler: fn\n    image: f:1\n", dir.path);
  REQUIRE(stack.ok());
  std::vector<TarEntry> entries;
  REQUIRE(AddTree(dir.path + "/fn", "home/app", &entries).ok());
  // Between the walk and the write, the file becomes a symlink to a host file.
  REQUIRE(::unlink((dir.path + "/fn/data").c_str()) == 0);
  REQUIRE(::symlink("/etc/passwd", (dir.path + "/fn/data").c_str()) == 0);
  auto tar = WriteTar(entries, 0);
  REQUIRE_FALSE(tar.ok());
  CHECK(std::string(tar.status().message()).find("data") != std::string::npos);
}

}  // namespace
}  // namespace faasd::builder
