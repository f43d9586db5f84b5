"""Limits on the real containerd: limits.memory is the task's cgroup memory limit, limits.cpu its
CFS quota (and enforced), requests.cpu its cpu.shares, readOnlyRootFilesystem a read-only root
with a writable /tmp; a function allocating past its limit is OOM-killed and restarted; bad or
too small quantities are a 400 and deploy nothing."""

import random
import re
import subprocess
import threading

import pytest

import harness

NS = harness.NAMESPACE
MiB = 1 << 20
PAGE = 4096


def only_task(containerd, name):
    def one():
        t = containerd.running_tasks(name)
        return t[0] if len(t) == 1 else None
    return harness.wait_until(one, 30, f"{name}'s one running task")


def cgroup_int(controller, cid, file):
    return int(harness.cgroup_file(controller, cid, file))


def cgroup_stat(controller, cid, file):
    return {k: int(v) for k, v in
            (l.split() for l in harness.cgroup_file(controller, cid, file).splitlines())}


# -- memory, cpu, shares ------------------------------------------------------------------------
@pytest.mark.parametrize("quantity,bytes_", [
    ("128Mi", 128 * MiB),
    ("100M", 100_000_000),
    ("0.25Gi", 256 * MiB),
    ("4Mi", 4 * MiB),  # the smallest accepted
])
def test_memory_limit_is_the_task_cgroup_limit(api, functions, containerd, quantity, bytes_):
    name = functions.deploy("mem", limits={"memory": quantity})
    cid = only_task(containerd, name)
    # The kernel keeps whole pages.
    assert cgroup_int("memory", cid, "memory.limit_in_bytes") == bytes_ // PAGE * PAGE
    st = api.describe(name).json()
    assert st.get("limits", {}).get("memory") == quantity, st


@pytest.mark.parametrize("quantity,quota_us", [
    ("0.5", 50000),
    ("500m", 50000),
    ("1.5", 150000),
    ("2", 200000),
    ("10m", 1000),  # the smallest accepted: the kernel's 1 ms per period
])
def test_cpu_limit_is_the_cfs_quota(api, functions, containerd, quantity, quota_us):
    name = functions.deploy("cpu", limits={"cpu": quantity})
    cid = only_task(containerd, name)
    assert cgroup_int("cpu", cid, "cpu.cfs_period_us") == 100000
    assert cgroup_int("cpu", cid, "cpu.cfs_quota_us") == quota_us
    st = api.describe(name).json()
    assert st.get("limits", {}).get("cpu") == quantity, st


@pytest.mark.parametrize("quantity,shares", [("250m", 256), ("1", 1024), ("2", 2048)])
def test_cpu_request_is_cpu_shares(api, functions, containerd, quantity, shares):
    name = functions.deploy("shares", requests={"cpu": quantity, "memory": "32Mi"})
    cid = only_task(containerd, name)
    assert cgroup_int("cpu", cid, "cpu.shares") == shares
    assert cgroup_int("cpu", cid, "cpu.cfs_quota_us") == -1, "a request is not a limit"
    st = api.describe(name).json()
    assert st.get("requests") == {"cpu": quantity, "memory": "32Mi"}, st


def test_no_limits_leave_the_cgroup_unlimited(api, functions, containerd):
    name = functions.deploy("nolim")
    cid = only_task(containerd, name)
    assert cgroup_int("memory", cid, "memory.limit_in_bytes") >= 1 << 62
    assert cgroup_int("cpu", cid, "cpu.cfs_quota_us") == -1
    assert cgroup_int("cpu", cid, "cpu.shares") == 1024


def test_cpu_quota_caps_cpu_time(api, functions, containerd):
    """Two threads spinning for 1 s under a 200m quota get about 200 ms of CPU, not 2 s."""
    name = functions.deploy("capped", limits={"cpu": "200m"})
    cid = only_task(containerd, name)
    before = cgroup_stat("cpu", cid, "cpu.stat")
    r = api.invoke(name, "/_/spin?ms=1000&threads=2", method="GET")
    assert r.status == 200 and r.text.startswith("cpu_ms="), r
    cpu_ms = int(r.text.split("=", 1)[1])
    after = cgroup_stat("cpu", cid, "cpu.stat")
    print(f"200m quota, 2 threads x 1 s: {cpu_ms} ms of CPU, "
          f"{after['nr_throttled'] - before['nr_throttled']} throttled periods")
    assert 20 <= cpu_ms <= 400, cpu_ms
    assert after["nr_throttled"] > before["nr_throttled"], (before, after)


def test_update_replaces_the_limits(api, functions, containerd, fn_image):
    name = functions.deploy("updlim", limits={"memory": "64Mi", "cpu": "250m"})
    old = only_task(containerd, name)
    r = api.deploy(name, fn_image.refs["echo"], method="PUT",
                   limits={"memory": "96Mi", "cpu": "750m"})
    assert r.status in (200, 202), r

    def new_task():
        t = containerd.running_tasks(name)
        return t[0] if len(t) == 1 and t[0] != old else None
    cid = harness.wait_until(new_task, 60, f"{name}'s new task to replace {old}")
    assert cgroup_int("memory", cid, "memory.limit_in_bytes") == 96 * MiB
    assert cgroup_int("cpu", cid, "cpu.cfs_quota_us") == 75000


# -- read-only root filesystem ------------------------------------------------------------------
def write_probe(api, name, path):
    return api.invoke(name, f"/_/write?path={path}", method="GET")


def test_read_only_rootfs_refuses_writes_outside_tmp(api, functions):
    name = functions.deploy("rofs", readOnlyRootFilesystem=True)
    for path in ("/probe", "/etc/probe", "/usr/bin/probe", "/var/probe"):
        r = write_probe(api, name, path)
        assert r.status == 500 and "EROFS" in r.text, (path, r)
    r = write_probe(api, name, "/tmp/probe")
    assert r.status == 200, r
    assert api.invoke(name, "/_/file?path=/tmp/probe", method="GET").text == "written\n"
    mounts = api.invoke(name, "/_/file?path=/proc/self/mounts", method="GET").text
    root = [l.split() for l in mounts.splitlines() if l.split()[1] == "/"]
    assert root and "ro" in root[-1][3].split(","), mounts
    tmp = [l.split() for l in mounts.splitlines() if l.split()[1] == "/tmp"]
    assert tmp and tmp[-1][2] == "tmpfs" and "rw" in tmp[-1][3].split(","), mounts
    # Health (the /tmp/.lock file) works, and so does the function.
    assert api.invoke(name, "/_/health", method="GET").status == 200
    assert api.invoke(name, body="ro").text == "ro"


def test_writable_rootfs_by_default(api, functions):
    name = functions.deploy("rwfs")
    r = write_probe(api, name, "/probe")
    assert r.status == 200, r
    assert api.invoke(name, "/_/file?path=/probe", method="GET").text == "written\n"


# -- out of memory ------------------------------------------------------------------------------
class Events:
    """`ctr events` of the test containerd: containerd's own account of exits and OOMs.
    Our process, stopped by its PID; a thread collects its lines."""

    def __init__(self, containerd):
        self.containerd = containerd
        self.lines = []
        self.proc = subprocess.Popen(["ctr", "--address", containerd.address, "events"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def subscribed(self):
        """Returns once the subscription sees events: a scratch namespace is labelled until
        its update shows (the subscription starts some time after the process)."""
        ns = "fdt-events-%06x" % random.getrandbits(24)
        self.containerd.ctr("namespaces", "create", ns)
        tries = iter(range(10**6))

        def seen():
            self.containerd.ctr("namespaces", "label", ns, f"try={next(tries)}")
            return any(ns in l and "/namespaces/update" in l for l in self.lines)
        try:
            harness.wait_until(seen, 10, "ctr events to report a namespace update")
        finally:
            self.containerd.ctr("namespaces", "remove", ns, check=False)

    def close(self):
        harness.stop_process(self.proc, term_timeout=5)
        self.reader.join(timeout=5)
        return list(self.lines)


@pytest.fixture(scope="module")
def oom(request, faasd, fn_image, containerd):
    """One function OOM-killed once: what happened, for the tests below to check."""
    if not faasd.running():
        faasd.start()
    name = "memhog-%06x" % random.getrandbits(24)

    def cleanup():
        if not faasd.running():
            faasd.start()
        faasd.delete(name)
        harness.wait_until(lambda: faasd.describe(name).status == 404, 30, f"{name} deleted")
    request.addfinalizer(cleanup)
    r = faasd.deploy(name, fn_image.refs["echo"], limits={"memory": "32Mi"})
    assert r.status in (200, 202), r
    faasd.wait_ready(name)
    cid = only_task(containerd, name)
    pid = containerd.task_pid(cid)
    events = Events(containerd)
    try:
        events.subscribed()
        r = faasd.invoke(name, "/_/alloc?mb=256&later=1", method="GET")
        assert r.status == 200 and r.text == "allocating 256 MiB", r

        def restarted():
            now = containerd.task_pid(cid)
            return now if now not in (None, pid) else None
        new_pid = harness.wait_until(restarted, 30, f"{cid} to be restarted")

        def answers():
            r = faasd.invoke(name, body="back")
            return r if r.status == 200 else None
        answer = harness.wait_until(answers, 30, f"{name} to answer after the restart")
    finally:
        event_lines = events.close()
    return {"name": name, "cid": cid, "pid": pid, "new_pid": new_pid, "answer": answer,
            "events": event_lines, "daemon": faasd}


def test_oom_kill_restarts_the_task(oom):
    assert oom["new_pid"] != oom["pid"]
    assert oom["answer"].text == "back"
    cid = oom["cid"]
    # containerd's account: the kernel's OOM notice for the task, then its exit by SIGKILL.
    lines = oom["events"]
    assert any("/tasks/oom" in l and cid in l for l in lines), lines[-20:]
    exits = [l for l in lines if "/tasks/exit" in l and cid in l]
    assert exits and all(re.search(r'"exit_status":\s*137', l) for l in exits), exits
    # The daemon saw the same exit status, and the limit holds for the new task.
    log = harness.tail(oom["daemon"].log_path, 10**7)
    assert f"replica {cid} exited with status 137" in log
    # It read the kill from the task's cgroup as well, so it does not hang on containerd's event
    # alone (which containerd drops when the cgroup goes first).
    assert re.search(rf"replica {cid} exited with status 137 \(OOM-killed: \d+ kill\(s\) in its "
                     r"cgroup\)", log), log[-2000:]
    assert cgroup_int("memory", cid, "memory.limit_in_bytes") == 32 * MiB


def test_oom_kill_is_named_in_the_daemon_log(oom):
    log = harness.tail(oom["daemon"].log_path, 10**7)
    lines = [l for l in log.splitlines() if oom["cid"] in l or oom["name"] in l]
    assert any(re.search(r"\bOOM\b|out of memory", l, re.I) for l in lines), lines[-10:]


def test_oom_kill_is_visible_in_the_function_status(oom):
    """Upstream's FunctionStatus has no place for it: "lastExit" rides beside its fields, on
    describe and on list, naming the replica, its exit code and the OOM kill."""
    r = oom["daemon"].describe(oom["name"])
    assert r.status == 200, r
    last = r.json().get("lastExit")
    assert last, r.json()
    assert last["reason"] == "OOMKilled" and last["exitCode"] == 137, last
    assert last["instance"] == oom["cid"] and last["restartsInARow"] >= 1, last
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", last["exitedAt"]), last
    listed = [f for f in oom["daemon"].list().json() if f["name"] == oom["name"]]
    assert listed and listed[0].get("lastExit") == last, listed


# -- bad quantities -----------------------------------------------------------------------------
BAD = [
    ("memory-word", {"limits": {"memory": "lots"}}, "limits.memory"),
    ("memory-unit", {"limits": {"memory": "12Qi"}}, "limits.memory"),
    ("memory-negative", {"limits": {"memory": "-1Mi"}}, "limits.memory"),
    ("memory-two-dots", {"limits": {"memory": "1.2.3Mi"}}, "limits.memory"),
    ("cpu-word", {"limits": {"cpu": "abc"}}, "limits.cpu"),
    ("cpu-space", {"limits": {"cpu": "0.5 "}}, "limits.cpu"),
    ("request-cpu", {"requests": {"cpu": "x"}}, "requests.cpu"),
    ("request-memory", {"requests": {"memory": "??"}}, "requests.memory"),
    ("memory-below-4Mi", {"limits": {"memory": "3Mi"}}, "4Mi"),
    ("memory-below-4Mi-bytes", {"limits": {"memory": "4194303"}}, "4Mi"),
    ("cpu-below-10m", {"limits": {"cpu": "9m"}}, "10m"),
    ("cpu-below-10m-decimal", {"limits": {"cpu": "0.005"}}, "10m"),
]


@pytest.mark.parametrize("case,fields,needle", BAD, ids=[c[0] for c in BAD])
def test_bad_or_too_small_quantity_is_400(api, functions, fn_image, case, fields, needle):
    name = functions.name("badq")
    r = api.deploy(name, fn_image.refs["echo"], **fields)
    assert r.status == 400 and needle in r.text, f"{case}: want 400 naming {needle}, got {r}"
    assert api.describe(name).status == 404, f"{case}: a function was deployed"


def test_usage_reports_cpu_and_memory_summed_over_replicas(api, functions):
    """faas-cli describe asks ?usage=1: millicores over the recent past and working set."""
    name = functions.deploy("usage")
    r = api.request("GET", f"/system/function/{name}")
    assert r.status == 200 and "usage" not in r.json(), "usage only when asked"

    def busy_and_measured():
        # Keep one core busy for a while, then ask: the rate covers the spin.
        spin = threading.Thread(target=lambda: api.invoke(name, "/_/spin?ms=1500&threads=1",
                                                          method="GET", timeout=30))
        spin.start()
        usage = api.request("GET", f"/system/function/{name}?usage=1").json()["usage"]
        spin.join(timeout=30)
        return usage
    usage = busy_and_measured()
    assert usage["totalMemoryBytes"] > 64 << 10, usage  # fnserver is small and static
    assert usage["cpu"] > 200, f"a spinning replica used {usage['cpu']} millicores"

    one = api.request("GET", f"/system/function/{name}?usage=1").json()["usage"]
    r = api.request("POST", f"/system/scale-function/{name}",
                    {"serviceName": name, "replicas": 2, "namespace": harness.NAMESPACE})
    assert r.status in (200, 202), r
    harness.wait_until(lambda: api.describe(name).json()["availableReplicas"] == 2, 60, "2 up")
    two = api.request("GET", f"/system/function/{name}?usage=1").json()["usage"]
    # The second replica adds at least what a fresh fnserver holds (over 64 KiB, as above). Not
    # a ratio: the first replica grew while it served the spin, the new one has served nothing.
    assert two["totalMemoryBytes"] > one["totalMemoryBytes"] + (64 << 10), (one, two)
