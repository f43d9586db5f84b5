#!/usr/bin/python3
"""Writes a single-layer OCI image as an oci-archive (the tar of an OCI image layout that
`skopeo copy ... oci-archive:FILE` writes), reproducibly: the same inputs give the same bytes.

Tar entries are sorted, owned by the given uid/gid (0 by default) with no user or group names,
and carry one mtime (SOURCE_DATE_EPOCH, default 0); gzip carries no name and no timestamp.

  mkimage.py --ref docker.io/library/nats:2.9.10 --out nats.tar \\
      --file /usr/sbin/nats-server:nats-server:0755 --dir data:0:0:0755 \\
      --config '{"Entrypoint": ["/nats-server"]}'
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import platform
import tarfile

ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
        "s390x": "s390x", "riscv64": "riscv64"}


def entry(name, kind, mode, uid=0, gid=0, mtime=0, size=0, link=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.uname = info.gname = ""
    info.mtime = mtime
    info.size = size
    info.linkname = link
    return info


def tar_bytes(members, mtime):
    """members: {path: (TarInfo-kind, mode, uid, gid, data-or-link)}; parents are added."""
    for path in list(members):
        parts = path.split("/")
        for i in range(1, len(parts)):
            members.setdefault("/".join(parts[:i]), (tarfile.DIRTYPE, 0o755, 0, 0, None))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(members):
            kind, mode, uid, gid, payload = members[path]
            if kind == tarfile.REGTYPE:
                tar.addfile(entry(path, kind, mode, uid, gid, mtime, len(payload)),
                            io.BytesIO(payload))
            elif kind == tarfile.SYMTYPE:
                tar.addfile(entry(path, kind, mode, uid, gid, mtime, link=payload))
            else:
                tar.addfile(entry(path, kind, mode, uid, gid, mtime))
    return buf.getvalue()


def blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    layout["blobs/sha256/" + digest] = (tarfile.REGTYPE, 0o644, 0, 0, data)
    return {"digest": "sha256:" + digest, "size": len(data)}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ref", required=True, help="image name: docker.io/library/nats:2.9.10")
    p.add_argument("--out", required=True)
    p.add_argument("--file", action="append", default=[],
                   help="HOST_PATH:IMAGE_PATH[:MODE[:UID:GID]] (contents of the host file)")
    p.add_argument("--text", action="append", default=[],
                   help="IMAGE_PATH=CONTENT (a small file, mode 0644)")
    p.add_argument("--dir", action="append", default=[], help="IMAGE_PATH[:UID:GID[:MODE]]")
    p.add_argument("--symlink", action="append", default=[], help="IMAGE_PATH:TARGET")
    p.add_argument("--config", default="{}", help="the image config's `config` object (JSON)")
    args = p.parse_args()
    mtime = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))

    rootfs = {}
    for spec in args.file:
        host, path, *rest = spec.split(":")
        mode = int(rest[0], 8) if rest else 0o644
        uid, gid = (int(rest[1]), int(rest[2])) if len(rest) >= 3 else (0, 0)
        with open(host, "rb") as f:
            rootfs[path.strip("/")] = (tarfile.REGTYPE, mode, uid, gid, f.read())
    for spec in args.text:
        path, content = spec.split("=", 1)
        rootfs[path.strip("/")] = (tarfile.REGTYPE, 0o644, 0, 0, content.encode())
    for spec in args.dir:
        path, *rest = spec.split(":")
        uid, gid = (int(rest[0]), int(rest[1])) if len(rest) >= 2 else (0, 0)
        mode = int(rest[2], 8) if len(rest) >= 3 else 0o755
        rootfs[path.strip("/")] = (tarfile.DIRTYPE, mode, uid, gid, None)
    for spec in args.symlink:
        path, target = spec.split(":", 1)
        rootfs[path.strip("/")] = (tarfile.SYMTYPE, 0o777, 0, 0, target)

    layer_tar = tar_bytes(rootfs, mtime)
    gz = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=gz, mtime=0, compresslevel=9) as z:
        z.write(layer_tar)
    layout = {}
    layer = blob(layout, gz.getvalue())
    layer["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip"
    created = "1970-01-01T00:00:00Z" if mtime == 0 else \
        __import__("datetime").datetime.utcfromtimestamp(mtime).strftime("%Y-%m-%dT%H:%M:%SZ")
    config = {
        "created": created,
        "architecture": ARCH.get(platform.machine(), platform.machine()),
        "os": "linux",
        "config": json.loads(args.config),
        "rootfs": {"type": "layers",
                   "diff_ids": ["sha256:" + hashlib.sha256(layer_tar).hexdigest()]},
        "history": [{"created": created, "created_by": "packaging/images/mkimage.py"}],
    }
    config_desc = blob(layout, json.dumps(config, sort_keys=True, separators=(",", ":")).encode())
    config_desc["mediaType"] = "application/vnd.oci.image.config.v1+json"
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config_desc, "layers": [layer]}
    manifest_desc = blob(layout, json.dumps(manifest, sort_keys=True,
                                            separators=(",", ":")).encode())
    manifest_desc["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
    manifest_desc["annotations"] = {"io.containerd.image.name": args.ref,
                                    "org.opencontainers.image.ref.name": args.ref.rsplit(":", 1)[-1]}
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [manifest_desc]}
    layout["index.json"] = (tarfile.REGTYPE, 0o644, 0, 0,
                            json.dumps(index, sort_keys=True, indent=2).encode())
    layout["oci-layout"] = (tarfile.REGTYPE, 0o644, 0, 0, b'{"imageLayoutVersion":"1.0.0"}')
    tmp = args.out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(tar_bytes(layout, mtime))
    os.replace(tmp, args.out)
    print(f"{args.out}\t{args.ref}\t{manifest_desc['digest']}\t{os.path.getsize(args.out)} bytes")


if __name__ == "__main__":
    main()
