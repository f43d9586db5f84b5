"""Pieces of the integration test bench: a private containerd, a loopback registry, a test
image built without Docker, a private CNI bridge, and the faasd daemon under test.

Every piece owns what it creates and removes it in close(), which is written to be safe to call
after a partial start (the fixtures call it from finalizers, so failures still clean up).
Waits poll with a deadline; nothing sleeps to synchronise.
"""

import base64
import http.client
import ipaddress
import json
import os
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FAASD_BIN = os.environ.get("FAASD_BIN", str(REPO / "build" / "src" / "faasd"))
FNSERVER_BIN = os.environ.get("FNSERVER_BIN", str(REPO / "build" / "tests" / "fixtures" / "fnserver"))
FAASD_LOGGER_BIN = os.environ.get("FAASD_LOGGER_BIN",
                                  str(REPO / "build" / "src" / "logs" / "faasd-logger"))
TASK_METRICS_BIN = os.environ.get("TASK_METRICS_BIN",
                                  str(REPO / "build" / "tests" / "fixtures" / "task-metrics"))
NAMESPACE = "openfaas-fn"
NAMESERVER = "198.51.100.53"  # TEST-NET-2: never answers, only checked in resolv.conf


class HarnessError(Exception):
    pass


def scrape_metrics(api):
    """GET /metrics (no credentials) as {series: value}, e.g. {'up{job="x"}': 1.0}."""
    m = api.request("GET", "/metrics", auth=False)
    assert m.status == 200 and m.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for line in m.text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            samples[series] = float(value)
    return samples


def wait_until(predicate, timeout, what, interval=0.1):
    """Polls predicate() until it returns a truthy value (returned) or the deadline passes.
    Exceptions count as "not yet", except HarnessError, which ends the wait at once."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except HarnessError:
            raise  # fatal: the thing we wait for is gone (process exited)
        except Exception as exc:  # polled states raise while not ready (connection refused)
            last_exc = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_exc!r})" if last_exc else ""
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}{detail}")
        time.sleep(interval)


def run(args, check=True, timeout=120, **kw):
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise HarnessError(
            f"{shlex.join(str(a) for a in args)}: exit {proc.returncode}: "
            f"{proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status(pid, key):
    """The first number of `key`'s line in /proc/PID/status (VmRSS in KiB, Threads, ...)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise HarnessError(f"no {key}: line in /proc/{pid}/status")


def tail(path, max_bytes=20000):
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return data[-max_bytes:].decode("utf-8", "replace")


def stop_process(proc, term_timeout=10):
    """SIGTERM, then SIGKILL after term_timeout; only the process we started, by its PID."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=term_timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def kill_process(proc):
    """SIGKILL (a crash, no clean shutdown) of a process we started, if it still runs."""
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


def pids_where(match):
    """PIDs of the processes whose argv (a list of bytes) satisfies match(argv)."""
    pids = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0] and match(cmd):
            pids.append(int(p.name))
    return pids


def unmount_under(*dirs):
    """Unmounts every mount point below dirs, deepest first."""
    prefixes = [str(Path(d).resolve()) + "/" for d in dirs]
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mnt = line.split()[4].encode().decode("unicode_escape")
            if any((mnt + "/").startswith(p) for p in prefixes):
                points.append(mnt)
    for mnt in sorted(set(points), key=len, reverse=True):
        if run(["umount", mnt], check=False).returncode != 0:
            run(["umount", "-l", mnt], check=False)


def cgroup_file(controller, container_id, name, namespace=NAMESPACE):
    """A task's cgroup v1 file, e.g. ("memory", id, "memory.limit_in_bytes"), stripped."""
    return (Path("/sys/fs/cgroup") / controller / namespace / container_id / name) \
        .read_text().strip()


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # http.client.HTTPMessage: case-insensitive get()
        self.body = body

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<{self.status} {self.text[:300]!r}>"


def http_request(host, port, method, path, body=None, headers=None, timeout=30):
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    elif isinstance(body, str):
        body = body.encode()
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = b"" if method == "HEAD" else resp.read()
        return Response(resp.status, resp.headers, data)
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
class Containerd:
    """Debian's containerd with private root, state and sockets."""

    DISABLED = [
        "io.containerd.grpc.v1.cri",
        "io.containerd.snapshotter.v1.aufs",
        "io.containerd.snapshotter.v1.btrfs",
        "io.containerd.snapshotter.v1.devmapper",
        "io.containerd.snapshotter.v1.zfs",
        "io.containerd.tracing.processor.v1.otlp",
        "io.containerd.internal.v1.tracing",
    ]

    def __init__(self, workdir):
        self.dir = Path(workdir) / "ctd"
        self.root = self.dir / "root"
        self.state = self.dir / "state"
        self.address = str(self.dir / "ctd.sock")
        self.log_path = self.dir / "containerd.log"
        self.proc = None

    def start(self, timeout=30):
        """Starts containerd; again after kill() it reuses root, state and address, as a
        restarted containerd does (its shims and their tasks lived on)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.state.mkdir(parents=True, exist_ok=True)
        config = self.dir / "config.toml"
        config.write_text(
            "version = 2\n"
            f'root = "{self.root}"\n'
            f'state = "{self.state}"\n'
            f"disabled_plugins = {json.dumps(self.DISABLED)}\n"
            "[grpc]\n"
            f'  address = "{self.address}"\n'
            "[ttrpc]\n"
            f'  address = "{self.address}.ttrpc"\n'
            "[debug]\n"
            '  address = ""\n'
            '  level = "info"\n'
            "[metrics]\n"
            '  address = ""\n')
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(["/usr/bin/containerd", "--config", str(config)],
                                     stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        log.close()

        def ready():
            if self.proc.poll() is not None:
                raise HarnessError(f"containerd exited {self.proc.returncode}:\n"
                                   f"{tail(self.log_path)}")
            return os.path.exists(self.address) and \
                self.ctr("version", check=False).returncode == 0
        try:
            wait_until(ready, timeout, "containerd socket " + self.address)
        except TimeoutError as exc:
            raise HarnessError(f"{exc}\n{tail(self.log_path)}") from None

    def kill(self):
        """SIGKILL: a crash. The shims and their tasks live on without it."""
        kill_process(self.proc)

    def ctr(self, *args, namespace=None, check=True, timeout=120):
        cmd = ["ctr", "--address", self.address]
        if namespace:
            cmd += ["--namespace", namespace]
        return run(cmd + [str(a) for a in args], check=check, timeout=timeout)

    def lines(self, *args, namespace=None):
        out = self.ctr(*args, namespace=namespace, check=False).stdout
        return [l.strip() for l in out.splitlines() if l.strip()]

    def running_tasks(self, function, namespace=NAMESPACE):
        """Ids of the function's replicas (containers "<function>-<8 hex>") whose task runs."""
        out = []
        for line in self.lines("tasks", "ls", namespace=namespace)[1:]:
            f = line.split()
            if f[0].startswith(function + "-") and len(f) >= 3 and f[2] == "RUNNING":
                out.append(f[0])
        return out

    def task_status(self, container_id, namespace=NAMESPACE):
        """The task's status as ctr shows it (RUNNING, PAUSED, STOPPED), or None without one."""
        for line in self.lines("tasks", "ls", namespace=namespace)[1:]:
            fields = line.split()
            if fields[0] == container_id and len(fields) >= 3:
                return fields[2]
        return None

    def task_pid(self, container_id, namespace=NAMESPACE):
        """PID of a running task, or None."""
        for line in self.lines("tasks", "ls", namespace=namespace)[1:]:
            fields = line.split()
            if fields[0] == container_id and len(fields) >= 3 and fields[2] == "RUNNING":
                return int(fields[1])
        return None

    def task_metrics(self, *container_ids, namespace=NAMESPACE, repeat=1, all_tasks=False):
        """containerd::TaskService's metrics of the tasks, through tests/fixtures/task-metrics:
        {"calls_ms": [...], "metrics": [...]} or, when the call fails, {"error", "code"}."""
        if not os.access(TASK_METRICS_BIN, os.X_OK):
            raise HarnessError(f"task-metrics binary {TASK_METRICS_BIN}: not found "
                               "(set TASK_METRICS_BIN)")
        args = [TASK_METRICS_BIN, f"--address={self.address}", f"--namespace={namespace}",
                f"--repeat={repeat}"] + (["--all"] if all_tasks else list(container_ids))
        proc = run(args, check=False, timeout=120)
        if proc.returncode not in (0, 1):
            raise HarnessError(f"task-metrics: exit {proc.returncode}: {proc.stderr.strip()}")
        return json.loads(proc.stdout)

    def remove_everything(self):
        for ns in self.lines("namespaces", "ls", "-q"):
            for task in self.lines("tasks", "ls", "-q", namespace=ns):
                self.ctr("tasks", "kill", "-a", "-s", "SIGKILL", task, namespace=ns, check=False)
            for task in self.lines("tasks", "ls", "-q", namespace=ns):
                try:
                    wait_until(lambda: self.ctr("tasks", "delete", task, namespace=ns,
                                                check=False).returncode == 0
                               or task not in self.lines("tasks", "ls", "-q", namespace=ns),
                               10, f"task {ns}/{task} to stop")
                except TimeoutError:
                    self.ctr("tasks", "delete", "-f", task, namespace=ns, check=False)
            for c in self.lines("containers", "ls", "-q", namespace=ns):
                self.ctr("containers", "delete", c, namespace=ns, check=False)

    def kill_task_processes(self):
        """SIGKILLs every process in the cgroup of each task bundle under our state dir."""
        for pidfile in self.state.glob("io.containerd.runtime.v2.task/*/*/init.pid"):
            ns, cid = pidfile.parent.parent.name, pidfile.parent.name
            for procs in Path("/sys/fs/cgroup").glob(f"*/{ns}/{cid}/cgroup.procs"):
                try:
                    pids = [int(x) for x in procs.read_text().split()]
                except OSError:
                    continue
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass

    def shim_pids(self):
        """containerd-shim processes serving this containerd (they outlive it if left)."""
        address = self.address.encode()
        return pids_where(lambda cmd: b"containerd-shim" in cmd[0] and address in cmd)

    def logger_pids(self):
        """faasd-logger processes (the shims' children) writing below this bench's workdir."""
        workdir = str(self.dir.parent).encode()
        return pids_where(lambda cmd: cmd[0].endswith(b"faasd-logger")
                          and any(workdir in a for a in cmd[1:]))

    def reap_loggers(self):
        """Loggers end by themselves once their task's pipes close; SIGKILL any that do not."""
        try:
            wait_until(lambda: not self.logger_pids(), 5, "faasd-logger processes to exit")
        except TimeoutError:
            for pid in self.logger_pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.remove_everything()
            finally:
                stop_process(self.proc)
        # Tasks the API could not remove (containerd gone, a removal still in flight): kill their
        # processes before their shims, or they outlive the shims as orphans.
        self.kill_task_processes()
        for pid in self.shim_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.reap_loggers()
        unmount_under(self.dir)
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
class Registry:
    """Debian's docker-registry on 127.0.0.1:<free port>, filesystem storage, access log."""

    def __init__(self, workdir, name="registry"):
        self.dir = Path(workdir) / name
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.log_path = self.dir / "registry.log"
        self.proc = None

    def start(self, timeout=30):
        """Starts the registry; again after kill() on the same port and storage."""
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        config = self.dir / "config.yml"
        config.write_text(self.config_yaml())
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(["/usr/bin/docker-registry", "serve", str(config)],
                                     stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        log.close()

        def ready():
            if self.proc.poll() is not None:
                raise HarnessError(f"docker-registry exited {self.proc.returncode}:\n"
                                   f"{tail(self.log_path)}")
            return self.ping()
        try:
            wait_until(ready, timeout, "registry " + self.host)
        except TimeoutError as exc:
            raise HarnessError(f"{exc}\n{tail(self.log_path)}") from None

    def config_yaml(self):
        """docker-registry's configuration; `http:` comes last, for subclasses to extend."""
        return ("version: 0.1\n"
                "log:\n  level: info\n  accesslog:\n    disabled: false\n"
                f"storage:\n  filesystem:\n    rootdirectory: {self.dir / 'data'}\n"
                "  delete:\n    enabled: true\n"
                f"http:\n  addr: {self.host}\n")

    def ping(self):
        return http_request("127.0.0.1", self.port, "GET", "/v2/", timeout=2).status == 200

    def blob_gets(self, repo=None):
        """Count of blob downloads (GET /v2/<repo>/blobs/...) in the access log so far."""
        pattern = re.compile(r'"GET /v2/(?P<repo>[^ ]+)/blobs/sha256:[0-9a-f]+ HTTP/[0-9.]+" (2|3)')
        n = 0
        for line in tail(self.log_path, 10**9).splitlines():
            m = pattern.search(line)
            if m and (repo is None or m.group("repo") == repo):
                n += 1
        return n

    def kill(self):
        """SIGKILL: the registry dies, connections and all."""
        kill_process(self.proc)

    def close(self):
        stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
class FunctionImages:
    """OCI images holding busybox + fnserver, built with umoci and pushed with skopeo.

    refs: {"echo": ..., "cat": ..., "hello": ...} -> "127.0.0.1:PORT/<name>:latest".
    The echo image sets greeting=from-image so tests can check envVars override image env.
    """

    VARIANTS = {
        "echo": ["mode=echo", "greeting=from-image"],
        "cat": ["mode=fork", "fprocess=cat"],
        "hello": ["mode=hello"],
    }

    def __init__(self, workdir, registry):
        self.dir = Path(workdir) / "image"
        self.registry = registry
        self.refs = {}

    def build(self):
        if not os.access(FNSERVER_BIN, os.X_OK):
            raise HarnessError(f"fnserver binary {FNSERVER_BIN}: not found (set FNSERVER_BIN)")
        layout = self.dir / "oci"
        bundle = self.dir / "bundle"
        self.dir.mkdir(parents=True)
        run(["umoci", "init", "--layout", layout])
        run(["umoci", "new", "--image", f"{layout}:base"])
        run(["umoci", "unpack", "--image", f"{layout}:base", bundle])
        rootfs = bundle / "rootfs"
        for d in ["bin", "usr/bin", "etc", "tmp", "var/openfaas/secrets", "proc", "sys", "dev"]:
            (rootfs / d).mkdir(parents=True, exist_ok=True)
        os.chmod(rootfs / "tmp", 0o1777)
        shutil.copy2("/bin/busybox", rootfs / "bin" / "busybox")
        for applet in ["sh", "cat", "ls", "wc", "env", "hostname", "sleep", "echo", "tr"]:
            os.symlink("busybox", rootfs / "bin" / applet)
        shutil.copy2(FNSERVER_BIN, rootfs / "usr" / "bin" / "fnserver")
        os.chmod(rootfs / "usr" / "bin" / "fnserver", 0o755)
        (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
        (rootfs / "etc" / "group").write_text("root:x:0:\n")
        (rootfs / "etc" / "hosts").write_text("")
        (rootfs / "etc" / "resolv.conf").write_text("")
        run(["umoci", "repack", "--image", f"{layout}:base", bundle])
        for name, env in self.VARIANTS.items():
            args = ["umoci", "config", "--image", f"{layout}:base", "--tag", name,
                    "--config.entrypoint", "/usr/bin/fnserver",
                    "--config.env", "PATH=/usr/local/bin:/usr/bin:/bin",
                    "--config.exposedports", "8080/tcp", "--config.workingdir", "/"]
            for e in env:
                args += ["--config.env", e]
            run(args)
            self.refs[name] = self.push(name, f"{self.registry.host}/{name}:latest",
                                        "--dest-tls-verify=false")
        shutil.rmtree(bundle, ignore_errors=True)

    def push(self, variant, ref, *skopeo_args):
        """Copies one built variant ("echo") to `ref` with `skopeo copy` and skopeo_args (TLS,
        credentials); returns ref."""
        run(["skopeo", "copy", *skopeo_args, f"oci:{self.dir / 'oci'}:{variant}",
             f"docker://{ref}"], timeout=300)
        return ref

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
class CniEnv:
    """A test-only CNI bridge (fdt + 6 hex), a free /24 in 10.240.0.0/12, private dirs.

    close() deletes the bridge, the veths left on it, and the iptables rules and chains made
    for this subnet: the daemon's subnet-wide FAASD-<hex> chains and the jumps to them, and
    what the bridge (ipMasq) and firewall plugins make when run that way, and the portmap
    plugin's per-container CNI-DN-<hex> chains (services' published ports).
    """

    POOL = ipaddress.ip_network("10.240.0.0/12")

    def __init__(self, workdir, prefix=24):
        self.prefix = prefix  # a /24 holds 253 functions; a function at zero keeps its address
        suffix = "%06x" % random.getrandbits(24)
        self.bridge = "fdt" + suffix
        self.network = "fdt-" + suffix
        self.dir = Path(workdir) / "cni"
        self.conf_dir = self.dir / "conf"
        self.ipam_dir = self.dir / "ipam"
        self.cache_dir = self.dir / "cache"
        self.subnet = self._free_subnet()

    def _used_networks(self):
        used = []
        for cmd in (["ip", "-j", "route", "show", "table", "all"], ["ip", "-j", "addr"]):
            data = json.loads(run(cmd).stdout or "[]")
            for entry in data:
                dst = entry.get("dst")
                if dst and dst not in ("default", "broadcast", "local", "unreachable"):
                    try:
                        used.append(ipaddress.ip_network(dst, strict=False))
                    except ValueError:
                        pass
                for a in entry.get("addr_info", []):
                    try:
                        used.append(ipaddress.ip_network(f"{a['local']}/{a['prefixlen']}",
                                                         strict=False))
                    except (KeyError, ValueError):
                        pass
        return used

    def _free_subnet(self):
        used = [n for n in self._used_networks() if n.version == 4 and n.prefixlen > 0]
        candidates = list(self.POOL.subnets(new_prefix=self.prefix))
        for _ in range(200):
            net = random.choice(candidates)
            if not any(net.overlaps(u) for u in used):
                return net
        raise HarnessError(f"no free /24 in {self.POOL}: every candidate overlaps a route")

    @property
    def gateway(self):
        return str(next(self.subnet.hosts()))

    def start(self):
        for d in (self.conf_dir, self.ipam_dir, self.cache_dir):
            d.mkdir(parents=True)

    def flags(self):
        return [f"--cni-bin-dir=/usr/lib/cni:/opt/cni/bin",
                f"--cni-conf-dir={self.conf_dir}",
                f"--cni-network={self.network}",
                f"--cni-bridge={self.bridge}",
                f"--cni-subnet={self.subnet}",
                f"--cni-ipam-dir={self.ipam_dir}"]

    def _mentions_us(self, rule):
        # iptables-save escapes the quotes of a comment: \"fdt-...\" (portmap's rules).
        if self.bridge in rule or f'"{self.network}"' in rule or \
                f'\\"{self.network}\\"' in rule:
            return True
        for m in re.finditer(r"(?<![0-9.])(\d+\.\d+\.\d+\.\d+)(?:/\d+)?(?![0-9.])", rule):
            try:
                if ipaddress.ip_address(m.group(1)) in self.subnet:
                    return True
            except ValueError:
                pass
        return False

    def iptables_leftovers(self):
        """Rules (table, rule) and chains (table, chain) that belong to this test network."""
        rules, chains = [], []
        for table in ("filter", "nat"):
            out = run(["iptables-save", "-t", table], check=False).stdout
            table_rules = [l for l in out.splitlines() if l.startswith("-A ")]
            ours = set()
            for r in table_rules:
                chain = r.split()[1]
                ours_by_name = re.fullmatch(r"CNI-[0-9a-f]{24}|CNI-DN-[0-9a-f]{21}|FAASD-[0-9a-f]{8}",
                                            chain)
                if ours_by_name and self._mentions_us(r):
                    ours.add(chain)
            for r in table_rules:
                jump = re.search(r"-j (\S+)", r)
                if self._mentions_us(r) or (jump and jump.group(1) in ours):
                    rules.append((table, r))
            chains += [(table, c) for c in sorted(ours)]
        return rules, chains

    def close(self):
        if run(["ip", "link", "show", self.bridge], check=False).returncode == 0:
            links = json.loads(run(["ip", "-j", "link", "show", "master", self.bridge],
                                   check=False).stdout or "[]")
            for link in links:
                run(["ip", "link", "del", link["ifname"]], check=False)
            run(["ip", "link", "del", self.bridge], check=False)
        rules, chains = self.iptables_leftovers()
        for table, rule in rules:
            args = shlex.split(rule)
            run(["iptables", "-w", "-t", table, "-D"] + args[1:], check=False)
        for table, chain in chains:
            run(["iptables", "-w", "-t", table, "-F", chain], check=False)
            run(["iptables", "-w", "-t", table, "-X", chain], check=False)
        self._remove_idle_firewall_chains()
        shutil.rmtree(self.dir, ignore_errors=True)

    @staticmethod
    def _remove_idle_firewall_chains():
        """The firewall plugin's shared CNI-FORWARD/CNI-ADMIN chains, only when nothing but
        the plugin's own jump is left in them (another network may still be using them)."""
        out = run(["iptables-save", "-t", "filter"], check=False).stdout
        fwd = [l for l in out.splitlines() if l.startswith("-A CNI-FORWARD ")]
        admin = [l for l in out.splitlines() if l.startswith("-A CNI-ADMIN ")]
        if admin or any("-j CNI-ADMIN" not in l for l in fwd):
            return
        for l in out.splitlines():
            if l.startswith("-A FORWARD ") and "-j CNI-FORWARD" in l:
                run(["iptables", "-w", "-D"] + shlex.split(l)[1:], check=False)
        for chain in ("CNI-FORWARD", "CNI-ADMIN"):
            run(["iptables", "-w", "-F", chain], check=False)
        for chain in ("CNI-FORWARD", "CNI-ADMIN"):
            run(["iptables", "-w", "-X", chain], check=False)


# ---------------------------------------------------------------------------------------------
class NatsServer:
    """Debian's nats-server with JetStream on a file store under workdir, on 127.0.0.1:<free
    port>. kill() is SIGKILL (a crash); start() again reuses the port and the store, as a
    restarted server would."""

    BIN = os.environ.get("NATS_SERVER_BIN", shutil.which("nats-server") or "/usr/sbin/nats-server")

    def __init__(self, workdir):
        self.dir = Path(workdir) / "nats"
        self.store = self.dir / "store"
        self.log_path = self.dir / "nats.log"
        self.port = free_port()
        self.proc = None

    @property
    def url(self):
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout=30):
        if not os.access(self.BIN, os.X_OK):
            raise HarnessError(f"nats-server {self.BIN}: not found (apt-get install nats-server)")
        self.store.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.BIN, "-js", "-sd", str(self.store), "-a", "127.0.0.1", "-p", str(self.port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()

        def up():
            if self.proc.poll() is not None:
                raise HarnessError(f"nats-server exited {self.proc.returncode}:\n"
                                   f"{tail(self.log_path, 4000)}")
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as c:
                return c.recv(4096).startswith(b"INFO ")
        wait_until(up, timeout, f"nats-server on 127.0.0.1:{self.port}")

    def kill(self):
        kill_process(self.proc)

    def close(self):
        stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


class CallbackReceiver:
    """An HTTP server on 127.0.0.1:<free port> that records every request it gets:
    calls is a list of (method, path, headers dict with lower-case names, body)."""

    def __init__(self):
        import http.server
        import threading
        receiver = self
        self.calls = []
        self.lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver.lock:
                    receiver.calls.append((self.command, self.path,
                                           {k.lower(): v for k, v in self.headers.items()},
                                           body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path="/cb"):
        return f"http://127.0.0.1:{self.port}{path}"

    def by_call_id(self, call_id):
        with self.lock:
            return [c for c in self.calls if c[2].get("x-call-id") == call_id]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------------------------------------
class FaasdDaemon:
    """The daemon under test, on 127.0.0.1:<free port>, with every path private.

    A second instance beside the session's (a test that needs other flags) takes its own
    `name` (its directory), containerd `namespace` and CniEnv, so the two never see each
    other's functions; `extra_args` are appended to `faasd up`."""

    def __init__(self, workdir, containerd, cni, extra_args=(), namespace=NAMESPACE,
                 name="faasd"):
        self.dir = Path(workdir) / name
        self.extra_args = list(extra_args)
        self.namespace = namespace
        self.state_dir = self.dir / "state"
        self.log_path = self.dir / "faasd.log"
        self.port = free_port()
        self.containerd = containerd
        self.cni = cni
        self.proc = None
        self.user = None
        self.password = None
        self.binary = FAASD_BIN  # a test may run a copy, to replace it as an upgrade does

    def args(self):
        return [str(self.binary), "up",
                f"--listen=127.0.0.1:{self.port}",
                f"--state-dir={self.state_dir}",
                f"--containerd-address={self.containerd.address}",
                f"--namespace={self.namespace}",
                f"--nameserver={NAMESERVER}",
                "--log-level=debug",
                # No periodic reconcile: every restart the tests see must come from
                # containerd's task-exit events or from start-up rediscovery.
                "--reconcile-interval=3600",
                # No NATS or Prometheus beside every test daemon (test_services.py turns them
                # on): they would publish 4222 and 9090 and try to pull from docker.io.
                # No sidecars, and no async unless a test names its NATS: a live appliance's
                # NATS on 127.0.0.1:4222 must not see our stream and worker.
                "--services=off", "--nats-url="] + self.logger_flags() + self.cni.flags() + \
            self.extra_args

    @staticmethod
    def logger_flags():
        """The built faasd-logger; without one, faasd looks beside itself."""
        return [f"--logger={FAASD_LOGGER_BIN}"] if os.access(FAASD_LOGGER_BIN, os.X_OK) else []

    def start(self, timeout=30):
        if not os.access(self.binary, os.X_OK):
            raise HarnessError(f"faasd binary {self.binary}: not found (set FAASD_BIN)")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        log.write(f"==== harness: {shlex.join(self.args())}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(self.args(), stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        log.close()

        def healthy():
            if self.proc.poll() is not None:
                raise HarnessError(f"faasd exited {self.proc.returncode} during start")
            return http_request("127.0.0.1", self.port, "GET", "/healthz",
                                timeout=2).status == 200
        try:
            wait_until(healthy, timeout, f"faasd GET /healthz on 127.0.0.1:{self.port}")
        except (TimeoutError, HarnessError) as exc:
            raise HarnessError(f"{exc}\n--- faasd log ---\n{tail(self.log_path)}") from None
        secrets = self.state_dir / "secrets"
        user_file = secrets / "basic-auth-user"
        self.user = user_file.read_text().strip() if user_file.exists() else "admin"
        self.password = (secrets / "basic-auth-password").read_text().strip()

    def stop(self, term_timeout=15):
        stop_process(self.proc, term_timeout)

    def kill(self):
        """SIGKILL: a crash, no clean shutdown."""
        kill_process(self.proc)

    def restart(self):
        self.stop()
        self.start()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    # -- API client --------------------------------------------------------------------------
    def auth_header(self, user=None, password=None):
        token = f"{user or self.user}:{password if password is not None else self.password}"
        return "Basic " + base64.b64encode(token.encode()).decode()

    def request(self, method, path, body=None, headers=None, auth=True, timeout=60):
        h = dict(headers or {})
        if auth and "Authorization" not in h:
            h["Authorization"] = self.auth_header()
        if isinstance(body, (dict, list)) and "Content-Type" not in h:
            h["Content-Type"] = "application/json"
        return http_request("127.0.0.1", self.port, method, path, body, h, timeout)

    def deploy(self, name, image, method="POST", **fields):
        spec = {"service": name, "image": image}
        spec.update(fields)
        return self.request(method, "/system/functions", spec)

    def delete(self, name):
        return self.request("DELETE", "/system/functions", {"functionName": name})

    def describe(self, name):
        return self.request("GET", "/system/function/" + urllib.parse.quote(name, safe=""))

    def list(self):
        return self.request("GET", "/system/functions")

    def invoke(self, name, path="", method="POST", body=None, headers=None, timeout=60):
        return self.request(method, f"/function/{name}{path}", body, headers, auth=False,
                            timeout=timeout)

    def logs(self, name, **params):
        """GET /system/logs (no follow unless asked): (Response, [parsed NDJSON lines])."""
        query = urllib.parse.urlencode({"name": name, **params})
        r = self.request("GET", "/system/logs?" + query)
        lines = [json.loads(l) for l in r.text.splitlines() if l.strip()] if r.status == 200 else []
        return r, lines

    def threads(self):
        """The daemon's thread count (/proc/PID/status)."""
        return proc_status(self.proc.pid, "Threads")

    def wait_ready(self, name, timeout=60):
        """Polls until availableReplicas >= 1 and the function answers its invoke route."""
        def ready():
            r = self.describe(name)
            return r.status == 200 and r.json().get("availableReplicas", 0) >= 1
        wait_until(ready, timeout, f"function {name} availableReplicas>=1")
        wait_until(lambda: self.invoke(name, "/_/health", method="GET").status == 200,
                   timeout, f"function {name} to answer /_/health")

    def close(self):
        self.stop()
        unmount_under(self.dir)
        shutil.rmtree(self.dir, ignore_errors=True)


def paced_invokes(daemon, name, rate, seconds, results, tag="q", headers=None):
    """Invokes `name` `rate` times a second for `seconds`, one at a time on a connection each,
    with bodies TAG0, TAG1, ... and the headers `headers(n)` returns (when given); appends each
    outcome to `results`, request n's at index n: 200 when the echo came back whole, else
    "status:text" or the exception. Bounded in count and time."""
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline and n < rate * seconds + 10:
        t = time.monotonic()
        try:
            r = daemon.invoke(name, body=f"{tag}{n}", headers=headers and headers(n), timeout=30)
            results.append(r.status if r.text == f"{tag}{n}" else f"{r.status}:{r.text[:200]}")
        except OSError as exc:
            results.append(repr(exc))
        n += 1
        time.sleep(max(0.0, 1.0 / rate - (time.monotonic() - t)))  # pacing, not synchronisation


def private_daemon(request, workdir, name, namespace, extra_args=()):
    """A second daemon beside the session's, for a test that needs other flags: its own CNI
    bridge, its own containerd (two daemons on one containerd would each manage the other's
    function namespaces) and containerd namespace `namespace`, all under workdir/`name`. Each
    piece's cleanup is registered on `request` before it starts (the bridge closes last: the
    tasks go first). Returns (daemon, containerd); the daemon is not started yet."""
    base = Path(workdir) / name
    cni = CniEnv(base)
    request.addfinalizer(cni.close)
    cni.start()
    containerd = Containerd(base)
    request.addfinalizer(containerd.close)
    containerd.start()
    daemon = FaasdDaemon(workdir, containerd, cni, namespace=namespace, name=f"faasd-{name}",
                         extra_args=extra_args)
    request.addfinalizer(daemon.close)
    return daemon, containerd
