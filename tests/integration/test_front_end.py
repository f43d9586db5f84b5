"""The gateway's event-driven front end against hostile HTTP and many idle connections, with a
real function behind it: malformed framing and oversized heads are refused and the connection
closed (the function never sees them), a slow head is dropped, 1,000 idle connections keep
nobody waiting, and a big body streams through without the daemon holding it."""

import os
import socket
import time

import pytest

import harness

HOSTILE = {
    "content-length with transfer-encoding": (
        b"POST /function/{name} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "conflicting content-lengths": (
        b"POST /function/{name} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Content-Length: 7\r\n\r\nhello!!", 400),
    "bare CR in a header": (
        b"GET /function/{name} HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", 400),
    "NUL in a header": (
        b"GET /function/{name} HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400),
    "invalid chunk size": (
        b"POST /function/{name} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\nhello\r\n0\r\n\r\n", 400),
    "head over 64 KiB": (
        b"GET /function/{name} HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (70 << 10) +
        b"\r\n\r\n", 431),
}


def read_until_closed(sock, timeout):
    """Everything the peer sends until it closes; (data, closed)."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + timeout
    data = b""
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def daemon_status(api):
    out = {}
    with open(f"/proc/{api.proc.pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if value.split():
                out[key] = value.split()[0]
    return out


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_request_is_refused_and_closed(api, functions, case):
    name = functions.deploy("echo")
    raw, code = HOSTILE[case]
    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as s:
        s.sendall(raw.replace(b"{name}", name.encode()))
        data, closed = read_until_closed(s, 10)
    assert data.startswith(f"HTTP/1.1 {code} ".encode()), data[:300]
    assert b"X-OpenFaaS-Internal: proxy" in data, data[:300]
    assert closed, "the connection stayed open after a refused request"
    # The function still serves, and never answered the refused request.
    assert b"X-Fn-Hostname" not in data
    r = api.invoke(name, body=b"still fine")
    assert r.status == 200 and r.body == b"still fine", r


def test_slow_head_is_dropped(api):
    """A head trickled a byte at a time is dropped at the head deadline (10 s by default),
    though each byte arrives long before any idle timeout."""
    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        t0 = time.monotonic()
        closed = False
        for _ in range(60):  # 30 s at most
            try:
                s.sendall(b"X")
            except OSError:
                closed = True
                break
            data, closed = read_until_closed(s, 0.5)
            if closed:
                break
        took = time.monotonic() - t0
    assert closed, "a head trickled for 30 s was never dropped"
    assert 8 <= took <= 15, took
    assert api.request("GET", "/healthz", auth=False).status == 200


def test_thousand_idle_connections_keep_nobody_waiting(api, functions):
    name = functions.deploy("echo")
    assert api.request("GET", "/system/functions", timeout=5).status == 200
    threads_before = int(daemon_status(api)["Threads"])
    idle = []
    try:
        for i in range(1000):
            s = socket.create_connection(("127.0.0.1", api.port), timeout=10)
            if i % 2:
                # Half are kept-alive connections that already carried a request.
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            idle.append(s)
        for s in idle[1::2]:
            s.settimeout(10)
            assert s.recv(4096).startswith(b"HTTP/1.1 200 ")
        for _ in range(3):
            t0 = time.monotonic()
            assert api.request("GET", "/healthz", auth=False, timeout=5).status == 200
            assert api.request("GET", "/system/functions", timeout=5).status == 200
            r = api.invoke(name, body=b"beside 1000 idle", timeout=5)
            assert r.status == 200 and r.body == b"beside 1000 idle", r
            assert time.monotonic() - t0 < 2.0
        threads = int(daemon_status(api)["Threads"])
        names = sorted(open(f"/proc/{api.proc.pid}/task/{t}/comm").read().strip()
                       for t in os.listdir(f"/proc/{api.proc.pid}/task"))
        # No thread per connection: what the daemon runs (gRPC's own threads included) does not
        # grow with the connections.
        assert threads <= threads_before + 1, \
            f"{threads} threads with 1000 connections open, {threads_before} before: {names}"
    finally:
        for s in idle:
            s.close()


def test_descriptors_past_1024_still_pull_deploy_and_serve_system(api, functions):
    """With over 1,024 descriptors open in the daemon, the sockets it opens next (a registry
    pull's, a fresh /system connection's) are numbered past FD_SETSIZE: code that waits on them
    with select() fails there ("cannot connect"; cpp-httplib's server answers 500)."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1400:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    held = []
    try:
        for _ in range(1100):
            held.append(socket.create_connection(("127.0.0.1", api.port), timeout=10))
        harness.wait_until(lambda: len(os.listdir(f"/proc/{api.proc.pid}/fd")) > 1100, 10,
                           "the daemon holding 1,100 descriptors")
        # A new function: its image is checked against the registry on a new socket.
        name = functions.deploy("fd", image="hello")
        r = api.invoke(name, timeout=10)
        assert r.status == 200, r
        # Each /system request beside them, on whatever connection the gateway picks.
        for _ in range(5):
            r = api.request("GET", "/system/functions", timeout=10)
            assert r.status == 200, r
    finally:
        for s in held:
            s.close()


def test_big_body_streams_through_without_being_held(api, functions):
    name = functions.deploy("echo")
    before = int(daemon_status(api)["VmRSS"])  # KiB
    body = os.urandom(1 << 20) * 24  # 24 MiB, under the default 32 MiB limit
    r = api.invoke(name, body=body, headers={"Content-Type": "application/octet-stream"},
                   timeout=120)
    assert r.status == 200 and r.body == body, (r.status, len(r.body))
    grown = int(daemon_status(api)["VmRSS"]) - before
    assert grown < 12 * 1024, f"daemon RSS grew {grown} KiB for a 24 MiB body each way"
