"""The appliance with no network at all (run by tests/package/test_airgap.sh, which builds the
package with its sidecar images and makes the network and mount namespaces this needs).

In a network namespace where only `lo` is up: the .deb installs, the daemon starts as
faasd.service's ExecStart (`/usr/sbin/faasd up`, reading /etc/faasd/faasd.conf, the socket on
0.0.0.0:8080 held by the test as faasd.socket holds it), imports NATS and Prometheus from
/usr/share/faasd/images and runs them; a function built by `faasd build --archive` and brought
in by `faasd image import` is deployed through the API and invoked, sync and async (a callback
to a loopback listener); Prometheus scrapes the gateway. The kernel's no-route counters of the
namespace, and a counting rule on what would be forwarded out, show that nothing tried to
leave: not the package install, the daemon, containerd, the sidecars nor the function."""

import errno
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.parse
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))
import harness  # noqa: E402
from test_package import ActivatedDaemon, installed_version  # noqa: E402

DEB = os.environ.get("FAASD_AIRGAP_DEB", "")
TAG = os.environ.get("FAASD_AIRGAP_TAG", "")
FAASD = "/usr/sbin/faasd"
CONFIG = Path("/etc/faasd/faasd.conf")
IMAGES = Path("/usr/share/faasd/images")
# cgroups (v1) are host-wide whatever the namespaces: an appliance on this host runs
# /openfaas/nats, so the test's services take a namespace of their own; its function a name of
# its own for the same reason.
SERVICES_NS = f"airgap-{TAG}"
FUNCTION = f"echo-{TAG}"
SUBNET = "10.62.0.0/16"  # the default bridge's, private to this network namespace
NATS_PORT, PROMETHEUS_PORT, GATEWAY_PORT = 4222, 9090, 8080  # the defaults
EGRESS_COMMENT = "airgap-egress"

pytestmark = pytest.mark.skipif(
    not DEB or not TAG or not os.environ.get("FAASD_AIRGAP_NS"),
    reason="run by tests/package/test_airgap.sh (package, network and mount namespaces)")

numbers = {}


def no_route_counts():
    """The namespace's counters of packets dropped for want of a route, IPv4 and IPv6: sent by
    a local process (OutNoRoutes: a connect or sendto that got ENETUNREACH) or to be forwarded
    for a container (InNoRoutes)."""
    def table(path, prefix):
        lines = [l.split() for l in Path(path).read_text().splitlines() if l.startswith(prefix)]
        out = {}
        for names, values in zip(lines[0::2], lines[1::2]):
            out.update({f"{names[0]}{n}": int(v) for n, v in zip(names[1:], values[1:])})
        return out
    v4 = {**table("/proc/net/snmp", "Ip:"), **table("/proc/net/netstat", "IpExt:")}
    v6 = dict(l.split() for l in Path("/proc/net/snmp6").read_text().splitlines() if l.strip())
    return {"Ip:OutNoRoutes": v4["Ip:OutNoRoutes"], "IpExt:InNoRoutes": v4["IpExt:InNoRoutes"],
            "Ip6OutNoRoutes": int(v6["Ip6OutNoRoutes"]), "Ip6InNoRoutes": int(v6["Ip6InNoRoutes"])}


def egress_packets():
    """Packets the counting rule saw: arriving on an interface other than lo (the bridge: from
    a container) for an address that is neither the host's, the subnet's nor multicast."""
    out = harness.run(["iptables-save", "-c", "-t", "raw"]).stdout
    for line in out.splitlines():
        if EGRESS_COMMENT in line:
            return int(line.split("]", 1)[0].lstrip("[").split(":")[0])
    raise harness.HarnessError(f"no {EGRESS_COMMENT} rule in the raw table:\n{out}")


def dpkg(*args):
    """dpkg, as an air-gapped host installs a .deb (apt-get's own install and purge are
    test_package's; apt costs 5-30 s more here reading its package lists). Another apt or dpkg
    on the host holding the lock is waited for, up to a deadline."""
    def done():
        r = harness.run(["dpkg", *args], check=False, timeout=300, stdin=subprocess.DEVNULL,
                        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if r.returncode != 0 and "lock" in r.stderr:
            return None
        if r.returncode != 0:
            raise harness.HarnessError(f"dpkg {' '.join(args)}: {r.stderr.strip()}")
        return r
    return harness.wait_until(done, 600, f"dpkg {' '.join(args)} (dpkg's lock)", interval=1)


def connect_errno(family, address, timeout=5):
    """errno of a TCP connect (0 when it connected) and how long it took."""
    t0 = time.monotonic()
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(address)
            code = 0
        except socket.timeout:
            code = errno.ETIMEDOUT
        except OSError as exc:
            code = exc.errno
    return code, time.monotonic() - t0


@pytest.fixture(scope="module")
def offline():
    """The namespace as test_airgap.sh left it: only lo. Probes the way out once (which the
    no-route counter must see, or it proves nothing) and returns what it found."""
    routes = json.loads(harness.run(["ip", "-j", "route", "show", "table", "all"]).stdout)
    routes6 = json.loads(harness.run(["ip", "-j", "-6", "route", "show", "table", "all"]).stdout)
    links = json.loads(harness.run(["ip", "-j", "link"]).stdout)
    before = no_route_counts()
    probes = {
        "tcp 1.1.1.1:53": connect_errno(socket.AF_INET, ("1.1.1.1", 53)),
        "tcp [2606:4700:4700::1111]:53": connect_errno(socket.AF_INET6,
                                                       ("2606:4700:4700::1111", 53)),
    }
    t0 = time.monotonic()
    try:
        socket.getaddrinfo("deb.debian.org", 80, socket.AF_INET, socket.SOCK_STREAM)
        lookup = "resolved"
    except socket.gaierror as exc:
        lookup = exc.strerror
    probes["lookup deb.debian.org"] = (lookup, time.monotonic() - t0)
    after = no_route_counts()
    return {"routes": routes + routes6, "links": links, "probes": probes,
            "probe_counts": (before, after)}


def test_nothing_routes_out(offline):
    ifaces = sorted(l["ifname"] for l in offline["links"] if "UP" in l.get("flags", []))
    assert ifaces == ["lo"], f"links up: {ifaces}"
    assert all(r.get("dev") == "lo" for r in offline["routes"]), \
        f"a route not through lo: {[r for r in offline['routes'] if r.get('dev') != 'lo']}"
    for what, (code, took) in offline["probes"].items():
        if what.startswith("tcp"):
            assert code == errno.ENETUNREACH, f"{what}: {errno.errorcode.get(code, code)}"
        else:
            assert code != "resolved", f"{what} resolved"
        assert took < 5, f"{what} took {took:.1f} s"
        numbers[f"{what} (ms)"] = f"{code if isinstance(code, str) else errno.errorcode[code]}" \
                                  f" in {took * 1000:.1f}"
    before, after = offline["probe_counts"]
    assert after["Ip:OutNoRoutes"] > before["Ip:OutNoRoutes"] and \
        after["Ip6OutNoRoutes"] > before["Ip6OutNoRoutes"], \
        f"the probes went unseen by the no-route counters: {before} -> {after}"


@pytest.fixture(scope="module")
def appliance(request, offline):
    """Installs the package, starts a private containerd at the default address and the daemon
    as its unit does; the state the tests share. Cleans up in reverse, also after a failure."""
    # test_airgap.sh's scratch folder, which its trap removes whatever happened here.
    workdir = tempfile.mkdtemp(prefix="py-", dir=os.environ.get("FAASD_AIRGAP_WORK", "/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(workdir, ignore_errors=True))
    baseline = offline["probe_counts"][1]
    harness.run(["iptables", "-w", "-t", "raw", "-A", "PREROUTING", "!", "-i", "lo",
                 "!", "-d", SUBNET, "-m", "addrtype", "!", "--dst-type",
                 "LOCAL,MULTICAST,BROADCAST", "-m", "comment", "--comment", EGRESS_COMMENT])

    t0 = time.monotonic()
    dpkg("-i", DEB)
    numbers["dpkg -i (s)"] = round(time.monotonic() - t0, 2)
    assert installed_version().startswith("install ok installed")

    # containerd at /run/containerd/containerd.sock (a tmpfs of the test's): the daemon's and
    # `faasd image import`'s default. Its root, with the images, under the workdir.
    ctd = harness.Containerd(workdir)
    ctd.address = "/run/containerd/containerd.sock"
    ctd.state = Path("/run/containerd/state")
    request.addfinalizer(lambda: remove_cgroups(SERVICES_NS))  # runs after ctd.close
    request.addfinalizer(ctd.close)
    ctd.start()

    with open(CONFIG, "a") as f:
        f.write("\n# test_airgap: what an air-gapped host sets (README), and a services\n"
                "# namespace of the test's own (cgroups are host-wide)\n"
                "pull-policy = IfNotPresent\n"
                f"services-namespace = {SERVICES_NS}\n")
    daemon = ActivatedDaemon(workdir, address=("0.0.0.0", GATEWAY_PORT))
    daemon.state_dir = Path("/var/lib/faasd")
    request.addfinalizer(daemon.close)
    request.addfinalizer(lambda: print("--- faasd log (tail) ---\n" +
                                       harness.tail(daemon.log_path, 6000)))
    t0 = time.monotonic()
    daemon.start(timeout=60)
    numbers["faasd up to /healthz 200 (s)"] = round(time.monotonic() - t0, 2)
    return {"daemon": daemon, "containerd": ctd, "started": t0, "baseline": baseline,
            "workdir": Path(workdir)}


def remove_cgroups(ns):
    """The services namespace's cgroup folders (runc leaves the namespace's own), if empty."""
    for parent in Path("/sys/fs/cgroup").glob(f"*/{ns}"):
        for child in parent.iterdir():
            if child.is_dir():
                try:
                    child.rmdir()
                except OSError:
                    pass
        try:
            parent.rmdir()
        except OSError:
            pass


def nats_info():
    with socket.create_connection(("127.0.0.1", NATS_PORT), timeout=2) as s:
        return s.recv(4096).startswith(b"INFO ")


def prometheus(path):
    return harness.http_request("127.0.0.1", PROMETHEUS_PORT, "GET", path, timeout=5)


def test_sidecars_start_from_the_packaged_archives(appliance):
    daemon = appliance["daemon"]
    assert sorted(p.name for p in IMAGES.glob("*.tar")) == ["nats.tar", "prometheus.tar"]
    harness.wait_until(nats_info, 60, "NATS to answer on 127.0.0.1:4222")
    numbers["faasd up to NATS answering (s)"] = round(time.monotonic() - appliance["started"], 2)
    harness.wait_until(lambda: prometheus("/-/ready").status == 200, 60,
                       "Prometheus /-/ready on 127.0.0.1:9090")
    numbers["faasd up to Prometheus ready (s)"] = \
        round(time.monotonic() - appliance["started"], 2)
    log = daemon.log_path.read_text()
    for name in ("nats.tar", "prometheus.tar"):
        assert re.search(rf"services: imported \S+ .* from {IMAGES}/{name}", log), \
            f"{name} not imported from {IMAGES}:\n{log}"
    images = appliance["containerd"].lines("images", "ls", "-q", namespace=SERVICES_NS)
    assert any("nats" in i for i in images) and any("prometheus" in i for i in images), images


def archive_file(archive, path):
    """The bytes of `path` in the single layer of an OCI archive (packaging/images/mkimage.py)."""
    with tarfile.open(archive) as outer:
        index = json.load(outer.extractfile("index.json"))
        digest = index["manifests"][0]["digest"].split(":", 1)[1]
        manifest = json.load(outer.extractfile(f"blobs/sha256/{digest}"))
        layer = manifest["layers"][0]["digest"].split(":", 1)[1]
        with tarfile.open(fileobj=outer.extractfile(f"blobs/sha256/{layer}"), mode="r:gz") as t:
            return t.extractfile(path).read()


def test_sidecars_look_names_up_in_hosts_first(appliance):
    """Without /etc/nsswitch.conf, glibc and Go ask DNS before /etc/hosts: Prometheus then
    sent a query for "gateway" (which /etc/hosts names) to the nameserver at each new scrape
    connection, and test_nothing_tried_to_leave failed whenever one fell inside its window."""
    for name in ("nats.tar", "prometheus.tar"):
        assert archive_file(IMAGES / name, "etc/nsswitch.conf") == b"hosts: files dns\n", name


@pytest.fixture(scope="module")
def function(appliance):
    """examples/echo built into an archive by the packaged `faasd build`, imported with
    `faasd image import` (both at their defaults), deployed through the API."""
    daemon, work = appliance["daemon"], appliance["workdir"]
    archive = work / "echo.tar"
    t0 = time.monotonic()
    built = harness.run([FAASD, "build", f"--archive={archive}", f"--output={work / 'oci'}",
                         str(REPO / "examples" / "echo")], timeout=120,
                        env={**os.environ, "SOURCE_DATE_EPOCH": "0"})
    name, ref, digest = built.stdout.split()
    imported = harness.run([FAASD, "image", "import", str(archive)], timeout=120).stdout
    assert f"openfaas-fn\t{ref}\t{digest}" in imported, imported
    numbers["faasd build --archive + faasd image import (s)"] = round(time.monotonic() - t0, 2)
    t0 = time.monotonic()
    r = daemon.request("POST", "/system/functions", {"service": FUNCTION, "image": ref})
    assert r.status in (200, 202), r
    harness.wait_until(
        lambda: daemon.request("GET", f"/function/{FUNCTION}/_/health", auth=False,
                               timeout=5).status == 200, 60, f"{FUNCTION} to answer")
    numbers["deploy to answering (s)"] = round(time.monotonic() - t0, 2)
    return FUNCTION


def test_imported_function_answers_sync(appliance, function):
    r = appliance["daemon"].request("POST", f"/function/{function}", body="offline hello",
                                    auth=False)
    assert r.status == 200 and r.text == "offline hello", r


def test_async_call_runs_and_calls_back(appliance, function):
    daemon = appliance["daemon"]
    receiver = harness.CallbackReceiver()
    try:
        r = daemon.request("POST", f"/async-function/{function}", body="queued offline",
                           headers={"X-Callback-Url": receiver.url()}, auth=False)
        assert r.status == 202, r
        call_id = r.headers.get("X-Call-Id")
        assert call_id
        calls = harness.wait_until(lambda: receiver.by_call_id(call_id), 30,
                                   f"the callback of async call {call_id}")
        method, _, headers, body = calls[0]
        assert (method, headers.get("x-function-status"), body) == \
            ("POST", "200", b"queued offline"), calls[0]
    finally:
        receiver.close()


def test_prometheus_scrapes_the_gateway(appliance, function):
    query = "/api/v1/query?" + urllib.parse.urlencode({"query": 'up{job="gateway"}'})

    def up():
        result = prometheus(query).json()["data"]["result"]
        return result and result[0]["value"][1] == "1"
    harness.wait_until(up, 30, 'Prometheus up{job="gateway"} == 1')
    numbers['faasd up to up{job="gateway"} == 1 (s)'] = \
        round(time.monotonic() - appliance["started"], 2)


def test_daemon_log_has_no_network_warning(appliance, function):
    """No warning or error about networks, DNS or pulls (nor any other, so a new one is seen
    and judged here)."""
    lines = appliance["daemon"].log_path.read_text().splitlines()
    bad = [l for l in lines if re.match(r"\S+ (warning|error) ", l)]
    assert bad == [], "warnings or errors:\n" + "\n".join(bad)
    assert not [l for l in lines if re.search(r"\bpull(ed|ing)?\b.*(docker\.io|registry)", l)]


def test_nothing_tried_to_leave(appliance, function):
    """Since the probes: no connect or send without a route, no packet from a container to be
    forwarded out (the install, containerd, the daemon, NATS, Prometheus and the function all
    ran in that time)."""
    counts, egress = no_route_counts(), egress_packets()
    assert counts == appliance["baseline"] and egress == 0, \
        f"no-route counters {appliance['baseline']} -> {counts}, egress rule {egress} packets; " \
        f"what each network namespace sent:\n{netns_senders()}"


def netns_senders():
    """One line per network namespace other than ours: its processes' names, and the UDP
    datagrams and TCP connects it made (a DNS query or a connect out shows there), with its
    resolv.conf's nameservers: the diagnosis when something tried to leave."""
    own = os.stat("/proc/self/ns/net").st_ino
    spaces = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            ino = os.stat(f"/proc/{pid}/ns/net").st_ino
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if ino != own:
            spaces.setdefault(ino, []).append((pid, comm))
    lines = []
    for ino, procs in spaces.items():
        pid = procs[0][0]
        try:
            snmp = Path(f"/proc/{pid}/net/snmp").read_text().splitlines()
            resolv = Path(f"/proc/{pid}/root/etc/resolv.conf").read_text()
        except OSError as exc:
            lines.append(f"netns {ino}: {exc}")
            continue
        stats = {}
        for names, values in zip(snmp[0::2], snmp[1::2]):
            stats.update({f"{names.split()[0]}{n}": v
                          for n, v in zip(names.split()[1:], values.split()[1:])})
        servers = [l.split()[1] for l in resolv.splitlines() if l.startswith("nameserver")]
        lines.append(f"netns {ino} {sorted({c for _, c in procs})}: "
                     f"Udp:OutDatagrams {stats.get('Udp:OutDatagrams')}, "
                     f"Tcp:ActiveOpens {stats.get('Tcp:ActiveOpens')}, nameservers {servers}")
    return "\n".join(lines)


def test_an_always_pull_fails_at_once_and_says_why(appliance):
    """The other side, last (it is the one thing that tries the network): a deploy that must
    pull fails quickly, naming the image and the cause."""
    daemon = appliance["daemon"]
    t0 = time.monotonic()
    r = daemon.request("POST", "/system/functions",
                       {"service": f"pull-{TAG}", "image": "docker.io/library/alpine:3.19",
                        "annotations": {"faasd.pull-policy": "Always"}})
    took = time.monotonic() - t0
    assert r.status >= 400 and "alpine" in r.text, r
    assert took < 10, f"{took:.1f} s"
    numbers["an Always pull failing offline (s)"] = f"{took:.2f}: HTTP {r.status} {r.text.strip()}"


def test_purge_leaves_nothing(appliance):
    """Last: the daemon stopped, `dpkg --purge` (the shell's trap purges too, should this fail
    before it)."""
    appliance["daemon"].close()
    t0 = time.monotonic()
    dpkg("--purge", "faasd")
    numbers["dpkg --purge (s)"] = round(time.monotonic() - t0, 2)
    assert "installed" not in installed_version().replace("not-installed", "")
    left = [p for p in (FAASD, "/usr/lib/faasd", "/etc/faasd", str(IMAGES.parent),
                        "/etc/sysctl.d/60-faasd.conf") if os.path.lexists(p)]
    assert left == [], f"left after purge: {left}"


def test_zz_numbers(capsys):
    with capsys.disabled():
        print("\ntest_airgap numbers:")
        for k, v in numbers.items():
            print(f"  {k}: {v}")
