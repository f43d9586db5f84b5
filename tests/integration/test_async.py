"""Asynchronous invocation on NATS JetStream, end to end: a real nats-server (file store) and a
private daemon (own containerd and bridge: these tests kill it) with --nats-url. The function
(fnserver) notes every call id it serves (/_/record, /_/flaky), so the tests count runs per
call; a loopback HTTP server receives the callbacks."""

import json
import os
import socket
import subprocess
import time
import uuid

import pytest

import harness

CONCURRENCY = 4
MAX_ASYNC_BODY = 64 << 10
# Fast retries: the policy's annotations (the defaults wait 10 s and more).
RETRY_FAST = {"com.openfaas.retry.min_wait": "200ms", "com.openfaas.retry.max_wait": "1s"}


@pytest.fixture(scope="module")
def nats(request, workdir):
    server = harness.NatsServer(os.path.join(workdir, "async"))
    request.addfinalizer(server.close)
    server.start()
    return server


@pytest.fixture(scope="module")
def receiver(request):
    r = harness.CallbackReceiver()
    request.addfinalizer(r.close)
    return r


@pytest.fixture(scope="module")
def env(request, workdir, fn_image, nats, receiver):
    # --upstream-timeout=5: ack wait 10 s, so a crash's unacked calls come back quickly.
    daemon, _ = harness.private_daemon(
        request, workdir, "async", harness.NAMESPACE,
        extra_args=[f"--nats-url={nats.url}", "--upstream-timeout=5",
                    f"--queue-concurrency={CONCURRENCY}",
                    f"--async-max-body-bytes={MAX_ASYNC_BODY}"])
    daemon.start()
    fns = {}
    for name, annotations in (("rec", RETRY_FAST),
                              ("slowretry", {"com.openfaas.retry.min_wait": "3s",
                                             "com.openfaas.retry.max_wait": "3s"}),
                              ("backlog", RETRY_FAST), ("quick", RETRY_FAST),
                              ("two", {**RETRY_FAST, "com.openfaas.queue.concurrency": "2"})):
        r = daemon.deploy(name, fn_image.refs["echo"], annotations=annotations)
        assert r.status in (200, 202), r
        daemon.wait_ready(name)
        fns[name] = name
    return daemon


def post_async(daemon, name, path="/_/record", body=b"x", headers=None, timeout=30):
    return daemon.request("POST", f"/async-function/{name}{path}", body, headers or {},
                          auth=False, timeout=timeout)


def seen(daemon, name):
    r = daemon.invoke(name, "/_/seen", method="GET")
    assert r.status == 200, r
    return r.text.split()


def timeline(daemon, name):
    """/_/record's spans: [(call id, start, end)] in Unix seconds, end None while running."""
    r = daemon.invoke(name, "/_/timeline", method="GET")
    assert r.status == 200, r
    spans = []
    for line in r.text.splitlines():
        call_id, start, end = line.split()
        spans.append((call_id, int(start) / 1e6, int(end) / 1e6 if end != "0" else None))
    return spans


def most_at_once(spans):
    """The most spans that overlapped at any moment (one still running counts to the end)."""
    events = []
    for _, start, end in spans:
        events += [(start, 1), (end if end is not None else float("inf"), -1)]
    at_once = most = 0
    for _, step in sorted(events):  # an end sorts before a start at the same instant
        at_once += step
        most = max(most, at_once)
    return most


def wait_all_ran(daemon, name, ids, timeout):
    want = set(ids)

    def done():
        return want <= set(seen(daemon, name))
    try:
        harness.wait_until(done, timeout, f"{len(want)} async calls to run", interval=0.3)
    except TimeoutError:
        missing = want - set(seen(daemon, name))
        raise AssertionError(f"{len(missing)} of {len(want)} accepted calls never ran: "
                             f"{sorted(missing)[:5]}\n{harness.tail(daemon.log_path, 6000)}")


def test_async_call_runs_once_and_calls_back(env, receiver):
    before = harness.scrape_metrics(env)
    r = post_async(env, "rec", body=b"hello", headers={
        "X-Callback-Url": receiver.url("/done?x=1"), "X-Custom": "kept"})
    assert r.status == 202, r
    assert r.body == b""
    call_id = r.headers.get("X-Call-Id")
    assert call_id
    harness.wait_until(lambda: receiver.by_call_id(call_id), 30, "the callback")
    (method, path, headers, body), = receiver.by_call_id(call_id)
    assert (method, path) == ("POST", "/done?x=1")
    assert body == b"recorded"
    assert headers["x-function-name"] == "rec"
    assert headers["x-function-status"] == "200"
    assert float(headers["x-duration-seconds"]) >= 0
    assert headers["x-retry"] == "0"
    assert int(headers["x-retry-max"]) >= 1
    assert seen(env, "rec").count(call_id) == 1
    after = harness.scrape_metrics(env)
    for counter in ("gateway_async_published_total", "gateway_async_completed_total"):
        assert after[counter] - before[counter] >= 1, (counter, before, after)
    assert "gateway_async_inflight" in after and "gateway_async_oldest_age_seconds" in after


def test_namespace_suffix_and_client_call_id(env, receiver):
    """faas-cli addresses NAME.NAMESPACE; a client's own X-Call-Id is kept (and de-duplicates)."""
    call_id = "client-" + uuid.uuid4().hex
    for _ in range(2):  # the same id twice: JetStream keeps one message
        r = post_async(env, "rec.openfaas-fn", headers={"X-Call-Id": call_id,
                                                     "X-Callback-Url": receiver.url()})
        assert r.status == 202 and r.headers.get("X-Call-Id") == call_id, r
    harness.wait_until(lambda: receiver.by_call_id(call_id), 30, "the callback")
    assert receiver.by_call_id(call_id)[0][2]["x-function-name"] == "rec.openfaas-fn"
    # A call queued after it has run too, so a duplicate would have run by now as well.
    r = post_async(env, "rec")
    wait_all_ran(env, "rec", [r.headers["X-Call-Id"]], 30)
    assert seen(env, "rec").count(call_id) == 1


def test_refusals(env):
    r = post_async(env, "nosuchfn")
    assert r.status == 404 and r.headers.get("X-OpenFaaS-Internal") == "proxy", r
    for bad in ("ftp://example.com/x", "/relative", "http://", "example.com/cb",
                "http://a b/", "http://host:99999/"):
        r = post_async(env, "rec", headers={"X-Callback-Url": bad})
        assert r.status == 400, (bad, r)
        assert "X-Callback-Url" in r.text
    r = post_async(env, "rec", body=b"a" * (MAX_ASYNC_BODY + 1))
    assert r.status == 413, r
    r = env.request("DELETE", f"/async-function/{uuid.uuid4()}", auth=False)
    assert r.status == 404, r


def test_retry_then_success_says_x_retry(env, receiver):
    r = post_async(env, "rec", "/_/flaky?fails=2", headers={"X-Callback-Url": receiver.url()})
    assert r.status == 202, r
    call_id = r.headers["X-Call-Id"]
    harness.wait_until(lambda: receiver.by_call_id(call_id), 30, "the callback")
    (_, _, headers, body), = receiver.by_call_id(call_id)
    assert headers["x-function-status"] == "200", headers
    assert headers["x-retry"] == "2", headers
    assert body == b"ok after 2"


def test_cancel_a_queued_call(env, receiver):
    # Fails once, then waits 3 s (slowretry's min_wait) in the stream: cancelled meanwhile.
    r = post_async(env, "slowretry", "/_/flaky?fails=1", headers={"X-Callback-Url": receiver.url()})
    assert r.status == 202, r
    call_id = r.headers["X-Call-Id"]
    cancelled_at = time.monotonic()
    r = env.request("DELETE", f"/async-function/{call_id}", auth=False)
    assert r.status == 202, r
    r = env.request("DELETE", f"/async-function/{call_id}", auth=False)
    assert r.status == 404, r
    # A later call runs; by the time the cancelled one would have come back (3 s), nothing.
    marker = post_async(env, "slowretry").headers["X-Call-Id"]
    wait_all_ran(env, "slowretry", [marker], 30)
    harness.wait_until(lambda: time.monotonic() > cancelled_at + 5, 10, "the retry window")
    assert call_id not in seen(env, "slowretry")
    assert not receiver.by_call_id(call_id)


def test_a_backlog_does_not_delay_another_function(env, receiver):
    """12 calls of 1 s to `backlog`, then one to `quick`: each function has its own workers
    (CONCURRENCY of them), so quick's call runs while backlog's queue is still long; backlog
    has CONCURRENCY calls running at once, never more. With one pool over one consumer,
    quick's call would wait behind all 12 (it runs when backlog's last calls have started)."""
    cb = receiver.url("/lanes")
    backlog = []
    for _ in range(12):
        r = post_async(env, "backlog", "/_/record?ms=1000", headers={"X-Callback-Url": cb})
        assert r.status == 202, r
        backlog.append(r.headers["X-Call-Id"])
    # Posted once backlog's first call runs: its queue is 11 or fewer, the first batch busy.
    harness.wait_until(lambda: timeline(env, "backlog"), 60, "backlog's first call to start")
    r = post_async(env, "quick", "/_/record", headers={"X-Callback-Url": cb})
    assert r.status == 202, r
    quick = r.headers["X-Call-Id"]
    wait_all_ran(env, "backlog", backlog, 120)
    wait_all_ran(env, "quick", [quick], 30)
    harness.wait_until(lambda: all(receiver.by_call_id(c) for c in backlog + [quick]), 30,
                       "every callback")
    spans = [s for s in timeline(env, "backlog") if s[0] in set(backlog)]
    (_, _, quick_end), = [s for s in timeline(env, "quick") if s[0] == quick]
    last_start = max(start for _, start, _ in spans)
    with receiver.lock:
        order = [c[2].get("x-call-id") for c in receiver.calls if c[1] == "/lanes"]
    print(f"backlog: {most_at_once(spans)} at once; quick finished "
          f"{last_start - quick_end:.2f}s before backlog's last call started; quick's callback "
          f"came {order.index(quick) + 1}th of {len(order)}")
    # Ordering, from the function's own clock and the callbacks' arrival.
    assert quick_end < last_start, "quick's call waited for backlog's queue"
    assert order.index(quick) < max(order.index(c) for c in backlog)
    assert most_at_once(spans) == CONCURRENCY, spans
    assert len(spans) == len(backlog), "a backlog call ran twice"


def test_concurrency_annotation(env):
    """com.openfaas.queue.concurrency=2 on `two`: two of its calls at once, not more, not one."""
    ids = []
    for _ in range(6):
        r = post_async(env, "two", "/_/record?ms=500")
        assert r.status == 202, r
        ids.append(r.headers["X-Call-Id"])
    wait_all_ran(env, "two", ids, 60)
    spans = [s for s in timeline(env, "two") if s[0] in set(ids)]
    assert most_at_once(spans) == 2, spans


# A call whose answer reached the worker is acked at once (one round trip to NATS); this much
# before the kill, a call the function finished had its answer back and its ack taken.
ACK_MARGIN = 0.2
# A call the function finished this shortly before the kill may have been acked with its
# callback still to send (or in flight) when the daemon died.
CALLBACK_WINDOW = 2.0


def test_daemon_killed_mid_queue(env, receiver):
    """100 calls of 100-400 ms (mixed, so the workers finish out of step and the kill finds
    some with an answer just in), the daemon SIGKILLed (once 12 have finished and while more
    than half are queued) and restarted: all 100 run, and all call back but those the kill
    caught between their ack and their callback (finished within CALLBACK_WINDOW before it; at
    most the worker's concurrency). Every call the function had
    finished more than ACK_MARGIN before the kill ran exactly once: its answer reached the
    worker, which acks before anything else. Only a call cut in flight by the kill may run
    twice (the daemon never got its answer, the ack never went; JetStream redelivers it after
    the ack wait), so at most the worker's concurrency."""
    before = set(seen(env, "rec"))
    accepted = []
    for i in range(100):
        if i == 30:
            harness.wait_until(
                lambda: sum(1 for c, _, end in timeline(env, "rec") if c in accepted and end) >= 12,
                60, "12 calls to finish before the kill")
            ran_at_kill = len(set(seen(env, "rec")) - before)  # at most: more may finish
            kill_at = time.time()
            env.kill()
            assert ran_at_kill < 30, "the queue was empty at the kill: nothing tested"
            env.start()
        r = post_async(env, "rec", f"/_/record?ms={100 + i * 73 % 300}", body=str(i).encode(),
                       headers={"X-Callback-Url": receiver.url("/killed")})
        assert r.status == 202, (i, r)
        accepted.append(r.headers["X-Call-Id"])
    wait_all_ran(env, "rec", accepted, 60)
    spans = [s for s in timeline(env, "rec") if s[0] in set(accepted)]
    first_end = {}
    for call_id, _, end in spans:
        first_end.setdefault(call_id, end)
    # Each call calls back once acked; the calls cut by the kill only after their redelivery.
    # The callback goes after the ack (README: a crash then loses the callback, never repeats
    # the call), so only a call that finished just before the kill may have none.
    may_lose = {c for c, end in first_end.items()
                if end is not None and kill_at - CALLBACK_WINDOW <= end <= kill_at}
    harness.wait_until(lambda: all(receiver.by_call_id(c) for c in accepted if c not in may_lose),
                       60, "a callback for every call but those acked just before the kill")
    lost = {c for c in accepted if not receiver.by_call_id(c)}
    assert len(lost) <= CONCURRENCY, f"{len(lost)} callbacks lost: {sorted(lost)}"
    runs = [c for c in seen(env, "rec") if c not in before]
    twice = {c for c in accepted if runs.count(c) > 1}
    done_before_kill = {c for c, end in first_end.items()
                        if end is not None and end < kill_at - ACK_MARGIN}
    print(f"daemon killed with {30 - ran_at_kill} of 30 calls queued or in flight; "
          f"{len(done_before_kill)} had finished {ACK_MARGIN}s before; {len(twice)} ran twice")
    assert len(done_before_kill) >= 4, "too few calls finished before the kill: nothing tested"
    assert not twice & done_before_kill, \
        f"calls that had finished before the kill ran again: {sorted(twice & done_before_kill)}"
    assert len(twice) <= CONCURRENCY, f"{len(twice)} calls ran more than once"


def test_nats_killed_mid_queue(env, nats):
    """While nats-server is down async calls answer 503, never 202; each 202 given runs."""
    accepted, refused = [], 0
    for i in range(20):
        r = post_async(env, "rec", "/_/record?ms=50")
        assert r.status == 202, r
        accepted.append(r.headers["X-Call-Id"])
    nats.kill()
    deadline = time.monotonic() + 20
    while refused == 0 and time.monotonic() < deadline:  # until the daemon notices
        r = post_async(env, "rec")
        assert r.status in (202, 503), r
        if r.status == 202:
            accepted.append(r.headers["X-Call-Id"])
        else:
            refused += 1
            assert r.headers.get("X-OpenFaaS-Internal") == "proxy"
    assert refused, "no 503 while nats-server was down"
    r = post_async(env, "rec")
    assert r.status == 503, r
    nats.start()
    deadline = time.monotonic() + 30
    while len(accepted) < 40 and time.monotonic() < deadline:
        r = post_async(env, "rec")
        assert r.status in (202, 503), r
        if r.status == 202:
            accepted.append(r.headers["X-Call-Id"])
        else:
            time.sleep(0.1)  # paces the polling of a reconnect, not a synchronisation
    assert len(accepted) >= 40, "async calls did not come back after nats-server restarted"
    wait_all_ran(env, "rec", accepted, 60)


def js_api(port, subject, request):
    """One JetStream API request over NATS's text protocol; the JSON answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.settimeout(5)
        f = s.makefile("rb")
        assert f.readline().startswith(b"INFO "), "not a NATS server"
        body = b"" if request is None else json.dumps(request).encode()
        s.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nSUB _INBOX.t 1\r\n' +
                  f"PUB {subject} _INBOX.t {len(body)}\r\n".encode() + body + b"\r\n")
        for _ in range(100):  # PINGs and +OKs until our answer
            line = f.readline()
            assert line, "NATS closed the connection"
            if line.startswith(b"PING"):
                s.sendall(b"PONG\r\n")
            elif line.startswith(b"MSG "):
                payload = f.read(int(line.split()[-1]))
                return json.loads(payload)
            elif line.startswith(b"-ERR"):
                raise AssertionError(line)
        raise AssertionError(f"no answer to {subject}")


def test_consumer_of_an_earlier_version_is_replaced(env, nats):
    """A stream left by an earlier version, with its one consumer of every function: the
    worker removes it (a work-queue stream refuses the per-function consumers beside it) and
    the calls run."""
    stream = "faasd-async"
    first = post_async(env, "rec").headers["X-Call-Id"]  # the stream exists
    wait_all_ran(env, "rec", [first], 60)
    env.stop()
    names = js_api(nats.port, f"$JS.API.CONSUMER.NAMES.{stream}", {}).get("consumers") or []
    for name in names:
        js_api(nats.port, f"$JS.API.CONSUMER.DELETE.{stream}.{name}", None)
    legacy = "faasd-queue-worker"
    r = js_api(nats.port, f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{legacy}",
               {"stream_name": stream,
                "config": {"durable_name": legacy, "ack_policy": "explicit",
                           "deliver_policy": "all", "filter_subject": "faas-request.>",
                           "ack_wait": 10 * 10**9}})
    assert "error" not in r, r
    env.start()
    ids = []
    for _ in range(3):
        r = post_async(env, "rec")
        assert r.status == 202, r
        ids.append(r.headers["X-Call-Id"])
    wait_all_ran(env, "rec", ids, 60)
    names = js_api(nats.port, f"$JS.API.CONSUMER.NAMES.{stream}", {})["consumers"]
    assert legacy not in names and "faasd_rec_openfaas-fn" in names, names


FAAS_CLI = os.environ.get("FAAS_CLI_BIN", "/work/tools/faas-cli")


@pytest.mark.skipif(not os.access(FAAS_CLI, os.X_OK), reason="no faas-cli binary")
def test_faas_cli_invoke_async(env, receiver):
    p = subprocess.run([FAAS_CLI, "invoke", "rec", "--async", "--namespace", "openfaas-fn",
                        "--gateway", f"http://127.0.0.1:{env.port}",
                        "-H", f"X-Callback-Url={receiver.url('/cli')}"],
                       input=b"from faas-cli", capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    def called():
        with receiver.lock:
            return [c for c in receiver.calls if c[1] == "/cli"]
    harness.wait_until(called, 30, "faas-cli's async call to call back")
    assert called()[0][2]["x-function-status"] == "200"
