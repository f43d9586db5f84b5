"""Function lifecycle through the OpenFaaS API: deploy, list, describe, invoke, update, scale,
delete, and what a function sees inside its container (env, hostname, /etc/hosts)."""

import concurrent.futures
import http.client
import re

import pytest

import harness

OK = (200, 202)


def find(listing, name):
    return next((f for f in listing if f.get("name") == name), None)


def test_healthz_info_namespaces(api):
    assert api.request("GET", "/healthz", auth=False).status == 200
    info = api.request("GET", "/system/info")
    assert info.status == 200, info
    assert info.json()["provider"]["orchestration"] == "containerd"
    ns = api.request("GET", "/system/namespaces")
    assert ns.status == 200 and harness.NAMESPACE in ns.json(), ns


def test_deploy_list_describe(api, functions, fn_image):
    name = functions.deploy("echo", labels={"team": "qa"}, annotations={"topic": "t1"})
    listing = api.list()
    assert listing.status == 200, listing
    entry = find(listing.json(), name)
    assert entry is not None, f"{name} not in {listing.text}"
    assert entry["image"] == fn_image.refs["echo"]
    d = api.describe(name)
    assert d.status == 200, d
    st = d.json()
    assert st["name"] == name and st["image"] == fn_image.refs["echo"]
    assert st.get("namespace", harness.NAMESPACE) == harness.NAMESPACE
    assert st["replicas"] >= 1 and st["availableReplicas"] == 1
    assert st["labels"].get("team") == "qa", st
    assert st["annotations"].get("topic") == "t1", st
    assert st.get("createdAt"), st


@pytest.mark.parametrize("suffix", ["", ".openfaas-fn"])
def test_invoke_echo_body_and_headers(api, functions, suffix):
    name = functions.deploy("echo")
    r = api.invoke(name + suffix, body=b"hello world", headers={"Content-Type": "text/plain"})
    assert r.status == 200, r
    assert r.body == b"hello world"
    assert r.headers.get("X-Call-Id"), dict(r.headers)
    assert r.headers.get("X-Start-Time"), dict(r.headers)
    # Each replica has a hostname of its own (the container id, as a pod's), after the function.
    assert re.fullmatch(re.escape(name) + r"-[0-9a-f]{8}", r.headers.get("X-Fn-Hostname", "")), \
        dict(r.headers)


def test_metrics_count_invocations_and_describe_the_daemon(api, functions):
    name = functions.deploy("echo")
    fn = f'function_name="{name}.{harness.NAMESPACE}"'
    ok, missing = (f'gateway_function_invocation_total{{{fn},code="{c}"}}' for c in (200, 404))
    started, seconds = f"gateway_function_invocation_started{{{fn}}}", \
        f'gateway_functions_seconds_count{{{fn},code="200"}}'
    before = harness.scrape_metrics(api)  # the deploy fixture may have called it already
    count_before = api.describe(name).json()["invocationCount"]
    for i in range(3):
        assert api.invoke(name, body=f"m{i}").status == 200
    assert api.invoke(name, "/_/file?path=/none", method="GET").status == 404  # the function's
    after = harness.scrape_metrics(api)
    assert after[ok] - before.get(ok, 0) == 3, after
    assert after[missing] - before.get(missing, 0) == 1, after
    assert after[started] - before.get(started, 0) == 4, after
    assert after[seconds] - before.get(seconds, 0) == 3, after
    assert after[f"gateway_function_invocation_inflight{{{fn}}}"] == 0, after
    assert after[f"gateway_service_count{{{fn}}}"] == 1, after
    assert after["process_resident_memory_bytes"] > 1 << 20, after
    assert after["process_open_fds"] > 0, after
    # invocationCount on the API comes from the same counters.
    assert api.describe(name).json()["invocationCount"] == count_before + 4


def test_a_removed_functions_counters_leave_metrics(api, functions):
    """A daemon that deploys and removes many names keeps no counters of the removed ones (the
    soak's RSS grew with every name it had seen): gone from /metrics and from the portal's
    charts once two of History's 10 s samples found the function gone."""
    name = functions.deploy("gone")
    fn = f'function_name="{name}.{harness.NAMESPACE}"'
    series = f'gateway_function_invocation_total{{{fn},code="200"}}'
    before = harness.scrape_metrics(api).get(series, 0)  # the deploy fixture may have called it
    assert api.invoke(name, body="x").status == 200
    assert harness.scrape_metrics(api)[series] == before + 1
    assert api.delete(name).status in OK
    harness.wait_until(lambda: not any(fn in s for s in harness.scrape_metrics(api)), 40,
                       f"{name}'s series to leave /metrics", interval=0.5)


def test_invoke_passes_method_path_query(api, functions):
    name = functions.deploy("echo")
    for method in ["GET", "PUT", "PATCH", "DELETE", "OPTIONS"]:
        r = api.invoke(name, "/some/path?a=1&b=x%20y", method=method)
        assert r.status == 200, (method, r)
        assert r.text == f"{method} /some/path?a=1&b=x%20y", method
    r = api.invoke(name + ".openfaas-fn", "?q=1", method="GET")
    assert r.status == 200 and r.text == "GET /?q=1", r
    head = api.invoke(name, "/h", method="HEAD")
    assert head.status == 200 and head.body == b"", head


def test_invoke_keeps_client_call_id(api, functions):
    name = functions.deploy("echo")
    r = api.invoke(name, body="x", headers={"X-Call-Id": "call-123"})
    assert r.status == 200 and r.headers.get("X-Call-Id") == "call-123", dict(r.headers)


def test_invoke_large_and_chunked_bodies(api, functions):
    name = functions.deploy("echo")
    big = bytes(range(256)) * 4096  # 1 MiB, every byte value
    r = api.invoke(name, body=big, headers={"Content-Type": "application/octet-stream"})
    assert r.status == 200 and r.body == big, (r.status, len(r.body))

    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=60)
    try:
        conn.request("POST", f"/function/{name}", body=iter([b"chunk-one,", b"chunk-two"]),
                     encode_chunked=True, headers={"Transfer-Encoding": "chunked"})
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read() == b"chunk-one,chunk-two"
    finally:
        conn.close()


def test_concurrent_invokes(api, functions):
    name = functions.deploy("echo")

    def call(i):
        r = api.invoke(name, body=f"req-{i}")
        return r.status, r.text
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(call, range(64)))
    assert results == [(200, f"req-{i}") for i in range(64)]


def test_fork_mode_and_env_process(api, functions):
    cat = functions.deploy("cat", image="cat")
    r = api.invoke(cat, body="meow")
    assert r.status == 200 and r.text == "meow", r
    wc = functions.deploy("wc", image="cat", envProcess="wc -c")
    r = api.invoke(wc, body="12345")
    assert r.status == 200 and r.text.strip() == "5", r


def test_env_overrides_image_env_and_hostname(api, functions):
    name = functions.deploy("env", envVars={"greeting": "override", "extra": "x y"})
    for var, want in [("greeting", "override"), ("extra", "x y"), ("mode", "echo")]:
        r = api.invoke(name, headers={"X-Echo-Env": var}, method="GET")
        assert r.status == 200, r
        assert r.headers.get(f"X-Fn-Env-{var}") == want, (var, dict(r.headers))
    assert r.headers.get("X-Fn-Hostname", "").startswith(name + "-"), dict(r.headers)


def test_etc_hosts_and_resolv_conf(api, functions, cni):
    name = functions.deploy("files")
    hosts = api.invoke(name, "/_/file?path=/etc/hosts", method="GET")
    assert hosts.status == 200, hosts
    lines = [l.split() for l in hosts.text.splitlines() if l.strip() and not l.startswith("#")]
    assert any(l[0] == cni.gateway and "gateway" in l[1:] for l in lines), hosts.text
    assert any("localhost" in l[1:] for l in lines), hosts.text
    # The function's name and the replica's own hostname both resolve to its address.
    own = [l for l in lines if name in l[1:]]
    assert own and any(n.startswith(name + "-") for n in own[0][1:]), hosts.text
    resolv = api.invoke(name, "/_/file?path=/etc/resolv.conf", method="GET")
    assert resolv.status == 200 and f"nameserver {harness.NAMESERVER}" in resolv.text, resolv


def test_update_replaces_env(api, functions, fn_image):
    name = functions.deploy("upd", envVars={"version": "1"})
    r = api.deploy(name, fn_image.refs["echo"], method="PUT", envVars={"version": "2"})
    assert r.status in OK, r

    def sees_v2():
        r = api.invoke(name, headers={"X-Echo-Env": "version"}, method="GET")
        return r.status == 200 and r.headers.get("X-Fn-Env-version") == "2"
    harness.wait_until(sees_v2, 60, f"{name} to run with version=2")
    api.wait_ready(name)
    st = api.describe(name).json()
    assert st.get("envVars", {}).get("version", "2") == "2", st


def test_update_can_change_image(api, functions, fn_image):
    name = functions.deploy("swap")
    r = api.deploy(name, fn_image.refs["hello"], method="PUT")
    assert r.status in OK, r
    harness.wait_until(lambda: api.invoke(name, body="x").text == "hello", 60,
                       f"{name} to answer from the hello image")
    assert api.describe(name).json()["image"] == fn_image.refs["hello"]


def test_update_absent_is_404(api, functions, fn_image):
    name = functions.name("absent")
    r = api.deploy(name, fn_image.refs["echo"], method="PUT")
    assert r.status == 404, r


def test_deploy_existing_is_409(api, functions, fn_image):
    name = functions.deploy("dup")
    r = api.deploy(name, fn_image.refs["echo"])
    assert r.status == 409, r
    assert api.invoke(name, body="still").text == "still"


def test_delete_then_404_and_redeploy(api, functions, fn_image):
    name = functions.deploy("del")
    r = api.delete(name)
    assert r.status in OK, r
    harness.wait_until(lambda: api.invoke(name, body="x").status == 404, 30,
                       f"invoke {name} to answer 404 after delete")
    assert api.describe(name).status == 404
    assert find(api.list().json(), name) is None
    assert api.delete(name).status == 404
    r = api.deploy(name, fn_image.refs["echo"])
    assert r.status in OK, f"redeploy {name} right after delete: {r}"
    api.wait_ready(name)
    assert api.invoke(name, body="again").text == "again"


def test_scale_accepts_and_function_keeps_serving(api, functions):
    name = functions.deploy("scale")
    r = api.request("POST", f"/system/scale-function/{name}",
                    {"serviceName": name, "replicas": 1, "namespace": harness.NAMESPACE})
    assert r.status in OK, r
    api.wait_ready(name)
    assert api.invoke(name, body="s").text == "s"


def test_image_is_complete_in_containerd(api, functions, fn_image, containerd):
    functions.deploy("img")
    out = containerd.ctr("images", "check", namespace=harness.NAMESPACE).stdout
    line = next((l for l in out.splitlines() if fn_image.refs["echo"] in l), None)
    assert line is not None and "complete" in line, out


def test_second_deploy_of_same_image_downloads_nothing(api, functions, registry):
    functions.deploy("first", image="hello")
    before = registry.blob_gets("hello")
    assert before > 0, "the first deploy downloaded no blob: the count below proves nothing"
    second = functions.deploy("second", image="hello")
    assert api.invoke(second, body="x").text == "hello"
    assert registry.blob_gets("hello") == before, \
        harness.tail(registry.log_path, 3000)


def test_invocation_count_in_status(api, functions):
    name = functions.deploy("count")
    for _ in range(3):
        assert api.invoke(name, body="x").status == 200
    harness.wait_until(lambda: api.describe(name).json().get("invocationCount", 0) >= 3, 10,
                       f"{name} invocationCount >= 3")


def test_update_keeps_serving_throughout(api, functions, fn_image):
    """Blue-green: every invoke during a PUT answers 200, before and after the switch."""
    name = functions.deploy("bg", envVars={"version": "1"})
    statuses = []
    stop = {"flag": False}

    def hammer():
        deadline = harness.time.monotonic() + 60
        for _ in range(5000):
            if stop["flag"] or harness.time.monotonic() > deadline:
                break
            statuses.append(api.invoke(name, body="x", timeout=10).status)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        fut = pool.submit(hammer)
        harness.wait_until(lambda: len(statuses) >= 5, 30, "invokes to start")
        r = api.deploy(name, fn_image.refs["echo"], method="PUT", envVars={"version": "2"})
        assert r.status in OK, r
        harness.wait_until(
            lambda: api.invoke(name, headers={"X-Echo-Env": "version"}, method="GET")
            .headers.get("X-Fn-Env-version") == "2", 60, f"{name} to serve version 2")
        n = len(statuses)
        harness.wait_until(lambda: len(statuses) >= n + 5, 30, "invokes after the switch")
        stop["flag"] = True
        fut.result(timeout=30)
    bad = [s for s in statuses if s != 200]
    assert len(statuses) >= 10 and not bad, f"{len(bad)} of {len(statuses)} invokes failed: {bad[:5]}"


def test_failed_update_leaves_function_running(api, functions, fn_image, registry):
    name = functions.deploy("keep")
    r = api.deploy(name, f"{registry.host}/does-not-exist:1", method="PUT")
    assert 400 <= r.status < 600 and r.status != 404, r
    assert "does-not-exist" in r.text, r
    assert api.invoke(name, body="alive").text == "alive"
    assert api.describe(name).json()["image"] == fn_image.refs["echo"]


def test_remove_is_prompt_when_function_ignores_sigterm(api, functions, fn_image):
    """Upstream watchdogs take ~30 s after SIGTERM; remove must not make the client wait."""
    name = functions.deploy("slowterm", envVars={"ignore_sigterm": "1"})
    t0 = harness.time.monotonic()
    r = api.delete(name)
    elapsed = harness.time.monotonic() - t0
    assert r.status in OK, r
    assert elapsed < 5, f"DELETE took {elapsed:.1f}s"
    assert api.invoke(name, body="x").status == 404
    r = api.deploy(name, fn_image.refs["echo"])
    assert r.status in OK, f"redeploy {name} while the old one is still stopping: {r}"
    api.wait_ready(name)
    assert api.invoke(name, body="new").text == "new"
