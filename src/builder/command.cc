// `faasd build [flags] [PATH]`: the command line over BuildImage / WriteLayout / ImportOciLayout.
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/companion.h"
#include "builder/builder.h"
#include "containerd/client.h"
#include "image/importer.h"

namespace faasd::builder {
namespace {

constexpr char kUsage[] = R"(usage: faasd build [flags] [PATH]

Builds OCI images (busybox base + fwatchdog + handler folder) from a faas-cli stack.yml, with
no Docker. PATH is a stack.yml or a folder holding one (default: .). Prints one line per image:
NAME REFERENCE MANIFEST-DIGEST. SOURCE_DATE_EPOCH, when set, is every file's mtime.

flags (--name=value):
  --filter=NAME               build only this function; repeatable
  --output=DIR                OCI image layout to write (<stack folder>/build/oci)
  --archive=FILE              also write the layout as one tar (skopeo's oci-archive:)
  --base=PATH                 base rootfs: a directory or a .tar/.tar.gz (static busybox)
  --busybox=PATH              busybox for the default base (/bin/busybox)
  --watchdog=PATH             fwatchdog binary (default: next to faasd, in ../bin/, in
                              <build>/src/watchdog/, or /usr/lib/faasd/)
  --env=NAME=VALUE            image env, over stack.yml's environment; repeatable
  --no-build-command          do not run the functions' build_command
  --import                    import the images into containerd (as root)
  --containerd-address=PATH   containerd socket (/run/containerd/containerd.sock)
  --namespace=NAME            containerd namespace for --import (openfaas-fn)
)";

const std::set<std::string> kValued = {"filter", "output",    "archive",
                                       "base",   "busybox",   "watchdog",
                                       "env",    "namespace", "containerd-address"};
const std::set<std::string> kSwitches = {"import", "no-build-command"};

std::string DefaultWatchdog() { return FindCompanionBinary("fwatchdog", "watchdog"); }

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "faasd build: %s\n", std::string(s.message()).c_str());
  return 1;
}

}  // namespace

int Main(int argc, char** argv) {
  std::map<std::string, std::vector<std::string>> flags;
  std::vector<std::string> args;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (a.rfind("--", 0) != 0) {
      args.push_back(a);
      continue;
    }
    std::string name = a.substr(2), value;
    bool has_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    if (kSwitches.count(name) && !has_value) {
      flags[name].push_back("true");
    } else if (kValued.count(name)) {
      if (!has_value) {
        if (i + 1 >= argc) {
          std::fprintf(stderr, "faasd build: --%s needs a value\n%s", name.c_str(), kUsage);
          return 2;
        }
        value = argv[++i];
      }
      flags[name].push_back(value);
    } else {
      std::fprintf(stderr, "faasd build: unknown flag %s\n%s", a.c_str(), kUsage);
      return 2;
    }
  }
  if (args.size() > 1) {
    std::fprintf(stderr, "faasd build: one PATH at most\n%s", kUsage);
    return 2;
  }
  auto get = [&](const std::string& name, const std::string& def) {
    auto it = flags.find(name);
    return it == flags.end() ? def : it->second.back();
  };

  absl::StatusOr<Stack> stack = LoadStack(args.empty() ? "." : args[0]);
  if (!stack.ok()) return Fail(stack.status());

  BuildOptions options;
  options.base = get("base", "");
  options.busybox = get("busybox", options.busybox);
  options.watchdog = get("watchdog", DefaultWatchdog());
  options.run_build_commands = !flags.count("no-build-command");
  if (options.watchdog.empty())
    return Fail(absl::NotFoundError(
        "no fwatchdog found next to faasd, in ../bin, <build>/src/watchdog/ or /usr/lib/faasd; "
        "pass --watchdog=PATH"));
  for (const std::string& kv : flags["env"]) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0)
      return Fail(absl::InvalidArgumentError(absl::StrCat("--env=", kv, ": not NAME=VALUE")));
    options.env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  if (const char* sde = std::getenv("SOURCE_DATE_EPOCH"); sde != nullptr && *sde != '\0') {
    if (!absl::SimpleAtoi(sde, &options.source_date_epoch) || options.source_date_epoch < 0)
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("SOURCE_DATE_EPOCH=", sde, ": not a number of seconds")));
  }

  std::set<std::string> wanted(flags["filter"].begin(), flags["filter"].end());
  for (const FunctionSpec& fn : stack->functions) wanted.erase(fn.name);
  if (!wanted.empty())
    return Fail(absl::NotFoundError(
        absl::StrCat("no function ", absl::StrJoin(wanted, ", "), " in stack.yml")));
  wanted.insert(flags["filter"].begin(), flags["filter"].end());

  std::string output = get("output", stack->dir + "/build/oci");
  absl::Status s = PrepareLayout(output);
  if (!s.ok()) return Fail(s);
  std::vector<BuiltImage> images;
  for (const FunctionSpec& fn : stack->functions) {
    if (!wanted.empty() && !wanted.count(fn.name)) continue;
    absl::StatusOr<BuiltImage> img = BuildImage(*stack, fn, options, output);
    if (!img.ok()) return Fail(img.status());
    images.push_back(std::move(*img));
  }
  if (images.empty()) return Fail(absl::NotFoundError("nothing to build"));
  s = WriteLayout(output, images);
  if (!s.ok()) return Fail(s);
  if (std::string archive = get("archive", ""); !archive.empty()) {
    s = WriteArchive(archive, output, images);
    if (!s.ok()) return Fail(s);
  }
  if (flags.count("import")) {
    containerd::Client client(get("containerd-address", "/run/containerd/containerd.sock"));
    absl::StatusOr<std::vector<image::ImportedImage>> imported =
        image::ImportOciLayout(client, get("namespace", "openfaas-fn"), output);
    if (!imported.ok()) return Fail(imported.status());
  }
  for (const BuiltImage& img : images) {
    std::printf("%s %s %s\n", img.name.c_str(), img.reference.c_str(), img.manifest.digest.c_str());
  }
  return 0;
}

}  // namespace faasd::builder
