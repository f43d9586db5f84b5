"""Bad requests get precise 4xx answers (never 5xx, never a crash), and after each one the
function deployed at the start of this module still answers."""

import base64
import random
import socket

import pytest

import harness

BAD_NAMES = ["../x", "", "a" * 300, "UPPER", "a/b", "a b", "-lead", "x\x00y"]


@pytest.fixture(scope="module")
def sentinel(request, faasd, fn_image):
    name = "sentinel-%06x" % random.getrandbits(24)

    def cleanup():
        if not faasd.running():
            faasd.start()
        faasd.delete(name)
    request.addfinalizer(cleanup)
    r = faasd.deploy(name, fn_image.refs["echo"])
    assert r.status in (200, 202), r
    faasd.wait_ready(name)
    return name


@pytest.fixture(autouse=True)
def sentinel_still_answers(api, sentinel):
    yield
    assert api.running(), "faasd exited during the bad request"
    r = api.invoke(sentinel, body="alive")
    assert r.status == 200 and r.text == "alive", f"sentinel after bad request: {r}"


def raw(api, method, path, body, headers=None, auth=True):
    """Sends exact bytes (no JSON encoding) to the API."""
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    return api.request(method, path, body=body, headers=h, auth=auth)


def q(name):
    return "".join(c if c.isalnum() or c in "-._~" else "%%%02X" % ord(c) for c in name)


# -- malformed JSON and missing fields ------------------------------------------------------
@pytest.mark.parametrize("method,path", [
    ("POST", "/system/functions"), ("PUT", "/system/functions"),
    ("DELETE", "/system/functions"), ("POST", "/system/scale-function/sentinel-x"),
])
@pytest.mark.parametrize("body", [b"{not json", b"", b"[1,2]", b'"str"', b"\xff\xfe",
                                  b'{"service": 5, "image": []}'])
def test_malformed_json_is_400(api, method, path, body):
    r = raw(api, method, path, body)
    assert r.status in (400, 404, 422) if "scale" in path else r.status == 400, r
    assert r.status < 500, r


@pytest.mark.parametrize("spec", [
    {"image": "127.0.0.1:1/x:latest"},
    {"service": "nameonly"},
    {"service": "", "image": "127.0.0.1:1/x:latest"},
    {"service": "typed", "image": "127.0.0.1:1/x:latest", "envVars": ["a=b"]},
    {"service": "typed", "image": "127.0.0.1:1/x:latest", "labels": "x"},
    {"service": "typed", "image": "127.0.0.1:1/x:latest", "limits": {"memory": "lots"}},
])
@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_invalid_deployment_is_400(api, spec, method):
    r = api.request(method, "/system/functions", spec)
    assert r.status == 400, r
    assert r.text.strip(), "error without a message"


# -- bad names on every route -------------------------------------------------------------
@pytest.mark.parametrize("name", BAD_NAMES)
@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_bad_name_deploy_is_400(api, fn_image, name, method):
    r = api.deploy(name, fn_image.refs["echo"], method=method)
    assert r.status == 400, r


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_name_delete_get_scale_invoke(api, name):
    r = api.request("DELETE", "/system/functions", {"functionName": name})
    assert r.status in (400, 404), ("delete", r)
    r = api.request("GET", "/system/function/" + q(name))
    assert r.status in (400, 404), ("get", r)
    r = api.request("POST", "/system/scale-function/" + q(name),
                    {"serviceName": name, "replicas": 1})
    assert r.status in (400, 404), ("scale", r)
    r = api.invoke(q(name), body="x")
    assert r.status in (400, 404), ("invoke", r)


def test_bad_namespace_is_400_or_404(api, sentinel):
    for ns in ["../etc", "UPPER", "a" * 300]:
        r = api.request("GET", "/system/functions?namespace=" + q(ns))
        assert r.status in (400, 404), (ns, r)
        r = api.request("GET", f"/system/function/{sentinel}?namespace=" + q(ns))
        assert r.status in (400, 404), (ns, r)


def test_path_traversal_through_invoke_does_not_reach_system_routes(api):
    for path in ["/function/../system/functions", "/function/%2e%2e/system/functions",
                 "/function/..%2Fsystem%2Ffunctions"]:
        r = api.request("GET", path, auth=False)
        assert r.status != 200 or not r.text.lstrip().startswith("["), (path, r)


# -- credentials --------------------------------------------------------------------------
PROTECTED = [
    ("GET", "/system/functions", None),
    ("POST", "/system/functions", {"service": "noauth", "image": "127.0.0.1:1/x:latest"}),
    ("PUT", "/system/functions", {"service": "noauth", "image": "127.0.0.1:1/x:latest"}),
    ("DELETE", "/system/functions", {"functionName": "noauth"}),
    ("GET", "/system/function/noauth", None),
    ("POST", "/system/scale-function/noauth", {"serviceName": "noauth", "replicas": 1}),
    ("GET", "/system/info", None),
]


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize("method,path,body", PROTECTED)
def test_credentials_required(api, method, path, body):
    for authz in [None, basic(api.user, api.password + "x"), basic("nobody", api.password),
                  basic(api.user, ""), "Basic !!!notbase64", "Bearer " + api.password,
                  basic(api.user, api.password)[:-2]]:
        headers = {} if authz is None else {"Authorization": authz}
        r = api.request(method, path, body, headers=headers, auth=False)
        assert r.status == 401, (authz, r)
        assert "basic" in (r.headers.get("WWW-Authenticate") or "").lower(), dict(r.headers)


def test_correct_credentials_accepted(api):
    r = api.request("GET", "/system/functions", auth=False,
                    headers={"Authorization": basic(api.user, api.password)})
    assert r.status == 200, r


# -- unknown function on every route -------------------------------------------------------
def test_unknown_function_is_404_everywhere(api, fn_image):
    name = "nosuch-%06x" % random.getrandbits(24)
    checks = {
        "describe": api.describe(name),
        "update": api.deploy(name, fn_image.refs["echo"], method="PUT"),
        "delete": api.delete(name),
        "scale": api.request("POST", f"/system/scale-function/{name}",
                             {"serviceName": name, "replicas": 1}),
        "invoke": api.invoke(name, body="x"),
        "invoke.ns": api.invoke(name + ".openfaas-fn", body="x"),
        "invoke.path": api.invoke(name, "/a/b", method="GET"),
        "logs": api.request("GET", f"/system/logs?name={name}&namespace=openfaas-fn"),
    }
    wrong = {k: r for k, r in checks.items() if r.status != 404}
    assert not wrong, wrong


# -- images that cannot be pulled ----------------------------------------------------------
def test_missing_image_fails_naming_it(api, functions, registry):
    name = functions.name("noimage")
    ref = f"{registry.host}/does-not-exist:latest"
    r = api.deploy(name, ref)
    assert 400 <= r.status < 600, r
    assert "does-not-exist" in r.text, r
    assert api.describe(name).status == 404, "failed deploy left a function behind"
    # Operators read failures in the daemon's log: the failed deploy is there with its cause.
    log = harness.tail(api.log_path, 10**7)
    assert any("warning" in l and name in l and "does-not-exist" in l for l in log.splitlines())


def test_unreachable_registry_fails_naming_it(api, functions):
    port = harness.free_port()  # nothing listens there
    name = functions.name("noreg")
    r = api.deploy(name, f"127.0.0.1:{port}/x:latest")
    assert 400 <= r.status < 600, r
    assert f"127.0.0.1:{port}" in r.text, r


# -- oversized bodies ---------------------------------------------------------------------
def send_oversized(api, path, size):
    """Streams a body of `size` bytes; the server may answer and close before reading it."""
    s = socket.create_connection(("127.0.0.1", api.port), timeout=60)
    try:
        s.sendall((f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   f"Authorization: {api.auth_header()}\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {size}\r\n\r\n").encode())
        chunk = b" " * 65536
        sent = 0
        try:
            while sent < size:
                s.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        try:
            while b"\r\n" not in data:
                more = s.recv(4096)
                if not more:
                    break
                data += more
        except ConnectionResetError:
            pass
        return data.split(b"\r\n", 1)[0].decode("latin-1")
    finally:
        s.close()


def test_oversized_deploy_body_is_413(api):
    status_line = send_oversized(api, "/system/functions", 64 * 1024 * 1024)
    assert " 413" in status_line, status_line
