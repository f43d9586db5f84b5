"""Secrets: the /system/secrets API as faas-cli drives it, the store on disk, and what a
function sees: only the secrets it names, each a read-only file of its own user's."""

import base64
import os
import random
import stat
import urllib.parse

import pytest

import harness

NS = harness.NAMESPACE


def sname(prefix="s"):
    return f"{prefix}-{random.getrandbits(24):06x}"


@pytest.fixture
def secrets(request, api):
    """Creates secrets with unique names and deletes whatever is left afterwards."""
    made = []

    def create(value="v", name=None, raw=None, **extra):
        n = name or sname()
        body = {"name": n, "value": value, **extra}
        if raw is not None:
            body = {"name": n, "rawValue": base64.b64encode(raw).decode(), **extra}
        r = api.request("POST", "/system/secrets", body)
        if r.status in (200, 201, 202):
            made.append(n)
        return n, r

    def cleanup():
        if not api.running():
            api.start()
        for n in made:
            api.request("DELETE", "/system/secrets", {"name": n, "namespace": NS})
    request.addfinalizer(cleanup)
    return create


def listed(api, ns=None):
    path = "/system/secrets" + (f"?namespace={ns}" if ns else "")
    r = api.request("GET", path)
    assert r.status == 200, r
    return r.json()


def store_path(api, name, ns=NS):
    return api.state_dir / "function-secrets" / ns / name


def container_root(containerd, name):
    ids = [i for i in containerd.lines("containers", "ls", "-q", namespace=NS)
           if i.startswith(name + "-")]
    assert len(ids) == 1, ids
    pid = containerd.task_pid(ids[0])
    assert pid, f"no running task for {ids[0]}"
    return f"/proc/{pid}/root"


def test_create_list_update_delete(api, secrets):
    n, r = secrets("first value")
    assert r.status == 201, r
    entries = listed(api)
    assert {"name": n, "namespace": NS} in entries
    assert all(set(e) == {"name", "namespace"} for e in entries), "values must never be listed"
    _, again = secrets("other", name=n)
    assert again.status == 409 and n in again.text, again

    r = api.request("PUT", "/system/secrets", {"name": n, "value": "second"})
    assert r.status == 200, r
    assert store_path(api, n).read_bytes() == b"second"
    r = api.request("PUT", "/system/secrets", {"name": sname("missing"), "value": "x"})
    assert r.status == 404, r

    # faas-cli puts the namespace in the DELETE body; faasd reads the query: both work.
    r = api.request("DELETE", "/system/secrets", {"name": n, "namespace": NS})
    assert r.status == 200, r
    assert n not in [e["name"] for e in listed(api)]
    r = api.request("DELETE", "/system/secrets", {"name": n, "namespace": NS})
    assert r.status == 404 and n in r.text, r
    m, _ = secrets("x")
    r = api.request("DELETE", f"/system/secrets?namespace={NS}", {"name": m})
    assert r.status == 200, r


def test_store_is_private_and_values_never_logged(api, secrets):
    value = "never-log-%08x" % random.getrandbits(32)
    n, r = secrets(value)
    assert r.status == 201, r
    f = store_path(api, n)
    st = f.stat()
    assert stat.S_IMODE(st.st_mode) == 0o400 and st.st_uid == 0, oct(st.st_mode)
    for d in (f.parent, f.parent.parent):
        dst = d.stat()
        assert stat.S_IMODE(dst.st_mode) == 0o700 and dst.st_uid == 0, (d, oct(dst.st_mode))
    assert stat.S_IMODE((api.state_dir / "run").stat().st_mode) == 0o700
    r = api.request("PUT", "/system/secrets", {"name": n, "value": value + "-2"})
    assert r.status == 200
    assert value not in harness.tail(api.log_path, 10**8), "a secret value reached the log"
    leftovers = [p.name for p in f.parent.iterdir() if p.name.startswith(".")]
    assert not leftovers, f"temporary files left in the store: {leftovers}"


def test_binary_raw_value_is_kept_exactly(api, secrets, functions, containerd):
    raw = bytes(range(256)) * 3 + b"\x00tail\n"
    n, r = secrets(raw=raw)
    assert r.status == 201, r
    assert store_path(api, n).read_bytes() == raw
    fn = functions.deploy("rawsec", secrets=[n])
    root = container_root(containerd, fn)
    with open(f"{root}/var/openfaas/secrets/{n}", "rb") as fh:
        assert fh.read() == raw


BAD_NAMES = ["a/b", "..", "../x", "UPPER", "a" * 64, "a b", "-x"]


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_bad_secret_names_are_400(api, bad):
    for method in ("POST", "PUT", "DELETE"):
        r = api.request(method, "/system/secrets", {"name": bad, "value": "x"})
        assert r.status == 400, (method, r)
        assert r.text.strip(), (method, "no message")
    assert not any(p.name == bad for p in (api.state_dir / "function-secrets").rglob("*"))


def test_bad_secret_bodies(api, secrets):
    for body, want in [
        (b"{not json", 400), (b"[]", 400), (b'{"name": 5}', 400),
        (b'{"name": "x-ok", "rawValue": "not base64!"}', 400),
        (b'{"value": "no name"}', 400),
    ]:
        r = api.request("POST", "/system/secrets", body,
                        headers={"Content-Type": "application/json"})
        assert r.status == want and r.text.strip(), (body, r)
    n = sname()
    r = api.request("POST", f"/system/secrets?namespace=other-ns",
                    {"name": n, "value": "x", "namespace": NS})
    assert r.status == 400 and "differs" in r.text, r
    r = api.request("POST", "/system/secrets", {"name": n, "value": "x", "namespace": "nope-ns"})
    assert r.status in (400, 404) and "nope-ns" in r.text, r
    r = api.request("GET", "/system/secrets?namespace=" + urllib.parse.quote("../etc"))
    assert r.status == 400, r


def test_secret_over_512_kib_is_413(api, secrets):
    limit = 512 * 1024
    n, r = secrets("x" * limit)
    assert r.status == 201, r
    big, r = secrets("x" * (limit + 1))
    assert r.status == 413 and str(limit) in r.text, r
    r = api.request("PUT", "/system/secrets", {"name": n, "value": "y" * (limit + 1)})
    assert r.status == 413, r
    assert store_path(api, n).stat().st_size == limit


def test_function_sees_only_the_secrets_it_names(api, secrets, functions, containerd):
    mine, _ = secrets("mine-value")
    theirs, _ = secrets("theirs-value")
    fn = functions.deploy("sec", secrets=[mine])
    other = functions.deploy("nosec")
    root = container_root(containerd, fn)
    sdir = f"{root}/var/openfaas/secrets"
    assert sorted(os.listdir(sdir)) == [mine], "the function sees secrets it did not name"
    st = os.stat(f"{sdir}/{mine}")
    assert stat.S_IMODE(st.st_mode) == 0o400 and st.st_uid == 0 and st.st_gid == 0
    r = api.invoke(fn, f"/_/file?path=/var/openfaas/secrets/{mine}", method="GET")
    assert r.status == 200 and r.text == "mine-value", r
    r = api.invoke(fn, f"/_/file?path=/var/openfaas/secrets/{theirs}", method="GET")
    assert r.status == 404, r
    # Not writable from inside, even by root: the mount is read-only.
    with pytest.raises(OSError):
        with open(f"{sdir}/{mine}", "w") as fh:
            fh.write("x")
    r = api.invoke(other, f"/_/file?path=/var/openfaas/secrets/{mine}", method="GET")
    assert r.status == 404, r

    # An update reaches the running function without a restart.
    r = api.request("PUT", "/system/secrets", {"name": mine, "value": "new-value"})
    assert r.status == 200, r
    r = api.invoke(fn, f"/_/file?path=/var/openfaas/secrets/{mine}", method="GET")
    assert r.status == 200 and r.text == "new-value", r

    # In use: 409 naming the function; free once the function is gone.
    r = api.request("DELETE", "/system/secrets", {"name": mine, "namespace": NS})
    assert r.status == 409 and fn in r.text, r
    assert api.delete(fn).status in (200, 202)
    harness.wait_until(lambda: api.describe(fn).status == 404, 30, f"{fn} removed")
    r = api.request("DELETE", "/system/secrets", {"name": mine, "namespace": NS})
    assert r.status == 200, r


def test_deploy_naming_a_missing_secret_is_400(api, functions, fn_image):
    missing = sname("absent")
    name = functions.name("miss")
    r = api.deploy(name, fn_image.refs["echo"], secrets=[missing])
    assert r.status == 400 and missing in r.text, r
    assert api.describe(name).status == 404


def test_secret_copies_go_with_the_container(api, secrets, functions, containerd):
    n, _ = secrets("v")
    fn = functions.deploy("secgone", secrets=[n])
    run = api.state_dir / "run"
    copies = [p for p in run.glob(f"{fn}-*/secrets/{n}")]
    assert len(copies) == 1 and copies[0].read_bytes() == b"v", copies
    assert api.delete(fn).status in (200, 202)
    harness.wait_until(lambda: not list(run.glob(f"{fn}-*")), 30, f"run dir of {fn} removed")
