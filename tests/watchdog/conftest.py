"""Fixtures for fwatchdog live tests: start the built binary on a free loopback port with a
private TMPDIR (so the lock file is per test), wait for /_/health, and always stop it and any
process it left behind, by PID."""
import http.client
import os
import signal
import socket
import subprocess
import time

import pytest

BIN = os.environ.get("FWATCHDOG_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "src", "watchdog", "fwatchdog")
HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)  # poll interval, bounded by the deadline
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def descendants(pid):
    """All live descendants of pid (children spawned in their own process groups too)."""
    kids = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            kids.setdefault(ppid, []).append(int(entry))
        except (OSError, ValueError):
            pass
    out, todo = [], [pid]
    while todo and len(out) < 10000:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class Watchdog:
    def __init__(self, tmp_path, env, wait_ready=True):
        self.port = free_port()
        self.tmp = tmp_path
        self.lock = os.path.join(str(tmp_path), ".lock")
        full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TMPDIR": str(tmp_path),
                "port": str(self.port)}
        full.update(env)
        self.log_path = os.path.join(str(tmp_path), "watchdog.log")
        self.log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen([BIN], env=full, stdout=self.log_file,
                                     stderr=subprocess.STDOUT)
        self.known_children = set()
        if wait_ready:
            wait_for(lambda: self.health() == 200, 15, f"fwatchdog health 200 ({self.log()})")

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def conn(self, timeout=30):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=30):
        c = self.conn(timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            c.close()

    def health(self):
        try:
            return self.request("GET", "/_/health", timeout=2)[0]
        except OSError:
            return None

    def vm_hwm_kb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        raise AssertionError("no VmHWM")

    def remember_children(self):
        self.known_children.update(descendants(self.proc.pid))

    def stop(self):
        if self.proc.poll() is None:
            self.remember_children()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for pid in self.known_children:  # only processes this watchdog started
            if alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        self.log_file.close()


@pytest.fixture
def start_watchdog(tmp_path):
    started = []

    def start(env, wait_ready=True):
        w = Watchdog(tmp_path, env, wait_ready)
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


@pytest.fixture
def script(tmp_path):
    """Writes an executable shell script and returns its path (fprocess splits on spaces)."""
    counter = [0]

    def make(body):
        counter[0] += 1
        path = os.path.join(str(tmp_path), f"handler{counter[0]}.sh")
        with open(path, "w") as f:
            f.write("#!/bin/sh\n" + body + "\n")
        os.chmod(path, 0o755)
        return path

    return make
