"""Untrusted images and stack files never reach the host (issue 6).

Hostile inputs come from hostile_images.py: images built entry by entry (a symlinked /etc, a FIFO
at /etc/passwd, hard links out of the layer, a gzip bomb), a registry that lies about a blob, and
stack.yml files whose handler leaves the stack folder. Every daemon test runs beside a sentinel
function deployed (from the hostile images' own base) before it, which must still answer after.
"""

import json
import os
import random
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

import harness
import hostile_images as hi
from hostile_images import d, etc_entries, f, fifo, hardlink, symlink

LIMIT_1MIB = 1 << 20


def deploy(api, name, ref, timeout=60, **fields):
    spec = {"service": name, "image": ref}
    spec.update(fields)
    return api.request("POST", "/system/functions", spec, timeout=timeout)


def mounts_under(*prefixes):
    out = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            mnt = line.split()[4].encode().decode("unicode_escape")
            if any((mnt + "/").startswith(str(p).rstrip("/") + "/") for p in prefixes):
                out.append(mnt)
    return out


# -- fixtures ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sentinel(request, faasd, hostile):
    """A function from the hostile images' base layer alone: proves the base works (a hostile
    test never fails for a broken base) and keeps that layer referenced by an image record, so
    containerd's GC cannot take it between two pulls that share it."""
    name = "sentinel-%06x" % random.getrandbits(24)
    ref = hostile.push("plain", [])

    def cleanup():
        if not faasd.running():
            faasd.start()
        faasd.delete(name)
    request.addfinalizer(cleanup)
    r = faasd.deploy(name, ref)
    assert r.status in (200, 202), r
    faasd.wait_ready(name)
    return name


@pytest.fixture(autouse=True)
def sentinel_still_answers(request):
    """For tests that drive the session daemon: the sentinel answers after each of them."""
    if "api" not in request.fixturenames:
        yield
        return
    name = request.getfixturevalue("sentinel")
    api = request.getfixturevalue("api")
    yield
    assert api.running(), "faasd exited during the hostile request"
    r = api.invoke(name, body="alive")
    assert r.status == 200 and r.text == "alive", f"sentinel after hostile request: {r}"


@pytest.fixture
def scratch():
    """A private folder under /tmp, removed afterwards (builds here may hold copies of host
    files on a broken daemon, and one test writes 200 MB)."""
    path = Path(tempfile.mkdtemp(prefix="fdt-hostile-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


# == 1. faasd build never packs host files ====================================================
HOST_FILES = {}
for _p in ("/etc/passwd", "/etc/shadow", "/etc/group"):
    try:
        _data = Path(_p).read_bytes()
    except OSError:
        continue
    if _data:
        HOST_FILES[_data] = _p


def faasd_build(out, stack_dir, timeout=300):
    env = dict(os.environ)
    env.pop("SOURCE_DATE_EPOCH", None)
    return subprocess.run([harness.FAASD_BIN, "build", "--no-build-command",
                           "--watchdog", harness.FNSERVER_BIN, "--output", str(out),
                           str(stack_dir)], capture_output=True, text=True, timeout=timeout,
                          env=env)


def host_files_in_layout(layout):
    """Entries of any tar under the layout folder (indexed or not) that hold a host file (by
    content), or are named like the host's secrets."""
    hits = []
    for _, ti, data in hi.layout_blob_entries(layout):
        if data is not None and data in HOST_FILES:
            hits.append(f"{ti.name} (= host {HOST_FILES[data]})")
        elif ti.name.rsplit("/", 1)[-1] in ("shadow", "gshadow", "shadow-"):
            hits.append(ti.name)
    return hits


def write_stack(stack_dir, handler):
    (stack_dir / "stack.yml").write_text(
        "functions:\n"
        "  leak:\n"
        f"    handler: {json.dumps(handler)}\n"
        "    image: leak:1\n"
        "    environment: {mode: echo}\n")


def _dotdot(stack):
    return "../../../../etc"  # the stack folder is 4 levels below / (see the test)


def _symlinked(stack):
    os.symlink("/etc", stack / "etc-link")
    return "etc-link"


def _absolute(stack):
    return "/etc"


@pytest.mark.parametrize("make_handler", [_dotdot, _symlinked, _absolute],
                         ids=["dotdot", "symlink-to-etc", "absolute"])
def test_build_refuses_handler_outside_stack_folder(scratch, make_handler):
    stack = scratch / "a" / "stack"  # /tmp/<scratch>/a/stack: ../../../../ is /
    stack.mkdir(parents=True)
    handler = make_handler(stack)
    assert os.path.realpath(os.path.join(stack, handler)) == "/etc", "test setup: not /etc"
    write_stack(stack, handler)
    out = scratch / "oci"
    p = faasd_build(out, stack)
    leaked = host_files_in_layout(out)
    assert not leaked, (f"faasd build with handler {handler!r} packed host files into the image "
                        f"(exit {p.returncode}): {leaked[:5]}")
    assert p.returncode != 0, f"handler {handler!r} (host /etc) accepted: {p.stdout}{p.stderr}"
    assert handler in p.stderr, f"error does not name the handler {handler!r}: {p.stderr}"
    assert re.search(r"outside|leaves|inside|escape", p.stderr), \
        f"error does not say the handler leaves the stack folder: {p.stderr}"


def test_build_packs_symlinks_inside_handler_as_symlinks(scratch):
    stack = scratch / "a" / "stack"
    handler = stack / "handler"
    handler.mkdir(parents=True)
    (handler / "data.txt").write_text("payload\n")
    os.symlink("/etc", handler / "leak")
    os.symlink("../" * 16 + "etc/passwd", handler / "up")
    write_stack(stack, "handler")
    out = scratch / "oci"
    p = faasd_build(out, stack)
    leaked = host_files_in_layout(out)
    assert not leaked, f"host files packed through a symlink in the handler: {leaked[:5]}"
    if p.returncode != 0:
        return  # refusing the symlinks is also safe; nothing was packed (checked above)
    entries = {re.sub(r"^\./", "", ti.name).rstrip("/"): ti
               for _, ti, _ in hi.layout_layer_entries(out)}
    for name, target in [("home/app/leak", "/etc"), ("home/app/up", "../" * 16 + "etc/passwd")]:
        ti = entries.get(name)
        assert ti is not None, f"{name} missing from the image: {sorted(entries)[:20]}"
        assert ti.issym() and ti.linkname == target, \
            f"{name}: want a symlink to {target}, got type {ti.type!r} -> {ti.linkname!r}"
        below = [n for n in entries if n.startswith(name + "/")]
        assert not below, f"{name} was followed: {below[:5]}"
    assert entries["home/app/data.txt"].isreg()


# == 2. the image's User resolves in the image, never on the host ==============================
def host_has_user(user):
    return any(line.split(":")[0] == user for line in Path("/etc/passwd").read_text().splitlines())


ESCAPING_PASSWD = {
    # /etc itself a symlink out of the rootfs: the daemon must not follow it to the host's /etc.
    "etc-abs": ([symlink("etc", "/etc")], False),
    "etc-rel": ([symlink("etc", "../" * 16 + "etc")], False),
    # /etc/passwd a symlink out of the rootfs.
    "passwd-abs": (etc_entries(None) + [symlink("etc/passwd", "/etc/passwd")], False),
    "passwd-rel": (etc_entries(None) + [symlink("etc/passwd", "../../../../etc/passwd")], False),
}


@pytest.mark.parametrize("case", sorted(ESCAPING_PASSWD))
def test_image_user_is_not_resolved_against_host(api, functions, hostile, case):
    assert host_has_user("sys"), "test setup: the host's /etc/passwd has no user sys"
    entries, with_etc = ESCAPING_PASSWD[case]
    ref = hostile.push(f"user-{case}", entries, user="sys", with_etc=with_etc)
    name = functions.name("usr")
    r = deploy(api, name, ref)
    uid = ""
    if r.status in (200, 202):
        try:
            probe = api.invoke(name, "/_/file?path=/proc/self/status", method="GET", timeout=5)
            m = re.search(r"^Uid:\s+(\d+)", probe.text, re.M)
            uid = f"; the function runs as uid {m.group(1) if m else '?'}"
        except OSError:
            pass
    assert r.status == 400 and "sys" in r.text, (
        f"User \"sys\" exists only in the host's /etc/passwd ({case}): want 400 naming it, got "
        f"{r}{uid} (anything past user resolution means the host's file was read)")
    assert api.describe(name).status == 404


def test_image_user_through_symlink_inside_rootfs(api, functions, hostile):
    """Control: a symlink that stays in the image is followed (as Docker does)."""
    entries = etc_entries(None) + [
        d("usr/share"), f("usr/share/passwd", "app:x:1234:1234::/:/bin/sh\n"),
        symlink("etc/passwd", "../usr/share/passwd")]
    ref = hostile.push("user-inner-link", entries, user="app", with_etc=False)
    name = functions.name("usrok")
    r = deploy(api, name, ref)
    assert r.status in (200, 202), r
    api.wait_ready(name)
    status = api.invoke(name, "/_/file?path=/proc/self/status", method="GET")
    assert status.status == 200, status
    uid = re.search(r"^Uid:\s+(\d+)\s+(\d+)", status.text, re.M)
    gid = re.search(r"^Gid:\s+(\d+)\s+(\d+)", status.text, re.M)
    assert uid and uid.groups() == ("1234", "1234"), status.text
    assert gid and gid.groups() == ("1234", "1234"), status.text


# == 3. a FIFO at /etc/passwd ===================================================================
def release_fifo_readers(state_dir, timeout=15):
    """Opens for writing every FIFO a reader may be blocked on in the daemon's rootfs mounts,
    so a daemon stuck there moves on (and unmounts). Bounded; for clean-up only."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        points = [m for m in mounts_under(Path(state_dir) / "tmp")
                  if Path(m).name.startswith("rootfs-")]
        if not points:
            return
        for mnt in points:
            for rel in ("etc/passwd", "etc/group"):
                try:
                    fd = os.open(os.path.join(mnt, rel), os.O_WRONLY | os.O_NONBLOCK)
                    os.close(fd)
                except OSError:
                    pass
        time.sleep(0.1)


def rootfs_mounts(state_dir):
    """Mounts the daemon made to read an image's files: under <state>/tmp, or named rootfs-*
    anywhere in the test's work folder (not host-wide: other benches may run beside us)."""
    workdir = Path(state_dir).parent.parent
    return sorted(set(mounts_under(Path(state_dir) / "tmp")) |
                  {m for m in mounts_under(workdir) if Path(m).name.startswith("rootfs-")})


def test_fifo_passwd_fails_fast_and_leaves_no_mount(api, functions, hostile):
    ref = hostile.push("fifo-passwd", etc_entries(None) + [fifo("etc/passwd")], user="app",
                       with_etc=False)
    name = functions.name("fifo")
    try:
        t0 = time.monotonic()
        try:
            r = deploy(api, name, ref, timeout=20)
        except (socket.timeout, TimeoutError) as exc:
            pytest.fail(f"deploy of an image with a FIFO at /etc/passwd did not answer in 20 s "
                        f"(blocked opening the FIFO?): {exc!r}; mounts: "
                        f"{rootfs_mounts(api.state_dir)}")
        assert 400 <= r.status < 500, f"after {time.monotonic() - t0:.1f}s: {r}"
        try:
            harness.wait_until(lambda: not rootfs_mounts(api.state_dir), 5,
                               "the rootfs mount to go")
        except TimeoutError:
            pytest.fail(f"mounts left after the failed deploy: {rootfs_mounts(api.state_dir)}")
        r = api.request("DELETE", "/system/functions", {"functionName": name}, timeout=10)
        assert r.status in (200, 202, 404), r
        r = deploy(api, name, ref, timeout=20)
        assert 400 <= r.status < 500, r
        assert not rootfs_mounts(api.state_dir)
    finally:
        release_fifo_readers(api.state_dir)


# == 4. failed deploys racing the reconciler leak nothing =====================================
def network_leftovers(api, cni, prefix):
    """What the CNI side holds for containers whose id starts with prefix."""
    ipam = Path(cni.ipam_dir) / cni.network
    ips = []
    for p in ipam.glob("*"):
        if re.fullmatch(r"[0-9.]+", p.name):
            try:
                owner = p.read_text().split()
            except OSError:
                continue
            if owner and owner[0].startswith(prefix):
                ips.append(p.name)
    netns = [p.name for p in (api.state_dir / "netns").glob(prefix + "*")]
    netns_mounts = mounts_under(api.state_dir / "netns")
    netns_mounts = [m for m in netns_mounts if Path(m).name.startswith(prefix)]
    cache = [p.name for p in (api.state_dir / "cni").glob(prefix + "*")]
    nat = harness.run(["iptables-save", "-t", "nat"], check=False).stdout
    nat_rules = [l for l in nat.splitlines() if f'id: \\"{prefix}' in l]
    return {"ipam": sorted(ips), "netns": sorted(netns), "netns_mounts": sorted(netns_mounts),
            "cni_cache": sorted(cache), "nat_rules": nat_rules}


def scrub_network_leftovers(api, cni, prefix):
    """Removes what a leaky daemon left for prefix (bounded, best effort), so later tests
    start clean: netns mounts, IPAM files, cache files, the iptables rules of those IPs."""
    ips = set()
    for p in (Path(cni.ipam_dir) / cni.network).glob("*"):
        try:
            if re.fullmatch(r"[0-9.]+", p.name) and p.read_text().split()[0].startswith(prefix):
                ips.add(p.name)
                p.unlink()
        except (OSError, IndexError):
            pass
    for p in (api.state_dir / "cni").glob(prefix + "*"):
        try:
            ips.add(json.loads(p.read_text()).get("ip", ""))
        except (OSError, ValueError):
            pass
        p.unlink(missing_ok=True)
    for p in (api.state_dir / "netns").glob(prefix + "*"):
        if harness.run(["umount", str(p)], check=False).returncode != 0:
            harness.run(["umount", "-l", str(p)], check=False)
        p.unlink(missing_ok=True)
    ips.discard("")
    for table in ("nat", "filter"):
        out = harness.run(["iptables-save", "-t", table], check=False).stdout
        chains = set()
        for line in out.splitlines():
            if not line.startswith("-A "):
                continue
            if f'id: \\"{prefix}' in line or any(re.search(re.escape(ip) + r"/32\b", line)
                                                   for ip in ips):
                jump = re.search(r"-j (CNI-[0-9a-f]{24})\b", line)
                if jump:
                    chains.add(jump.group(1))
                harness.run(["iptables", "-w", "-t", table, "-D"] + shlex.split(line)[1:],
                            check=False)
        for chain in chains:
            harness.run(["iptables", "-w", "-t", table, "-F", chain], check=False)
            harness.run(["iptables", "-w", "-t", table, "-X", chain], check=False)


def test_failed_deploys_racing_reconcile_leak_nothing(api, functions, hostile, containerd, cni):
    """Deploys whose task cannot be created (entrypoint missing) fail after their network was
    attached; meanwhile a helper function is killed again and again, so containerd's task-exit
    events keep reconcile passes running. A pass that listed a failing deploy's container and
    gets its lock after the deploy cleaned up must not attach a network nobody releases."""
    tag = "%06x" % random.getrandbits(24)
    prefix = f"r{tag}-"
    helper = f"r{tag}-a"
    failing = [f"r{tag}-z{i:02d}" for i in range(40)]
    functions.names += [helper] + failing
    ref = hostile.push("no-entrypoint", [], entrypoint=["/nonexistent"])
    try:
        r = api.deploy(helper, hostile.push("plain", []))
        assert r.status in (200, 202), r
        api.wait_ready(helper)
        # One failing deploy first: the image is pulled once, not by four racing pulls.
        r = deploy(api, failing[0], ref)
        assert r.status >= 400, f"a deploy with a missing entrypoint succeeded: {r}"

        stop = threading.Event()
        kills = []

        def kill_helper():
            deadline = time.monotonic() + 180
            while not stop.is_set() and time.monotonic() < deadline:
                for line in containerd.lines("tasks", "ls", namespace=harness.NAMESPACE)[1:]:
                    fields = line.split()
                    if fields[0].startswith(helper + "-") and fields[2:3] == ["RUNNING"]:
                        containerd.ctr("tasks", "kill", "-s", "SIGKILL", fields[0],
                                       namespace=harness.NAMESPACE, check=False)
                        kills.append(fields[0])
                stop.wait(0.1)

        results = {}

        def worker(names):
            for n in names:
                try:
                    results[n] = deploy(api, n, ref, timeout=120).status
                except OSError as exc:
                    results[n] = repr(exc)

        killer = threading.Thread(target=kill_helper)
        killer.start()
        workers = [threading.Thread(target=worker, args=(failing[1:][i::4],)) for i in range(4)]
        try:
            for w in workers:
                w.start()
            for w in workers:
                w.join(timeout=300)
        finally:
            stop.set()
            killer.join(timeout=30)
        assert not any(w.is_alive() for w in workers), "deploys still running after 300 s"
        ok = {n: s for n, s in results.items() if not isinstance(s, int) or s < 400}
        assert not ok, f"deploys that should have failed: {ok}"
        assert kills, "the helper was never killed: no reconcile pass was provoked"
        r = api.delete(helper)
        assert r.status in (200, 202), r

        def clean():
            left = network_leftovers(api, cni, prefix)
            return not any(left.values())
        try:
            harness.wait_until(clean, 20, "network clean-up of the failed deploys")
        except TimeoutError:
            left = network_leftovers(api, cni, prefix)
            counts = {k: len(v) for k, v in left.items()}
            sample = {k: v[:3] for k, v in left.items() if v}
            pytest.fail(f"{len(failing)} failed deploys ({len(kills)} helper kills) leaked "
                        f"{counts}; for example {sample}")
    finally:
        scrub_network_leftovers(api, cni, prefix)


# == 5. bad values are 4xx, not 500 ============================================================
BAD_FIELDS = [
    ("cpu-tiny", {"limits": {"cpu": "0.0000001"}}, "limits.cpu"),
    ("label-empty-key", {"labels": {"": "z"}}, "label"),
    # 8. keys with newlines
    ("env-newline", {"envVars": {"A\nB": "x"}}, "envVars"),
    ("label-newline", {"labels": {"a\nb": "x"}}, "labels"),
    ("annotation-newline", {"annotations": {"a\nb": "x"}}, "annotations"),
]


@pytest.mark.parametrize("case,fields,needle", BAD_FIELDS, ids=[c[0] for c in BAD_FIELDS])
def test_bad_deployment_field_is_400(api, functions, hostile, case, fields, needle):
    name = functions.name("bad")
    r = deploy(api, name, hostile.push("plain", []), **fields)
    assert r.status == 400 and needle in r.text, f"{case}: want 400 naming {needle}, got {r}"
    assert api.describe(name).status == 404, f"{case}: a function was deployed"


@pytest.mark.parametrize("target", ["../../../etc/passwd", "/etc/shadow"])
def test_hardlink_out_of_layer_is_4xx(api, functions, hostile, target):
    watched = [p for p in ("/etc/passwd", "/etc/shadow") if os.path.exists(p)]
    before = {p: os.lstat(p) for p in watched}
    ref = hostile.push("hardlink-" + re.sub(r"[^a-z]+", "-", target).strip("-"),
                       [hardlink("leak", target)])
    name = functions.name("hlink")
    r = deploy(api, name, ref)
    assert 400 <= r.status < 500, f"hard link to {target!r}: want 4xx, got {r}"
    assert re.search(r"layer|image", r.text, re.I), f"error does not name the image/layer: {r}"
    for p in watched:
        a, b = before[p], os.lstat(p)
        assert (a.st_ino, a.st_nlink, a.st_size, a.st_mtime_ns) == \
            (b.st_ino, b.st_nlink, b.st_size, b.st_mtime_ns), f"host {p} changed"
    assert api.describe(name).status == 404


# == 6. deploy bodies: curl's form content type, and 413s that say why ===========================
def test_form_encoded_json_body_is_json(api, functions, hostile):
    """`curl -d @deploy.json` sends application/x-www-form-urlencoded; a body over 8 KB must
    still be read as the JSON it is."""
    name = functions.name("curl")
    # ~20 KB in ten annotations: each stays under containerd's 4 KiB per label.
    annotations = {f"big{i}": chr(ord("a") + i) * 2000 for i in range(10)}
    body = json.dumps({"service": name, "image": hostile.push("plain", []),
                       "annotations": annotations})
    assert len(body) > 20000
    r = api.request("POST", "/system/functions", body.encode(),
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status in (200, 202), f"{len(body)}-byte JSON body sent as a form: {r}"
    api.wait_ready(name)
    got = api.describe(name).json().get("annotations", {})
    assert {k: got.get(k) for k in annotations} == annotations


def raw_exchange(api, headers, body_chunks=(), chunked=False, path="/system/functions",
                 timeout=30):
    """POST with exact framing; returns (status, body bytes). The server may answer before
    reading everything: send errors are ignored, the answer is read anyway."""
    s = socket.create_connection(("127.0.0.1", api.port), timeout=timeout)
    try:
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n" \
               f"Authorization: {api.auth_header()}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        if chunked:
            head += "Transfer-Encoding: chunked\r\n"
        s.sendall((head + "\r\n").encode())
        try:
            for chunk in body_chunks:
                s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            if chunked:
                s.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        try:
            while True:
                more = s.recv(65536)
                if not more:
                    break
                data += more
                if b"\r\n\r\n" in data:
                    head_b, rest = data.split(b"\r\n\r\n", 1)
                    m = re.search(rb"(?im)^content-length:\s*(\d+)", head_b)
                    if len(rest) >= (int(m.group(1)) if m else 0):
                        break
        except ConnectionResetError:
            pass
    finally:
        s.close()
    if b"\r\n\r\n" not in data:
        return 0, data
    head_b, rest = data.split(b"\r\n\r\n", 1)
    status = int(head_b.split(b" ", 2)[1])
    return status, rest


def pieces(total, size=65536):
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        yield b" " * n
        sent += n


JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
OVERSIZED = [
    ("json-length", {"Content-Type": JSON, "Content-Length": LIMIT_1MIB + 1}, LIMIT_1MIB + 1, False),
    ("form-length", {"Content-Type": FORM, "Content-Length": LIMIT_1MIB + 1}, LIMIT_1MIB + 1, False),
    ("json-chunked", {"Content-Type": JSON}, 2 * LIMIT_1MIB, True),
    ("form-chunked", {"Content-Type": FORM}, 2 * LIMIT_1MIB, True),
    # Announced far over the limit: answered before any body is sent.
    ("json-announced-64MiB", {"Content-Type": JSON, "Content-Length": 64 * LIMIT_1MIB}, 0, False),
    ("form-announced-64MiB", {"Content-Type": FORM, "Content-Length": 64 * LIMIT_1MIB}, 0, False),
]


@pytest.mark.parametrize("case,headers,size,chunked", OVERSIZED, ids=[c[0] for c in OVERSIZED])
def test_oversized_deploy_body_413_names_limit(api, case, headers, size, chunked):
    status, body = raw_exchange(api, headers, pieces(size), chunked=chunked)
    assert status == 413, f"{case}: want 413, got {status} {body[:200]!r}"
    assert re.search(rb"1048576|1 ?MiB", body), \
        f"{case}: the 413's body does not state the 1 MiB limit: {body[:200]!r}"


def test_invoke_form_body_passes_and_413_names_limit(api, sentinel):
    """The invoke route: a form body over 8 KB reaches the function; its 413 names its limit."""
    r = api.invoke(sentinel, body="a=" + "x" * 20000, headers={"Content-Type": FORM})
    assert r.status == 200 and len(r.body) == 20002, r
    status, body = raw_exchange(api, {"Content-Type": FORM, "Content-Length": 64 * LIMIT_1MIB},
                                path=f"/function/{sentinel}")
    assert status == 413 and b"33554432" in body, (status, body[:200])


# == 7. bounds ===================================================================================
MAX_IMAGE_BYTES = 64 << 20


def snapshot_bytes(containerd):
    root = containerd.root / "io.containerd.snapshotter.v1.overlayfs" / "snapshots"
    out = harness.run(["du", "-sb", str(root)], check=False).stdout.split()
    return int(out[0]) if out else 0


def test_gzip_bomb_stops_at_max_image_bytes(request, workdir, hostile):
    """A 256 KB layer that inflates to 256 MiB, against a daemon allowed 64 MiB per image. The
    image is that one layer: nothing in it is shared with the session namespace's images, so
    the ceiling is the only thing under test. The daemon has a containerd of its own: two daemons
    on one containerd would each manage the other's function namespaces."""
    ns = "openfaas-bomb"
    daemon, containerd = harness.private_daemon(
        request, workdir, "bomb", ns, extra_args=[f"--max-image-bytes={MAX_IMAGE_BYTES}"])
    try:
        daemon.start()
    except harness.HarnessError as exc:
        pytest.fail(f"faasd up --max-image-bytes={MAX_IMAGE_BYTES} did not start (no ceiling on "
                    f"uncompressed image size?): {exc}")
    size = 256 << 20
    layer = hostile.layout.layer([hi.big("bomb", size, hi.Zeros(size))])
    assert layer[0]["size"] < 2 << 20, layer
    hostile.layout.image("bomb", [layer])
    ref = f"{hostile.registry.host}/hostile-bomb:1"
    harness.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false",
                 f"oci:{hostile.layout.path}:bomb", f"docker://{ref}"], timeout=300)
    before = snapshot_bytes(containerd)
    name = "bomb-%06x" % random.getrandbits(24)
    t0 = time.monotonic()
    try:
        r = deploy(daemon, name, ref, timeout=60, namespace=ns)
    finally:
        elapsed = time.monotonic() - t0
        daemon.request("DELETE", "/system/functions", {"functionName": name, "namespace": ns})
    assert 400 <= r.status < 500, f"256 MiB layer against a 64 MiB ceiling: {r}"
    assert re.search(rf"{MAX_IMAGE_BYTES}|64 ?MiB", r.text), f"limit not named: {r}"
    assert elapsed < 20, f"took {elapsed:.1f}s"

    bomb_chain = layer[1]  # a one-layer image's chain ID is its diff ID

    def leftovers():  # the bomb's snapshot, or any unpack still active
        rows = [l.split() for l in containerd.lines("snapshots", "ls", namespace=ns)[1:]]
        return [r for r in rows if r[0] == bomb_chain or r[-1] == "Active"]
    try:
        harness.wait_until(lambda: not leftovers(), 10, f"snapshots in {ns} to go")
    except TimeoutError:
        pytest.fail(f"the bomb left snapshots: {leftovers()}")
    grown = snapshot_bytes(containerd) - before
    assert grown < MAX_IMAGE_BYTES, f"snapshots grew by {grown} bytes"


@pytest.mark.parametrize("mode", ["length", "eof", "stall"])
def test_short_blob_fails_fast_naming_it(api, functions, hostile, mode):
    """A registry answers a layer with fewer bytes than its descriptor says ("stall": its
    Content-Length already says so, then it stops sending)."""
    data = os.urandom(3 << 20)  # incompressible: the layer really is ~3 MiB
    layer = hostile.layout.layer([f("payload.bin", data)])
    hostile.layout.image(f"short-{mode}", [layer])
    digest = layer[0]["digest"]
    liar = hi.LyingRegistry(hostile.layout, {digest: layer[0]["size"] // 2}, short_mode=mode)
    liar.start()
    name = functions.name("short")
    try:
        t0 = time.monotonic()
        try:
            r = deploy(api, name, f"{liar.host}/liar:short-{mode}", timeout=15)
        except (socket.timeout, TimeoutError):
            pytest.fail(f"{mode}: deploy still waiting for the short blob after 15 s")
        elapsed = time.monotonic() - t0
    finally:
        liar.close()
    assert liar.blob_gets(digest) >= 1, "the layer was never requested"
    assert r.status == 502 and digest in r.text, f"{mode}: want 502 naming {digest}: {r}"
    assert elapsed < 10, f"{mode}: took {elapsed:.1f}s"


RSS_HELPER = r"""
import json, resource, subprocess, sys
p = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(json.dumps({"rc": p.returncode, "stderr": p.stderr[-2000:],
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def test_build_streams_big_handler(scratch):
    """A 200 MB handler of incompressible data builds with a peak RSS under 100 MB."""
    stack = scratch / "stack"
    (stack / "handler").mkdir(parents=True)
    with open(stack / "handler" / "big.bin", "wb") as fh:
        for _ in range(200):
            fh.write(os.urandom(1 << 20))
    write_stack(stack, "handler")
    out = scratch / "oci"
    p = subprocess.run([sys.executable, "-c", RSS_HELPER, harness.FAASD_BIN, "build",
                        "--no-build-command", "--watchdog", harness.FNSERVER_BIN,
                        "--output", str(out), str(stack)],
                       capture_output=True, text=True, timeout=600)
    result = json.loads(p.stdout.strip().splitlines()[-1])
    (stack / "handler" / "big.bin").unlink()
    assert result["rc"] == 0, result["stderr"]
    blobs = sorted((out / "blobs" / "sha256").iterdir(), key=lambda b: b.stat().st_size)
    assert blobs[-1].stat().st_size > 200 << 20, "the handler layer is not in the layout"
    peak = result["maxrss_kb"] * 1024
    assert peak < 100e6, f"faasd build of a 200 MiB handler peaked at {peak / 1e6:.0f} MB RSS"
