#!/usr/bin/env python3
"""faasd-cpp provider benchmark (issue 7): scale from zero, failures while a lone replica is
killed or a function is updated under load, restarts per minute of a crash loop, and the cost of
many functions (list, get, deploy time and memory at N functions, most of them at zero).

Brings up the private integration stack (tests/integration/harness.py), runs each part, writes a
markdown report (default bench/provider-results.md) and keeps the daemon log as
bench/last-provider-faasd.log. Stdlib only; every loop is bounded in count and time; everything
is closed in a finally block; traffic goes only to loopback and the harness's private bridge.
Exit 0 when the run completed (targets missed or not), 1 when it failed, 2 on bad usage.
"""

import argparse
import statistics
import sys
import threading
import time

import bench_stack

log = bench_stack.logger("provider-bench")


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", default=str(bench_stack.REPO / "build"))
    ap.add_argument("--wakes", type=int, default=20, help="scale-from-zero samples")
    ap.add_argument("--functions", default="100", help="comma list of function counts, e.g. 100,500")
    ap.add_argument("--crash-seconds", type=int, default=60)
    ap.add_argument("--out", default=str(bench_stack.BENCH_DIR / "provider-results.md"))
    ap.add_argument("--deadline", type=int, default=3600, help="whole-run bound, seconds")
    a = ap.parse_args()
    counts = [int(x) for x in a.functions.split(",") if x.strip()]

    def work(b):
        harness = b.harness
        import hostile_images  # noqa: E402  (beside harness, on the path bench_stack set)
        report = b.report
        reg = b.start(harness.Registry(b.wd))
        imgs = harness.FunctionImages(b.wd, reg)
        b.pieces.append(imgs)
        imgs.build()
        hostile = b.start(hostile_images.HostileImages(b.wd, reg))
        # room for the many functions (each keeps an IP)
        cni = b.start(harness.CniEnv(b.wd, prefix=20))
        ctd = b.start(harness.Containerd(b.wd))
        # Paused tasks stop after 2 s: both wakes (a paused task, a stopped one) are measured.
        d = b.daemon = b.start(harness.FaasdDaemon(b.wd, ctd, cni, extra_args=["--paused-ttl=2"]))
        ns = harness.NAMESPACE

        def scale(name, n):
            r = d.request("POST", f"/system/scale-function/{name}",
                          {"serviceName": name, "replicas": n, "namespace": ns})
            assert r.status in (200, 202), r

        running = ctd.running_tasks

        # -- scale from zero ----------------------------------------------------------------
        log("scale from zero")
        r = d.deploy("zero", imgs.refs["hello"])
        assert r.status in (200, 202), r
        d.wait_ready("zero")
        (zero_id,) = running("zero")

        def wakes_from(state):
            """Scale to zero, wait for the kept task to be `state` (PAUSED, or None: stopped),
            time the first request."""
            out = []
            for _ in range(a.wakes):
                scale("zero", 0)
                harness.wait_until(lambda: ctd.task_status(zero_id) == state, 30,
                                   f"zero's task {state or 'stopped'}")
                harness.wait_until(lambda: d.describe("zero").json()["availableReplicas"] == 0,
                                   10, "zero at 0")
                t0 = time.monotonic()
                r = d.invoke("zero", method="GET", timeout=60)
                out.append((time.monotonic() - t0) * 1000)
                assert r.status == 200, r
            return out
        report += ["## Scale from zero (cached image, first response after the request)", "",
                   "| task at zero | samples | median ms | p99 ms | min ms | max ms | target |",
                   "|---|---:|---:|---:|---:|---:|---|"]
        for state, what in (("PAUSED", "paused (the latest --paused-max, within --paused-ttl)"),
                            (None, "stopped (past the cap or the ttl)")):
            wake_ms = wakes_from(state)
            report.append(f"| {what} | {len(wake_ms)} | {statistics.median(wake_ms):.0f} | "
                          f"{pct(wake_ms, 99):.0f} | {min(wake_ms):.0f} | {max(wake_ms):.0f} | "
                          f"≤ 150 ms |")
        report.append("")
        wakes = [l for l in harness.tail(d.log_path, 10**8).splitlines() if "debug wake zero" in l]
        if wakes:
            report += ["Where the time goes (daemon debug log, last wake): `" +
                       wakes[-1].split(": ", 1)[1] + "`", ""]

        # -- failures under load ---------------------------------------------------------------
        def under_load(name, action, seconds=10, rate=20):
            results = []
            stop_at = time.monotonic() + seconds

            def loader():
                n = 0
                while time.monotonic() < stop_at and n < rate * seconds + 10:
                    t = time.monotonic()
                    try:
                        r = d.invoke(name, body=f"b{n}", timeout=30)
                        results.append(r.status == 200)
                    except OSError:
                        results.append(False)
                    n += 1
                    time.sleep(max(0.0, 1 / rate - (time.monotonic() - t)))  # pacing
            th = threading.Thread(target=loader)
            th.start()
            harness.wait_until(lambda: len(results) >= rate * 3, 20, "load to run")
            action()
            th.join(timeout=seconds + 60)
            return len(results), results.count(False)

        log("kill -9 under load")
        r = d.deploy("lone", imgs.refs["echo"])
        assert r.status in (200, 202), r
        d.wait_ready("lone")

        def kill():
            for cid in running("lone"):
                ctd.ctr("tasks", "kill", "-s", "SIGKILL", cid, namespace=ns)
        kill_total, kill_failed = under_load("lone", kill)
        log("update under load")
        r = d.deploy("upd", imgs.refs["echo"])
        assert r.status in (200, 202), r
        d.wait_ready("upd")
        scale("upd", 2)
        harness.wait_until(lambda: d.describe("upd").json()["availableReplicas"] == 2, 60, "2")
        upd_total, upd_failed = under_load(
            "upd", lambda: d.deploy("upd", imgs.refs["echo"], method="PUT", envVars={"v": "2"}))
        report += ["## Failed requests under 20 req/s", "",
                   "| event | requests | failed | target |", "|---|---:|---:|---|",
                   f"| `kill -9` of the only replica | {kill_total} | {kill_failed} | 0 |",
                   f"| update (PUT), 2 replicas | {upd_total} | {upd_failed} | 0 |", ""]

        # -- crash loop --------------------------------------------------------------------------
        log(f"crash loop for {a.crash_seconds} s")
        ref = hostile.push("exits", [], entrypoint=["/bin/false"])
        r = d.deploy("crash", ref)
        assert r.status in (200, 202), r
        before = harness.tail(d.log_path, 10**8).count("restarted crash (")
        t0 = time.monotonic()
        harness.wait_until(lambda: time.monotonic() - t0 >= a.crash_seconds,
                           a.crash_seconds + 10, "the crash window", interval=1)
        restarts = harness.tail(d.log_path, 10**8).count("restarted crash (") - before
        d.delete("crash")
        report += ["## Crash loop (`/bin/false` as the entrypoint)", "",
                   f"{restarts} restarts in {a.crash_seconds} s "
                   f"({restarts * 60 / a.crash_seconds:.1f} per minute; back-off 250 ms "
                   f"doubling to 5 min).", ""]

        # -- many functions ----------------------------------------------------------------------
        for name in ("zero", "lone", "upd"):  # the sections above are done with them
            d.delete(name)
        def quiet_probe(tag, n=10):
            """Deploys `n` probe functions one after another while nothing else runs (every other
            function at zero and stopped), then removes them and waits until their tasks are gone:
            the same procedure at every size, so its medians compare like with like."""
            def tasks(prefix):  # any state: a paused task's stop is still to come
                return [line for line in ctd.lines("tasks", "ls", namespace=ns)[1:]
                        if line.startswith(prefix)]
            harness.wait_until(lambda: not tasks(""), 120, "every task stopped")
            samples = []
            for i in range(n):
                name = f"probe-{tag}-{i}"
                t = time.monotonic()
                r = d.deploy(name, imgs.refs["hello"])
                samples.append((time.monotonic() - t) * 1000)
                assert r.status in (200, 202), r
            for i in range(n):
                d.delete(f"probe-{tag}-{i}")
            harness.wait_until(lambda: not tasks(f"probe-{tag}-"), 120,
                               "the probes to be removed")
            return statistics.median(samples)

        rows = []
        made = 0
        probe_at_zero = quiet_probe("0") if counts else float("nan")
        deploy_ms = []  # every deploy, in order: one sample is too noisy on 2 shared cores
        for target in counts:
            log(f"{target} functions")
            while made < target:
                name = f"many-{made:04d}"
                t = time.monotonic()
                r = d.deploy(name, imgs.refs["hello"])
                deploy_ms.append((time.monotonic() - t) * 1000)
                assert r.status in (200, 202), r
                scale(name, 0)  # most functions sit at zero
                made += 1
            first = statistics.median(deploy_ms[:10])
            # With --paused-ttl=2 each function scaled to zero is stopped 2 s later: from about
            # the 15th deploy on, every deploy runs beside the stop of an earlier function (task
            # kill and delete, shim exit, CNI DEL). Deploys 21-30 are the first ones measured in
            # that same regime as the last ones.
            settled = statistics.median(deploy_ms[20:30]) if len(deploy_ms) >= 30 else float("nan")
            last = statistics.median(deploy_ms[-10:])
            harness.wait_until(lambda: len(running("many")) == 0, 120, "all at zero")

            def timed(fn, n=10):
                samples = []
                for _ in range(n):
                    t = time.monotonic()
                    fn()
                    samples.append((time.monotonic() - t) * 1000)
                return statistics.median(samples)
            list_ms = timed(lambda: d.list())
            get_ms = timed(lambda: d.describe("many-0000"))
            probe = quiet_probe(str(target))
            rows.append(f"| {target} | {first:.0f} | {settled:.0f} | {last:.0f} | "
                        f"{probe:.0f} ({probe / probe_at_zero:.2f}) | {list_ms:.1f} | "
                        f"{get_ms:.1f} | "
                        f"{rss_kb(d.proc.pid) / 1024:.1f} |")
        if rows:
            report += ["## Many functions (each deployed, then scaled to zero)", "",
                       "| functions | first 10 deploys ms (median) | deploys 21-30 ms (median) | "
                       "last 10 deploys ms (median) | 10 quiet deploys ms (median; ÷ at 0) | "
                       "list ms (median) | get ms (median) | daemon RSS MB |",
                       "|---:|---:|---:|---:|---:|---:|---:|---:|",
                       *rows, "",
                       "Targets: list ≤ 50 ms, get ≤ 5 ms, the last deploys no slower than the "
                       "first ones by more than 20%. A deploy here is the whole POST: pull check, "
                       "container, network, task start and readiness. Each function is scaled "
                       "to zero right after its deploy and stopped 2 s later (--paused-ttl=2): "
                       "the first deploys run alone, those from about the 15th on beside the "
                       "stop of an earlier one; deploys 21-30 are the first in that regime. "
                       "'Quiet deploys' isolate the cost of the functions already there: with "
                       "every function at zero and stopped, 10 probe functions are deployed one "
                       "after another (then removed); the ratio is against the same 10 deploys "
                       f"with no function deployed ({probe_at_zero:.0f} ms).", ""]

    return bench_stack.run("provider-bench", a.build_dir, a.deadline, a.out,
                           "last-provider-faasd.log", "Provider benchmark", work)


if __name__ == "__main__":
    sys.exit(main())
