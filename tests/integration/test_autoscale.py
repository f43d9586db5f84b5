"""The built-in autoscaler and /system/alert on a daemon of their own (autoscaler every 1 s, rps
over 10 s, so a test sees up and down in seconds): a function under load grows to its target
replicas and back with no failed request, an idle function with zero=true goes to 0 and the
next request wakes it, Alertmanager's firing and resolved alerts step a function up and back."""

import threading
import time

import pytest

import harness

NS = harness.NAMESPACE
OK = (200, 202)


@pytest.fixture(scope="module")
def scaler(request, workdir, fn_image):
    daemon, _ = harness.private_daemon(
        request, workdir, "autoscale", NS,
        extra_args=["--autoscale-interval=1", "--autoscale-window=10"])
    daemon.start()
    return daemon


def deploy(daemon, fn_image, prefix, labels):
    name = f"{prefix}-{int(time.monotonic() * 1000) % 10**6:06d}"
    r = daemon.deploy(name, fn_image.refs["echo"], labels=labels)
    assert r.status in OK, r
    daemon.wait_ready(name)
    return name


def status(daemon, name):
    r = daemon.describe(name)
    assert r.status == 200, r
    return r.json()


def load(daemon, name, rate, seconds, results, threads=4):
    """`rate` requests per second for `seconds`, spread over `threads` threads (one connection
    per request): the started threads."""
    pool = [threading.Thread(target=harness.paced_invokes,
                             args=(daemon, name, rate / threads, seconds, results, f"q{k}-"))
            for k in range(threads)]
    for t in pool:
        t.start()
    return pool


def test_rps_load_scales_up_with_no_failure_and_back_to_one(scaler, fn_image):
    name = deploy(scaler, fn_image, "rps", {
        "com.openfaas.scale.type": "rps", "com.openfaas.scale.target": "5",
        "com.openfaas.scale.min": "1", "com.openfaas.scale.max": "4",
        "com.openfaas.scale.down.window": "5s"})
    results = []
    t0 = time.monotonic()
    pool = load(scaler, name, 40, 20, results)
    try:
        # 40 rps against 4.5 per replica wants 9, capped at 4.
        harness.wait_until(lambda: status(scaler, name)["availableReplicas"] >= 3, 30,
                           f"{name} to reach 3 ready replicas under load")
        reaction = time.monotonic() - t0
        harness.wait_until(lambda: status(scaler, name)["replicas"] == 4, 30,
                           f"{name} to want its max of 4")
        metrics = scaler.request("GET", "/metrics", auth=False).text
        assert f'gateway_function_desired_replicas{{function_name="{name}.{NS}"}} 4' in metrics
    finally:
        for t in pool:
            t.join(timeout=60)
    stopped = time.monotonic()
    failed = [r for r in results if r != 200]
    assert not failed, f"{len(failed)} of {len(results)} failed: {failed[:5]}"
    assert len(results) >= 400, f"only {len(results)} requests: the load did not run"
    log = harness.tail(scaler.log_path, 10**7)
    assert f"autoscale {name}.{NS}: 1 -> " in log and "rps " in log

    # Idle: the 10 s rate window drains, then the 5 s down window lets it go.
    harness.wait_until(lambda: status(scaler, name)["replicas"] == 1, 45,
                       f"{name} back to 1 replica")
    back = time.monotonic() - stopped
    harness.wait_until(lambda: status(scaler, name)["availableReplicas"] == 1, 30,
                       f"{name}'s surplus replicas to leave routing")
    assert scaler.invoke(name, body="after").text == "after"
    print(f"autoscale: 3 ready after {reaction:.1f} s of 40 rps, {len(results)} requests, "
          f"0 failed; back to 1 replica {back:.1f} s after the load")


def test_idle_function_scales_to_zero_and_the_next_request_wakes_it(scaler, fn_image):
    name = deploy(scaler, fn_image, "zero", {
        "com.openfaas.scale.zero": "true", "com.openfaas.scale.zero-duration": "10s"})
    assert scaler.invoke(name, body="hi").status == 200
    last = time.monotonic()
    harness.wait_until(lambda: status(scaler, name)["replicas"] == 0, 40,
                       f"{name} to scale to zero")
    idle = time.monotonic() - last
    assert idle >= 9, f"scaled to zero after {idle:.1f} s idle, before its zero-duration of 10 s"
    assert f"autoscale {name}.{NS}: 1 -> 0 for idle for" in harness.tail(scaler.log_path, 10**7)
    r = scaler.invoke(name, body="wake")
    assert r.status == 200 and r.text == "wake", r
    st = status(scaler, name)
    assert st["replicas"] == 1 and st["availableReplicas"] == 1, st


def alert(daemon, status_, function):
    return daemon.request("POST", "/system/alert", {
        "receiver": "scale-up", "status": status_,
        "alerts": [{"status": status_, "labels": {"alertname": "APIHighInvocationRate",
                                                   "function_name": function}}]})


def test_alertmanager_firing_steps_up_and_resolved_goes_back_to_min(scaler, fn_image):
    # No autoscaler label: only alerts move it.
    name = deploy(scaler, fn_image, "alert", {
        "com.openfaas.scale.min": "1", "com.openfaas.scale.max": "10",
        "com.openfaas.scale.factor": "30"})
    r = alert(scaler, "firing", f"{name}.{NS}")
    assert r.status == 200, r
    assert status(scaler, name)["replicas"] == 4  # 1 + ceil(10 x 30%)
    r = alert(scaler, "firing", name)
    assert r.status == 200, r
    assert status(scaler, name)["replicas"] == 7
    harness.wait_until(lambda: status(scaler, name)["availableReplicas"] == 7, 60,
                       f"{name} to run 7 replicas")
    r = alert(scaler, "resolved", name)
    assert r.status == 200, r
    assert status(scaler, name)["replicas"] == 1
    harness.wait_until(lambda: status(scaler, name)["availableReplicas"] == 1, 60,
                       f"{name} back to 1 replica")
    assert scaler.invoke(name, body="still").text == "still"


def test_bad_alert_payloads(scaler):
    for bad in (b"{", b"[]", b'{"alerts": {}}', b'{"alerts": [{"labels": []}]}'):
        r = scaler.request("POST", "/system/alert", bad,
                           headers={"Content-Type": "application/json"})
        assert r.status == 400 and r.text.strip(), (bad, r)
    r = scaler.request("POST", "/system/alert", {"alerts": [
        {"status": "firing", "labels": {"function_name": "Not_A_Name"}}]})
    assert r.status == 500 and "[0]" in r.text, r
    r = scaler.request("POST", "/system/alert", {"alerts": []}, auth=False)
    assert r.status == 401, r
