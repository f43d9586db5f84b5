#!/usr/bin/env python3
"""faasd-cpp autoscaler benchmark (issue 11): reaction time from load start to target replicas
ready, failed requests while scaling up, while scaling down under lighter traffic, and after
the load; time to scale to zero and the wake after it.

Brings up the private integration stack (tests/integration/harness.py) with the daemon's
default autoscaler settings (every 2 s, rps over 30 s; change them with --daemon-args), runs the
phases below on one function (type rps, target 5, min 1, max 4, down.window 10s) and one with
zero=true, writes a markdown report (default bench/autoscale-results.md) and keeps the daemon
log as bench/last-autoscale-faasd.log. Stdlib only; every loop is bounded in count and time;
everything is closed in a finally block; traffic goes only to loopback and the harness's
private bridge. Exit 0 when the run completed, 1 when it failed, 2 on bad usage.
"""

import argparse
import sys
import threading
import time

import bench_stack

log = bench_stack.logger("autoscale-bench")


class Load:
    """`rate` requests/s for at most `seconds` over `threads` threads, one connection each,
    until stop(); counts outcomes (200 or not) with the time each failure happened."""

    def __init__(self, harness, daemon, name, rate, seconds, threads=4):
        self.results = []
        self.stop_event = threading.Event()
        self.pool = []
        for k in range(threads):
            t = threading.Thread(target=self._run,
                                 args=(harness, daemon, name, rate / threads, seconds, k))
            t.start()
            self.pool.append(t)

    def _run(self, harness, daemon, name, rate, seconds, k):
        deadline = time.monotonic() + seconds
        n = 0
        while (not self.stop_event.is_set() and time.monotonic() < deadline
               and n < rate * seconds + 5):
            t = time.monotonic()
            body = f"b{k}-{n}"
            try:
                r = daemon.invoke(name, body=body, timeout=30)
                self.results.append((t, r.status == 200, r.status))
            except OSError as exc:
                self.results.append((t, False, repr(exc)))
            n += 1
            time.sleep(max(0.0, 1.0 / rate - (time.monotonic() - t)))  # pacing only

    def stop(self):
        self.stop_event.set()
        for t in self.pool:
            t.join(timeout=60)

    def failed(self):
        return [r for r in self.results if not r[1]]

    def count(self):
        return len(self.results)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", default=str(bench_stack.REPO / "build"))
    ap.add_argument("--rate", type=float, default=40, help="requests/s of the load")
    ap.add_argument("--low-rate", type=float, default=8, help="requests/s of the lighter load")
    ap.add_argument("--daemon-args", default="", help="extra faasd flags, space-separated")
    ap.add_argument("--out", default=str(bench_stack.BENCH_DIR / "autoscale-results.md"))
    ap.add_argument("--deadline", type=int, default=900, help="whole-run bound, seconds")
    a = ap.parse_args()
    loads = []

    def work(b):
        harness = b.harness
        imgs, _, _, d = b.function_stack(a.daemon_args.split())

        def st(name):
            return d.describe(name).json()

        def wait_for(name, what, pred, timeout):
            t0 = time.monotonic()
            harness.wait_until(lambda: pred(st(name)), timeout, f"{name}: {what}")
            return time.monotonic() - t0

        name = "rps"
        r = d.deploy(name, imgs.refs["hello"], labels={
            "com.openfaas.scale.type": "rps", "com.openfaas.scale.target": "5",
            "com.openfaas.scale.min": "1", "com.openfaas.scale.max": "4",
            "com.openfaas.scale.down.window": "10s"})
        assert r.status in (200, 202), r
        d.wait_ready(name)

        # -- up: load until 4 replicas are ready -------------------------------------------
        log(f"scale up at {a.rate} rps")
        load = Load(harness, d, name, a.rate, 240)
        loads.append(load)
        t0 = time.monotonic()
        first_up = wait_for(name, "wants more than 1", lambda s: s["replicas"] > 1, 90)
        ready3 = wait_for(name, "3 ready", lambda s: s["availableReplicas"] >= 3, 90) + first_up
        wait_for(name, "4 ready", lambda s: s["availableReplicas"] >= 4, 90)
        ready4 = time.monotonic() - t0
        t_up = time.monotonic()
        # A few more seconds at the top, then lighter traffic that wants 2 replicas.
        harness.wait_until(lambda: time.monotonic() - t_up >= 5, 10, "5 s at 4 replicas",
                           interval=0.5)
        load.stop()
        up_sent, up_failed = load.count(), load.failed()

        log(f"scale down under {a.low_rate} rps")
        light = Load(harness, d, name, a.low_rate, 240)
        loads.append(light)
        down2 = wait_for(name, "down to 2 wanted", lambda s: s["replicas"] <= 2, 120)
        avail2 = wait_for(name, "2 ready", lambda s: s["availableReplicas"] <= 2, 60) + down2
        t_down = time.monotonic()
        harness.wait_until(lambda: time.monotonic() - t_down >= 5, 10, "5 s at 2 replicas",
                           interval=0.5)
        light.stop()
        light_sent, light_failed = light.count(), light.failed()

        log("no traffic")
        down1 = wait_for(name, "back to 1", lambda s: s["replicas"] == 1, 120)
        after = d.invoke(name, body="after")

        # -- zero ----------------------------------------------------------------------------
        log("scale to zero")
        zname = "idle"
        r = d.deploy(zname, imgs.refs["hello"], labels={
            "com.openfaas.scale.zero": "true", "com.openfaas.scale.zero-duration": "10s"})
        assert r.status in (200, 202), r
        d.wait_ready(zname)
        assert d.invoke(zname, body="x").status == 200
        to_zero = wait_for(zname, "at zero", lambda s: s["replicas"] == 0, 90)
        t4 = time.monotonic()
        wake = d.invoke(zname, body="wake")
        wake_ms = (time.monotonic() - t4) * 1000

        def fails(rows):
            return ", ".join(f"{r[2]}" for r in rows[:3]) or "none"
        b.report += [
            f"Function `rps`: type rps, target 5 (x 0.90 = 4.5 rps per replica), min 1, max 4, "
            f"down.window 10s. Daemon flags: `{a.daemon_args or '(defaults)'}`.", "",
            "| phase | measured | requests | failed |", "|---|---|---:|---:|",
            f"| up: {a.rate:g} rps from 1 replica | first scale-up {first_up:.1f} s, 3 ready "
            f"{ready3:.1f} s, 4 ready {ready4:.1f} s after load start | {up_sent} | "
            f"{len(up_failed)} ({fails(up_failed)}) |",
            f"| down under {a.low_rate:g} rps (wants 2) | 2 wanted after {down2:.1f} s, "
            f"2 ready after {avail2:.1f} s | {light_sent} | {len(light_failed)} "
            f"({fails(light_failed)}) |",
            f"| no traffic | back to 1 after {down1:.1f} s; next request {after.status} | 1 | "
            f"{0 if after.status == 200 else 1} |",
            f"| zero (zero-duration 10s) | at 0 {to_zero:.1f} s after its last request; wake "
            f"{wake.status} in {wake_ms:.0f} ms | 1 | {0 if wake.status == 200 else 1} |", "",
            "Reaction time includes the autoscaler's interval, the rps window filling, the "
            "provider starting each replica (container, task, CNI, readiness) on a 2-core box "
            "shared with the load generator.", ""]

    def stop_loads():
        for load in loads:
            load.stop()
    return bench_stack.run("autoscale-bench", a.build_dir, a.deadline, a.out,
                           "last-autoscale-faasd.log", "Autoscaler benchmark", work, stop_loads)


if __name__ == "__main__":
    sys.exit(main())
