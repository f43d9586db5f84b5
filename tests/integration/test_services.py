"""Services beside the functions: NATS and Prometheus from the default services.yaml, run from
images built offline by packaging/images/build.sh, and an operator's own service.

One private daemon (its own containerd and bridge) for the module; it publishes NATS and
Prometheus on free loopback ports, so the tests run beside a live appliance (4222, 9090)."""

import os
import random
import shutil
import socket
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

import harness

NS = "svc-fn"
# The services' containerd namespace: runc keeps its state by namespace and container id under
# /run/containerd/runc for every containerd on the host, so a live appliance's "openfaas/nats"
# would collide with ours under the default name.
SERVICES_NS = f"svc-services-{random.randrange(16 ** 6):06x}"
REPO = Path(__file__).resolve().parents[2]
BUILD_SH = REPO / "packaging" / "images" / "build.sh"
MKIMAGE = REPO / "packaging" / "images" / "mkimage.py"
WEB_REF = "docker.io/library/faasd-test-web:1"
WEB_ENTRY = """  web:
    image: %s
    command: ["httpd", "-f", "-p", "8000", "-h", "/www"]
    depends_on: [nats]
    restart: on-failure
    stop_grace_period: 1s
""" % WEB_REF


@pytest.fixture(scope="session")
def sidecar_images(request, workdir):
    """nats.tar and prometheus.tar from build.sh, plus a busybox httpd image, once a session.
    FAASD_SIDECAR_IMAGES names a folder where build.sh put them already (scripts/test.sh
    builds them once for every run that needs them)."""
    out = Path(workdir) / "sidecar-images"
    request.addfinalizer(lambda: shutil.rmtree(out, ignore_errors=True))
    prebuilt = os.environ.get("FAASD_SIDECAR_IMAGES", "")
    names = ("nats.tar", "prometheus.tar")
    tools = ["/bin/busybox"]
    if not (prebuilt and all((Path(prebuilt) / n).is_file() for n in names)):
        prebuilt = ""
        tools += ["/usr/sbin/nats-server", "/usr/bin/prometheus"]
    for tool in tools:
        if not os.access(tool, os.X_OK):
            pytest.skip(f"{tool} missing (scripts/deps.sh test installs it)")
    if prebuilt:
        out.mkdir()
        for n in names:
            shutil.copy(Path(prebuilt) / n, out / n)
    else:
        harness.run([str(BUILD_SH), str(out)], timeout=300)
    harness.run(["python3", str(MKIMAGE), "--ref", WEB_REF, "--out", str(out / "web.tar"),
                 "--file", "/bin/busybox:bin/busybox:0755",
                 "--text", "www/index.html=hello from web\n",
                 "--config", '{"Entrypoint": ["/bin/busybox"], "Cmd": ["httpd", "-f", "-p", "80"]}'],
                timeout=120)
    return out


def free_port_not(*taken):
    while True:
        port = harness.free_port()
        if port not in taken and port not in (4222, 9090):
            return port


@pytest.fixture(scope="module")
def svc(request, workdir, sidecar_images, fn_image):
    images = Path(workdir) / "svc-images"
    images.mkdir()
    request.addfinalizer(lambda: shutil.rmtree(images, ignore_errors=True))
    for f in ("nats.tar", "prometheus.tar", "web.tar"):
        shutil.copy(sidecar_images / f, images / f)
    nats_port = free_port_not()
    prom_port = free_port_not(nats_port)
    daemon, ctd = harness.private_daemon(request, workdir, "svc", NS)
    # Shown with the report of a failing test (pytest -rA / -s); the daemon dir goes at close.
    request.addfinalizer(lambda: print("--- faasd log ---\n" + harness.tail(daemon.log_path)))
    # Prometheus scrapes the gateway through the bridge's address: listen beyond loopback.
    daemon.extra_args += ["--services=on", f"--services-namespace={SERVICES_NS}",
                          f"--listen=0.0.0.0:{daemon.port}",
                          f"--images-dir={images}",
                          f"--nats-address=127.0.0.1:{nats_port}",
                          f"--prometheus-address=127.0.0.1:{prom_port}",
                          # Async on the supervised NATS; ack wait 15 s, so a call whose ack
                          # the NATS kill lost comes back soon.
                          f"--nats-url=nats://127.0.0.1:{nats_port}", "--upstream-timeout=10"]
    t0 = time.monotonic()
    daemon.start()
    daemon.ctd = ctd
    daemon.nats_port = nats_port
    daemon.prom_port = prom_port
    daemon.started_at = t0
    return daemon


def faasd_service(daemon, *args):
    return harness.run([harness.FAASD_BIN, "service", *args, f"--state-dir={daemon.state_dir}",
                        f"--containerd-address={daemon.containerd.address}",
                        f"--services-namespace={SERVICES_NS}"], check=False, timeout=30)


def service_row(daemon, name):
    """`faasd service list`'s row for `name` as {column: value}."""
    out = faasd_service(daemon, "list").stdout.splitlines()
    head = out[0].split()
    for line in out[1:]:
        fields = line.split()
        if fields and fields[0] == name:
            return dict(zip(head, fields))
    return None


def api_services(daemon):
    """GET /system/services as {name: service}."""
    r = daemon.request("GET", "/system/services")
    assert r.status == 200, r
    return {s["name"]: s for s in r.json()}


def nats_info(port):
    """The INFO line a NATS server sends first on a client connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.settimeout(2)
        data = b""
        while b"\r\n" not in data and len(data) < 65536:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    line = data.split(b"\r\n", 1)[0].decode()
    return line if line.startswith("INFO ") else None


def service_pid(daemon, name):
    return daemon.ctd.task_pid(name, namespace=SERVICES_NS)


def deploy(daemon, name, image, **fields):
    """Deploys into the daemon's function namespace NS and waits until the function answers."""
    r = daemon.deploy(name, image, namespace=NS, **fields)
    assert r.status in (200, 202), r
    harness.wait_until(
        lambda: daemon.invoke(f"{name}.{NS}", "/_/health", method="GET").status == 200, 60,
        f"{name} to answer")


def remove(daemon, name):
    daemon.request("DELETE", f"/system/functions?namespace={NS}", {"functionName": name})


def write_services(daemon, text):
    (daemon.state_dir / "services.yaml").write_text(text)


def test_nats_from_the_offline_image_answers_on_its_published_port(svc):
    info = harness.wait_until(lambda: nats_info(svc.nats_port), 90,
                              f"NATS INFO on 127.0.0.1:{svc.nats_port}")
    print(f"NATS answered {time.monotonic() - svc.started_at:.2f}s after faasd up")
    assert '"jetstream":true' in info.replace(" ", ""), info
    # Run from the archive build.sh wrote, imported at start: nothing was pulled.
    images = svc.ctd.lines("images", "ls", "-q", namespace=SERVICES_NS)
    assert "docker.io/library/nats:2.9.10" in images, images
    row = service_row(svc, "nats")
    assert row and row["STATUS"] == "running" and row["RESTARTS"] == "0", row
    # The API says the same, from the supervisor: both running, with their tasks and ports.
    assert svc.request("GET", "/system/services", auth=False).status == 401
    both = harness.wait_until(
        lambda: (s := api_services(svc)) and all(s.get(n, {}).get("state") == "running"
                                                 for n in ("nats", "prometheus")) and s,
        60, "nats and prometheus running in GET /system/services")
    assert set(both) == {"nats", "prometheus"}, both
    nats, prometheus = both["nats"], both["prometheus"]
    assert nats["pid"] == service_pid(svc, "nats"), nats
    assert nats["image"] == "docker.io/library/nats:2.9.10", nats
    assert nats["restartPolicy"] == "always" and nats["restarts"] == 0, nats
    assert "lastExit" not in nats, nats
    assert nats["ports"] == [{"hostIP": "127.0.0.1", "hostPort": svc.nats_port,
                              "containerPort": 4222, "protocol": "tcp"}], nats
    assert nats["ip"] in (svc.state_dir / "services" / "run" / "prometheus" / "hosts").read_text()
    assert prometheus["pid"] == service_pid(svc, "prometheus"), prometheus
    assert [p["hostPort"] for p in prometheus["ports"]] == [svc.prom_port], prometheus
    # Its output is kept like a function's.
    harness.wait_until(lambda: "Server is ready" in faasd_service(svc, "logs", "nats").stdout,
                       30, "nats-server's start-up lines in faasd service logs")
    # JetStream's store is the volume under the state dir.
    assert (svc.state_dir / "nats" / "jetstream").is_dir()


def test_nats_killed_is_restarted_and_counted(svc):
    harness.wait_until(lambda: nats_info(svc.nats_port), 90, "NATS up")
    pid = harness.wait_until(lambda: service_pid(svc, "nats"), 30, "nats task pid")
    t0 = time.monotonic()
    os.kill(pid, 9)
    new_pid = harness.wait_until(
        lambda: (p := service_pid(svc, "nats")) not in (None, pid) and p, 30,
        "a new nats task")
    harness.wait_until(lambda: nats_info(svc.nats_port), 30, "NATS answering again")
    print(f"NATS answered again {time.monotonic() - t0:.2f}s after kill -9 (pid {new_pid})")
    row = harness.wait_until(lambda: (r := service_row(svc, "nats")) and
                             r["RESTARTS"] == "1" and r, 10, "restart count 1")
    assert row["STATUS"] == "running", row
    # GET /system/services shows the restart, the new task and how the old one ended.
    nats = harness.wait_until(lambda: (s := api_services(svc)["nats"])["restarts"] == 1 and
                              s["state"] == "running" and s, 10, "the restart in the API")
    assert nats["pid"] == new_pid, nats
    assert nats["lastExit"]["code"] == 137, nats
    assert nats["lastExit"]["reason"] == "killed by signal 9", nats
    assert nats["since"] >= nats["lastExit"]["time"], nats  # both RFC3339 UTC, same format


def test_the_portal_shows_the_services(svc):
    """The system page of a daemon with services: NATS (restarted once by the test above) and
    Prometheus, each running, as GET /system/services has them; a screenshot of it."""
    from portal import open_portal  # selenium: only this test of the module needs it
    harness.wait_until(lambda: all(s["state"] == "running" for s in api_services(svc).values()),
                       60, "every service running")
    with open_portal(svc) as p:
        p.go("system")
        for name in ("nats", "prometheus"):
            p.wait(lambda: p.text(f'#svc-rows tr[data-svc="{name}"] [data-state]') == "running",
                   f"{name} shown as running")
        nats = api_services(svc)["nats"]
        row = '#svc-rows tr[data-svc="nats"]'
        assert p.text(f"{row} .pid") == str(nats["pid"])
        assert p.text(f"{row} .restarts") == str(nats["restarts"])
        if "lastExit" in nats:
            assert p.text(f"{row} .exit").startswith(nats["lastExit"]["reason"])
        assert p.text(f"{row} .ports") == f"127.0.0.1:{svc.nats_port}→4222/tcp"
        assert not p.find("#svc-none", timeout=1).is_displayed()
        assert not p.errors()
        p.shot("system-services", (1280, 1100))


def test_service_restart_command(svc):
    pid = harness.wait_until(lambda: service_pid(svc, "prometheus"), 60, "prometheus task")
    before = int(service_row(svc, "prometheus")["RESTARTS"])
    r = faasd_service(svc, "restart", "prometheus")
    assert r.returncode == 0, r.stderr
    harness.wait_until(lambda: service_pid(svc, "prometheus") not in (None, pid), 30,
                       "a new prometheus task")
    harness.wait_until(lambda: service_row(svc, "prometheus")["RESTARTS"] == str(before + 1),
                       10, "prometheus's restart counted")
    prometheus = harness.wait_until(
        lambda: (s := api_services(svc)["prometheus"])["state"] == "running" and s, 10,
        "prometheus running again in the API")
    assert prometheus["restarts"] == before + 1, prometheus
    assert prometheus["lastExit"]["reason"].endswith(" (restart requested)"), prometheus
    assert faasd_service(svc, "restart", "nope").returncode == 1


def test_prometheus_scrapes_the_gateway_by_name(svc):
    query = "/api/v1/query?" + urllib.parse.urlencode({"query": 'up{job="gateway"}'})

    def gateway_up():
        r = harness.http_request("127.0.0.1", svc.prom_port, "GET", query, timeout=5)
        result = r.json()["data"]["result"] if r.status == 200 else []
        return result and result[0]["value"][1] == "1"
    harness.wait_until(gateway_up, 90, 'Prometheus up{job="gateway"} == 1', interval=1)
    hosts = (svc.state_dir / "services" / "run" / "prometheus" / "hosts").read_text()
    assert f"{svc.cni.gateway}\tgateway" in hosts, hosts


def test_operator_service_by_name_from_a_function_and_restarted(svc, fn_image):
    harness.wait_until(lambda: nats_info(svc.nats_port), 90, "NATS up")
    nats_pid = service_pid(svc, "nats")
    path = svc.state_dir / "services.yaml"
    write_services(svc, path.read_text() + WEB_ENTRY)
    svc.restart()
    web_pid = harness.wait_until(lambda: service_pid(svc, "web"), 60, "web task")
    # The daemon's restart left NATS running: adopted, not restarted.
    assert service_pid(svc, "nats") == nats_pid

    name = "wget-%06x" % random.getrandbits(24)
    try:
        deploy(svc, name, fn_image.refs["cat"],
               envProcess="busybox wget -q -O - http://web:8000/index.html")
        hosts = svc.invoke(f"{name}.{NS}", "/_/file?path=/etc/hosts", method="GET").text
        assert "\tweb\n" in hosts and "\tnats\n" in hosts and "\tprometheus\n" in hosts, hosts
        r = harness.wait_until(lambda: (x := svc.invoke(f"{name}.{NS}", body=b"")).status == 200 and x,
                               30, "the function fetching http://web:8000/")
        assert r.text == "hello from web\n", r
        os.kill(web_pid, 9)  # restart: on-failure, and 137 is a failure
        harness.wait_until(lambda: service_pid(svc, "web") not in (None, web_pid), 30,
                           "a new web task")
        r = harness.wait_until(lambda: (x := svc.invoke(f"{name}.{NS}", body=b"")).status == 200 and x,
                               30, "the function fetching web again")
        assert r.text == "hello from web\n", r
        assert service_row(svc, "web")["RESTARTS"] == "1"
    finally:
        remove(svc, name)


def test_bad_services_yaml_is_named_and_functions_still_served(svc, fn_image):
    path = svc.state_dir / "services.yaml"
    good = path.read_text()
    nats_pid = harness.wait_until(lambda: service_pid(svc, "nats"), 60, "nats task")
    lines = good.splitlines(keepends=True)
    typo_line = next(i for i, l in enumerate(lines) if l.strip().startswith("restart:")) + 1
    write_services(svc, good.replace("restart:", "restrat:", 1))
    try:
        svc.restart()
        harness.wait_until(lambda: "restrat" in svc.log_path.read_text(), 30,
                           "the error in the daemon's log")
        log = svc.log_path.read_text()
        assert f"services.yaml line {typo_line}: service nats: restrat: unknown key" in log, \
            harness.tail(svc.log_path)
        assert "restrat" in faasd_service(svc, "list").stderr
        name = "bad-yaml-%06x" % random.getrandbits(24)
        try:
            deploy(svc, name, fn_image.refs["echo"])
        finally:
            remove(svc, name)
        # Nothing was changed: the running services stay as they were.
        assert service_pid(svc, "nats") == nats_pid
    finally:
        write_services(svc, good)


def test_image_import_command(svc, sidecar_images):
    r = harness.run([harness.FAASD_BIN, "image", "import", str(sidecar_images / "web.tar"),
                     f"--containerd-address={svc.containerd.address}", "--namespace=svc-import",
                     f"--state-dir={svc.state_dir}"], check=False, timeout=120)
    assert r.returncode == 0, r.stderr
    assert WEB_REF in r.stdout, r.stdout
    assert WEB_REF in svc.ctd.lines("images", "ls", "-q", namespace="svc-import")


def test_changed_entry_is_replaced_and_a_dropped_one_removed(svc):
    path = svc.state_dir / "services.yaml"
    good = path.read_text()
    base = good if "\n  web:\n" in good else good + WEB_ENTRY
    port = free_port_not(svc.nats_port, svc.prom_port)
    write_services(svc, base + f'    ports: ["127.0.0.1:{port}:8000"]\n')
    old_pid = service_pid(svc, "web")
    try:
        svc.restart()
        # Replaced: a new container (new task) with the published port of the new entry.
        harness.wait_until(lambda: service_pid(svc, "web") not in (None, old_pid), 60,
                           "the replaced web task")
        r = harness.wait_until(
            lambda: (x := harness.http_request("127.0.0.1", port, "GET", "/index.html",
                                               timeout=2)).status == 200 and x,
            30, f"web on its published port {port}")
        assert r.text == "hello from web\n"
        assert service_row(svc, "web")["RESTARTS"] == "0"
        # Dropped from the file: stopped and removed, its port closed.
        write_services(svc, good.replace(WEB_ENTRY, ""))
        svc.restart()
        harness.wait_until(lambda: service_row(svc, "web") is None, 60, "web removed")
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        write_services(svc, good)


def seen(daemon, name):
    r = daemon.invoke(f"{name}.{NS}", "/_/seen", method="GET")
    assert r.status == 200, r
    return r.text.split()


def test_async_calls_survive_the_nats_container_killed(svc, fn_image):
    """100 async calls; the supervised NATS container is SIGKILLed after 30 were accepted and 4
    ran (some in flight, most still queued). While it is down async calls answer 503, never 202; the supervisor restarts
    it on the same JetStream store (./nats under the state dir), so every call given a 202,
    before or after the kill, runs."""
    harness.wait_until(lambda: nats_info(svc.nats_port), 90, "NATS up")
    name = "async-%06x" % random.getrandbits(24)
    fast = {"com.openfaas.retry.min_wait": "200ms", "com.openfaas.retry.max_wait": "1s"}
    try:
        deploy(svc, name, fn_image.refs["echo"], annotations=fast)
        path = f"/async-function/{name}.{NS}/_/record?ms=200"
        accepted, refused = [], 0
        deadline = time.monotonic() + 180
        while len(accepted) < 30 and time.monotonic() < deadline:  # until the worker is up
            r = svc.request("POST", path, b"x", auth=False, timeout=30)
            assert r.status in (202, 503), r
            if r.status == 202:
                accepted.append(r.headers["X-Call-Id"])
        assert len(accepted) == 30, "async calls were not accepted before the kill"
        # Killed with calls in flight and more queued.
        harness.wait_until(lambda: len(seen(svc, name)) >= 4, 60, "4 calls to run")
        ran_at_kill = len(set(seen(svc, name)))
        pid = service_pid(svc, "nats")
        os.kill(pid, 9)
        attempts = 0
        while len(accepted) < 100 and time.monotonic() < deadline and attempts < 5000:
            attempts += 1
            r = svc.request("POST", path, b"x", auth=False, timeout=30)
            assert r.status in (202, 503), r
            if r.status == 202:
                accepted.append(r.headers["X-Call-Id"])
            else:
                refused += 1
                assert r.headers.get("X-OpenFaaS-Internal") == "proxy", r
                time.sleep(0.05)  # paces the polling of NATS's return, not a synchronisation
        print(f"NATS killed with {30 - ran_at_kill} of 30 calls not yet run; {refused} calls "
              f"answered 503 until it was back; {len(accepted)} accepted")
        assert ran_at_kill < 30, "the queue was empty at the kill: nothing tested"
        assert refused, "no 503 while the NATS container was down"
        assert len(accepted) == 100, "async calls did not come back after NATS restarted"
        assert service_pid(svc, "nats") not in (None, pid), "NATS was not restarted"
        want = set(accepted)
        try:
            harness.wait_until(lambda: want <= set(seen(svc, name)), 120,
                               "every accepted call to run", interval=0.5)
        except TimeoutError:
            missing = want - set(seen(svc, name))
            raise AssertionError(f"{len(missing)} of 100 accepted calls never ran") from None
        runs = seen(svc, name)
        print(f"{sum(1 for c in want if runs.count(c) > 1)} calls ran twice")
    finally:
        remove(svc, name)


def prometheus_query(svc, promql):
    query = "/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    r = harness.http_request("127.0.0.1", svc.prom_port, "GET", query, timeout=5)
    return r.json()["data"]["result"] if r.status == 200 else []


def test_prometheus_counts_the_invocations_made(svc, fn_image):
    """K sync invocations of a fresh function: Prometheus, scraping the gateway, sums
    gateway_function_invocation_total for it to exactly K."""
    name = "counted-%06x" % random.getrandbits(24)
    calls = 7
    try:
        r = svc.deploy(name, fn_image.refs["echo"], namespace=NS)
        assert r.status in (200, 202), r
        # Ready without invoking it (deploy()'s health probes would count).
        harness.wait_until(
            lambda: (d := svc.request("GET", f"/system/function/{name}?namespace={NS}")).status
            == 200 and d.json().get("availableReplicas", 0) >= 1, 60, f"{name} ready")
        for i in range(calls):
            r = svc.invoke(f"{name}.{NS}", body=f"call {i}".encode())
            assert r.status == 200 and r.text == f"call {i}", r
        promql = f'sum(gateway_function_invocation_total{{function_name="{name}.{NS}"}})'

        def counted():
            result = prometheus_query(svc, promql)
            return result and float(result[0]["value"][1]) == calls
        try:
            harness.wait_until(counted, 120, f"Prometheus to count {calls} invocations",
                               interval=1)
        except TimeoutError:
            raise AssertionError(f"Prometheus has {prometheus_query(svc, promql)} for {promql}, "
                                 f"not {calls}") from None
        up = prometheus_query(svc, 'up{job="gateway"}')
        assert up and up[0]["value"][1] == "1", up
    finally:
        remove(svc, name)
