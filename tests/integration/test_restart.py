"""The daemon is not on the data path of a running function's life: functions keep running while
it is down, it serves them again at once after a restart, and it restarts tasks that died while
it was away."""

import ctypes
import json
import os
import shutil
import signal
import subprocess
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


PR_SET_CHILD_SUBREAPER = 36


def reap_successor(pid_file):
    """Stops the daemon named in `pid_file` (a successor: our child through the subreaper)."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return
        time.sleep(0.05)  # polling a child's exit, bounded
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def wait_handed_over(pid_file, old, log_path):
    """The successor's pid once it wrote the pid file and `old` is gone."""
    def new_pid():
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        gone = not Path(f"/proc/{old}").exists() or \
            Path(f"/proc/{old}/stat").read_text().split()[2] == "Z"
        return pid if pid != old and gone else None
    try:
        pid = harness.wait_until(new_pid, 60, f"a successor to take over from pid {old}")
        try:
            os.waitpid(old, os.WNOHANG)  # a successor's predecessor is ours to reap (subreaper)
        except ChildProcessError:
            pass  # the first daemon: Popen reaps it
        return pid
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n--- faasd log ---\n{harness.tail(log_path)}") from None


def test_sigusr2_and_an_upgrade_hand_the_socket_over_refusing_nothing(
        request, workdir, fn_image, tmp_path):
    """Without systemd, a restart (SIGUSR2) and an upgrade (the binary replaced, then
    `faasd up` again) each hand the listening socket to the new process: 120 requests at
    20 req/s across each, none failed."""
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0  # the successors are ours to reap
    request.addfinalizer(lambda: libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0))
    exe = tmp_path / "faasd"
    shutil.copy2(harness.FAASD_BIN, exe)
    pid_file = tmp_path / "faasd.pid"
    daemon, _ = harness.private_daemon(request, workdir, "handover", harness.NAMESPACE,
                                       extra_args=[f"--pid-file={pid_file}"])
    daemon.binary = exe
    request.addfinalizer(lambda: reap_successor(pid_file))
    daemon.start()
    name = "hand"
    r = daemon.deploy(name, fn_image.refs["echo"])
    assert r.status in (200, 202), r
    daemon.wait_ready(name)
    first = daemon.proc.pid
    harness.wait_until(lambda: pid_file.exists() and int(pid_file.read_text()) == first, 10,
                       "the pid file")

    def under_load(change):
        results = []
        loader = threading.Thread(target=harness.paced_invokes,
                                  args=(daemon, name, 20, 6, results))
        loader.start()
        try:
            harness.wait_until(lambda: len(results) >= 20, 10, "load to run")
            changed = change()
        finally:
            loader.join(timeout=60)
        failed = [x for x in results if x != 200]
        assert not failed, f"{len(failed)} of {len(results)} failed: {failed[:5]}"
        assert len(results) >= 110, len(results)
        return changed

    def restart():
        os.kill(first, signal.SIGUSR2)
        return wait_handed_over(pid_file, first, daemon.log_path)
    second = under_load(restart)
    assert daemon.proc.wait(timeout=10) == 0
    log = harness.tail(daemon.log_path, 10**7)
    assert f"SIGUSR2: started {exe} as pid {second}" in log, log[-3000:]
    assert "handover: serving; pid " in log

    # An upgrade: a new file at the binary's path (as dpkg and meson install replace it), then
    # `faasd up` again with the same flags finds the running daemon by its pid file.
    staged = tmp_path / "faasd.new"
    shutil.copy2(harness.FAASD_BIN, staged)
    os.rename(staged, exe)

    def upgrade():
        up = subprocess.run(daemon.args(), capture_output=True, text=True, timeout=120)
        assert up.returncode == 0, up.stderr
        third = wait_handed_over(pid_file, second, daemon.log_path)
        assert f"pid {third} took over from pid {second}" in up.stdout, up.stdout
        return third
    third = under_load(upgrade)
    running = os.stat(f"/proc/{third}/exe")
    assert (running.st_ino, running.st_dev) == (os.stat(exe).st_ino, os.stat(exe).st_dev), \
        "the successor does not run the new binary"
    r = daemon.list()
    assert r.status == 200 and name in [f["name"] for f in r.json()], r
    print("\n".join(line for line in harness.tail(daemon.log_path, 10**7).splitlines()
                    if "handover" in line or "SIGUSR2" in line))
