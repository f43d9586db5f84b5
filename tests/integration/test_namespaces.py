"""Namespaces: containerd namespaces labelled openfaas=1 (or true) hold functions and secrets of
their own; /system/namespace CRUD as faas-cli sends it; NAME.NAMESPACE on invoke."""

import random

import pytest

import harness


def ns_name(prefix="ns"):
    return f"{prefix}-{random.getrandbits(24):06x}"


@pytest.fixture
def namespace(request, api, containerd):
    """A function namespace created through the API; whatever is left in it goes afterwards."""
    made = []

    def create(name=None, **extra):
        n = name or ns_name()
        body = {"name": n, "labels": {"openfaas": "1"}, "annotations": {"openfaas": "1"}, **extra}
        r = api.request("POST", "/system/namespace/", body)
        assert r.status == 201, r
        made.append(n)
        return n

    def cleanup():
        if not api.running():
            api.start()
        for n in made:
            r = api.request("GET", f"/system/functions?namespace={n}")
            if r.status == 404:
                continue  # the test deleted it
            for f in r.json():
                api.request("DELETE", "/system/functions",
                            {"functionName": f["name"], "namespace": n})
            for s in api.request("GET", f"/system/secrets?namespace={n}").json():
                api.request("DELETE", "/system/secrets", {"name": s["name"], "namespace": n})

            def gone():
                r = api.request("DELETE", f"/system/namespace/{n}", {"name": n})
                return r.status in (202, 404)
            try:
                harness.wait_until(gone, 60, f"namespace {n} deleted")
            except TimeoutError:
                containerd.remove_everything()
    request.addfinalizer(cleanup)
    return create


def test_namespace_crud(api, namespace, containerd):
    n = namespace(labels={"openfaas": "1", "team": "a"}, annotations={"owner": "x"})
    assert n in api.request("GET", "/system/namespaces").json()
    r = api.request("GET", f"/system/namespace/{n}")
    assert r.status == 200, r
    got = r.json()
    assert got["name"] == n and got["labels"]["team"] == "a" and got["labels"]["openfaas"] == "1"
    assert got.get("annotations", {}).get("owner") == "x", got
    r = api.request("POST", "/system/namespace/", {"name": n, "labels": {"openfaas": "1"}})
    assert r.status == 409, r
    r = api.request("PUT", f"/system/namespace/{n}",
                    {"name": n, "labels": {"openfaas": "1", "team": "b"}})
    assert r.status == 202, r
    assert api.request("GET", f"/system/namespace/{n}").json()["labels"]["team"] == "b"
    # It is a containerd namespace, labelled so.
    assert n in containerd.lines("namespaces", "ls", "-q")
    r = api.request("DELETE", f"/system/namespace/{n}", {"name": n, "labels": {"openfaas": "1"}})
    assert r.status == 202, r
    assert n not in containerd.lines("namespaces", "ls", "-q")
    assert api.request("GET", f"/system/namespace/{n}").status == 404
    assert api.request("DELETE", f"/system/namespace/{n}").status == 404


def test_a_containerd_namespace_labelled_openfaas_true_is_listed(api, containerd):
    n = ns_name("ctr")
    containerd.ctr("namespaces", "create", n, "openfaas=true")
    try:
        assert n in api.request("GET", "/system/namespaces").json()
        containerd.ctr("namespaces", "create", n + "-x")  # no label: not a function namespace
        assert n + "-x" not in api.request("GET", "/system/namespaces").json()
        assert api.request("GET", f"/system/functions?namespace={n}-x").status == 404
    finally:
        containerd.ctr("namespaces", "remove", n, check=False)
        containerd.ctr("namespaces", "remove", n + "-x", check=False)


def test_functions_live_in_their_namespace(api, namespace, fn_image, functions):
    n = namespace()
    name = "same-%06x" % random.getrandbits(24)
    # The same name in the default namespace and in n: two functions.
    functions.names.append(name)
    r = api.deploy(name, fn_image.refs["echo"], envVars={"where": "default"})
    assert r.status in (200, 202), r
    r = api.request("POST", f"/system/functions?namespace={n}",
                    {"service": name, "image": fn_image.refs["echo"], "envVars": {"where": n}})
    assert r.status in (200, 202), r
    api.wait_ready(name)

    def ready_in_ns():
        r = api.request("GET", f"/system/function/{name}?namespace={n}")
        return r.status == 200 and r.json().get("availableReplicas", 0) >= 1
    harness.wait_until(ready_in_ns, 60, f"{name} ready in {n}")

    for target, want in [(name, "default"), (f"{name}.openfaas-fn", "default"),
                         (f"{name}.{n}", n)]:
        r = api.invoke(target, method="GET", headers={"X-Echo-Env": "where"})
        assert r.status == 200 and r.headers.get("X-Fn-Env-where") == want, (target, r)
    in_n = api.request("GET", f"/system/functions?namespace={n}").json()
    assert [f["name"] for f in in_n] == [name] and in_n[0]["namespace"] == n
    assert api.request("GET", f"/system/function/{name}?namespace={n}").json()["namespace"] == n
    # Scale and remove act on the right one.
    r = api.request("POST", f"/system/scale-function/{name}?namespace={n}",
                    {"serviceName": name, "replicas": 0, "namespace": n})
    assert r.status in (200, 202), r
    harness.wait_until(
        lambda: api.request("GET", f"/system/function/{name}?namespace={n}")
        .json()["availableReplicas"] == 0, 30, "scaled to zero in n")
    assert api.describe(name).json()["availableReplicas"] == 1, "the default one was scaled"
    r = api.request("DELETE", "/system/functions", {"functionName": name, "namespace": n})
    assert r.status in (200, 202), r
    harness.wait_until(
        lambda: api.request("GET", f"/system/function/{name}?namespace={n}").status == 404,
        30, "removed from n")
    assert api.invoke(name, body="still").text == "still"


def test_secrets_belong_to_their_namespace(api, namespace, fn_image, functions):
    n = namespace()
    secret = "sec-%06x" % random.getrandbits(24)
    r = api.request("POST", "/system/secrets", {"name": secret, "value": "in-n", "namespace": n})
    assert r.status == 201, r
    assert secret in [s["name"] for s in
                      api.request("GET", f"/system/secrets?namespace={n}").json()]
    assert secret not in [s["name"] for s in api.request("GET", "/system/secrets").json()]
    # A function in the default namespace cannot name it.
    name = functions.name("wrongns")
    r = api.deploy(name, fn_image.refs["echo"], secrets=[secret])
    assert r.status == 400 and secret in r.text, r
    # One in n can.
    fn = "sec-user-%06x" % random.getrandbits(24)
    r = api.request("POST", "/system/functions",
                    {"service": fn, "image": fn_image.refs["echo"], "namespace": n,
                     "secrets": [secret]})
    assert r.status in (200, 202), r

    def reads():
        r = api.invoke(f"{fn}.{n}", f"/_/file?path=/var/openfaas/secrets/{secret}",
                       method="GET")
        return r.status == 200 and r.text == "in-n"
    harness.wait_until(reads, 60, f"{fn}.{n} to read its secret")
    # Deleting the namespace is refused while it holds them, naming both.
    r = api.request("DELETE", f"/system/namespace/{n}", {"name": n})
    assert r.status == 409 and fn in r.text and secret in r.text, r
    r = api.request("DELETE", "/system/functions", {"functionName": fn, "namespace": n})
    assert r.status in (200, 202), r
    harness.wait_until(
        lambda: api.request("GET", f"/system/function/{fn}?namespace={n}").status == 404, 30,
        "function removed")
    r = api.request("DELETE", f"/system/namespace/{n}", {"name": n})
    assert r.status == 409 and secret in r.text, r


@pytest.mark.parametrize("bad", ["UPPER", "a_b", "../etc", "-x", "a" * 64])
def test_bad_namespace_names_are_400(api, bad):
    r = api.request("POST", "/system/namespace/", {"name": bad, "labels": {"openfaas": "1"}})
    assert r.status == 400, r
    q = "".join(c if c.isalnum() or c in "-._~" else "%%%02X" % ord(c) for c in bad)
    for path in (f"/system/functions?namespace={q}", f"/system/secrets?namespace={q}"):
        r = api.request("GET", path)
        assert r.status == 400, (path, r)


def test_namespace_mismatches_and_unknown_namespaces(api, namespace, fn_image):
    n = namespace()
    r = api.request("PUT", f"/system/namespace/{n}", {"name": "other-name"})
    assert r.status == 400, r
    r = api.request("POST", f"/system/functions?namespace={n}",
                    {"service": "x-mismatch", "image": fn_image.refs["echo"],
                     "namespace": "openfaas-fn"})
    assert r.status == 400 and "differs" in r.text, r
    unknown = ns_name("unknown")
    r = api.request("POST", "/system/functions",
                    {"service": "x-unknown", "image": fn_image.refs["echo"],
                     "namespace": unknown})
    assert r.status == 404 and unknown in r.text, r
    assert api.request("GET", f"/system/functions?namespace={unknown}").status == 404
    r = api.request("DELETE", "/system/namespace/openfaas-fn", {"name": "openfaas-fn"})
    assert r.status == 400, r
    assert api.request("GET", "/system/namespace/openfaas-fn").status == 200
