#!/usr/bin/env python3
"""faasd-cpp benchmark: gateway overhead, deploy->first-200 and daemon RSS, in one run.

Brings up the private integration stack (tests/integration/harness.py: registry, test images,
CNI bridge, containerd, faasd), deploys `hello` (answers from memory) and `cat` (forks `cat` per
request), then drives each with wrk directly at http://IP:8080/ and through the gateway at
http://127.0.0.1:PORT/function/NAME. Writes a markdown report (default bench/results-latest.md).

Contract: stdlib only; every loop is bounded in count and time; everything the harness created
is closed in a finally block (also on SIGINT/SIGTERM); traffic goes only to loopback and the
harness's private bridge. Exit status is 0 when the run completed, even if targets are missed
(the report says so), 1 when the run itself failed, 2 on bad usage.
"""

import argparse
import datetime
import ipaddress
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent

# Targets from the issue, for the "target" column only; the run never fails on them.
TARGET_RATIO_FORK = 0.90
TARGET_RATIO_FAST = 0.50
TARGET_ADDED_P99_MS = 1.0
TARGET_FIRST_200_MS = 150.0
TARGET_RSS_MB = 20.0
TARGET_RSS_AFTER_BURST_MB = 22.0
RSS_SETTLE_SECONDS = 60
BURST_CONNS = 1000

NGINX_CONF = """worker_processes 2;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  keepalive_requests 100000;
{upstreams}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
{locations}
  }}
}}
"""


class Interrupted(Exception):
    pass


def on_signal(signum, _frame):
    raise Interrupted(f"signal {signum}")


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def mem_status(pid):
    """VmRSS and its split (RssAnon: heap/stacks, RssFile: mapped binary and shared
    libraries), all in KiB, plus the thread count."""
    want = ("VmRSS", "RssAnon", "RssFile", "RssShmem", "Threads")
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in want:
                out[key] = int(rest.split()[0])
    if "VmRSS" not in out:
        raise RuntimeError(f"/proc/{pid}/status: no VmRSS line")
    return out


def function_ip(state_dir, name):
    """The function's IP from the daemon's CNI attachment records (<state>/cni/<id>.json)."""
    best = None
    for path in sorted((Path(state_dir) / "cni").glob("*.json")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        cid = rec.get("containerId", "")
        if cid.rsplit("-", 1)[0] == name and rec.get("state") == "attached" and rec.get("ip"):
            mtime = path.stat().st_mtime
            if best is None or mtime > best[0]:
                best = (mtime, rec["ip"])
    return best[1] if best else None


def function_pids(ctd, namespace, name):
    """The init PIDs of `name`'s running tasks (<state>/io.containerd.runtime.v2.task/)."""
    pids = []
    for pidfile in (Path(ctd.state) / "io.containerd.runtime.v2.task" / namespace).glob(
            f"{name}-*/init.pid"):
        try:
            pids.append(int(pidfile.read_text().strip()))
        except (OSError, ValueError):
            continue
    return pids


def http_status(url, method="GET", body=None, timeout=2.0):
    req = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def run_wrk(url, conns, threads, seconds, method, body):
    env = dict(os.environ, BENCH_METHOD=method, BENCH_BODY=body or "")
    args = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--timeout", "5s",
            "--latency", "-s", str(BENCH_DIR / "wrk.lua"), url]
    try:
        proc = subprocess.run(args, capture_output=True, text=True, env=env,
                              timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        # wrk itself hung (the server stopped answering): a data point, not a crash.
        log(f"wrk {url} -c{conns}: no result within {seconds + 30} s")
        return {"requests": 0, "duration_us": 0, "rps": 0.0, "errors": -1, "non2xx": -1,
                "p50_us": float("nan"), "p99_us": float("nan"), "failed": True}
    m = re.search(r"^BENCH (\{.*\})$", proc.stdout, re.M)
    if proc.returncode != 0 or not m:
        raise RuntimeError(f"wrk {url}: exit {proc.returncode}: {proc.stderr.strip()}\n"
                           f"{proc.stdout}")
    res = json.loads(m.group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", proc.stdout)
    res["non2xx"] = int(non2xx.group(1)) if non2xx else 0
    res["rps"] = res["requests"] / (res["duration_us"] / 1e6) if res["duration_us"] else 0.0
    res["errors"] = (res["err_connect"] + res["err_read"] + res["err_write"] +
                     res["err_timeout"])
    return res


def thread_names(pid):
    """{name: count} of the threads of `pid`."""
    names = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
        except OSError:
            continue  # it exited
        names[name] = names.get(name, 0) + 1
    return names


def stat_fields(pid):
    """The fields of /proc/PID/stat after the command name (state first, ppid second, utime
    and stime at 11 and 12), or None once the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def cpu_seconds(pids, reaped=False):
    """(user, system) CPU seconds used so far by the processes `pids` (all their threads), with
    what their reaped children used when `reaped` (a forking function's)."""
    tick = os.sysconf("SC_CLK_TCK")
    user = system = 0
    for fields in filter(None, map(stat_fields, pids)):
        user, system = user + int(fields[11]), system + int(fields[12])
        if reaped:
            user, system = user + int(fields[13]), system + int(fields[14])
    return user / tick, system / tick


def box_cpu_seconds():
    """{"total", "idle", "softirq"} CPU seconds of the whole machine, all cores (/proc/stat)."""
    tick = os.sysconf("SC_CLK_TCK")
    v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is inside user already)
    return {"total": sum(v[:8]) / tick, "idle": (v[3] + v[4]) / tick, "softirq": v[6] / tick}


def child_pids(pid):
    """Direct children of `pid` (nginx's workers)."""
    return [int(e) for e in os.listdir("/proc")
            if e.isdigit() and (stat_fields(e) or [None, None])[1] == str(pid)]


def wrk_cpu_seconds():
    """CPU seconds used so far by this process's reaped children: wrk's runs, once each ends."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_wrk_counting_cpu(pids, url, conns, threads, seconds, method, body, fn_pids=()):
    """run_wrk, plus the CPU the proxy `pids` spent per request (user and system, µs): a
    figure that depends far less than req/s on what else the shared cores are doing. Also
    where the rest of the machine's CPU went per request: the function `fn_pids` (with their
    reaped children), wrk, softirq and idle time over all cores."""
    before = cpu_seconds(pids)
    fn_before, wrk_before, box_before = (sum(cpu_seconds(fn_pids, reaped=True)),
                                         wrk_cpu_seconds(), box_cpu_seconds())
    res = run_wrk(url, conns, threads, seconds, method, body)
    after = cpu_seconds(pids)
    fn_after, wrk_after, box_after = (sum(cpu_seconds(fn_pids, reaped=True)),
                                      wrk_cpu_seconds(), box_cpu_seconds())
    n = max(res["requests"], 1)
    res["cpu_user_us"] = (after[0] - before[0]) * 1e6 / n
    res["cpu_sys_us"] = (after[1] - before[1]) * 1e6 / n
    res["cpu_fn_us"] = (fn_after - fn_before) * 1e6 / n
    res["cpu_wrk_us"] = (wrk_after - wrk_before) * 1e6 / n
    for k in ("total", "idle", "softirq"):
        res[f"box_{k}_us"] = (box_after[k] - box_before[k]) * 1e6 / n
    return res


def via_vs_nginx(ng, via):
    """The gateway's req/s over nginx's (median_run results): the median of the rounds' ratios,
    each round's pair run back to back, so what else the shared cores did then weighs on both;
    with one round, that round's ratio."""
    pairs = [v / g for v, g in zip(via["rounds"], ng["rounds"]) if g]
    return statistics.median(pairs) if pairs else 0.0


def median_run(runs):
    """One figure from several wrk runs of the same thing: the run with the median req/s
    (its latencies with it), errors and non-2xx summed over all, CPU per request over all,
    and every run's req/s in "rounds"."""
    mid = dict(sorted(runs, key=lambda r: r["rps"])[len(runs) // 2])
    for k in ("errors", "err_connect", "err_read", "err_write", "err_timeout"):
        mid[k] = sum(r.get(k, 0) for r in runs)
    mid["non2xx"] = sum(r["non2xx"] for r in runs)
    n = sum(max(r["requests"], 1) for r in runs)
    for k in ("cpu_user_us", "cpu_sys_us", "cpu_fn_us", "cpu_wrk_us", "box_total_us",
              "box_idle_us", "box_softirq_us"):
        mid[k] = sum(r.get(k, 0) * max(r["requests"], 1) for r in runs) / n
    mid["rounds"] = [r["rps"] for r in runs]
    # p99 is the noisiest figure (one stalled thread on these shared cores moves it): the
    # median of the rounds' p99s, not the p99 of the round with the median req/s.
    mid["p99_rounds"] = [r["p99_us"] for r in runs]
    mid["p99_median_us"] = statistics.median(mid["p99_rounds"])
    return mid


# Threads gRPC's C core starts for itself in this daemon (its executor, timer managers and
# event engine), named by it: a floor no code of ours can lower through a public API.
GRPC_THREAD_NAMES = ("default-executo", "resolver-execut", "grpc_global_tim", "timer_manager",
                     "event_engine")


def own_threads(names):
    """Of a {name: count} of the daemon's threads, those not gRPC's."""
    return sum(k for n, k in names.items() if n not in GRPC_THREAD_NAMES)


class ThreadSampler:
    """Largest thread count of `pid` seen while a wrk run goes (sampled every 100 ms), and the
    threads' names at that count (/proc/PID/task/*/comm: the daemon names its own)."""

    def __init__(self, pid):
        import threading
        self.pid, self.max, self._stop = pid, 0, threading.Event()
        self.names = {}
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                count = mem_status(self.pid).get("Threads", 0)
                if count > self.max:
                    self.max, self.names = count, thread_names(self.pid)
            except (OSError, RuntimeError):
                return
            self._stop.wait(0.1)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(timeout=5)


def ensure_nginx():
    """nginx from Debian, for the reference reverse proxy only (never an appliance
    dependency): installed here when missing."""
    if shutil.which("nginx") is None:
        log("installing nginx-light (bench only)")
        subprocess.run(["apt-get", "install", "-y", "nginx-light"], check=True,
                       capture_output=True, timeout=600)
    return shutil.which("nginx")


class Nginx:
    """nginx as a plain keep-alive reverse proxy: /function/NAME -> http://IP:8080/ with
    pooled upstream connections, 2 workers, on 127.0.0.1:<free port>."""

    def __init__(self, workdir, harness, functions):
        self.prefix = Path(workdir) / "nginx"
        self.prefix.mkdir()
        self.port = harness.free_port()
        ups, locs = [], []
        for name, f in functions.items():
            ups.append(f"  upstream up_{name} {{ server {f['ip']}:8080; keepalive 256; }}")
            locs.append(f"    location = /function/{name} {{ proxy_pass http://up_{name}/; "
                        "proxy_http_version 1.1; proxy_set_header Connection \"\"; }")
        (self.prefix / "nginx.conf").write_text(NGINX_CONF.format(
            prefix=self.prefix, port=self.port, upstreams="\n".join(ups),
            locations="\n".join(locs)))
        self.proc = None
        self.harness = harness

    def start(self):
        self.proc = subprocess.Popen(
            [ensure_nginx(), "-p", str(self.prefix), "-c", str(self.prefix / "nginx.conf"),
             "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.harness.wait_until(
            lambda: http_status(f"http://127.0.0.1:{self.port}/nothing") is not None, 10,
            "nginx answering")

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def rss_settle(pid, limit_mb, seconds):
    """Polls VmRSS once a second for up to `seconds`; returns (first sample, last sample,
    seconds until it was <= limit_mb or None)."""
    first = mem_status(pid)
    t0 = time.monotonic()
    m = first
    for _ in range(seconds + 1):
        m = mem_status(pid)
        if m["VmRSS"] / 1024 <= limit_mb:
            return first, m, time.monotonic() - t0
        if time.monotonic() - t0 >= seconds:
            break
        time.sleep(1)  # sampling period, not synchronisation
    return first, m, None


def fmt_errors(r):
    """wrk's socket errors of a run, its timeouts (no answer within 5 s) named apart."""
    if r["errors"] <= 0:
        return str(r["errors"])
    return f"{r['errors']} ({r.get('err_timeout', 0)} timeouts)"


def socket_errors(r):
    """Connect, read and write errors: what a proxy dropping connections would cause."""
    return r.get("err_connect", 0) + r.get("err_read", 0) + r.get("err_write", 0)


def fmt_ms(us):
    return f"{us / 1000:.2f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", default=str(REPO / "build"))
    ap.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--conns", default=f"16,128,{BURST_CONNS}")
    ap.add_argument("--deploys", type=int, default=5, help="deploy->first-200 samples")
    ap.add_argument("--out", default=str(BENCH_DIR / "results-latest.md"))
    ap.add_argument("--keep-log", default=str(BENCH_DIR / "last-faasd.log"),
                    help="copy of the daemon log after the run ('' to skip)")
    ap.add_argument("--burst-duration", type=int, default=30,
                    help=f"seconds per wrk run at {BURST_CONNS} connections (held that long)")
    ap.add_argument("--rounds", type=int, default=5,
                    help="nginx and gateway runs alternated this many times below "
                         f"{BURST_CONNS} connections; the median round is reported")
    ap.add_argument("--deadline", type=int, default=1200, help="whole-run time bound, seconds")
    a = ap.parse_args()

    build = Path(a.build_dir).resolve()
    faasd_src = build / "src" / "faasd"
    fnserver_src = build / "tests" / "fixtures" / "fnserver"
    for p in (faasd_src, fnserver_src):
        if not os.access(p, os.X_OK):
            print(f"bench: {p}: not found or not executable (build first: "
                  f"ninja -C {build} src/faasd tests/fixtures/fnserver)", file=sys.stderr)
            return 2
    if os.geteuid() != 0:
        print("bench: needs root (containerd, CNI bridge, iptables)", file=sys.stderr)
        return 2
    if shutil.which("wrk") is None:
        print("bench: wrk not found (apt-get install wrk)", file=sys.stderr)
        return 2

    wd = Path(tempfile.mkdtemp(prefix="faasd-bench-", dir="/tmp"))
    # Private copies so a rebuild during the run does not swap binaries under us.
    (wd / "bin").mkdir()
    faasd_bin = wd / "bin" / "faasd"
    fnserver_bin = wd / "bin" / "fnserver"
    shutil.copy2(faasd_src, faasd_bin)
    shutil.copy2(fnserver_src, fnserver_bin)
    os.environ["FAASD_BIN"] = str(faasd_bin)
    os.environ["FNSERVER_BIN"] = str(fnserver_bin)
    sys.path.insert(0, str(REPO / "tests" / "integration"))
    import harness  # noqa: E402  (reads FAASD_BIN/FNSERVER_BIN at import)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # Whole-run bound: SIGALRM raises Interrupted wherever we are, then finally cleans up.
    signal.signal(signal.SIGALRM, on_signal)
    signal.alarm(a.deadline)

    ensure_nginx()
    reg = imgs = cni = ctd = d = ngx = None
    started = time.time()
    load_before = os.getloadavg()
    ok = False
    try:
        log(f"workdir {wd}")
        reg = harness.Registry(wd)
        reg.start()
        imgs = harness.FunctionImages(wd, reg)
        imgs.build()
        cni = harness.CniEnv(wd)
        cni.start()
        ctd = harness.Containerd(wd)
        ctd.start()
        d = harness.FaasdDaemon(wd, ctd, cni)
        d.start()
        pid = d.proc.pid
        rss_start = mem_status(pid)
        gw = f"http://127.0.0.1:{d.port}"
        log(f"faasd pid {pid} on {gw}, bridge {cni.bridge} {cni.subnet}")

        fns = {"hello": dict(image=imgs.refs["hello"], method="GET", body=None),
               "cat": dict(image=imgs.refs["cat"], method="POST", body="hello bench\n")}
        for name, f in fns.items():
            r = d.deploy(name, f["image"])
            if r.status not in (200, 202):
                raise RuntimeError(f"deploy {name}: {r!r}")
            d.wait_ready(name, timeout=60)
            f["ip"] = harness.wait_until(lambda: function_ip(d.state_dir, name), 10,
                                         f"CNI record for {name}")
            if ipaddress.ip_address(f["ip"]) not in cni.subnet:
                raise RuntimeError(f"{name}: IP {f['ip']} outside test subnet {cni.subnet}")
            body = f["body"].encode() if f["body"] else None
            for url in (f"http://{f['ip']}:8080/", f"{gw}/function/{name}"):
                harness.wait_until(lambda: http_status(url, f["method"], body) == 200,
                                        10, f"200 from {url}")
            f["pids"] = harness.wait_until(
                lambda: function_pids(ctd, harness.NAMESPACE, name), 10, f"{name}'s task PID")
            log(f"{name} at {f['ip']}, PID {f['pids']}")

        ngx = Nginx(wd, harness, fns)
        ngx.start()
        log(f"nginx on 127.0.0.1:{ngx.port}")
        ngx_pids = [ngx.proc.pid] + harness.wait_until(lambda: child_pids(ngx.proc.pid), 10,
                                                       "nginx's workers")

        # Idle RSS with both functions deployed: let the deploy settle, sample a few times.
        rss_idle = []
        for _ in range(5):
            time.sleep(0.2)  # measurement spacing, not synchronisation
            rss_idle.append(mem_status(pid))
        rss_idle_kib = max(rss_idle, key=lambda m: m["VmRSS"])

        # Load.
        conns = [int(c) for c in a.conns.split(",") if c]
        results = []  # (name, conns, direct, nginx, via, faasd threads under load)
        burst = None
        for name, f in fns.items():
            direct_url = f"http://{f['ip']}:8080/"
            nginx_url = f"http://127.0.0.1:{ngx.port}/function/{name}"
            via_url = f"{gw}/function/{name}"
            # short warm-up of every path (connection pools, page cache)
            for url in (direct_url, nginx_url, via_url):
                run_wrk(url, 8, 1, 1, f["method"], f["body"])
            for c in conns:
                log(f"{name} c={c} direct")
                secs = a.burst_duration if c >= BURST_CONNS else a.duration
                direct = run_wrk(direct_url, c, a.threads, secs, f["method"], f["body"])
                # nginx and the gateway in turns, the first of each round alternating, so a
                # change in what else the shared cores run weighs on both alike.
                ngx_runs, via_runs, most, most_names = [], [], 0, {}
                for r in range(a.rounds if c < BURST_CONNS else 1):
                    for side in (("nginx", "via") if r % 2 == 0 else ("via", "nginx")):
                        log(f"{name} c={c} {side} (round {r + 1})")
                        if side == "nginx":
                            ngx_runs.append(run_wrk_counting_cpu(
                                ngx_pids, nginx_url, c, a.threads, secs, f["method"],
                                f["body"], f["pids"]))
                            continue
                        with ThreadSampler(pid) as ts:
                            via_runs.append(run_wrk_counting_cpu(
                                [pid], via_url, c, a.threads, secs, f["method"], f["body"],
                                f["pids"]))
                        if ts.max > most:
                            most, most_names = ts.max, ts.names
                        if not d.running():
                            raise RuntimeError(f"faasd exited {d.proc.returncode} under load "
                                               f"({name} c={c}); log {d.log_path}")
                results.append((name, c, direct, median_run(ngx_runs), median_run(via_runs),
                                most, most_names))
                if c >= BURST_CONNS and burst is None:
                    log(f"RSS after the {c}-connection burst: polling up to "
                        f"{RSS_SETTLE_SECONDS} s")
                    burst = rss_settle(pid, TARGET_RSS_AFTER_BURST_MB, RSS_SETTLE_SECONDS)
        rss_after_load_kib = mem_status(pid)

        # Deploy -> first 200, cached image. A daemon that stopped answering after the load
        # is a finding for the report, not a reason to lose the numbers above.
        deploy_ms, deploy_api_ms, deploy_error = [], [], None
        try:
            for i in range(a.deploys):
                name = f"cold{i}-{os.getpid() % 10000}"
                url = f"{gw}/function/{name}"
                t0 = time.monotonic()
                r = d.deploy(name, fns["hello"]["image"])
                t_api = time.monotonic()
                if r.status not in (200, 202):
                    raise RuntimeError(f"deploy {name}: {r!r}")
                first = None
                for _ in range(15000):  # ~2 ms apart, bounded at 30 s
                    if http_status(url, timeout=1.0) == 200:
                        first = time.monotonic()
                        break
                    if time.monotonic() - t0 > 30:
                        break
                    time.sleep(0.002)
                if first is None:
                    raise RuntimeError(f"{name}: no 200 from {url} within 30 s of deploy")
                deploy_ms.append((first - t0) * 1000)
                deploy_api_ms.append((t_api - t0) * 1000)
                r = d.delete(name)
                if r.status not in (200, 202):
                    raise RuntimeError(f"delete {name}: {r!r}")
                harness.wait_until(
                    lambda: name not in [x.get("name") for x in d.list().json()], 30,
                    f"{name} gone from /system/functions")
                # Removal finishes in the background; wait for the container too, so the next
                # sample does not overlap a teardown.
                harness.wait_until(
                    lambda: not any(c.startswith(name + "-") for c in
                                    ctd.lines("containers", "ls", "-q",
                                              namespace=harness.NAMESPACE)), 30,
                    f"{name}'s container removed")
        except Exception as exc:  # noqa: BLE001
            deploy_error = repr(exc)
            alive = reg.proc is not None and reg.proc.poll() is None
            deploy_error += (f" (registry process {'running' if alive else 'gone'}; "
                             f"its log ends: {harness.tail(reg.log_path, 600)!r})")
            log(f"deploy -> first 200 failed: {deploy_error}")
        rss_end_kib = mem_status(pid)

        if not d.running():
            raise RuntimeError(f"faasd exited {d.proc.returncode}")
        log_text = harness.tail(d.log_path, 10**8)
        bad_lines = [l for l in log_text.splitlines()
                     if re.search(r"\b(error|warn|warning|fatal)\b", l, re.I)]

        report = render(a, results, deploy_ms, deploy_api_ms, rss_start, rss_idle_kib,
                        rss_after_load_kib, rss_end_kib, bad_lines, started,
                        faasd_src, load_before, burst, deploy_error)
        Path(a.out).write_text(report)
        print(report)
        log(f"wrote {a.out}")
        ok = True
    except Interrupted as exc:
        log(f"interrupted ({exc}); cleaning up")
    except Exception as exc:  # report, then clean up
        log(f"FAILED: {exc!r}")
        if d is not None:
            log("--- faasd log tail ---\n" + harness.tail(d.log_path, 4000))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if a.keep_log and d is not None:
            try:
                shutil.copy2(d.log_path, a.keep_log)
                log(f"daemon log kept at {a.keep_log}")
            except OSError as exc:
                log(f"could not keep daemon log: {exc}")
        for piece in (ngx, d, ctd, cni, imgs, reg):
            if piece is None:
                continue
            try:
                piece.close()
            except Exception as exc:
                log(f"close {type(piece).__name__}: {exc!r}")
        shutil.rmtree(wd, ignore_errors=True)
    return 0 if ok else 1


def render(a, results, deploy_ms, deploy_api_ms, rss_start, rss_idle, rss_load, rss_end,
           bad_lines, started, faasd_src, load_before, burst, deploy_error=None):
    rev = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%h %s"],
                         capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
                           capture_output=True, text=True).stdout.strip()
    out = []
    w = out.append
    w("# faasd-cpp benchmark results\n")
    w(f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    w(f"- commit: `{rev}`{' (src/ has uncommitted changes)' if dirty else ''}")
    w(f"- binary: `{faasd_src}`")
    w(f"- host: {os.cpu_count()} CPUs (`{os.uname().release}`), shared; wrk and the "
      f"functions run on the same cores as the daemon; load average (1 min) "
      f"{load_before[0]:.2f} before the run, {os.getloadavg()[0]:.2f} after")
    w(f"- wrk: {a.threads} threads, {a.duration} s per run ({a.burst_duration} s at "
      f"{BURST_CONNS} connections), keep-alive; `hello` GET, "
      f"`cat` POST with a 12-byte body; below {BURST_CONNS} connections nginx and the gateway "
      f"{a.rounds} rounds each, alternating")
    w(f"- run took {time.time() - started:.0f} s\n")

    w("## Throughput and latency (direct = http://IP:8080/, nginx = nginx 1.22 keep-alive "
      "reverse proxy, via = faasd gateway /function/NAME; req/s, p50 and p99 from each "
      "side's median round, via/nginx the median of the rounds' ratios)\n")
    w("| function | conns | direct req/s | nginx req/s | via req/s | via/nginx | via/direct "
      "| p50 ms direct/nginx/via | p99 ms direct/nginx/via | faasd threads under load "
      "| errors direct/nginx/via | non-2xx direct/nginx/via |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, c, dr, ng, via, threads, names in results:
        ratio = via["rps"] / dr["rps"] if dr["rps"] else 0
        vs_ngx = via_vs_nginx(ng, via)
        w(f"| {name} | {c} | {dr['rps']:.0f} | {ng['rps']:.0f} | {via['rps']:.0f} "
          f"| {vs_ngx:.2f} | {ratio:.2f} "
          f"| {fmt_ms(dr['p50_us'])} / {fmt_ms(ng['p50_us'])} / {fmt_ms(via['p50_us'])} "
          f"| {fmt_ms(dr['p99_us'])} / {fmt_ms(ng['p99_us'])} / {fmt_ms(via['p99_us'])} "
          f"| {threads} ({own_threads(names)} not gRPC's) "
          f"| {fmt_errors(dr)} / {fmt_errors(ng)} / {fmt_errors(via)} "
          f"| {dr['non2xx']}/{ng['non2xx']}/{via['non2xx']} |")
    w("")
    if any(len(r[4].get("rounds", [])) > 1 for r in results):
        w("Rounds (nginx and the gateway alternated, the first of each round in turns; "
          "via/nginx above is the median of this table's ratios):\n")
        w("| function | conns | nginx req/s by round | via req/s by round | via/nginx by round "
          "| p99 ms nginx by round | p99 ms via by round |")
        w("|---|---:|---|---|---|---|---|")
        for name, c, _, ng, via, _, _ in results:
            if len(via.get("rounds", [])) > 1:
                w(f"| {name} | {c} | {', '.join(f'{x:.0f}' for x in ng['rounds'])} "
                  f"| {', '.join(f'{x:.0f}' for x in via['rounds'])} "
                  f"| {', '.join(f'{v / g:.2f}' if g else '-' for v, g in zip(via['rounds'], ng['rounds']))} "
                  f"| {', '.join(fmt_ms(x) for x in ng['p99_rounds'])} "
                  f"| {', '.join(fmt_ms(x) for x in via['p99_rounds'])} |")
        w("")
    w("CPU per request of the proxy itself, µs (user + system; nginx: its master and workers; "
      "via: the faasd daemon, all threads), from /proc/PID/stat around each run:\n")
    w("| function | conns | nginx user + sys | via user + sys | via/nginx |")
    w("|---|---:|---:|---:|---:|")
    for name, c, dr, ng, via, threads, _ in results:
        ng_cpu = ng.get("cpu_user_us", 0) + ng.get("cpu_sys_us", 0)
        via_cpu = via.get("cpu_user_us", 0) + via.get("cpu_sys_us", 0)
        w(f"| {name} | {c} | {ng.get('cpu_user_us', 0):.1f} + {ng.get('cpu_sys_us', 0):.1f} "
          f"| {via.get('cpu_user_us', 0):.1f} + {via.get('cpu_sys_us', 0):.1f} "
          f"| {via_cpu / ng_cpu if ng_cpu else 0:.2f} |")
    w("")
    w("Where the machine's CPU went per request, µs over all cores, from /proc around each "
      "run: the proxy (as above), the function's task with its reaped children, wrk, idle, and "
      "the rest (other processes, interrupts); softirq is the part of all of these the kernel "
      "spent in softirqs (loopback and bridge packet delivery, charged to whichever process "
      "was running):\n")
    w("| function | conns | side | total | proxy | function | wrk | idle | rest | softirq |")
    w("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, c, dr, ng, via, threads, _ in results:
        for side, r in (("nginx", ng), ("via", via)):
            if "box_total_us" not in r:
                continue
            proxy = r.get("cpu_user_us", 0) + r.get("cpu_sys_us", 0)
            rest = (r["box_total_us"] - proxy - r["cpu_fn_us"] - r["cpu_wrk_us"]
                    - r["box_idle_us"])
            w(f"| {name} | {c} | {side} | {r['box_total_us']:.1f} | {proxy:.1f} "
              f"| {r['cpu_fn_us']:.1f} | {r['cpu_wrk_us']:.1f} | {r['box_idle_us']:.1f} "
              f"| {rest:.1f} | {r['box_softirq_us']:.1f} |")
    w("")
    most = max(results, key=lambda r: r[5], default=None)
    if most is not None and most[6]:
        w(f"Threads at the most seen under load ({most[5]}, `{most[0]}` c={most[1]}), by name: "
          + ", ".join(f"`{n}` ×{k}" for n, k in sorted(most[6].items(), key=lambda x: (-x[1], x[0])))
          + ".\n")
    if burst is not None:
        first, last, secs = burst
        w(f"RSS after the {BURST_CONNS}-connection runs: {first['VmRSS'] / 1024:.1f} MB at once, "
          f"{last['VmRSS'] / 1024:.1f} MB "
          + (f"after {secs:.0f} s (≤ {TARGET_RSS_AFTER_BURST_MB:.0f} MB)" if secs is not None
             else f"after {RSS_SETTLE_SECONDS} s (still over {TARGET_RSS_AFTER_BURST_MB:.0f} MB)")
          + f"; {last.get('Threads', 0)} threads.\n")

    med = statistics.median(deploy_ms) if deploy_ms else float("nan")
    w("## Summary against the issue's targets\n")
    w("| metric | measured | target | met |")
    w("|---|---:|---:|:---:|")

    def row(metric, value, target, met):
        w(f"| {metric} | {value} | {target} | {'yes' if met else 'no'} |")

    cores = os.cpu_count() or 1
    for name, target in (("cat", TARGET_RATIO_FORK), ("hello", TARGET_RATIO_FAST)):
        for _, c, dr, ng, via, threads, names in [r for r in results if r[0] == name]:
            ratio = via["rps"] / dr["rps"] if dr["rps"] else 0
            kind = "forking" if name == "cat" else "fast"
            row(f"via/direct req/s, {kind} (`{name}`), c={c}", f"{ratio:.2f}", f"≥ {target:.2f}",
                ratio >= target)
            if c < BURST_CONNS:
                vs = via_vs_nginx(ng, via)
                row(f"via/nginx req/s, `{name}`, c={c} (median of the rounds' ratios)", f"{vs:.2f}", "≥ 1.00", vs >= 1.0)
            if c == 128:
                vp, np_ = via["p99_median_us"], ng["p99_median_us"]
                row(f"p99 via vs nginx, `{name}`, c={c} (median of the rounds' p99s)",
                    f"{fmt_ms(vp)} vs {fmt_ms(np_)} ms", "≤ nginx", vp <= np_)
            if c == BURST_CONNS:
                row(f"socket errors + non-2xx via, `{name}`, c={c}, {a.burst_duration} s",
                    f"{socket_errors(via) + via['non2xx']} (wrk timeouts: via "
                    f"{via.get('err_timeout', 0)}, direct {dr.get('err_timeout', 0)})", "0",
                    socket_errors(via) + via["non2xx"] == 0)
            row(f"faasd threads under load, `{name}`, c={c}",
                f"{threads} ({own_threads(names)} not gRPC's)", f"≤ {cores + 8}",
                threads <= cores + 8)
    for name, c, dr, ng, via, _, _ in results:
        added = (via["p99_us"] - dr["p99_us"]) / 1000
        row(f"added p99, `{name}`, c={c}", f"{added:.2f} ms", f"≤ {TARGET_ADDED_P99_MS:.0f} ms",
            added <= TARGET_ADDED_P99_MS)
    if burst is not None:
        first, last, secs = burst
        row(f"RSS within {RSS_SETTLE_SECONDS} s after a {BURST_CONNS}-connection burst",
            f"{last['VmRSS'] / 1024:.1f} MB", f"≤ {TARGET_RSS_AFTER_BURST_MB:.0f} MB",
            secs is not None)
    row("deploy → first 200 (cached image), median", f"{med:.1f} ms",
        f"≤ {TARGET_FIRST_200_MS:.0f} ms", med <= TARGET_FIRST_200_MS)
    row("daemon idle RSS (2 functions deployed)", f"{rss_idle['VmRSS'] / 1024:.1f} MB",
        f"≤ {TARGET_RSS_MB:.0f} MB", rss_idle["VmRSS"] / 1024 <= TARGET_RSS_MB)
    w("")

    w("## Deploy → first 200 (cached image)\n")
    w("Time from sending POST /system/functions (new name, already-pulled `hello` image) to the "
      "first 200 from GET /function/NAME, polled every ~2 ms; the function is removed after "
      "each sample.\n")
    if deploy_error:
        w(f"- **failed**: {deploy_error}")
    w(f"- first 200, ms: median **{med:.1f}**, each: "
      + ", ".join(f"{x:.1f}" for x in deploy_ms))
    w("- of which the deploy API call returned after, ms: "
      + ", ".join(f"{x:.1f}" for x in deploy_api_ms))
    w("")
    w("## Daemon RSS (VmRSS)\n")
    w("RssAnon is the daemon's own heap and stacks; RssFile is the mapped binary and shared "
      "libraries (gRPC, protobuf, abseil, OpenSSL), partly shared with other processes.\n")
    w("| when | VmRSS MB | RssAnon MB | RssFile MB | threads |")
    w("|---|---:|---:|---:|---:|")
    for label, m in (("right after start, nothing deployed", rss_start),
                     ("idle, `hello` and `cat` deployed", rss_idle),
                     ("right after the load runs", rss_load),
                     (f"after {len(deploy_ms)} deploy/remove cycles", rss_end)):
        w(f"| {label} | {m['VmRSS'] / 1024:.1f} | {m.get('RssAnon', 0) / 1024:.1f} "
          f"| {m.get('RssFile', 0) / 1024:.1f} | {m.get('Threads', 0)} |")
    w("")
    w("## Daemon log\n")
    w(f"{len(bad_lines)} error/warning lines in the daemon log during the run.")
    if bad_lines:
        w("\n```")
        for l in bad_lines[:15]:
            w(l[:300])
        if len(bad_lines) > 15:
            w(f"... {len(bad_lines) - 15} more")
        w("```")
    w("")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
