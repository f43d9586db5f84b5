"""The faasd .deb from install to purge, and the .rpm from install to erase (run by
tests/package/test_package.sh, which builds the packages and makes the private mount namespace
this needs; see there).

The daemon runs as faasd.service's ExecStart would (`/usr/sbin/faasd up`, the listening socket
passed as fd 3 with LISTEN_FDS/LISTEN_PID, held by this test as systemd's faasd.socket holds
it), with --config pointing at a file of test-only paths: the harness's private containerd,
CNI bridge and registry, so it runs beside anything else on the host."""

import glob
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))
import harness  # noqa: E402
from conftest import cni, containerd, registry, workdir  # noqa: E402,F401

OUT = os.environ.get("FAASD_PACKAGE_OUT", "")
FAASD = "/usr/sbin/faasd"
STATE = Path("/var/lib/faasd")
CONFIG = Path("/etc/faasd/faasd.conf")
INSTALLED = [FAASD, "/usr/lib/faasd/faasd-logger", "/usr/lib/faasd/fwatchdog",
             "/lib/systemd/system/faasd.service", "/lib/systemd/system/faasd.socket",
             str(CONFIG), "/usr/share/faasd/10-openfaas.conflist"]
MADE_BY_INSTALL = ["/etc/sysctl.d/60-faasd.conf", "/etc/cni/net.d/10-openfaas.conflist"]
RATE = 20          # requests per second during the restart
MIN_REQUESTS = 120

pytestmark = pytest.mark.skipif(
    not OUT or not os.environ.get("FAASD_PACKAGE_NS"),
    reason="run by tests/package/test_package.sh (packages, private mount namespace)")


class EchoImage(harness.FunctionImages):
    """The harness's test image, its echo variant only (the others cost time here)."""
    VARIANTS = {"echo": harness.FunctionImages.VARIANTS["echo"]}


@pytest.fixture(scope="module")
def echo_image(request, workdir, registry):
    images = EchoImage(workdir, registry)
    request.addfinalizer(images.close)
    images.build()
    return images


def apt(*args):
    return harness.run(["apt-get", "-y", "-o", "DPkg::Lock::Timeout=120", *args], timeout=300,
                       stdin=subprocess.DEVNULL,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def installed_version():
    r = harness.run(["dpkg-query", "-W", "-f=${Status} ${Version}", "faasd"], check=False)
    return r.stdout if r.returncode == 0 else ""


def check_installed(how):
    """What a package install leaves, whichever package: its files and what `faasd install`
    made, the state dir 0700 and a 40-character password 0600. Returns the password's file and
    text."""
    for path in INSTALLED + MADE_BY_INSTALL:
        assert os.path.exists(path), f"{path} missing after {how}"
    assert stat.S_IMODE(STATE.stat().st_mode) == 0o700
    password_file = STATE / "secrets" / "basic-auth-password"
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    password = password_file.read_text()
    assert len(password.strip()) == 40
    return password_file, password


class ActivatedDaemon:
    """faasd with its listener handed over, systemd-style; the socket outlives restarts.
    Without `config` it reads /etc/faasd/faasd.conf, as the unit's ExecStart does."""

    def __init__(self, workdir, config=None, address=("127.0.0.1", 0)):
        self.config = config
        self.log_path = Path(workdir) / "faasd-package.log"
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(address)
        self.listener.listen(4096)
        self.port = self.listener.getsockname()[1]
        self.proc = None
        self.state_dir = None
        self.user = self.password = None

    def start(self, timeout=60):
        fd = self.listener.fileno()
        # bash, not sh: the held socket's number may have two digits. $$ is the pid faasd gets.
        script = (f"exec 3<&{fd} {fd}<&-; export LISTEN_PID=$$ LISTEN_FDS=1; "
                  f"exec {FAASD} up" + (f" --config={self.config}" if self.config else ""))
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(["bash", "-c", script], pass_fds=[fd], stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def healthy():
            if self.proc.poll() is not None:
                raise harness.HarnessError(f"faasd exited {self.proc.returncode} during start")
            return self.request("GET", "/healthz", auth=False, timeout=2).status == 200
        try:
            harness.wait_until(healthy, timeout, "packaged faasd GET /healthz")
        except (TimeoutError, harness.HarnessError) as exc:
            raise harness.HarnessError(f"{exc}\n{harness.tail(self.log_path)}") from None
        secrets = Path(self.state_dir) / "secrets"
        self.user = (secrets / "basic-auth-user").read_text().strip()
        self.password = (secrets / "basic-auth-password").read_text().strip()

    def stop(self, timeout=40):
        """SIGTERM, as systemd stops it; returns how long the drain and exit took."""
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=timeout)
        return time.monotonic() - t0

    def request(self, method, path, body=None, auth=True, timeout=30, headers=None):
        headers = dict(headers or {})
        if auth:
            import base64
            token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            headers["Authorization"] = "Basic " + token
        if isinstance(body, dict):
            headers["Content-Type"] = "application/json"
        return harness.http_request("127.0.0.1", self.port, method, path, body, headers,
                                    timeout)

    def rss_kib(self):
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def close(self):
        try:
            self.stop()
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.listener.close()


class PacedLoad:
    """POSTs to a function at `rate` per second, each on a new connection in its own thread,
    until stopped; remembers every failure."""

    def __init__(self, daemon, function, rate):
        self.daemon, self.function, self.rate = daemon, function, rate
        self.sent = 0
        self.failures = []
        self.threads = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.pacer = threading.Thread(target=self._pace)

    def _one(self, i):
        try:
            r = self.daemon.request("POST", f"/function/{self.function}", body=f"req-{i}",
                                    auth=False, timeout=30)
            ok = r.status == 200 and r.text == f"req-{i}"
            detail = f"HTTP {r.status} {r.text[:100]!r}"
        except Exception as exc:  # connection refused or reset, timeout: all failures
            ok, detail = False, repr(exc)
        if not ok:
            with self.lock:
                self.failures.append((i, detail))

    def _pace(self):
        t0 = time.monotonic()
        while not self.stopping.is_set() and self.sent < 100 * MIN_REQUESTS:
            t = threading.Thread(target=self._one, args=(self.sent,))
            t.start()
            self.threads.append(t)
            self.sent += 1
            self.stopping.wait(max(0.0, t0 + self.sent / self.rate - time.monotonic()))

    def start(self):
        self.pacer.start()

    def stop(self):
        self.stopping.set()
        self.pacer.join(timeout=10)
        for t in self.threads:
            t.join(timeout=60)


def test_package_install_restart_upgrade_purge(workdir, containerd, cni, echo_image, capsys):
    debs = sorted(glob.glob(os.path.join(OUT, "faasd_*.deb")))
    assert len(debs) == 2, f"want revisions 1 and 2 in {OUT}: {debs}"
    numbers = {"deb (--fast: gzip -1) bytes": os.path.getsize(debs[0])}

    # -- install -------------------------------------------------------------------------------
    assert installed_version() == "", "a faasd package is installed already"
    out = apt("install", debs[0]).stdout
    assert "faas-cli login" in out, f"postinst printed no login hint:\n{out}"
    assert installed_version().startswith("install ok installed 0.1.0-1")
    password_file, host_password = check_installed("install")
    for path in (FAASD, "/usr/lib/faasd/faasd-logger", "/usr/lib/faasd/fwatchdog"):
        numbers[f"{path} bytes"] = os.path.getsize(path)
    # Shared only what README's "What is statically linked" lists: glibc, cnats and OpenSSL.
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.*?)\]",
                        harness.run(["readelf", "-d", FAASD]).stdout)
    allowed = re.compile(r"lib[cm]\.so\.6|ld-linux.*|libnats\.so\..*|libssl\.so\.3|libcrypto\.so\.3")
    assert needed and not [lib for lib in needed if not allowed.fullmatch(lib)], needed
    shown = harness.run([FAASD, "config"]).stdout  # the shipped file parses
    assert host_password.strip() not in shown
    harness.run([FAASD, "install"])  # again: idempotent, the password stays
    assert password_file.read_text() == host_password

    # -- the daemon, as ExecStart runs it, on test-only paths -----------------------------------
    state = Path(workdir) / "package-state"
    config = Path(workdir) / "faasd-package.conf"
    # No services and no async: this test's daemon shares the host's network, where an
    # appliance may publish NATS on 4222 and run /openfaas/nats (tests/package/test_airgap.py
    # runs them, in a network namespace of its own).
    lines = [f"state-dir = {state}", f"containerd-address = {containerd.address}",
             f"nameserver = {harness.NAMESERVER}", "shutdown-grace = 10",
             "services = off", "nats-url ="]
    lines += [flag[2:].replace("=", " = ", 1) for flag in cni.flags()]
    config.write_text("\n".join(lines) + "\n")
    daemon = ActivatedDaemon(workdir, config)
    daemon.state_dir = state
    try:
        daemon.start()
        r = daemon.request("POST", "/system/functions",
                           {"service": "pkg-echo", "image": echo_image.refs["echo"]})
        assert r.status in (200, 202), r
        harness.wait_until(
            lambda: daemon.request("POST", "/function/pkg-echo", body="hi").text == "hi",
            60, "pkg-echo to answer")
        numbers["idle RSS of faasd, one function deployed (KiB)"] = daemon.rss_kib()
        test_password = daemon.password

        # -- restart under load, the socket held ------------------------------------------------
        load = PacedLoad(daemon, "pkg-echo", RATE)
        load.start()
        try:
            harness.wait_until(lambda: load.sent >= 2 * RATE, 10, "2 s of load before the restart")
            numbers["SIGTERM to exit under load (s)"] = round(daemon.stop(), 2)
            t0 = time.monotonic()
            daemon.start()
            numbers["restart to healthy (s)"] = round(time.monotonic() - t0, 2)
            harness.wait_until(lambda: load.sent >= MIN_REQUESTS, 30,
                               f"{MIN_REQUESTS} requests sent")
        finally:
            load.stop()
        numbers["requests across the restart"] = load.sent
        numbers["failed requests across the restart"] = len(load.failures)
        assert load.failures == [], f"{len(load.failures)} of {load.sent} failed: " \
                                    f"{load.failures[:5]}\n{harness.tail(daemon.log_path, 4000)}"

        # -- upgrade to revision 2 ----------------------------------------------------------
        with open(CONFIG, "a") as f:
            f.write("paused-ttl = 600  # edited by test_package\n")
        edited = CONFIG.read_text()
        apt("install", debs[1])
        assert installed_version().startswith("install ok installed 0.1.0-2")
        assert CONFIG.read_text() == edited, "the edited conffile was replaced"
        assert "# /etc/faasd/faasd.conf:" in harness.run([FAASD, "config"]).stdout
        assert password_file.read_text() == host_password
        daemon.stop()  # the upgrade's restart (postinst, under systemd)
        daemon.start()
        assert daemon.password == test_password
        assert daemon.request("POST", "/function/pkg-echo", body="after").text == "after"
        r = daemon.request("DELETE", "/system/functions", {"functionName": "pkg-echo"})
        assert r.status in (200, 202), r
    finally:
        daemon.close()

    # -- purge ---------------------------------------------------------------------------------
    apt("purge", "faasd")
    assert installed_version() == "" or "not-installed" in installed_version()
    left = [p for p in INSTALLED + MADE_BY_INSTALL + ["/etc/faasd", "/usr/lib/faasd"]
            if os.path.lexists(p)]
    assert left == [], f"left after purge: {left}"
    assert os.listdir(STATE) == [], f"left in {STATE}: {os.listdir(STATE)}"
    with capsys.disabled():
        print("\ntest_package numbers:")
        for k, v in numbers.items():
            print(f"  {k}: {v}")


def rpm(db, *args, check=True):
    """Debian's rpm on a database of the test's own (the host's rpm database is not touched);
    --nodeps: containerd, runc and the CNI plugins come from dpkg here, which rpm cannot see."""
    force = ["--force-debian"] if args[0] in ("-i", "-U", "-e") else []
    return harness.run(["rpm", "--dbpath", str(db), *force, *args], check=check, timeout=120)


def test_rpm_install_upgrade_erase(workdir):
    rpms = sorted(glob.glob(os.path.join(OUT, "faasd-*.rpm")))
    assert len(rpms) == 2, f"want revisions 1 and 2 in {OUT}: {rpms}"
    assert installed_version() == "" or "not-installed" in installed_version(), \
        "the .deb is still installed"
    db = Path(workdir) / "rpmdb"
    db.mkdir()
    rpm(db, "--initdb")
    try:
        # -- install: the files, then %post's `faasd install` -----------------------------------
        r = rpm(db, "-i", "--nodeps", rpms[0])
        assert "faas-cli login" in r.stdout + r.stderr, f"%post printed no login hint:\n{r}"
        assert rpm(db, "-q", "faasd").stdout.strip().startswith("faasd-0.1.0-1")
        password_file, password = check_installed("rpm -i")
        assert "faasd" in harness.run([FAASD, "version"]).stdout
        assert password.strip() not in harness.run([FAASD, "config"]).stdout
        configs = rpm(db, "-qc", "faasd").stdout.split()
        assert configs == [str(CONFIG)], f"config files: {configs}"

        # -- upgrade: the edited config and the password stay ---------------------------------
        with open(CONFIG, "a") as f:
            f.write("paused-ttl = 600  # edited by test_rpm\n")
        edited = CONFIG.read_text()
        rpm(db, "-U", "--nodeps", rpms[1])
        assert rpm(db, "-q", "faasd").stdout.strip().startswith("faasd-0.1.0-2")
        assert CONFIG.read_text() == edited, "the edited config was replaced"
        assert "# /etc/faasd/faasd.conf:" in harness.run([FAASD, "config"]).stdout
        assert password_file.read_text() == password

        # -- erase: the package's files go; the edited config is kept as .rpmsave and the
        # state stays (rpm has no purge) --------------------------------------------------------
        rpm(db, "-e", "--nodeps", "faasd")
        assert rpm(db, "-q", "faasd", check=False).returncode != 0
        left = [p for p in INSTALLED if os.path.lexists(p)]
        assert left == [], f"left after rpm -e: {left}"
        assert os.path.exists(f"{CONFIG}.rpmsave")
        assert password_file.read_text() == password
    finally:
        if rpm(db, "-q", "faasd", check=False).returncode == 0:
            rpm(db, "-e", "--nodeps", "--noscripts", "faasd", check=False)
        # What `faasd install` made and the kept config: the purge of the .deb's test removes
        # these too.
        harness.run(["rm", "-rf", "/etc/faasd", "/usr/lib/faasd", "/usr/share/faasd",
                     *MADE_BY_INSTALL], check=False)
        for entry in os.listdir(STATE):
            harness.run(["rm", "-rf", str(STATE / entry)], check=False)
