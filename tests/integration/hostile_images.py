"""Hand-made hostile OCI images for test_hostile.py, generated at test time (no committed blobs).

An image is a normal base layer (static busybox + fnserver at /usr/bin/fnserver, the harness's
echo image in all but name) plus layers built entry by entry with `tarfile`, so a test can put
exactly the hostile thing it wants on top: a symlinked /etc, a FIFO at /etc/passwd, a hard link
out of the layer, a gzip bomb. Layers are streamed (tar -> gzip -> file) with both digests taken
on the way, so a bomb of hundreds of MiB never sits in memory.

`OciLayoutWriter` writes an OCI image layout; `push()` copies one tag to a registry with skopeo.
`LyingRegistry` serves a layout itself (http.server on loopback) for what skopeo or
docker-registry would refuse to carry: it can answer a blob with fewer bytes than its
descriptor says.
"""

import gzip
import hashlib
import http.server
import io
import json
import os
import shutil
import socket
import socketserver
import tarfile
import threading
import zlib
from pathlib import Path

import harness

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"

ENTRYPOINT = ["/usr/bin/fnserver"]
BASE_ENV = ["PATH=/usr/local/bin:/usr/bin:/bin", "mode=echo"]
APPLETS = ["sh", "cat", "ls", "wc", "env", "hostname", "sleep", "echo", "tr", "false"]


# -- tar entries -------------------------------------------------------------------------------
def _info(path, type_, mode):
    ti = tarfile.TarInfo(path)
    ti.type = type_
    ti.mode = mode
    ti.mtime = 0
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    return ti


def d(path, mode=0o755):
    """A directory entry."""
    return (_info(path, tarfile.DIRTYPE, mode), None)


def f(path, data, mode=0o644):
    """A regular file with `data` (bytes or str)."""
    if isinstance(data, str):
        data = data.encode()
    ti = _info(path, tarfile.REGTYPE, mode)
    ti.size = len(data)
    return (ti, data)


def big(path, size, reader):
    """A regular file of `size` bytes read from the file-like `reader` (streamed)."""
    ti = _info(path, tarfile.REGTYPE, 0o644)
    ti.size = size
    return (ti, reader)


def symlink(path, target):
    ti = _info(path, tarfile.SYMTYPE, 0o777)
    ti.linkname = target
    return (ti, None)


def hardlink(path, target):
    ti = _info(path, tarfile.LNKTYPE, 0o644)
    ti.linkname = target
    return (ti, None)


def fifo(path):
    return (_info(path, tarfile.FIFOTYPE, 0o644), None)


class Zeros(io.RawIOBase):
    """`size` zero bytes, read in pieces: the body of a gzip bomb without holding it."""

    def __init__(self, size):
        self.left = size

    def readable(self):
        return True

    def readinto(self, b):
        n = min(len(b), self.left)
        b[:n] = bytes(n)
        self.left -= n
        return n


def base_entries(with_etc=True):
    """The working base: busybox, its applets, fnserver, the directories runc expects and (unless
    a test replaces /etc itself) a minimal /etc with root only."""
    fnserver = Path(harness.FNSERVER_BIN).read_bytes()
    busybox = Path("/bin/busybox").read_bytes()
    entries = [d("bin"), d("usr"), d("usr/bin"), d("tmp", 0o1777), d("var"), d("var/openfaas"),
               d("var/openfaas/secrets"), d("proc"), d("sys"), d("dev"),
               f("bin/busybox", busybox, 0o755), f("usr/bin/fnserver", fnserver, 0o755)]
    entries += [symlink(f"bin/{a}", "busybox") for a in APPLETS]
    if with_etc:
        entries += etc_entries()
    return entries


def etc_entries(passwd="root:x:0:0:root:/root:/bin/sh\n"):
    """/etc as runc needs it (hosts and resolv.conf are bind-mount targets)."""
    out = [d("etc"), f("etc/group", "root:x:0:\n"), f("etc/hosts", ""),
           f("etc/resolv.conf", "")]
    if passwd is not None:
        out.append(f("etc/passwd", passwd))
    return out


# -- layout ------------------------------------------------------------------------------------
class _HashingWriter(io.RawIOBase):
    """Forwards writes to `out` and hashes them (the uncompressed tar stream -> diff_id)."""

    def __init__(self, out):
        self.out = out
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self):
        return True

    def write(self, b):
        self.sha.update(b)
        self.size += len(b)
        self.out.write(b)
        return len(b)


class OciLayoutWriter:
    """An OCI image layout at `path`; blobs are content-addressed files, `tag()` adds index
    entries. Layers are written once and can be shared between images of the same layout."""

    def __init__(self, path):
        self.path = Path(path)
        self.blobs = self.path / "blobs" / "sha256"
        self.blobs.mkdir(parents=True, exist_ok=True)
        (self.path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
        self.index = {"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": []}
        self._write_index()

    def _write_index(self):
        (self.path / "index.json").write_text(json.dumps(self.index))

    def put_blob(self, data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        (self.blobs / digest.split(":")[1]).write_bytes(data)
        return {"digest": digest, "size": len(data)}

    def layer(self, entries):
        """Writes a gzip'd tar layer from entries; returns (descriptor, diff_id)."""
        tmp = self.blobs / f"tmp-{os.getpid()}-{id(entries)}"
        with open(tmp, "wb") as raw:
            with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=6) as gz:
                hw = _HashingWriter(gz)
                with tarfile.open(fileobj=hw, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                    for info, data in entries:
                        if isinstance(data, (bytes, bytearray)):
                            tar.addfile(info, io.BytesIO(data))
                        elif data is not None:
                            tar.addfile(info, data)
                        else:
                            tar.addfile(info)
        sha = hashlib.sha256()
        with open(tmp, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                sha.update(chunk)
        digest = "sha256:" + sha.hexdigest()
        size = tmp.stat().st_size
        tmp.rename(self.blobs / sha.hexdigest())
        desc = {"mediaType": LAYER_TYPE, "digest": digest, "size": size}
        return desc, "sha256:" + hw.sha.hexdigest()

    def image(self, tag, layers, user="", entrypoint=None, env=None):
        """Writes config + manifest for `layers` [(descriptor, diff_id)] and tags it; returns
        the manifest descriptor."""
        config = {
            "architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
            "config": {"Entrypoint": entrypoint or ENTRYPOINT, "Env": env or BASE_ENV,
                       "WorkingDir": "/", "ExposedPorts": {"8080/tcp": {}}},
            "rootfs": {"type": "layers", "diff_ids": [diff for _, diff in layers]},
        }
        if user:
            config["config"]["User"] = user
        cdesc = dict(self.put_blob(json.dumps(config).encode()), mediaType=CONFIG_TYPE)
        manifest = {"schemaVersion": 2, "mediaType": MANIFEST_TYPE, "config": cdesc,
                    "layers": [desc for desc, _ in layers]}
        mdesc = dict(self.put_blob(json.dumps(manifest).encode()), mediaType=MANIFEST_TYPE)
        mdesc["annotations"] = {"org.opencontainers.image.ref.name": tag}
        self.index["manifests"] = [m for m in self.index["manifests"]
                                   if m["annotations"]["org.opencontainers.image.ref.name"] != tag]
        self.index["manifests"].append(mdesc)
        self._write_index()
        return mdesc

    def read_blob(self, digest):
        return (self.blobs / digest.split(":", 1)[1]).read_bytes()


class HostileImages:
    """Builds hostile images over one shared base layer and pushes them to the loopback
    registry. `push(name, entries, user=...)` -> "127.0.0.1:PORT/hostile-<name>:1"."""

    def __init__(self, workdir, registry):
        self.dir = Path(workdir) / "hostile"
        self.registry = registry
        self.layout = None
        self._bases = {}
        self._pushed = {}  # ref -> manifest digest already in the registry

    def start(self):
        if not os.access(harness.FNSERVER_BIN, os.X_OK):
            raise harness.HarnessError(f"fnserver {harness.FNSERVER_BIN}: not found")
        self.layout = OciLayoutWriter(self.dir / "oci")

    def base(self, with_etc=True):
        if with_etc not in self._bases:
            self._bases[with_etc] = self.layout.layer(base_entries(with_etc))
        return self._bases[with_etc]

    def build(self, name, entries, user="", with_etc=True, entrypoint=None):
        """Tags `name` in the layout: the base, then one layer of `entries` (if any)."""
        layers = [self.base(with_etc)]
        if entries:
            layers.append(self.layout.layer(entries))
        return self.layout.image(name, layers, user=user, entrypoint=entrypoint)

    def push(self, name, entries, user="", with_etc=True, entrypoint=None):
        mdesc = self.build(name, entries, user, with_etc, entrypoint)
        ref = f"{self.registry.host}/hostile-{name}:1"
        if self._pushed.get(ref) != mdesc["digest"]:
            harness.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false",
                         f"oci:{self.layout.path}:{name}", f"docker://{ref}"], timeout=300)
            self._pushed[ref] = mdesc["digest"]
        return ref

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


# -- a registry that lies ----------------------------------------------------------------------
class LyingRegistry:
    """Serves one OCI layout over the distribution API on 127.0.0.1:<free port>, honestly except
    for the blobs named in `short_blobs` {digest: bytes_to_send}, which get fewer bytes than
    their descriptor says. `short_mode` says how the lie is told:
      "length": Content-Length is what is sent, then the connection closes: a clean response
                that is simply short;
      "eof":    Content-Length is the blob's true size; the connection closes early;
      "stall":  Content-Length is what the lie sends (fewer bytes than the descriptor's size,
                so a client can tell at once), but only half of that comes, then nothing until
                close().
    Requests are recorded in `log` as (method, path)."""

    def __init__(self, layout, short_blobs=None, short_mode="length"):
        self.layout = layout
        self.short_blobs = dict(short_blobs or {})
        self.short_mode = short_mode
        self._closing = threading.Event()
        self.port = harness.free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.log = []
        self._server = None
        self._thread = None

    def _manifest(self, ref):
        tags = {m["annotations"]["org.opencontainers.image.ref.name"]: m
                for m in self.layout.index["manifests"]}
        desc = tags.get(ref)
        if desc is None:
            for m in self.layout.index["manifests"]:
                if m["digest"] == ref:
                    desc = m
        if desc is None:
            return None
        return desc, self.layout.read_blob(desc["digest"])

    def start(self):
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status, body=b"", headers=None):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
                self.close_connection = True

            def do_HEAD(self):
                self.do_GET()

            def do_GET(self):
                outer.log.append((self.command, self.path))
                parts = self.path.split("?")[0].split("/")
                if self.path.rstrip("/") == "/v2":
                    return self._send(200, b"{}", {"Content-Type": "application/json"})
                if len(parts) >= 5 and parts[1] == "v2" and parts[-2] == "manifests":
                    found = outer._manifest(parts[-1])
                    if found is None:
                        return self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
                    desc, body = found
                    return self._send(200, body, {"Content-Type": desc["mediaType"],
                                                  "Docker-Content-Digest": desc["digest"]})
                if len(parts) >= 5 and parts[1] == "v2" and parts[-2] == "blobs":
                    digest = parts[-1]
                    try:
                        body = outer.layout.read_blob(digest)
                    except (OSError, IndexError):
                        return self._send(404, b'{"errors":[{"code":"BLOB_UNKNOWN"}]}')
                    headers = {"Content-Type": "application/octet-stream",
                                "Docker-Content-Digest": digest}
                    if digest not in outer.short_blobs:
                        return self._send(200, body, headers)
                    short = body[:outer.short_blobs[digest]]
                    if outer.short_mode == "length":
                        return self._send(200, short, headers)
                    self.send_response(200)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    announced = len(body) if outer.short_mode == "eof" else len(short)
                    self.send_header("Content-Length", str(announced))
                    self.end_headers()
                    self.close_connection = True
                    if self.command == "HEAD":
                        return None
                    if outer.short_mode == "eof":
                        self.wfile.write(short)
                        return None
                    self.wfile.write(short[:len(short) // 2])
                    self.wfile.flush()
                    outer._closing.wait(timeout=300)
                    return None
                return self._send(404, b"{}")

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        harness.wait_until(lambda: socket.create_connection(("127.0.0.1", self.port), 1).close()
                           or True, 10, f"lying registry {self.host}")

    def blob_gets(self, digest):
        return sum(1 for m, p in self.log if m == "GET" and p.endswith("/blobs/" + digest))

    def close(self):
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)


# -- reading built layouts back ----------------------------------------------------------------
def layout_layer_entries(layout_dir):
    """Every layer entry of every image in an OCI layout: [(layer digest, TarInfo, data|None)].
    Data is read only for regular files up to 1 MiB (enough to compare with /etc files)."""
    layout_dir = Path(layout_dir)
    blobs = layout_dir / "blobs" / "sha256"
    index = json.loads((layout_dir / "index.json").read_text())
    out = []
    seen = set()
    for m in index.get("manifests", []):
        manifest = json.loads((blobs / m["digest"].split(":")[1]).read_text())
        for layer in manifest.get("layers", []):
            if layer["digest"] in seen:
                continue
            seen.add(layer["digest"])
            path = blobs / layer["digest"].split(":")[1]
            with tarfile.open(path, mode="r:*") as tar:
                for ti in tar:
                    data = None
                    if ti.isreg() and ti.size <= (1 << 20):
                        data = tar.extractfile(ti).read()
                    out.append((layer["digest"], ti, data))
    return out


def layout_blob_entries(layout_dir):
    """Like layout_layer_entries, but over every file under the layout that reads as a tar
    (indexed or not: a build that failed half-way may have left blobs or temporary files)."""
    out = []
    for path in sorted(Path(layout_dir).rglob("*")):
        if not path.is_file():
            continue
        try:
            with tarfile.open(path, mode="r:*") as tar:
                for ti in tar:
                    data = None
                    if ti.isreg() and ti.size <= (1 << 20):
                        data = tar.extractfile(ti).read()
                    out.append((str(path), ti, data))
        except (tarfile.TarError, OSError, EOFError, zlib.error):
            continue
    return out
