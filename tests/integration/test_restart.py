"""The daemon is not on the data path of a running function's life: functions keep running while
it is down, it serves them again at once after a restart, and it restarts tasks that died while
it was away."""

import json
import threading
import time
from pathlib import Path

import harness


def task_of(containerd, name):
    """(container id, pid or None) of the function's container: faasd names it after the
    function."""
    ids = containerd.lines("containers", "ls", "-q", namespace=harness.NAMESPACE)
    cid = name if name in ids else next((i for i in ids if name in i), None)
    assert cid is not None, f"no container for {name} in {ids}"
    return cid, containerd.task_pid(cid)


def ip_of(pid, cni):
    out = harness.run(["nsenter", "-t", str(pid), "-n", "ip", "-j", "-4", "addr"]).stdout
    for link in json.loads(out):
        for a in link.get("addr_info", []):
            if a.get("local", "").startswith(str(cni.subnet.network_address).rsplit(".", 1)[0]):
                return a["local"]
    raise AssertionError(f"no address in {cni.subnet} inside pid {pid}: {out}")


def test_function_survives_daemon_stop_and_serves_at_once_after_restart(
        api, functions, containerd, cni):
    name = functions.deploy("survive")
    cid, pid = task_of(containerd, name)
    assert pid, f"task {cid} not running"
    ip = ip_of(pid, cni)

    api.stop()
    r = harness.http_request(ip, 8080, "POST", "/", body="direct", timeout=10)
    assert r.status == 200 and r.text == "direct", f"function on {ip} with daemon down: {r}"
    assert containerd.task_pid(cid) == pid

    api.start()
    r = api.invoke(name, body="right away")  # no polling: must work as soon as /healthz does
    assert r.status == 200 and r.text == "right away", r
    assert containerd.task_pid(cid) == pid, "restart replaced a healthy task"
    st = api.describe(name).json()
    assert st["availableReplicas"] == 1, st


def test_task_killed_while_daemon_down_is_restarted(api, functions, containerd):
    name = functions.deploy("phoenix")
    cid, pid = task_of(containerd, name)
    assert pid

    api.stop()
    containerd.ctr("tasks", "kill", "-s", "SIGKILL", cid, namespace=harness.NAMESPACE)
    harness.wait_until(lambda: containerd.task_pid(cid) is None, 20, f"task {cid} to die")

    api.start()
    harness.wait_until(lambda: api.invoke(name, body="back").text == "back", 60,
                       f"{name} to be served again after restart")
    new_pid = containerd.task_pid(cid)
    assert new_pid and new_pid != pid
    api.wait_ready(name)


def test_task_killed_while_daemon_up_is_restarted_promptly(api, functions, containerd):
    """containerd's /tasks/exit event triggers the restart (the harness turns the periodic
    reconcile pass off, so nothing else could)."""
    name = functions.deploy("lazarus")
    cid, pid = task_of(containerd, name)
    assert pid
    containerd.ctr("tasks", "kill", "-s", "SIGKILL", cid, namespace=harness.NAMESPACE)

    def back():
        new = containerd.task_pid(cid)
        return new is not None and new != pid and api.invoke(name, body="up").text == "up"
    harness.wait_until(back, 30, f"{name} to be restarted and served")


def test_functions_and_credentials_persist_across_restart(api, functions, fn_image):
    a = functions.deploy("keep-a", envVars={"k": "v"}, labels={"l": "1"})
    b = functions.deploy("keep-b", image="hello")
    old_password = api.password

    api.restart()
    assert api.password == old_password, "password regenerated on restart"
    listing = {f["name"]: f for f in api.list().json()}
    assert listing[a]["image"] == fn_image.refs["echo"]
    assert listing[b]["image"] == fn_image.refs["hello"]
    st = api.describe(a).json()
    assert st["labels"].get("l") == "1", st
    r = api.invoke(a, headers={"X-Echo-Env": "k"}, method="GET")
    assert r.headers.get("X-Fn-Env-k") == "v", dict(r.headers)
    assert api.invoke(b, body="x").text == "hello"


def test_sigterm_stops_daemon_promptly(api):
    api.stop(term_timeout=15)
    assert api.proc.returncode == 0, f"faasd exit status {api.proc.returncode} on SIGTERM"
    api.start()


def started_invocations(api, name):
    for line in api.request("GET", "/metrics", auth=False).text.splitlines():
        if line.startswith("gateway_function_invocation_started") and f'"{name}.' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_sigterm_lets_a_request_in_progress_finish_then_exits(api, functions):
    """The drain: the listener closes at once, a request already being served is answered
    (within --shutdown-grace), then the daemon exits."""
    name = functions.deploy("drain")
    before = started_invocations(api, name)
    result = {}

    def slow():
        result["r"] = api.invoke(name, "/_/sleep?ms=3000", method="GET", timeout=30)
    t = threading.Thread(target=slow)
    t.start()
    try:
        harness.wait_until(lambda: started_invocations(api, name) > before, 10,
                           "the slow request to reach the function")
        t0 = time.monotonic()
        api.proc.send_signal(15)
        harness.wait_until(lambda: api.proc.poll() is not None, 20, "faasd to exit on SIGTERM")
        took = time.monotonic() - t0
    finally:
        t.join(timeout=30)
    assert result["r"].status == 200, result["r"]
    assert api.proc.returncode == 0
    assert 0.5 < took < 10, f"faasd exited {took:.2f} s after SIGTERM"
    assert "drained: no request in progress" in api.log_path.read_text()
    api.start()


def test_network_of_a_container_deleted_behind_our_back_is_reclaimed_at_start(
        api, functions, containerd, cni):
    """A container that vanished while the daemon was down (an operator's `ctr c rm`, or a
    daemon killed mid-deploy) leaves an address, a pinned namespace and a CNI cache entry that
    nothing owns; the next start gives them back."""
    name = functions.deploy("orphan")
    cid, pid = task_of(containerd, name)
    assert pid
    netns = api.state_dir / "netns" / cid
    cache = [p for p in (api.state_dir / "cni").iterdir() if p.name.startswith(cid)]
    ipam = Path(cni.ipam_dir) / cni.network

    def owned_ips():
        return [p.name for p in ipam.glob("*")
                if p.is_file() and p.read_text().split()[:1] == [cid]]
    assert netns.exists() and cache and owned_ips(), "test setup: the function has no network"

    api.stop()
    containerd.ctr("tasks", "kill", "-s", "SIGKILL", cid, namespace=harness.NAMESPACE)
    harness.wait_until(lambda: containerd.task_pid(cid) is None, 20, f"task {cid} to die")
    containerd.ctr("tasks", "delete", cid, namespace=harness.NAMESPACE, check=False)
    containerd.ctr("containers", "delete", cid, namespace=harness.NAMESPACE)

    api.start()

    def reclaimed():
        left = {"netns": netns.exists(), "ips": owned_ips(),
                "cache": [p.name for p in (api.state_dir / "cni").iterdir()
                          if p.name.startswith(cid)]}
        return None if any(left.values()) else True
    try:
        harness.wait_until(reclaimed, 15, f"the network of {cid} to be reclaimed")
    except TimeoutError:
        raise AssertionError(
            f"left after restart: netns {netns.exists()}, ips {owned_ips()}") from None
    assert api.describe(name).status == 404
