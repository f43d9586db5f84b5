"""containerd::TaskService's metrics calls (Metric, Metrics, NamespaceMetrics) against the real
containerd, through tests/fixtures/task-metrics: the cgroup stats of functions the daemon runs,
decoded, checked against the cgroup files and against what the function did."""

import statistics
import time

import harness

NS = harness.NAMESPACE
MiB = 1 << 20


def wait_tasks(containerd, name, n):
    def tasks():
        t = containerd.running_tasks(name)
        return t if len(t) == n else None
    return harness.wait_until(tasks, 30, f"{name}'s {n} running task(s)")


def only_task(containerd, name):
    return wait_tasks(containerd, name, 1)[0]


def metric(containerd, cid):
    got = containerd.task_metrics(cid)
    assert "error" not in got, got
    (m,) = got["metrics"]
    assert m["container_id"] == cid
    return m


def scale(api, name, replicas):
    r = api.request("POST", f"/system/scale-function/{name}",
                    {"serviceName": name, "replicas": replicas, "namespace": NS})
    assert r.status in (200, 202), r


def wait_available(api, name, n, timeout=60):
    harness.wait_until(lambda: api.describe(name).json().get("availableReplicas") == n, timeout,
                       f"{name} availableReplicas == {n}")


def test_metrics_of_a_function_cpu_grows_with_work(api, functions, containerd):
    name = functions.deploy("mcpu")
    cid = only_task(containerd, name)
    m0 = metric(containerd, cid)
    assert m0["cgroup_version"] in (1, 2)
    assert abs(m0["timestamp_ns"] - time.time_ns()) < 60e9, m0
    assert m0["memory_usage_bytes"] > 0, m0
    assert 0 < m0["memory_working_set_bytes"] <= m0["memory_usage_bytes"], m0
    assert m0["memory_limit_bytes"] is None, "no limits.memory: no limit"
    assert m0["pids"] >= 1 and m0["oom_kills"] == 0, m0

    r = api.invoke(name, "/_/spin?ms=300&threads=1", method="GET")
    assert r.status == 200 and r.text.startswith("cpu_ms="), r
    spun_ms = int(r.text.split("=", 1)[1])
    m1 = metric(containerd, cid)
    grew_ms = (m1["cpu_usage_ns"] - m0["cpu_usage_ns"]) / 1e6
    print(f"spin: process cpu {spun_ms} ms, cgroup cpu +{grew_ms:.0f} ms")
    assert spun_ms >= 20, f"the spin got only {spun_ms} ms of CPU"
    # The cgroup's counter includes the process's time; allow for clock granularity.
    assert grew_ms >= 0.9 * spun_ms, (spun_ms, m0, m1)
    assert m1["cpu_user_ns"] + m1["cpu_system_ns"] > 0
    assert m1["timestamp_ns"] > m0["timestamp_ns"]


def test_working_set_follows_resident_memory_and_limit_matches_cgroup(api, functions,
                                                                       containerd):
    name = functions.deploy("mmem", limits={"memory": "128Mi"})
    cid = only_task(containerd, name)
    m0 = metric(containerd, cid)
    assert m0["memory_limit_bytes"] == 128 * MiB, m0
    if m0["cgroup_version"] == 1:
        assert int(harness.cgroup_file("memory", cid, "memory.limit_in_bytes")) == 128 * MiB
        # The working set is usage minus the hierarchy's inactive file cache, as kubelet does.
        stat = dict(l.split() for l in
                    harness.cgroup_file("memory", cid, "memory.stat").splitlines())
        usage = int(harness.cgroup_file("memory", cid, "memory.usage_in_bytes"))
        want = max(0, usage - int(stat["total_inactive_file"]))
        assert abs(m0["memory_working_set_bytes"] - want) < 4 * MiB, (m0, usage, stat)

    r = api.invoke(name, "/_/alloc?mb=40&hold=1", method="GET")
    assert r.status == 200, r
    m1 = metric(containerd, cid)
    grew = m1["memory_working_set_bytes"] - m0["memory_working_set_bytes"]
    assert grew >= 38 * MiB, (m0, m1)
    if m1["cgroup_version"] == 1:
        assert m1["memory_max_usage_bytes"] >= m1["memory_usage_bytes"], m1
    assert m1["memory_usage_bytes"] <= 128 * MiB


def test_a_child_killed_by_the_oom_killer_is_counted(api, functions, containerd):
    """The OOM killer takes a forked child past the limit; the task lives on and its metrics
    say what happened: usage hit the limit (failcnt) and one process was killed."""
    name = functions.deploy("moom", limits={"memory": "48Mi"})
    cid = only_task(containerd, name)
    pid = containerd.task_pid(cid)
    r = api.invoke(name, "/_/alloc?mb=200&child=1", method="GET")
    assert r.status == 500 and "signal 9" in r.text, r
    m = metric(containerd, cid)
    assert m["oom_kills"] >= 1, m
    assert m["memory_failcnt"] >= 1, m
    assert not m["under_oom"], m
    assert m["memory_limit_bytes"] == 48 * MiB, m
    if m["cgroup_version"] == 1:
        oom = dict(l.split() for l in
                   harness.cgroup_file("memory", cid, "memory.oom_control").splitlines())
        assert int(oom["oom_kill"]) == m["oom_kills"], (oom, m)
        assert int(harness.cgroup_file("memory", cid, "memory.failcnt")) >= m["memory_failcnt"]
    assert containerd.task_pid(cid) == pid, "the task itself must not have been replaced"
    assert api.invoke(name, body="alive").text == "alive"


def test_metrics_of_several_tasks_leave_out_those_without_one(api, functions, containerd):
    name = functions.deploy("mmany")
    scale(api, name, 3)
    wait_available(api, name, 3)
    ids = wait_tasks(containerd, name, 3)
    got = containerd.task_metrics(*ids, "nope-00000000")
    assert "error" not in got, got
    assert sorted(m["container_id"] for m in got["metrics"]) == sorted(ids)
    assert all(m["memory_usage_bytes"] > 0 for m in got["metrics"]), got

    everything = containerd.task_metrics(all_tasks=True)
    assert set(ids) <= {m["container_id"] for m in everything["metrics"]}, everything

    missing = containerd.task_metrics("nope-00000000")
    assert missing.get("code") == "NOT_FOUND" and "nope-00000000" in missing["error"], missing


def test_metrics_latency_for_1_and_50_tasks(api, functions, containerd):
    name = functions.deploy("mlat", labels={"com.openfaas.scale.max": "50"})
    one = containerd.task_metrics(only_task(containerd, name), repeat=20)
    scale(api, name, 50)
    wait_available(api, name, 50, timeout=240)
    ids = containerd.running_tasks(name)
    assert len(ids) == 50
    fifty = containerd.task_metrics(*ids, repeat=10)
    assert "error" not in fifty, fifty
    assert len(fifty["metrics"]) == 50
    med1 = statistics.median(one["calls_ms"])
    med50 = statistics.median(fifty["calls_ms"])
    print(f"tasks.Metrics latency: 1 task median {med1:.1f} ms (max {max(one['calls_ms']):.1f}),"
          f" 50 tasks median {med50:.1f} ms (max {max(fifty['calls_ms']):.1f})")
    assert med50 < 5000, fifty["calls_ms"]
