"""Live tests: the built static fwatchdog with real handlers (cat, sh scripts, a python
upstream) on loopback. Every wait polls against a deadline; every process is stopped by PID."""
import base64
import hashlib
import json
import os
import signal
import socket
import threading
import time

import pytest

from conftest import HERE, alive, descendants, free_port, wait_for

PY = "/usr/bin/python3"


def release(fifo):
    """Unblocks a handler waiting in `read x < fifo` (polls until it has opened the fifo)."""
    def try_open():
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            return None
    fd = wait_for(try_open, 10, f"a reader on {fifo}")
    os.write(fd, b"go\n")
    os.close(fd)


def blocking_handler(script, tmp_path, name="block"):
    fifo = os.path.join(str(tmp_path), name + ".fifo")
    mark = os.path.join(str(tmp_path), name + ".started")
    os.mkfifo(fifo)
    path = script(f"cat >/dev/null; touch {mark}; read x < {fifo}; echo released")
    return path, fifo, mark


def in_thread(fn):
    result = {}

    def run():
        try:
            result["value"] = fn()
        except Exception as e:  # reported by the test through result
            result["error"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, result


# ---------------------------------------------------------------- classic mode

def test_classic_cat_echoes_body_with_duration_and_mirrored_type(start_watchdog):
    w = start_watchdog({"fprocess": "cat"})
    status, headers, body = w.request("POST", "/", b"hello world",
                                      {"Content-Type": "text/x-test"})
    assert status == 200
    assert body == b"hello world"
    assert headers["Content-Type"] == "text/x-test"
    assert float(headers["X-Duration-Seconds"]) >= 0
    status, headers, body = w.request("GET", "/")
    assert status == 200 and body == b""


def test_classic_cgi_env(start_watchdog):
    w = start_watchdog({"fprocess": "env", "MY_VAR": "from-process-env"})
    status, _, body = w.request("POST", "/some/path?a=1&b=two", b"12345",
                                {"X-Custom-Header": "abc", "Content-Type": "text/plain"})
    assert status == 200
    env = dict(line.split("=", 1) for line in body.decode().splitlines() if "=" in line)
    assert env["Http_Method"] == "POST"
    assert env["Http_Path"] == "/some/path"
    assert env["Http_Query"] == "a=1&b=two"
    assert env["Http_ContentLength"] == "5"
    assert env["Http_Content_Type"] == "text/plain"
    assert env["Http_X_Custom_Header"] == "abc"
    assert env["MY_VAR"] == "from-process-env"
    assert env["fprocess"] == "env"


def test_classic_nonzero_exit_is_500_with_combined_output(start_watchdog, script):
    fail = script("echo partial; echo oops >&2; exit 3")
    w = start_watchdog({"fprocess": fail})
    status, headers, body = w.request("POST", "/", b"x")
    assert status == 500
    assert body.startswith(b"exit status 3\n")
    assert b"partial" in body and b"oops" in body  # combine_output defaults to true
    assert "X-Duration-Seconds" in headers


def test_classic_combine_output_false_logs_prefixed_stderr(start_watchdog, script):
    h = script("echo out; echo secret-err >&2")
    w = start_watchdog({"fprocess": h, "combine_output": "false"})
    status, _, body = w.request("POST", "/", b"")
    assert status == 200 and body == b"out\n"
    wait_for(lambda: "stderr: secret-err" in w.log(), 5, "prefixed stderr line in the log")


def test_classic_prefix_logs_false_logs_bare_lines(start_watchdog, script):
    h = script("echo bare-line >&2")
    w = start_watchdog({"fprocess": h, "combine_output": "false", "prefix_logs": "false"})
    assert w.request("POST", "/", b"")[0] == 200
    wait_for(lambda: "\nbare-line\n" in w.log(), 5, "bare stderr line")
    assert "stderr: bare-line" not in w.log()


def test_classic_content_type_forced(start_watchdog):
    w = start_watchdog({"fprocess": "cat", "content_type": "application/json"})
    _, headers, _ = w.request("POST", "/", b"{}", {"Content-Type": "text/plain"})
    assert headers["Content-Type"] == "application/json"


def test_classic_marshal_request(start_watchdog):
    w = start_watchdog({"fprocess": "cat", "marshal_request": "true"})
    status, _, body = w.request("POST", "/", b"\x00binary\xff", {"X-Thing": "v"})
    assert status == 200
    doc = json.loads(body)
    assert base64.b64decode(doc["body"]["raw"]) == b"\x00binary\xff"
    assert doc["header"]["X-Thing"] == ["v"]


def test_classic_chunked_request_body(start_watchdog):
    w = start_watchdog({"fprocess": "cat"})
    c = w.conn()
    c.request("POST", "/", body=iter([b"one,", b"two,", b"three"]), encode_chunked=True)
    r = c.getresponse()
    assert r.status == 200 and r.read() == b"one,two,three"
    c.close()


def test_classic_keep_alive_serves_many_requests_on_one_connection(start_watchdog):
    w = start_watchdog({"fprocess": "cat"})
    c = w.conn()
    for i in range(20):
        c.request("POST", "/", body=f"req-{i}".encode())
        r = c.getresponse()
        assert r.status == 200 and r.read() == f"req-{i}".encode()
    c.close()


def test_classic_exec_timeout_kills_process_group_with_408(start_watchdog, script, tmp_path):
    d = str(tmp_path)
    h = script(f"sleep 300 & echo $! > {d}/bg.pid; echo $$ > {d}/fg.pid; wait")
    w = start_watchdog({"fprocess": h, "exec_timeout": "500ms"})
    t0 = time.monotonic()
    status, headers, body = w.request("POST", "/", b"")
    elapsed = time.monotonic() - t0
    assert status == 408
    assert body == b"Killed process.\n"
    assert "X-Duration-Seconds" in headers
    assert 0.4 < elapsed < 5
    for name in ("bg.pid", "fg.pid"):
        pid = int(open(os.path.join(d, name)).read())
        wait_for(lambda: not alive(pid), 5, f"{name} {pid} killed with its group")


def test_max_inflight_rejects_with_429(start_watchdog, script, tmp_path):
    h, fifo, mark = blocking_handler(script, tmp_path)
    w = start_watchdog({"fprocess": h, "max_inflight": "1"})
    t, result = in_thread(lambda: w.request("POST", "/", b"first"))
    wait_for(lambda: os.path.exists(mark), 10, "first request running")
    status, headers, body = w.request("POST", "/", b"second")
    assert status == 429
    assert "X-Duration-Seconds" in headers
    assert w.health() == 200  # health is not limited
    release(fifo)
    t.join(15)
    assert result.get("value", (None,))[0] == 200, result
    os.unlink(mark)
    t2, result2 = in_thread(lambda: w.request("POST", "/", b"third"))
    wait_for(lambda: os.path.exists(mark), 10, "third request running")
    release(fifo)
    t2.join(15)
    assert result2.get("value", (None,))[0] == 200, result2


def test_max_inflight_slot_is_free_once_the_answer_is_read(start_watchdog):
    # A client that sends its next request the moment it has read an answer must not get 429:
    # the slot is given back before the last bytes of the answer go out, not after the handler
    # has cleaned up (reaped its process, closed pipes).
    w = start_watchdog({"fprocess": "cat", "max_inflight": "1"})
    statuses = []
    for i in range(100):
        status, _, body = w.request("POST", "/", f"n{i}".encode())
        statuses.append(status if body == f"n{i}".encode() else (status, body))
    assert statuses == [200] * 100, [s for s in statuses if s != 200][:5]


def test_bad_request_is_400(start_watchdog):
    w = start_watchdog({"fprocess": "cat"})
    with socket.create_connection(("127.0.0.1", w.port), timeout=10) as s:
        s.sendall(b"NONSENSE\r\n\r\n")
        data = s.recv(4096)
    assert data.startswith(b"HTTP/1.1 400")


def exchange(port, raw):
    """Sends raw bytes and returns all the watchdog answers until it closes the connection
    (a socket timeout fails the test: the connection must be closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(raw)
        data = b""
        for _ in range(10000):  # ends when the watchdog closes
            chunk = s.recv(65536)
            if not chunk:
                return data
            data += chunk
    raise AssertionError(f"no close after {len(data)} bytes")


HOSTILE_HEADS = {
    "content-length and transfer-encoding":
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "conflicting content-lengths":
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "bare CR in a header": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n",
    "NUL in a header": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "transfer-encoding not ending in chunked":
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(HOSTILE_HEADS))
def test_hostile_head_is_400_and_closed(start_watchdog, script, tmp_path, name):
    mark = os.path.join(str(tmp_path), "ran")
    w = start_watchdog({"fprocess": script(f"touch {mark}; cat")})
    data = exchange(w.port, HOSTILE_HEADS[name])
    assert data.startswith(b"HTTP/1.1 400 "), data
    assert b"Connection: close" in data
    assert not os.path.exists(mark), "the handler ran for a refused request"
    assert w.request("GET", "/_/health")[0] == 200  # and the watchdog still serves


@pytest.mark.parametrize("mode", ["classic", "serializing", "http"])
def test_bad_chunk_size_is_400_and_closed(start_watchdog, mode):
    if mode == "http":
        w, _ = start_http(start_watchdog)
    else:
        w = start_watchdog({"fprocess": "cat", "mode": mode} if mode != "classic" else
                           {"fprocess": "cat"})
    data = exchange(w.port, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"3\r\nabc\r\nzz\r\nmore\r\n0\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 400 "), data
    assert b"abc" not in data.split(b"\r\n\r\n", 1)[1]


def test_head_over_64k_is_431_and_closed(start_watchdog):
    w = start_watchdog({"fprocess": "cat"})
    big = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(
        b"X-Filler-%d: %s\r\n" % (i, b"v" * 100) for i in range(700)) + b"\r\n"
    assert len(big) > 64 * 1024
    data = exchange(w.port, big)
    assert data.startswith(b"HTTP/1.1 431 "), data[:200]
    assert b"Connection: close" in data
    fits = (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: " + b"v" * 60000 +
            b"\r\n\r\n")
    assert exchange(w.port, fits).startswith(b"HTTP/1.1 200 ")


def test_spawn_failure_is_500_naming_the_command(start_watchdog):
    w = start_watchdog({"fprocess": "/nonexistent/handler"})
    status, _, body = w.request("POST", "/", b"")
    assert status == 500
    assert b"/nonexistent/handler" in body


# ---------------------------------------------------------------- health and lock

def test_health_follows_lock_file(start_watchdog):
    w = start_watchdog({"fprocess": "cat", "suppress_lock": "true"}, wait_ready=False)
    wait_for(lambda: w.health() is not None, 10, "listening")
    assert w.health() == 503
    assert not os.path.exists(w.lock)
    open(w.lock, "w").close()
    assert w.health() == 200
    os.unlink(w.lock)
    assert w.health() == 503


def test_lock_written_at_start(start_watchdog):
    w = start_watchdog({"fprocess": "cat"})
    assert os.path.exists(w.lock)


# ---------------------------------------------------------------- SIGTERM

def test_sigterm_drains_inflight_request_then_exits_0(start_watchdog, script, tmp_path):
    h, fifo, mark = blocking_handler(script, tmp_path)
    w = start_watchdog({"fprocess": h, "write_timeout": "20s"})
    t, result = in_thread(lambda: w.request("POST", "/", b"slow"))
    wait_for(lambda: os.path.exists(mark), 10, "request running")
    w.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: not os.path.exists(w.lock), 5, "lock removed")

    def refused():
        try:
            socket.create_connection(("127.0.0.1", w.port), timeout=1).close()
            return False
        except OSError:
            return True
    wait_for(refused, 5, "listener closed")
    assert w.proc.poll() is None  # still draining
    release(fifo)
    t.join(15)
    assert result.get("value", (None,))[0] == 200, result
    assert result["value"][2] == b"released\n"
    assert w.proc.wait(timeout=10) == 0


def test_sigterm_drain_is_bounded_by_write_timeout(start_watchdog, script, tmp_path):
    h, fifo, mark = blocking_handler(script, tmp_path)
    w = start_watchdog({"fprocess": h, "write_timeout": "1s"})
    t, _ = in_thread(lambda: w.request("POST", "/", b"never", timeout=20))
    wait_for(lambda: os.path.exists(mark), 10, "request running")
    w.remember_children()
    t0 = time.monotonic()
    w.proc.send_signal(signal.SIGTERM)
    assert w.proc.wait(timeout=10) == 0
    assert time.monotonic() - t0 < 5


# ---------------------------------------------------------------- of-watchdog fork modes

def send_streaming(port, total, block):
    """POSTs `total` bytes (repeating block) while reading the chunked response; returns
    (status, bytes received, sha256 of received, sha256 of sent)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    sent_hash = hashlib.sha256()

    def sender():
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % total)
        left = total
        while left:
            piece = block[:min(left, len(block))]
            s.sendall(piece)
            sent_hash.update(piece)
            left -= len(piece)
    t = threading.Thread(target=sender, daemon=True)
    t.start()
    f = s.makefile("rb")
    status = int(f.readline().split()[1])
    headers = {}
    while True:
        line = f.readline()
        if line in (b"\r\n", b""):
            break
        k, v = line.decode().split(":", 1)
        headers[k.strip().lower()] = v.strip()
    got = hashlib.sha256()
    n = 0
    assert headers.get("transfer-encoding") == "chunked", headers
    for _ in range(10_000_000):
        size = int(f.readline().split(b";")[0], 16)
        if size == 0:
            f.readline()
            break
        data = f.read(size)
        got.update(data)
        n += len(data)
        f.readline()
    t.join(60)
    s.close()
    return status, n, got.hexdigest(), sent_hash.hexdigest()


def test_streaming_50mb_through_cat_with_bounded_rss(start_watchdog):
    w = start_watchdog({"fprocess": "cat", "mode": "streaming", "exec_timeout": "60s"})
    total = 50 * 1024 * 1024
    status, n, got, sent = send_streaming(w.port, total, os.urandom(1024 * 1024))
    assert status == 200
    assert n == total
    assert got == sent
    hwm = w.vm_hwm_kb()
    assert hwm < 30 * 1024, f"fwatchdog VmHWM {hwm} kB for a 50 MB body"


def test_streaming_output_arrives_before_process_ends(start_watchdog, script, tmp_path):
    h, fifo, _ = blocking_handler(script, tmp_path)
    h2 = script(f"echo first; read x < {fifo}; echo second")
    w = start_watchdog({"fprocess": h2, "mode": "streaming"})
    c = w.conn()
    c.request("GET", "/")
    r = c.getresponse()  # head arrives with the first output, while the process still runs
    assert r.status == 200
    assert r.fp.readline().strip() == b"6"  # first chunk size
    assert r.fp.readline() == b"first\n"
    release(fifo)
    c.close()


def test_streaming_exec_timeout_is_504_and_nonzero_is_500(start_watchdog, script):
    hang = script("exec sleep 300")
    w = start_watchdog({"fprocess": hang, "mode": "streaming", "exec_timeout": "300ms"})
    status, headers, _ = w.request("POST", "/", b"")
    assert status == 504 and "X-Duration-Seconds" in headers
    fail = script("exit 2")
    w2 = start_watchdog({"fprocess": fail, "mode": "streaming"})
    status, _, body = w2.request("POST", "/", b"")
    assert status == 500 and b"exit status 2" in body


def test_serializing_mode(start_watchdog):
    w = start_watchdog({"fprocess": "cat", "mode": "serializing"})
    status, headers, body = w.request("POST", "/", b"x" * 200000)
    assert status == 200 and body == b"x" * 200000
    assert headers["Content-Length"] == "200000"


# ---------------------------------------------------------------- http mode

def start_http(start_watchdog, extra=None):
    uport = free_port()
    env = {"mode": "http", "fprocess": f"{PY} {HERE}/upstream.py {uport}",
           "upstream_url": f"http://127.0.0.1:{uport}"}
    env.update(extra or {})
    return start_watchdog(env), uport


def test_http_proxies_method_path_query_headers_body(start_watchdog):
    w, _ = start_http(start_watchdog)
    status, headers, body = w.request("PUT", "/echo?q=1", b"payload", {"X-Trace": "t1"})
    assert status == 200
    assert body == b"payload"
    assert headers["X-Got-X-Trace"] == "t1"
    assert headers["X-Got-Path"] == "/echo?q=1"
    assert "X-Duration-Seconds" in headers
    assert w.request("GET", "/hello")[2] == b"hello"


def test_http_exec_timeout_is_504_and_upstream_keeps_serving(start_watchdog):
    w, _ = start_http(start_watchdog, {"exec_timeout": "500ms"})
    t0 = time.monotonic()
    status, _, _ = w.request("GET", "/hang")
    assert status == 504
    assert time.monotonic() - t0 < 5
    assert w.request("GET", "/hello")[0] == 200


def test_http_crash_restarts_upstream_and_never_hangs(start_watchdog):
    w, _ = start_http(start_watchdog)
    first_pid = int(w.request("GET", "/pid")[2])
    status, _, _ = w.request("GET", "/crash", timeout=10)
    assert status == 502
    seen = set()
    deadline = time.monotonic() + 20
    new_pid = None
    while time.monotonic() < deadline:
        t0 = time.monotonic()
        status, _, body = w.request("GET", "/pid", timeout=5)
        assert time.monotonic() - t0 < 2, "request hung while the upstream restarted"
        seen.add(status)
        if status == 200:
            new_pid = int(body)
            break
        assert status in (502, 503)
        time.sleep(0.02)  # poll interval
    assert new_pid is not None and new_pid != first_pid, seen
    assert not alive(first_pid)
    wait_for(lambda: "restarting in" in w.log(), 5, "restart logged")


def test_http_large_body_streamed_with_bounded_rss(start_watchdog):
    w, _ = start_http(start_watchdog, {"exec_timeout": "60s"})
    total = 50 * 1024 * 1024
    block = b"z" * (1024 * 1024)
    c = w.conn(60)
    c.request("POST", "/count", body=iter([block] * 50), encode_chunked=True)
    r = c.getresponse()
    assert r.status == 200 and int(r.read()) == total
    c.close()
    hwm = w.vm_hwm_kb()
    assert hwm < 30 * 1024, f"fwatchdog VmHWM {hwm} kB for a 50 MB body"


def test_http_sigterm_stops_upstream(start_watchdog):
    w, _ = start_http(start_watchdog)
    upstream_pid = int(w.request("GET", "/pid")[2])
    w.proc.send_signal(signal.SIGTERM)
    assert w.proc.wait(timeout=15) == 0
    wait_for(lambda: not alive(upstream_pid), 5, "upstream stopped")


# ---------------------------------------------------------------- static mode

def test_static_mode(start_watchdog, tmp_path):
    root = tmp_path / "public"
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_text("<h1>hi</h1>")
    (root / "sub" / "data.json").write_text('{"a":1}')
    (tmp_path / "secret.txt").write_text("nope")
    w = start_watchdog({"mode": "static", "static_path": str(root)})
    status, headers, body = w.request("GET", "/")
    assert status == 200 and body == b"<h1>hi</h1>"
    assert headers["Content-Type"].startswith("text/html")
    status, headers, body = w.request("GET", "/sub/data.json")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert w.request("GET", "/missing")[0] == 404
    assert w.request("POST", "/", b"x")[0] == 405
    with socket.create_connection(("127.0.0.1", w.port), timeout=10) as s:
        s.sendall(b"GET /../secret.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        data = s.recv(4096)
    assert data.split(b"\r\n")[0] in (b"HTTP/1.1 400 Bad Request", b"HTTP/1.1 404 Not Found")
    assert b"nope" not in data
