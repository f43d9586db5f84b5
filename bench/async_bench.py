#!/usr/bin/env python3
"""faasd-cpp async benchmark: in one run, against one function (fnserver `hello`), the sync
invoke rate (POST /function/NAME, 200/s), the async accept rate (POST /async-function/NAME,
202/s: each answered once JetStream acked the publish) and the async end-to-end completion
rate (accepted calls ÷ time from the first POST to the last callback).

Brings up the private integration stack (tests/integration/harness.py) plus a nats-server with
JetStream on a file store, all on loopback and the harness's private bridge. The same Python
client (keep-alive connections, one per thread) drives sync and async, so compare the ratios,
not the absolute figures: on a 2-core box the client, the daemon, nats-server and the function
share the cores. Stdlib only; every loop is bounded; everything is closed in a finally block.

    sudo bench/async_bench.py [--build build] [--threads 8] [--seconds 8] [--concurrency 4]
"""

import argparse
import http.client
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def drive(port, path, threads, seconds, want, headers=None):
    """POSTs to path from `threads` keep-alive connections for `seconds`; (count of `want`
    answers, other answers, elapsed, call ids)."""
    ok, bad, ids, lock = [0], [0], [], threading.Lock()
    stop_at = time.monotonic() + seconds

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        n, b, mine = 0, 0, []
        while time.monotonic() < stop_at:
            conn.request("POST", path, body=b"bench", headers=headers or {})
            r = conn.getresponse()
            r.read()
            if r.status == want:
                n += 1
                if r.getheader("X-Call-Id"):
                    mine.append(r.getheader("X-Call-Id"))
            else:
                b += 1
        conn.close()
        with lock:
            ok[0] += n
            bad[0] += b
            ids.extend(mine)

    start = time.monotonic()
    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(seconds + 60)
    return ok[0], bad[0], time.monotonic() - start, ids


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=str(REPO / "build"))
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--concurrency", type=int, default=4, help="--queue-concurrency")
    args = ap.parse_args()
    os.environ.setdefault("FAASD_BIN", f"{args.build}/src/faasd")
    os.environ.setdefault("FNSERVER_BIN", f"{args.build}/tests/fixtures/fnserver")
    os.environ.setdefault("FAASD_LOGGER_BIN", f"{args.build}/src/logs/faasd-logger")
    sys.path.insert(0, str(REPO / "tests" / "integration"))
    import harness

    workdir = tempfile.mkdtemp(prefix="fab-", dir="/tmp")
    pieces = []
    try:
        reg = harness.Registry(workdir); pieces.append(reg); reg.start()
        images = harness.FunctionImages(workdir, reg); pieces.append(images); images.build()
        cni = harness.CniEnv(workdir); pieces.append(cni); cni.start()
        ctd = harness.Containerd(workdir); pieces.append(ctd); ctd.start()
        nats = harness.NatsServer(workdir); pieces.append(nats); nats.start()
        receiver = harness.CallbackReceiver(); pieces.append(receiver)
        daemon = harness.FaasdDaemon(workdir, ctd, cni, extra_args=[
            f"--nats-url={nats.url}", f"--queue-concurrency={args.concurrency}",
            "--log-level=info"])
        pieces.append(daemon)
        daemon.start()
        assert daemon.deploy("hello", images.refs["hello"]).status in (200, 202)
        daemon.wait_ready("hello")

        drive(daemon.port, "/function/hello", args.threads, 1, 200)  # warm-up
        s_ok, s_bad, s_t, _ = drive(daemon.port, "/function/hello", args.threads, args.seconds, 200)
        cb = {"X-Callback-Url": receiver.url("/done")}
        first = time.monotonic()
        a_ok, a_bad, a_t, ids = drive(daemon.port, "/async-function/hello", args.threads,
                                      args.seconds, 202, cb)
        want = set(ids)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            with receiver.lock:
                done = {c[2].get("x-call-id") for c in receiver.calls}
            if want <= done:
                break
            time.sleep(0.05)  # polling the receiver, bounded by the deadline
        with receiver.lock:
            last = len(receiver.calls)
        e2e_t = time.monotonic() - first
        completed = len(want & done)
        rows = [
            ("sync invoke (200/s)", s_ok / s_t, f"{s_ok} in {s_t:.1f} s, {s_bad} other"),
            ("async accept (202/s)", a_ok / a_t, f"{a_ok} in {a_t:.1f} s, {a_bad} other"),
            ("async end to end (callbacks/s)", completed / e2e_t,
             f"{completed} of {len(want)} called back in {e2e_t:.1f} s ({last} callbacks)"),
        ]
        print(f"\n## async bench: {args.threads} client threads, --queue-concurrency="
              f"{args.concurrency}, function `hello`, {os.cpu_count()} cores\n")
        print("| what | rate | ratio to sync | detail |\n|---|---|---|---|")
        for name, rate, detail in rows:
            print(f"| {name} | {rate:.0f}/s | {rate / (s_ok / s_t):.2f} | {detail} |")
        return 0
    finally:
        for p in reversed(pieces):
            try:
                p.close()
            except Exception as exc:  # keep closing the rest
                print(f"close {type(p).__name__}: {exc}", file=sys.stderr)
        harness.unmount_under(workdir)
        import shutil
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
