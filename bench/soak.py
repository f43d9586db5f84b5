#!/usr/bin/env python3
"""faasd-cpp soak (issue 13): a bounded mixed workload — deploy, invoke, scale (to zero and
back), update, remove — from several threads at once for --minutes, then everything removed,
and the daemon's and the host's resources counted before and after: the daemon's fds, threads
and RSS, IPs host-local holds, pinned network namespaces, mounts, containers, snapshots, tasks,
shims, veths on the bridge. Each count should be back at its baseline, taken after a warm-up
of the same workload (--warmup-minutes): what the first minute of concurrent work makes the
allocator keep is not growth with work, and the report shows it apart (the 'at start' column).

Brings up the private integration stack (tests/integration/harness.py) via bench_stack, writes
bench/soak-results.md and keeps the daemon log as bench/last-soak-faasd.log. Stdlib only; every
loop is bounded in count and time; traffic goes only to loopback and the private bridge.
Exit 0 when the run completed and every count came back, 1 otherwise, 2 on bad usage.
"""

import argparse
import collections
import json
import os
import shutil
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import bench_stack

log = bench_stack.logger("soak")
OK = (200, 201, 202, 204)


def daemon_counts(pid):
    """fds, threads, and VmRSS, RssAnon (heap and stacks) and RssFile (the mapped binary and
    libraries' touched pages) in KiB."""
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    threads = len(os.listdir(f"/proc/{pid}/task"))
    mem = {"VmRSS:": 0, "RssAnon:": 0, "RssFile:": 0}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key = line.split(" ", 1)[0].split("\t", 1)[0]
            if key in mem:
                mem[key] = int(line.split()[1])
    return fds, threads, mem["VmRSS:"], mem["RssAnon:"], mem["RssFile:"]


def no_more(after, before):
    """The daemon's fds and threads are back when none is left over (the baseline may hold a
    transient one: a kept-alive connection, a removal thread finishing)."""
    return all(x <= y for x, y in zip(after, before))


def host_counts(harness, daemon, ctd, cni):
    """Everything a function leaves behind on the host, counted for this stack only."""
    ns = harness.NAMESPACE
    ipam = cni.ipam_dir / cni.network
    ips = sum(1 for p in ipam.iterdir() if p.name[0].isdigit()) if ipam.is_dir() else 0
    netns_dir = daemon.state_dir / "netns"
    netns = len(os.listdir(netns_dir)) if netns_dir.is_dir() else 0
    with open("/proc/self/mountinfo") as f:
        mounts = sum(1 for line in f if str(ctd.dir.parent) in line)
    rows = lambda *args: max(0, len(ctd.lines(*args, namespace=ns)) - 1)  # noqa: E731
    links = json.loads(subprocess.run(["ip", "-j", "link", "show", "master", cni.bridge],
                                      capture_output=True, text=True).stdout or "[]")
    return {
        "IPs allocated (host-local)": ips,
        "pinned netns": netns,
        "mounts under the stack's dirs": mounts,
        "containers": rows("containers", "ls"),
        "snapshots": rows("snapshots", "ls"),
        "tasks": rows("tasks", "ls"),
        "shims": len(ctd.shim_pids()),
        "veths on the bridge": len(links),
    }


class Worker(threading.Thread):
    """Owns up to `keep` functions of its own (so its expectations never race another's) and
    runs random operations on them until `deadline` or `max_ops`."""

    def __init__(self, k, d, image, deadline, max_ops, keep=4, prefix="s"):
        super().__init__(name=f"soak-{prefix}{k}", daemon=True)
        self.k, self.d, self.image, self.deadline = k, d, image, deadline
        self.prefix = prefix
        self.max_ops, self.keep = max_ops, keep
        self.rng = random.Random(k)
        self.mine = {}  # name -> replicas wanted
        self.made = 0
        self.ops = collections.Counter()
        self.failures = []

    def check(self, what, r, ok=OK):
        self.ops[what] += 1
        if r.status not in ok:
            self.failures.append(f"{what}: {r.status} {r.text[:160]}")

    def run(self):
        n = 0
        while time.monotonic() < self.deadline and n < self.max_ops:
            n += 1
            try:
                self.step()
            except OSError as exc:
                self.failures.append(f"{exc!r}")

    def step(self):
        d, rng = self.d, self.rng
        if len(self.mine) < 2 or (len(self.mine) < self.keep and rng.random() < 0.15):
            name = f"{self.prefix}{self.k}-{self.made}"
            self.made += 1
            r = d.deploy(name, self.image)
            self.check("deploy", r)
            if r.status in OK:
                self.mine[name] = 1
            return
        name = rng.choice(sorted(self.mine))
        roll = rng.random()
        if roll < 0.60:
            body = f"{name}-{rng.getrandbits(32)}"
            r = d.invoke(name, body=body, timeout=60)
            self.ops["invoke"] += 1
            if r.status != 200 or r.text != body:
                self.failures.append(f"invoke {name} at {self.mine[name]}: {r.status} {r.text[:160]}")
        elif roll < 0.75:
            n = rng.choice([0, 1, 2, 3])
            r = d.request("POST", f"/system/scale-function/{name}",
                          {"serviceName": name, "replicas": n})
            self.check("scale", r)
            if r.status in OK:
                self.mine[name] = n
        elif roll < 0.88:
            r = d.deploy(name, self.image, method="PUT",
                         envVars={"rev": str(rng.getrandbits(16))})
            self.check("update", r)
        else:
            r = d.delete(name)
            self.check("remove", r)
            self.mine.pop(name, None)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", default=str(bench_stack.REPO / "build"))
    ap.add_argument("--minutes", type=float, default=20)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--warmup-minutes", type=float, default=1,
                    help="the same workload before the baseline (0: one deploy/remove only)")
    ap.add_argument("--max-ops", type=int, default=100000, help="per worker")
    ap.add_argument("--out", default=str(bench_stack.BENCH_DIR / "soak-results.md"))
    a = ap.parse_args()
    verdict = {"back": False}

    def work(b):
        harness = b.harness
        imgs, cni, ctd, d = b.function_stack()
        pid = d.proc.pid
        # Warm the paths once (first pull, first CNI attach), then the warm-up phase below.
        r = d.deploy("warm", imgs.refs["echo"])
        assert r.status in OK, r
        d.wait_ready("warm")
        assert d.invoke("warm", body="w").status == 200
        assert d.delete("warm").status in OK
        harness.wait_until(lambda: host_counts(harness, d, ctd, cni)["containers"] == 0, 60,
                           "the warm-up function to go")
        before_d = daemon_counts(pid)
        before_h = host_counts(harness, d, ctd, cni)
        log(f"before the warm-up: daemon fds/threads/RSS {before_d}, host {before_h}")

        def phase(minutes, prefix, host_baseline):
            """The workload for `minutes`, then what is left removed and the host's counts
            polled back to `host_baseline` (bounded). Returns (workers, seconds, peak daemon
            counts, RssAnon by minute)."""
            t0 = time.monotonic()
            deadline = t0 + minutes * 60
            workers = [Worker(k, d, imgs.refs["echo"], deadline, a.max_ops, prefix=prefix)
                       for k in range(a.workers)]
            for w in workers:
                w.start()
            peak = daemon_counts(pid)
            anon_trend = []  # (minute, RssAnon KiB): a plateau or a steady climb
            while any(w.is_alive() for w in workers) and time.monotonic() < deadline + 300:
                now = daemon_counts(pid)
                peak = [max(x, y) for x, y in zip(peak, now)]
                minute = int((time.monotonic() - t0) // 60)
                if not anon_trend or anon_trend[-1][0] < minute:
                    anon_trend.append((minute, now[3]))
                time.sleep(1)  # sampling the daemon's counts, not synchronisation
            for w in workers:
                w.join(timeout=60)
            ran = time.monotonic() - t0
            log(f"{prefix}: workload done after {ran:.0f} s; removing what is left")
            for w in workers:
                for name in list(w.mine):
                    r = d.delete(name)
                    if r.status not in OK + (404,):
                        w.failures.append(f"final remove {name}: {r.status} {r.text[:160]}")
            # Removal stops tasks in the background: poll until the counts settle or 300 s pass.
            settle = time.monotonic() + 300
            while time.monotonic() < settle and host_counts(harness, d, ctd, cni) != host_baseline:
                time.sleep(0.5)  # polling the host's state, bounded
            return workers, ran, peak, anon_trend

        def daemon_settled(reference):
            """The daemon's counts once its fds and threads are back at `reference`'s, or after
            60 s: idle keep-alive connections close after --http-idle-timeout."""
            settle = time.monotonic() + 60
            now = daemon_counts(pid)
            while time.monotonic() < settle and not no_more(now[:2], reference[:2]):
                time.sleep(0.5)  # polling the daemon's counts, bounded
                now = daemon_counts(pid)
            return now

        warm_failures = []
        if a.warmup_minutes > 0:
            # The same mix before the baseline: the allocator's arenas and Asio's descriptor
            # states reach what concurrent work needs, so what follows shows growth with work.
            warm, _, _, _ = phase(a.warmup_minutes, "w", before_h)
            warm_failures = [f"warm-up: {f}" for w in warm for f in w.failures]
        start_d = before_d
        before_d = daemon_settled(start_d)
        before_h = host_counts(harness, d, ctd, cni)
        log(f"baseline after the warm-up: daemon {before_d}, host {before_h}")
        if os.environ.get("SOAK_SMAPS_DIR"):  # diagnosis: which mappings keep the growth
            shutil.copy(f"/proc/{pid}/smaps", Path(os.environ["SOAK_SMAPS_DIR"]) / "before")

        workers, ran, peak, anon_trend = phase(a.minutes, "s", before_h)
        peak = [max(x, y) for x, y in zip(peak, before_d)]
        after_h = host_counts(harness, d, ctd, cni)
        after_d = daemon_settled(before_d)

        if os.environ.get("SOAK_SMAPS_DIR"):
            shutil.copy(f"/proc/{pid}/smaps", Path(os.environ["SOAK_SMAPS_DIR"]) / "after")
        ops = collections.Counter()
        failures = list(warm_failures)
        for w in workers:
            ops.update(w.ops)
            failures += w.failures
        back = after_h == before_h and no_more(after_d[:2], before_d[:2])
        verdict["back"] = back and not failures
        rep = b.report
        rep += [f"{a.workers} workers for {ran / 60:.1f} min "
                f"({sum(ops.values())} operations: "
                + ", ".join(f"{k} {v}" for k, v in sorted(ops.items()))
                + f"); {len(failures)} failed.", ""]
        rep += [f"The baseline ('before') is taken after a {a.warmup_minutes:g}-minute warm-up "
                "of the same workload (its functions removed again); 'at start' is before it, "
                "after one deploy/remove.", ""]
        rep += ["| what | at start | before | peak | after | back |",
                "|---|---:|---:|---:|---:|:---:|"]
        for i, label in enumerate(["daemon fds", "daemon threads", "daemon RSS KiB",
                                   "daemon RssAnon KiB", "daemon RssFile KiB"]):
            same = "yes" if after_d[i] <= before_d[i] else "no"
            if i >= 2:
                same = f"{(after_d[i] - before_d[i]) / 1024:+.1f} MiB"
            rep.append(f"| {label} | {start_d[i]} | {before_d[i]} | {peak[i]} | {after_d[i]} | "
                       f"{same} |")
        for key, value in before_h.items():
            rep.append(f"| {key} | | {value} | | {after_h[key]} | "
                       f"{'yes' if after_h[key] == value else 'no'} |")
        rep.append("")
        rep += ["RssAnon at each minute of the workload (KiB): "
                + ", ".join(f"{m}: {kib}" for m, kib in anon_trend), ""]
        if after_h["containers"]:
            rep += ["Containers left:", ""] + [
                f"- `{line}`" for line in ctd.lines("containers", "ls",
                                                    namespace=harness.NAMESPACE)[1:21]] + [""]
        if failures:
            rep += ["Failures (first 20):", ""] + [f"- `{f}`" for f in failures[:20]] + [""]
        log(f"counts back at baseline: {back}; failures: {len(failures)}")

    rc = bench_stack.run("soak", a.build_dir, int((a.minutes + a.warmup_minutes) * 60) + 2400,
                         a.out,
                         "last-soak-faasd.log", "Soak: mixed workload, resources before and after",
                         work)
    return rc if rc != 0 else (0 if verdict["back"] else 1)


if __name__ == "__main__":
    sys.exit(main())
