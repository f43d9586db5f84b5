#!/usr/bin/env python3
"""Turns containerd's packaged API protos into C++ with protoc + grpc_cpp_plugin.

Debian ships the protos with gogoproto options that protoc's C++ generator
refuses, so each file is copied with those options removed and its imports
flattened to one directory (meson outputs cannot live in subdirectories).
The cgroup stats that TasksService.Metrics returns inside an Any are typed by the
containerd/cgroups Go module's protos (Debian golang-github-containerd-cgroups-dev), compiled
here too.
Usage: gen.py PROTOC GRPC_PLUGIN CONTAINERD_API_DIR GOOGLEAPIS_DIR CGROUPS_DIR OUTDIR
"""
import os
import re
import subprocess
import sys
import tempfile

# Files we compile, relative to the containerd api dir (flat name = path with
# '/' replaced by '_' and the '.proto' suffix kept).
FILES = [
    "types/descriptor.proto",
    "types/mount.proto",
    "types/platform.proto",
    "types/metrics.proto",
    "types/task/task.proto",
    "services/containers/v1/containers.proto",
    "services/content/v1/content.proto",
    "services/diff/v1/diff.proto",
    "services/events/v1/events.proto",
    "services/images/v1/images.proto",
    "services/leases/v1/leases.proto",
    "services/namespaces/v1/namespace.proto",
    "services/snapshots/v1/snapshots.proto",
    "services/tasks/v1/tasks.proto",
    "services/version/v1/version.proto",
    "events/task.proto",
]
# The cgroups module's stats protos: flat name -> paths in CGROUPS_DIR, first found wins (v2 moved
# from v2/stats to cgroup2/stats in cgroups 2.x).
CGROUPS_FILES = {
    "cgroups_stats_v1_metrics.proto": ["stats/v1/metrics.proto"],
    "cgroups_v2_stats_metrics.proto": ["v2/stats/metrics.proto", "cgroup2/stats/metrics.proto"],
}
API_PREFIX = "github.com/containerd/containerd/api/"
FOREIGN_OPT = r"\((?:gogoproto|containerd\.plugin)\.\w+\)\s*=\s*(?:\"[^\"]*\"|[\w.]+)"


def flat(path):
    return path.replace("/", "_")


def sanitize(text):
    out = []
    for line in text.splitlines():
        if re.match(r'\s*import\s+(weak\s|"gogoproto/gogo.proto")', line):
            continue
        if re.match(r"\s*option\s+" + FOREIGN_OPT + r"\s*;", line):
            continue
        m = re.match(r'(\s*import\s+")([^"]+)(";.*)', line)
        if m:
            target = m.group(2)
            if target.startswith(API_PREFIX):
                line = m.group(1) + flat(target[len(API_PREFIX):]) + m.group(3)
            elif target == "google/rpc/status.proto":
                line = m.group(1) + "google_rpc_status.proto" + m.group(3)
        # Field options: drop the foreign ones, then empty brackets.
        line = re.sub(FOREIGN_OPT + r"\s*,?\s*", "", line)
        line = re.sub(r",\s*\]", "]", line)
        line = re.sub(r"\s*\[\s*\]", "", line)
        out.append(line)
    return "\n".join(out) + "\n"


def main():
    protoc, plugin, api_dir, googleapis, cgroups_dir, outdir = sys.argv[1:7]
    with tempfile.TemporaryDirectory() as src:
        names = []
        for rel in FILES:
            with open(os.path.join(api_dir, rel)) as f:
                text = sanitize(f.read())
            names.append(flat(rel))
            with open(os.path.join(src, flat(rel)), "w") as f:
                f.write(text)
        with open(os.path.join(googleapis, "google/rpc/status.proto")) as f:
            text = sanitize(f.read())
        with open(os.path.join(src, "google_rpc_status.proto"), "w") as f:
            f.write(text)
        names.append("google_rpc_status.proto")
        for name, candidates in CGROUPS_FILES.items():
            found = [c for c in candidates if os.path.exists(os.path.join(cgroups_dir, c))]
            if not found:
                sys.exit(f"gen.py: none of {candidates} under {cgroups_dir}")
            with open(os.path.join(cgroups_dir, found[0])) as f:
                text = sanitize(f.read())
            with open(os.path.join(src, name), "w") as f:
                f.write(text)
            names.append(name)
        subprocess.check_call([
            protoc, "-I", src, "-I", "/usr/include",
            "--cpp_out=" + outdir, "--grpc_out=" + outdir,
            "--plugin=protoc-gen-grpc=" + plugin] + names)


if __name__ == "__main__":
    main()
