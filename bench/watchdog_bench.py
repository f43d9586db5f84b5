#!/usr/bin/env python3
"""fwatchdog benchmark (run by bench/watchdog.sh): wrk req/s and latency percentiles for
classic `cat` through fwatchdog vs spawning cat directly, and http-mode hello through
fwatchdog vs the upstream directly; cold start (exec -> /_/health 200) and RSS. Optionally the
same for upstream Go watchdogs when UPSTREAM_CLASSIC / UPSTREAM_OFWATCHDOG point at binaries
built locally (never committed). Prints a markdown report on stdout."""
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

FW = os.environ["FWATCHDOG_BIN"]
FNSERVER = os.environ["FNSERVER_BIN"]
FORKER = os.environ["FORKER_BIN"]
HERE = os.path.dirname(os.path.abspath(__file__))
DURATION = os.environ.get("BENCH_DURATION", "5s")
UP_CLASSIC = os.environ.get("UPSTREAM_CLASSIC")
UP_OF = os.environ.get("UPSTREAM_OFWATCHDOG")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health_ok(port, path="/_/health"):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def wait_health(port, path="/_/health", timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if health_ok(port, path):
            return time.monotonic()
    raise RuntimeError(f"port {port} not healthy in {timeout}s")


class Proc:
    def __init__(self, argv, env):
        full = {"PATH": os.environ["PATH"]}
        full.update(env)
        self.tmp = tempfile.mkdtemp(prefix="wdbench")
        full.setdefault("TMPDIR", self.tmp)
        self.p = subprocess.Popen(argv, env=full, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)

    def rss(self):
        out = {}
        with open(f"/proc/{self.p.pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line.split(":")[0]] = int(line.split()[1])
        return out

    def stop(self, sig=signal.SIGTERM):
        if self.p.poll() is None:
            os.killpg(self.p.pid, sig)  # its own session: it and its children
            try:
                self.p.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()


def wrk(url, conns, threads, script=None):
    args = ["wrk", "-t", str(threads), "-c", str(conns), "-d", DURATION, "--latency", url]
    if script:
        args[1:1] = ["-s", script]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {}
    for pct in ("50", "99"):
        m = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out)
        v = float(m.group(1)) * {"us": 1, "ms": 1000, "s": 1e6}[m.group(2)]
        lat[pct] = v
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, lat["50"], lat["99"], int(errors.group(1)) if errors else 0


def cold_start(argv, env, port, runs=10, sig=signal.SIGTERM):
    times = []
    for _ in range(runs):
        t0 = time.monotonic()
        p = Proc(argv, env)
        try:
            t1 = wait_health(port)
            times.append((t1 - t0) * 1000)
        finally:
            p.stop(sig)
    return statistics.median(times), max(times)


def row(name, r):
    rps, p50, p99, errs = r
    return f"| {name} | {rps:,.0f} | {p50:,.0f} | {p99:,.0f} | {errs} |"


def main():
    lines = ["| case | req/s | p50 µs | p99 µs | non-2xx |", "|---|---:|---:|---:|---:|"]
    post = os.path.join(HERE, "watchdog_post.lua")
    notes = []

    # --- classic cat
    n = 3000
    out = subprocess.run([FORKER, str(n), "hello", "cat"], capture_output=True, text=True,
                         check=True).stdout.split()
    lines.append(f"| spawn cat alone (no HTTP), sequential, {n} runs | {float(out[0]):,.0f} | "
                 f"{float(out[1]):,.0f} | {float(out[2]):,.0f} | - |")
    port = free_port()
    env = {"fprocess": "cat", "port": str(port)}
    w = Proc([FW], env)
    wait_health(port)
    lines.append(row("fwatchdog classic cat, 1 conn", wrk(f"http://127.0.0.1:{port}/", 1, 1, post)))
    lines.append(row("fwatchdog classic cat, 8 conns", wrk(f"http://127.0.0.1:{port}/", 8, 2, post)))
    classic_rss = w.rss()
    w.stop()
    if UP_CLASSIC:
        port = free_port()
        u = Proc([UP_CLASSIC], {"fprocess": "cat", "port": str(port)})
        wait_health(port)
        lines.append(row("upstream classic-watchdog cat, 1 conn",
                         wrk(f"http://127.0.0.1:{port}/", 1, 1, post)))
        lines.append(row("upstream classic-watchdog cat, 8 conns",
                         wrk(f"http://127.0.0.1:{port}/", 8, 2, post)))
        notes.append(f"upstream classic-watchdog RSS after load: {u.rss()}")
        u.stop(signal.SIGKILL)

    # --- http mode hello (fnserver in hello mode as the function)
    uport = free_port()
    up = Proc([FNSERVER], {"mode": "hello", "port": str(uport)})
    wait_health(uport)
    lines.append(row("upstream fnserver hello direct, 1 conn",
                     wrk(f"http://127.0.0.1:{uport}/", 1, 1)))
    lines.append(row("upstream fnserver hello direct, 8 conns",
                     wrk(f"http://127.0.0.1:{uport}/", 8, 2)))
    up.stop()
    uport = free_port()
    port = free_port()
    hmode_env = {"mode": "http", "fprocess": FNSERVER, "upstream_url": f"http://127.0.0.1:{uport}",
                 "port": str(port)}
    # fnserver reads `port` too: a wrapper gives the function its own port.
    wrapper = os.path.join(tempfile.mkdtemp(prefix="wdbench"), "fn.sh")
    with open(wrapper, "w") as f:
        f.write(f"#!/bin/sh\nport={uport} mode=hello exec {FNSERVER}\n")
    os.chmod(wrapper, 0o755)
    hmode_env["fprocess"] = wrapper
    w = Proc([FW], hmode_env)
    wait_health(port)
    lines.append(row("fwatchdog http mode -> fnserver hello, 1 conn",
                     wrk(f"http://127.0.0.1:{port}/", 1, 1)))
    lines.append(row("fwatchdog http mode -> fnserver hello, 8 conns",
                     wrk(f"http://127.0.0.1:{port}/", 8, 2)))
    http_rss = w.rss()
    w.stop()
    if UP_OF:
        uport2, port2 = free_port(), free_port()
        with open(wrapper, "w") as f:
            f.write(f"#!/bin/sh\nport={uport2} mode=hello exec {FNSERVER}\n")
        u = Proc([UP_OF], {"mode": "http", "fprocess": wrapper, "port": str(port2),
                           "upstream_url": f"http://127.0.0.1:{uport2}"})
        wait_health(port2)
        lines.append(row("upstream of-watchdog http mode -> fnserver hello, 1 conn",
                         wrk(f"http://127.0.0.1:{port2}/", 1, 1)))
        lines.append(row("upstream of-watchdog http mode -> fnserver hello, 8 conns",
                         wrk(f"http://127.0.0.1:{port2}/", 8, 2)))
        notes.append(f"upstream of-watchdog RSS after load: {u.rss()}")
        u.stop(signal.SIGKILL)

    # --- cold start
    port = free_port()
    med, worst = cold_start([FW], {"fprocess": "cat", "port": str(port)}, port)
    lines2 = [f"- cold start classic (exec -> /_/health 200), median of 10: {med:.1f} ms "
              f"(max {worst:.1f} ms)"]
    port, uport = free_port(), free_port()
    with open(wrapper, "w") as f:
        f.write(f"#!/bin/sh\nport={uport} mode=hello exec {FNSERVER}\n")
    med, worst = cold_start([FW], {"mode": "http", "fprocess": wrapper, "port": str(port),
                                   "upstream_url": f"http://127.0.0.1:{uport}"}, port)
    lines2.append(f"- cold start http mode (exec -> upstream accepting -> /_/health 200), "
                  f"median of 10: {med:.1f} ms (max {worst:.1f} ms)")
    if UP_CLASSIC:
        port = free_port()
        med, worst = cold_start([UP_CLASSIC], {"fprocess": "cat", "port": str(port)}, port,
                                 sig=signal.SIGKILL)
        lines2.append(f"- cold start upstream classic-watchdog: median {med:.1f} ms "
                      f"(max {worst:.1f} ms)")
    lines2.append(f"- fwatchdog RSS after classic load: {classic_rss} kB; after http load: "
                  f"{http_rss} kB; binary size {os.path.getsize(FW) // 1024} kB (static)")
    print("\n".join(lines))
    print()
    print("\n".join(lines2 + [f"- {n}" for n in notes]))


if __name__ == "__main__":
    sys.exit(main())
