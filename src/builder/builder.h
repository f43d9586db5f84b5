// `faasd build`: turns a function folder described by a faas-cli `stack.yml` into an OCI image
// without Docker, writes it as an OCI image layout (and optionally a tar archive of it), and can
// import it into the appliance's containerd so `faas-cli deploy` finds it with no registry.
//
// Conventions (see examples/README.md):
// - stack.yml is faas-cli's format. Per function: `image` (required: the tag), `handler` (a
//   directory, relative to stack.yml, copied to /home/app), `fprocess` (the watchdog's command),
//   `environment` (image env; it drives the watchdog: `mode`, `upstream_url`, `static_path`,
//   timeouts, ...), `labels`/`annotations` (sent by faas-cli at deploy; not in the image), and one
//   key of ours, `build_command`: a shell command run in stack.yml's folder before packing
//   (e.g. compiling a static binary into the handler folder). faas-cli ignores unknown keys.
// - Image: layer 1 = base (static busybox and its applets, or a rootfs dir/tarball), layer 2 =
//   the watchdog at /usr/bin/fwatchdog, layer 3 = the handler at /home/app. Entrypoint
//   /usr/bin/fwatchdog, WorkingDir /home/app, port 8080/tcp, user root, host architecture.
// - Reproducible: the same inputs (files, modes' exec bit, env, SOURCE_DATE_EPOCH, zlib) give the
//   same digests. File owners, timestamps and umask never reach the image.
//
// Not thread-safe across calls writing the same output directory; otherwise pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "registry/registry.h"

namespace faasd::builder {

struct FunctionSpec {
  std::string name;
  std::string lang;
  std::string handler;  // the handler directory, relative to Stack::dir, as written
  std::string image;    // as written in stack.yml: "echo:latest"
  std::string fprocess;
  std::string build_command;
  std::map<std::string, std::string> environment, labels, annotations;
};

struct Stack {
  std::string dir;  // folder of stack.yml: handlers and build commands are relative to it
  std::string provider_gateway;
  std::vector<FunctionSpec> functions;  // in file order
};

// Parses stack.yml text. InvalidArgument naming the file, the function and the key for: bad
// YAML, a missing `functions` map, a function without `image` or `handler`, an invalid function
// name or image reference, non-scalar env/label values, unknown keys (catches typos such as
// `enviroment`), and `lang: dockerfile` (needs Docker).
absl::StatusOr<Stack> ParseStack(std::string_view yaml, const std::string& dir,
                                 const std::string& file_name = "stack.yml");
// Reads `path`: a stack.yml file or a folder holding one (stack.yml or stack.yaml).
absl::StatusOr<Stack> LoadStack(const std::string& path);

struct BuildOptions {
  std::string base;                        // rootfs dir or .tar/.tar.gz; "" = busybox
  std::string busybox = "/bin/busybox";    // static busybox for the default base
  std::string watchdog;                    // the fwatchdog binary (required)
  std::map<std::string, std::string> env;  // added to (and overriding) the function's env
  int64_t source_date_epoch = 0;           // mtime of every file; `created` in the config
  std::string architecture;                // GOARCH name; "" = the host's
  bool run_build_commands = true;
};

struct BuiltImage {
  std::string name;       // as in stack.yml
  std::string reference;  // normalized: "docker.io/library/echo:latest"
  registry::Descriptor manifest;
  registry::Descriptor config;
  std::vector<registry::Descriptor> layers;  // their blobs are in the layout BuildImage wrote
};

// Makes `dir` ready to build into as an OCI image layout: created if needed; an earlier layout
// there loses its blobs (so only this build's remain); any other non-empty directory is refused
// (FailedPrecondition).
absl::Status PrepareLayout(const std::string& dir);

// Runs the function's build_command (when allowed), then streams the image's blobs into the
// layout at `layout_dir` (see PrepareLayout): memory use does not grow with the handler's size.
// The handler must resolve inside the stack's folder, and nothing below it is followed through a
// symlink: symlinks are packed as symlinks. PermissionDenied names a handler that leaves the
// folder (`../..`, a symlink to /etc).
absl::StatusOr<BuiltImage> BuildImage(const Stack& stack, const FunctionSpec& fn,
                                      const BuildOptions& options, const std::string& layout_dir);

// Writes oci-layout and index.json for `images`, whose blobs BuildImage wrote into `dir`.
// index.json lists each manifest with annotations org.opencontainers.image.ref.name = the name
// and io.containerd.image.name = the normalized reference.
absl::Status WriteLayout(const std::string& dir, const std::vector<BuiltImage>& images);
// The layout at `layout_dir` as one reproducible tar file (skopeo's `oci-archive:`).
absl::Status WriteArchive(const std::string& path, const std::string& layout_dir,
                          const std::vector<BuiltImage>& images);
// Where a blob of a layout is: "<layout_dir>/blobs/sha256/<hex>".
std::string BlobPath(const std::string& layout_dir, const std::string& digest);

// The `faasd build` command line; returns the process exit code.
int Main(int argc, char** argv);

}  // namespace faasd::builder
