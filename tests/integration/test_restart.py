"""The daemon is not on the data path of a running function's life: functions keep running while
it is down, it serves them again at once after a restart, and it restarts tasks that died while
it was away."""

import json

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
