"""Function logs on the real containerd: each replica's stdout/stderr captured by faasd-logger
(run by the shim for a binary:// stdio URI) into the function's rotated log under the state dir,
and GET /system/logs as faas-provider serves it (NDJSON, tail/since/instance, follow)."""

import datetime
import json
import random
import re
import socket
import stat
import time
import urllib.parse
from pathlib import Path

import pytest

import harness
from test_restart import task_of


def say(api, name, text, stream="stdout", ns=None, **extra):
    """Makes the function print `text` (fnserver's /_/log)."""
    query = urllib.parse.urlencode({"text": text, "stream": stream, **extra})
    r = api.invoke(f"{name}.{ns}" if ns else name, f"/_/log?{query}", method="GET")
    assert r.status == 200, r
    return r


def wait_for_text(api, name, text, timeout=10, **params):
    """Polls /system/logs until a line with exactly `text` is there; returns all lines."""
    def seen():
        r, lines = api.logs(name, **params)
        assert r.status == 200, r
        return lines if any(l["text"] == text for l in lines) else None
    return harness.wait_until(seen, timeout, f"log line {text!r} of {name}")


def parse_ts(ts):
    """RFC3339Nano (Go's time.Time JSON) -> aware datetime, to the microsecond."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z", ts)
    assert m, f"not RFC3339Nano in UTC: {ts!r}"
    frac = (m.group(2) or "").ljust(6, "0")[:6]
    assert not (m.group(2) or "").endswith("0"), f"trailing zeros in {ts!r}"
    return datetime.datetime.strptime(f"{m.group(1)}.{frac}+0000", "%Y-%m-%dT%H:%M:%S.%f%z")


def rfc3339(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def unique(prefix):
    return f"{prefix}-{random.getrandbits(32):08x}"


# -- capture -----------------------------------------------------------------------------------
def test_printed_lines_appear_with_name_namespace_instance_timestamp(api, functions, containerd):
    name = functions.deploy("logme")
    cid, _ = task_of(containerd, name)
    before = datetime.datetime.now(datetime.timezone.utc)
    out, err = unique("out"), unique("err")
    say(api, name, out)
    say(api, name, err, stream="stderr")
    lines = wait_for_text(api, name, err)
    after = datetime.datetime.now(datetime.timezone.utc)
    by_text = {l["text"]: l for l in lines}
    assert out in by_text, lines
    line = by_text[out]
    assert list(line) == ["name", "namespace", "instance", "timestamp", "text"], line
    assert line["name"] == name and line["namespace"] == "openfaas-fn", line
    assert line["instance"] == cid, line
    ts = parse_ts(line["timestamp"])
    assert before - datetime.timedelta(seconds=1) <= ts <= after, (before, ts, after)
    # What the function printed at start (stderr) is there too, first.
    assert lines[0]["text"] == "fnserver: mode=echo listening on :8080", lines[0]
    r, _ = api.logs(name)
    assert r.headers.get("Content-Type") == "application/x-ndjson", dict(r.headers)
    assert r.headers.get("Transfer-Encoding") == "chunked", dict(r.headers)


def logger_query(api, ns, name):
    """The query (argv pairs) of the faasd-logger writing ns/name's log under api's state dir."""
    log_dir = str(api.state_dir / "logs" / ns / name).encode()
    for pid in harness.pids_where(lambda cmd: cmd[0].endswith(b"faasd-logger") and log_dir in cmd):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[1:-1]
        except OSError:
            continue
        return dict(zip(argv[::2], argv[1::2]))
    raise AssertionError(f"no faasd-logger for {log_dir}")


def test_the_logger_knows_the_function_and_copies_to_journald_by_default(api, functions):
    name = functions.deploy("tagged")
    query = logger_query(api, "openfaas-fn", name)
    assert (query["ns"], query["fn"], query["journal"]) == ("openfaas-fn", name, "auto"), query


def test_log_files_are_private_and_per_function(api, functions):
    name = functions.deploy("private")
    say(api, name, "x")
    wait_for_text(api, name, "x")
    d = api.state_dir / "logs" / "openfaas-fn" / name
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    for p in d.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    assert (d / "log.ndjson").exists()


def test_logs_survive_daemon_restart_task_restart_and_update(api, functions, containerd, fn_image):
    name = functions.deploy("durable")
    cid, pid = task_of(containerd, name)
    say(api, name, "before restart")
    wait_for_text(api, name, "before restart")

    api.restart()
    say(api, name, "after restart")  # the same logger: the shim owns it, not the daemon
    wait_for_text(api, name, "after restart")

    containerd.ctr("tasks", "kill", "-s", "SIGKILL", cid, namespace=harness.NAMESPACE)
    harness.wait_until(lambda: containerd.task_pid(cid) not in (None, pid), 30,
                       f"task {cid} to be restarted")
    harness.wait_until(lambda: api.invoke(name, "/_/health", method="GET").status == 200, 30,
                       f"{name} to answer again")
    say(api, name, "after task restart")
    wait_for_text(api, name, "after task restart")

    r = api.deploy(name, fn_image.refs["echo"], method="PUT", envVars={"v": "2"})
    assert r.status in (200, 202), r
    api.wait_ready(name)
    new_cid = harness.wait_until(
        lambda: next((c for c in containerd.lines("containers", "ls", "-q",
                                                  namespace=harness.NAMESPACE)
                      if c.startswith(name + "-") and c != cid), None), 30, "new container")
    harness.wait_until(lambda: api.invoke(name, method="GET",
                                          headers={"X-Echo-Env": "v"}).headers.get("X-Fn-Env-v")
                       == "2", 30, "routing to the update")
    say(api, name, "after update")
    lines = wait_for_text(api, name, "after update")
    texts = [l["text"] for l in lines]
    for t in ["before restart", "after restart", "after task restart", "after update"]:
        assert t in texts, (t, texts)
    instance = {l["text"]: l["instance"] for l in lines}
    assert instance["before restart"] == instance["after task restart"] == cid
    assert instance["after update"] == new_cid
    # Oldest first: the order they were written in.
    order = [texts.index(t) for t in ["before restart", "after restart", "after task restart",
                                      "after update"]]
    assert order == sorted(order), texts


# -- query -------------------------------------------------------------------------------------
def test_tail_since_and_instance_filters(api, functions, containerd):
    name = functions.deploy("filters")
    cid, _ = task_of(containerd, name)
    tag = unique("n")
    for i in range(5):
        # One at a time: lines the logger reads together share a timestamp.
        say(api, name, f"{tag} {i}")
        lines = wait_for_text(api, name, f"{tag} {i}")
    ours = [l for l in lines if l["text"].startswith(tag)]
    assert [l["text"] for l in ours] == [f"{tag} {i}" for i in range(5)]

    _, tail2 = api.logs(name, tail=2)
    assert [l["text"] for l in tail2] == [f"{tag} 3", f"{tag} 4"]
    for everything in (0, -1):
        _, all_lines = api.logs(name, tail=everything)
        assert len(all_lines) == len(lines)

    # since: RFC3339 with the third line's timestamp; lines at or after it.
    since = ours[2]["timestamp"]
    _, later = api.logs(name, since=since)
    assert [l["text"] for l in later] == [f"{tag} {i}" for i in range(2, 5)], later
    _, later = api.logs(name, since=since, tail=1)
    assert [l["text"] for l in later] == [f"{tag} 4"]
    # As faas-cli sends it: seconds, with a zone offset.
    future = (datetime.datetime.now(datetime.timezone(datetime.timedelta(hours=2)))
              + datetime.timedelta(hours=1)).isoformat(timespec="seconds")
    _, none = api.logs(name, since=future)
    assert none == []

    _, mine = api.logs(name, instance=cid)
    assert len(mine) == len(lines)
    _, other = api.logs(name, instance=cid + "x")
    assert other == []


def test_unknown_function_is_404_and_bad_queries_422(api, functions):
    r, _ = api.logs("nosuch-%06x" % random.getrandbits(24))
    assert r.status == 404, r
    name = functions.deploy("badq")
    for params in [{"tail": "abc"}, {"tail": "1.5"}, {"since": "10m"},
                   {"since": "2024-02-30T00:00:00Z"}, {"since": "2024-01-01T00:00:00"}]:
        r, _ = api.logs(name, **params)
        assert r.status == 422, (params, r)
        assert r.text.startswith("could not parse the log request"), r
    r, _ = api.logs(name, follow="maybe")  # ParseBool's error reads as false: no follow
    assert r.status == 200, r


# -- follow ------------------------------------------------------------------------------------
class Follow:
    """GET /system/logs?follow=true on a raw socket: chunked NDJSON lines as they arrive."""

    def __init__(self, api, name, **params):
        query = urllib.parse.urlencode({"name": name, "follow": "true", **params})
        self.sock = socket.create_connection(("127.0.0.1", api.port), timeout=10)
        self.sock.sendall((f"GET /system/logs?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           f"Authorization: {api.auth_header()}\r\n\r\n").encode())
        self.raw = b""
        self.body = b""
        while b"\r\n\r\n" not in self.raw:
            self._recv()
        head, self.raw = self.raw.split(b"\r\n\r\n", 1)
        self.status = int(head.split()[1])
        assert b"transfer-encoding: chunked" in head.lower(), head

    def _recv(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("log stream closed")
        self.raw += data

    def _dechunk(self):
        while True:
            if b"\r\n" not in self.raw:
                return
            size_line, rest = self.raw.split(b"\r\n", 1)
            size = int(size_line, 16)
            if len(rest) < size + 2:
                return
            self.body += rest[:size]
            self.raw = rest[size + 2:]
            if size == 0:
                raise EOFError("log stream ended")

    def next_line(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.body:
            self._dechunk()
            if b"\n" in self.body:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no log line")
            self.sock.settimeout(left)
            self._recv()
        line, self.body = self.body.split(b"\n", 1)
        return json.loads(line)

    def close(self):
        self.sock.close()


def close_wait_sockets(port):
    """Sockets on the daemon's port the peer closed but the daemon has not (a stuck handler)."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            f = row.split()
            if int(f[1].rsplit(":", 1)[1], 16) == port and f[3] == "08":
                n += 1
    return n


def test_follow_delivers_new_lines_within_a_second_and_ends_with_the_client(api, functions):
    name = functions.deploy("follow")
    say(api, name, "history")
    wait_for_text(api, name, "history")
    threads_before = api.threads()
    stream = Follow(api, name, tail=1)
    try:
        assert stream.status == 200
        assert stream.next_line(5)["text"] == "history"
        latencies = []
        for i in range(5):
            t0 = time.monotonic()
            say(api, name, f"live {i}")
            line = stream.next_line(5)
            latencies.append(time.monotonic() - t0)
            assert line["text"] == f"live {i}" and line["name"] == name, line
        assert max(latencies) < 1.0, latencies
        print(f"follow latency (invoke -> line), s: {[round(x, 4) for x in latencies]}")
    finally:
        stream.close()
    # The handler notices the client is gone although nothing more is written (at its next
    # 250 ms tick): its socket is closed (no CLOSE_WAIT left), it says so, and no thread stays
    # behind.
    harness.wait_until(lambda: close_wait_sockets(api.port) == 0, 5, "the follow to end")
    harness.wait_until(lambda: "follower went away" in harness.tail(api.log_path, 4000), 5,
                       "the follow's handler to notice its client left")
    harness.wait_until(lambda: api.threads() <= threads_before, 5,
                       f"thread count back to {threads_before}")


def test_many_followers_all_end_when_their_clients_go(api, functions):
    name = functions.deploy("crowd")
    streams = [Follow(api, name, tail=1) for _ in range(12)]
    say(api, name, "to all")
    for s in streams:
        assert s.next_line(5)["text"] in ("fnserver: mode=echo listening on :8080", "to all")
    for s in streams:
        s.close()
    harness.wait_until(lambda: close_wait_sockets(api.port) == 0, 10, "every follow to end")
    # The gateway still serves.
    r, lines = api.logs(name)
    assert r.status == 200 and lines[-1]["text"] == "to all", lines[-1:]


# -- bounds ------------------------------------------------------------------------------------
@pytest.fixture
def small_logs(request, workdir, fn_image):
    """A second daemon whose logs (the functions' and its own --log-file) rotate at 16 KiB x 2.
    It has a containerd of its own: two daemons on one containerd would each manage the other's
    function namespaces."""
    ns = "openfaas-logs"
    log_file = Path(workdir) / "smalllogs" / "daemon" / "faasd.log"
    daemon, _ = harness.private_daemon(
        request, workdir, "smalllogs", ns,
        extra_args=["--log-max-bytes=16384", "--log-files=2", f"--log-file={log_file}",
                    "--function-logs-journal=off"])
    daemon.start()
    daemon.own_log = log_file
    return daemon


def log_sizes(directory, base):
    return {p.name: p.stat().st_size for p in directory.iterdir()
            if p.name == base or re.fullmatch(re.escape(base) + r"\.\d+", p.name)}


def size_or_zero(path):
    """The file's size; 0 for the moment it is missing while it rotates (renamed, then made
    anew by the next line)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def test_function_and_daemon_logs_stay_within_their_bounds(small_logs, fn_image):
    api, ns = small_logs, "openfaas-logs"
    name = "bulk-%06x" % random.getrandbits(24)
    r = api.deploy(name, fn_image.refs["echo"], namespace=ns)
    assert r.status in (200, 202), r
    try:
        harness.wait_until(
            lambda: api.invoke(f"{name}.{ns}", "/_/health", method="GET").status == 200, 60,
            f"{name} to answer")
        directory = api.state_dir / "logs" / ns / name
        assert logger_query(api, ns, name)["journal"] == "off"
        # ~170 bytes a record x 3000 = ~510 KB through a 32 KiB log, in pieces.
        for part in range(3):
            say(api, name, f"bulk{part}", ns=ns, n=1000, pad=50)
            wait_for_text(api, name, f"bulk{part} 999" + "." * 50, namespace=ns)
            sizes = log_sizes(directory, "log.ndjson")
            assert len(sizes) <= 2 and all(s <= 16384 for s in sizes.values()), sizes
        _, lines = api.logs(name, namespace=ns)
        assert 16384 // 200 < len(lines) < 32768 // 150, len(lines)
        assert lines[-1]["text"] == "bulk2 999" + "." * 50
        numbers = [int(l["text"].split()[1].rstrip(".")) for l in lines
                   if l["text"].startswith("bulk2 ")]
        assert numbers == list(range(numbers[0], 1000)), "the newest lines, none lost"

        # The daemon's own log: a debug line per follower that leaves, past 32 KiB.
        rotated = api.own_log.parent / "faasd.log.1"
        for _ in range(3000):
            Follow(api, name, tail=1, namespace=ns).close()
            if rotated.exists() and size_or_zero(api.own_log) > 4096:
                break
        harness.wait_until(lambda: close_wait_sockets(api.port) == 0, 10, "follows to end")
        own = log_sizes(api.own_log.parent, "faasd.log")
        assert set(own) == {"faasd.log", "faasd.log.1"}, own
        assert all(s <= 16384 for s in own.values()), own
        assert "follower went away" in api.own_log.read_text()
        # Nothing went to stderr but what the harness wrote there itself.
        stderr = api.log_path.read_text().splitlines()
        assert all(l.startswith("==== harness:") for l in stderr), stderr[:5]
    finally:
        api.request("DELETE", "/system/functions", {"functionName": name, "namespace": ns})
        harness.wait_until(lambda: not api.containerd.lines("containers", "ls", "-q",
                                                            namespace=ns), 30,
                           f"the containers of {ns} to go")
