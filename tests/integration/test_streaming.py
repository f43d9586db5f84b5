"""Streaming through the gateway against real functions (fnserver in a container on the bridge):
WebSocket tunnels (text and binary frames, a 1 MiB message, the close handshake, NAME.NAMESPACE),
declined and other upgrades served as plain HTTP, events and NDJSON relayed as the function
writes them, a client that aborts mid-upload cutting the function's request, and 1 GiB each way
through a daemon whose memory stays bounded."""

import http.client
import json
import os
import random
import socket
import threading
import time
import zlib

import pytest
import websocket  # Debian's python3-websocket (websocket-client)

import harness

NS = harness.NAMESPACE


def invocations(api, name, code):
    """gateway_function_invocation_total of NAME.openfaas-fn with `code` (0 when absent)."""
    label = f'function_name="{name}.{NS}"'
    for series, value in harness.scrape_metrics(api).items():
        if series.startswith("gateway_function_invocation_total{") and label in series \
                and f'code="{code}"' in series:
            return value
    return 0


def connect_ws(api, name, timeout=30):
    return websocket.create_connection(f"ws://127.0.0.1:{api.port}/function/{name}/_/ws",
                                       timeout=timeout)


# -- WebSocket ---------------------------------------------------------------------------------

def test_websocket_echo_through_the_gateway(api, functions, record_property):
    name = functions.deploy("ws")
    ws = connect_ws(api, name)
    try:
        assert ws.getstatus() == 101
        assert ws.getheaders().get("x-call-id"), ws.getheaders()
        ws.send("hello, tunnel")
        opcode, data = ws.recv_data()
        assert (opcode, data) == (websocket.ABNF.OPCODE_TEXT, b"hello, tunnel")
        ws.send_binary(b"\x00\x01\xfe\xff")
        opcode, data = ws.recv_data()
        assert (opcode, data) == (websocket.ABNF.OPCODE_BINARY, b"\x00\x01\xfe\xff")

        big = os.urandom(1 << 20)
        t0 = time.monotonic()
        ws.send_binary(big)
        opcode, data = ws.recv_data()
        took = time.monotonic() - t0
        assert opcode == websocket.ABNF.OPCODE_BINARY and data == big, len(data)
        record_property("ws_1mib_echo_seconds", round(took, 4))
        print(f"WebSocket 1 MiB echo: {took * 1000:.1f} ms")

        # While open, the tunnel is an invocation in flight, not yet counted as finished.
        assert invocations(api, name, 101) == 0

        # The close handshake: our close frame reaches the function, whose answer comes back,
        # then the function's TCP close.
        ws.send_close(websocket.STATUS_NORMAL, b"bye")
        frame = ws.recv_frame()
        assert frame.opcode == websocket.ABNF.OPCODE_CLOSE, frame
        assert int.from_bytes(frame.data[:2], "big") == websocket.STATUS_NORMAL
        ws.sock.settimeout(10)
        assert ws.sock.recv(1) == b"", "the function's close did not reach the client"
    finally:
        ws.shutdown()
    harness.wait_until(lambda: invocations(api, name, 101) == 1, 10,
                       f"the tunnel to {name} to be counted as one invocation answered 101")

    # NAME.NAMESPACE works as for any invoke.
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{api.port}/function/{name}.{NS}/_/ws", timeout=30)
    try:
        ws.send("namespaced")
        assert ws.recv() == "namespaced"
    finally:
        ws.close()
    r = api.invoke(name, body=b"plain after tunnels")
    assert r.status == 200 and r.body == b"plain after tunnels", r


def test_websockets_to_one_function_do_not_mix(api, functions):
    name = functions.deploy("wsmany")
    sockets = [connect_ws(api, name) for _ in range(8)]
    try:
        for i, ws in enumerate(sockets):
            ws.send(f"message {i}")
        for i, ws in enumerate(sockets):
            assert ws.recv() == f"message {i}"
    finally:
        for ws in sockets:
            ws.close()


def raw_get(api, path, headers):
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=30)
    try:
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def test_declined_and_other_upgrades_are_plain_http(api, functions):
    name = functions.deploy("upg")
    # A WebSocket offer the function declines (its /_/headers is no WebSocket endpoint): its
    # plain answer is relayed, and it saw the offer.
    status, headers, body = raw_get(api, f"/function/{name}/_/headers", {
        "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert status == 200, body
    assert "upgrade: websocket" in body.decode().splitlines(), body
    assert "Upgrade" not in headers, headers
    # h2c (curl --http2 on http://) is declined by the gateway itself: the function gets a
    # plain HTTP/1.1 request without the offer or its settings, and the client its answer.
    status, headers, body = raw_get(api, f"/function/{name}/_/headers", {
        "Connection": "Upgrade, HTTP2-Settings", "Upgrade": "h2c",
        "HTTP2-Settings": "AAMAAABkAAQCAAAAAAIAAAAA"})
    assert status == 200, body
    seen = body.decode()
    assert "upgrade:" not in seen and "http2-settings:" not in seen, seen
    assert "Upgrade" not in headers, headers


# -- Events and NDJSON -------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["sse", "ndjson"])
def test_events_reach_the_client_as_the_function_writes_them(api, functions, kind,
                                                            record_property):
    name = functions.deploy("events")
    n, gap_ms = 5, 400
    query = f"n={n}&ms={gap_ms}" + ("&type=ndjson" if kind == "ndjson" else "")
    accept = "text/event-stream" if kind == "sse" else "application/x-ndjson"
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=30)
    events = []  # (arrival in Unix µs, the event's JSON)
    try:
        conn.request("GET", f"/function/{name}/_/events?{query}", headers={"Accept": accept})
        r = conn.getresponse()
        assert r.status == 200
        assert r.getheader("Content-Type") == accept
        sep = b"\n\n" if kind == "sse" else b"\n"
        buf = b""
        deadline = time.monotonic() + 30
        while len(events) < n and time.monotonic() < deadline:
            piece = r.read1(65536)
            arrived = time.time_ns() // 1000
            if not piece:
                break
            buf += piece
            while sep in buf:
                event, buf = buf.split(sep, 1)
                data = event.decode()
                if kind == "sse":
                    data = next(l[len("data: "):] for l in data.splitlines()
                                if l.startswith("data: "))
                events.append((arrived, json.loads(data)))
        assert r.read() == b"", "more after the last event"
    finally:
        conn.close()
    assert [e["i"] for _, e in events] == list(range(n)), events
    first_arrived, first = events[0]
    last_sent = events[-1][1]["sent_us"]
    # The first event was at the client before the function wrote its second, let alone its
    # last: nothing held the stream back.
    assert first_arrived < events[1][1]["sent_us"] < last_sent, events
    latency_ms = (first_arrived - first["sent_us"]) / 1000
    record_property(f"{kind}_first_event_latency_ms", round(latency_ms, 2))
    print(f"{kind}: first event {latency_ms:.1f} ms after the function wrote it, "
          f"{(last_sent - first_arrived) / 1000:.0f} ms before the last was written")


# -- Client abort ------------------------------------------------------------------------------

def counts(api, name):
    r = api.invoke(name, "/_/counts", method="GET")
    assert r.status == 200, r
    return r.text.splitlines()


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_client_abort_mid_upload_cuts_the_functions_request(api, functions, framing):
    name = functions.deploy("abort")
    tag = f"{framing}-{random.getrandbits(32):08x}"
    half = 1 << 20
    piece = os.urandom(64 << 10)
    head = f"POST /function/{name}/_/count?tag={tag} HTTP/1.1\r\nHost: x\r\n"
    if framing == "chunked":
        head += "Transfer-Encoding: chunked\r\n\r\n"
        body = (b"%x\r\n" % len(piece) + piece + b"\r\n") * (half // len(piece))
    else:
        head += f"Content-Length: {2 * half}\r\n\r\n"
        body = piece * (half // len(piece))
    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as s:
        s.sendall(head.encode() + body)
        # The function has the request's head (and some of its body) before the client goes.
        harness.wait_until(lambda: f"{tag} started" in counts(api, name), 30,
                           f"{name} to start reading request {tag}")
    # Closed with half the body (chunked: no last chunk) sent.
    seen = harness.wait_until(
        lambda: [l for l in counts(api, name) if l.startswith(tag + " ") and
                 not l.endswith(" started")], 30, f"{name} to end request {tag}")
    assert len(seen) == 1 and seen[0].endswith(" cut"), seen
    got = int(seen[0].split()[1])
    assert 0 < got <= half, seen
    # Both keep working.
    assert api.request("GET", "/healthz", auth=False).status == 200
    r = api.invoke(name, "/_/count?tag=after", body=b"x" * 1000)
    assert r.status == 200 and r.text.startswith("bytes=1000 "), r
    assert "after 1000 complete" in counts(api, name)


# -- 1 GiB each way ----------------------------------------------------------------------------

GIB = 1 << 30


@pytest.fixture(scope="module")
def roomy(request, workdir, fn_image):
    """A daemon whose body limit lets 1 GiB through (the default is 32 MiB) and whose invoke
    timeout leaves a loaded machine time to move it, with one echo function."""
    daemon, _ = harness.private_daemon(
        request, workdir, "stream", NS,
        extra_args=[f"--max-body-bytes={2 * GIB}", "--upstream-timeout=600"])
    daemon.start()
    name = f"big-{random.getrandbits(24):06x}"
    r = daemon.deploy(name, fn_image.refs["echo"])
    assert r.status in (200, 202), r
    request.addfinalizer(lambda: daemon.running() and daemon.delete(name))
    daemon.wait_ready(name)
    return daemon, name


def cpu_seconds(pid):
    """utime + stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RssWatch:
    """Polls the daemon's VmRSS every 20 ms (at most `seconds`) on a thread; peak in KiB. Also
    notes the CPU time the daemon spent meanwhile (`cpu`, seconds)."""

    def __init__(self, pid, seconds=900):
        self.pid = pid
        self.peak = self.before = self.rss()
        self.cpu = cpu_seconds(pid)
        self.stop = threading.Event()
        self.deadline = time.monotonic() + seconds
        self.thread = threading.Thread(target=self.run, daemon=True)

    def rss(self):
        return harness.proc_status(self.pid, "VmRSS")

    def run(self):
        while not self.stop.wait(0.02) and time.monotonic() < self.deadline:
            self.peak = max(self.peak, self.rss())

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=5)
        self.peak = max(self.peak, self.rss())
        self.cpu = cpu_seconds(self.pid) - self.cpu


def test_one_gib_each_way_with_bounded_daemon_memory(roomy, record_property):
    daemon, name = roomy
    block = os.urandom(1 << 20)
    # Warm the path (connections, buffers) so the baseline is the steady state.
    r = daemon.invoke(name, "/_/count", body=block * 2, timeout=60)
    assert r.status == 200, r

    with RssWatch(daemon.proc.pid) as up_watch:
        conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=120)
        try:
            t0 = time.monotonic()
            conn.putrequest("POST", f"/function/{name}/_/count?tag=gib")
            conn.putheader("Content-Type", "application/octet-stream")
            conn.putheader("Content-Length", str(GIB))
            conn.endheaders()
            crc = 0
            for _ in range(GIB // len(block)):  # never more than one block held
                conn.send(block)
                crc = zlib.crc32(block, crc)
            r = conn.getresponse()
            answer = r.read().decode()
            up_seconds = time.monotonic() - t0
        finally:
            conn.close()
    assert r.status == 200, answer
    assert answer == f"bytes={GIB} crc32={crc:08x}", answer

    pattern = bytes((i * 31 + 7) % 251 for i in range(64 << 10))
    with RssWatch(daemon.proc.pid) as down_watch:
        conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=120)
        try:
            t0 = time.monotonic()
            conn.request("GET", f"/function/{name}/_/bytes?n={GIB}")
            r = conn.getresponse()
            assert r.status == 200 and int(r.getheader("Content-Length")) == GIB
            got, crc_got = 0, 0
            for _ in range(2 * GIB // len(pattern)):  # bounded: pieces may come short
                piece = r.read(len(pattern))
                if not piece:
                    break
                got += len(piece)
                crc_got = zlib.crc32(piece, crc_got)
            down_seconds = time.monotonic() - t0
        finally:
            conn.close()
    crc_want = 0
    for _ in range(GIB // len(pattern)):
        crc_want = zlib.crc32(pattern, crc_want)
    assert got == GIB and crc_got == crc_want, (got, crc_got, crc_want)

    for direction, w, seconds in (("up", up_watch, up_seconds),
                                  ("down", down_watch, down_seconds)):
        grown = w.peak - w.before
        record_property(f"gib_{direction}_seconds", round(seconds, 2))
        record_property(f"gib_{direction}_rss_growth_kib", grown)
        record_property(f"gib_{direction}_daemon_cpu_seconds", round(w.cpu, 2))
        print(f"1 GiB {direction}: {seconds:.1f} s, daemon CPU {w.cpu:.1f} s, VmRSS {w.before} "
              f"KiB before, peak {w.peak} KiB (+{grown} KiB)")
        assert grown < 32 * 1024, \
            f"daemon RSS grew {grown} KiB (peak {w.peak}) moving 1 GiB {direction}"
        # About 1.5 s when bodies move in 64 KiB pieces; 30 to 40 s when Beast read them a few
        # KiB at a time (its reads stop at the buffer's free room).
        assert w.cpu < 15, f"the daemon spent {w.cpu:.1f} s of CPU moving 1 GiB {direction}"
