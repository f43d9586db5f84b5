"""faasd-logger's copy of function output to the real systemd-journald.

journald runs here without systemd as PID 1: in a private mount namespace (unshare -m) with a
tmpfs on /run, so it binds its own /run/systemd/journal/socket and keeps a volatile journal under
/run/log/journal, and nothing of the host's /run, /var/log/journal or running journald (if any) is
seen or touched. faasd-logger runs in that namespace (nsenter -m) under the shim's contract
(fds 3/4 the streams, 5 the ready pipe, argv pairs, CONTAINER_ID/CONTAINER_NAMESPACE), and
journalctl reads the entries back. Every process here is started by the test and killed by its
PID; the namespace and its mounts go away with the last of them."""

import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

import harness

JOURNALD = "/lib/systemd/systemd-journald"
NSENTER = shutil.which("nsenter") or "/usr/bin/nsenter"
UNSHARE = shutil.which("unshare") or "/usr/bin/unshare"

pytestmark = pytest.mark.skipif(
    not os.access(JOURNALD, os.X_OK) or shutil.which("journalctl") is None,
    reason=f"{JOURNALD} or journalctl missing (Debian package systemd)")

# Volatile storage, no kernel messages, no rate limit: the journal holds just the test's entries.
JOURNALD_CONF = "[Journal]\nStorage=volatile\nReadKMsg=no\nRateLimitIntervalSec=0\n" \
                "ForwardToSyslog=no\nForwardToWall=no\n"


class PrivateJournald:
    """systemd-journald alone in a private mount namespace; close() kills it by its PID."""

    def __init__(self):
        self.proc = None

    def start(self):
        script = (
            "set -e; mount -t tmpfs -o mode=0755 tmpfs /run; "
            "mkdir -p /run/systemd/journal /run/systemd/journald.conf.d /run/log/journal; "
            f"printf '{JOURNALD_CONF}' > /run/systemd/journald.conf.d/test.conf; "
            f"exec {JOURNALD}")
        self.proc = subprocess.Popen([UNSHARE, "--mount", "--propagation", "private",
                                      "/bin/sh", "-c", script],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)

        def listening():
            if self.proc.poll() is not None:
                raise harness.HarnessError(
                    f"systemd-journald exited {self.proc.returncode}: "
                    f"{self.proc.stderr.read().decode(errors='replace')}")
            return self.root_path("run/systemd/journal/socket").is_socket()
        harness.wait_until(listening, 10, "journald's native socket")

    def root_path(self, rel):
        """A path inside the namespace, seen from outside through /proc/<pid>/root."""
        return Path(f"/proc/{self.proc.pid}/root") / rel

    def enter(self):
        return [NSENTER, "-t", str(self.proc.pid), "-m", "--"]

    def entries(self, identifier):
        r = harness.run(self.enter() + ["journalctl", "-D", "/run/log/journal", "-o", "json",
                                        "--no-pager", "-t", identifier], check=False)
        return [json.loads(l) for l in r.stdout.splitlines() if l.strip()]

    def close(self):
        if self.proc is not None:
            harness.stop_process(self.proc)
            self.proc.stderr.close()


class Logger:
    """faasd-logger as the shim runs it, inside `ns_cmd` (a command prefix such as nsenter)."""

    def __init__(self, ns_cmd, log_dir, container_id, ns, fn, journal=None):
        out_r, self.out = os.pipe()
        err_r, self.err = os.pipe()
        ready_r, ready_w = os.pipe()
        # Above 9, so the redirections to 3, 4 and 5 below never overwrite one another.
        out_r, err_r, ready_w = (self.move_up(fd) for fd in (out_r, err_r, ready_w))
        args = ["dir", str(log_dir), "files", "2", "ns", ns, "fn", fn]
        if journal is not None:
            args += ["journal", journal]
        # bash, not sh: the pipes' descriptors have two digits.
        redirect = (f'exec "$0" "$@" 3<&{out_r} 4<&{err_r} 5>&{ready_w} '
                    f'{out_r}<&- {err_r}<&- {ready_w}>&-')
        self.proc = subprocess.Popen(
            ns_cmd + ["/bin/bash", "-c", redirect, harness.FAASD_LOGGER_BIN] + args,
            pass_fds=(out_r, err_r, ready_w), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={"CONTAINER_ID": container_id, "CONTAINER_NAMESPACE": ns})
        for fd in (out_r, err_r, ready_w):
            os.close(fd)
        try:
            assert os.read(ready_r, 1) == b"", "the ready pipe is closed, not written"
        finally:
            os.close(ready_r)

    @staticmethod
    def move_up(fd):
        high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(fd)
        return high

    def write(self, stream, data):
        fd = self.out if stream == "stdout" else self.err
        while data:
            data = data[os.write(fd, data):]

    def finish(self, timeout=30):
        """Closes both streams; the logger drains them and exits by itself."""
        for fd in (self.out, self.err):
            if fd is not None:
                os.close(fd)
        self.out = self.err = None
        return self.proc.wait(timeout=timeout)

    def close(self):
        for fd in (self.out, self.err):
            if fd is not None:
                os.close(fd)
        self.out = self.err = None
        harness.stop_process(self.proc)


def file_records(log_dir):
    lines = []
    for p in sorted(Path(log_dir).glob("log.ndjson*"), reverse=True):
        if not p.name.endswith(".lock"):
            lines += [json.loads(l) for l in p.read_text().splitlines()]
    return lines


@pytest.fixture
def journald(request):
    j = PrivateJournald()
    request.addfinalizer(j.close)
    j.start()
    return j


@pytest.fixture
def start_logger(request):
    loggers = []

    def start(*args, **kw):
        logger = Logger(*args, **kw)
        loggers.append(logger)
        return logger
    request.addfinalizer(lambda: [l.close() for l in loggers])
    return start


def test_lines_reach_journald_with_priority_and_identity_and_stay_in_the_file(
        journald, start_logger, workdir):
    log_dir = Path(workdir) / "journal-1" / "logs" / "team-a" / "echo"
    logger = start_logger(journald.enter(), log_dir, "echo-0123abcd", "team-a", "echo")
    logger.write("stdout", b"to stdout\n")
    logger.write("stderr", "to stderr \u00e9\n".encode())
    logger.write("stdout", b"unterminated")
    assert logger.finish() == 0

    entries = harness.wait_until(lambda: (lambda e: e if len(e) >= 3 else None)(
        journald.entries("team-a:echo")), 10, "3 journal entries")
    by_message = {e["MESSAGE"]: e for e in entries}
    assert set(by_message) == {"to stdout", "to stderr \u00e9", "unterminated"}
    out, err = by_message["to stdout"], by_message["to stderr \u00e9"]
    assert out["PRIORITY"] == "6" and err["PRIORITY"] == "3"
    for e in entries:
        assert e["SYSLOG_IDENTIFIER"] == "team-a:echo"
        assert e["FAASD_NAMESPACE"] == "team-a"
        assert e["FAASD_FUNCTION"] == "echo"
        assert e["CONTAINER_ID"] == "echo-0123abcd"
        assert e["_TRANSPORT"] == "journal"
    # journald is a copy: the function's log file has every line too.
    assert sorted(r["text"] for r in file_records(log_dir)) == \
        sorted(["to stdout", "to stderr \u00e9", "unterminated"])


def test_journal_off_keeps_output_in_the_file_only(journald, start_logger, workdir):
    log_dir = Path(workdir) / "journal-2" / "logs" / "openfaas-fn" / "quiet"
    logger = start_logger(journald.enter(), log_dir, "quiet-1", "openfaas-fn", "quiet",
                          journal="off")
    logger.write("stdout", b"files only\n")
    loud = start_logger(journald.enter(), Path(workdir) / "journal-2" / "loud", "loud-1",
                        "openfaas-fn", "loud")
    loud.write("stdout", b"marker\n")
    assert logger.finish() == 0 and loud.finish() == 0
    # The other logger's line shows journald took what it was sent by then.
    harness.wait_until(lambda: journald.entries("openfaas-fn:loud"), 10, "the marker entry")
    assert journald.entries("openfaas-fn:quiet") == []
    assert [r["text"] for r in file_records(log_dir)] == ["files only"]


def test_a_burst_never_waits_for_journald_and_what_it_missed_is_counted(
        journald, start_logger, workdir):
    log_dir = Path(workdir) / "journal-3" / "logs" / "openfaas-fn" / "burst"
    logger = start_logger(journald.enter(), log_dir, "burst-1", "openfaas-fn", "burst")
    n = 20000
    data = "".join(f"line {i}\n" for i in range(n)).encode()
    # Stop journald reading: its queue fills at once (net.unix.max_dgram_qlen).
    os.kill(journald.proc.pid, signal.SIGSTOP)
    try:
        start = time.monotonic()
        logger.write("stdout", data)
        harness.wait_until(lambda: len(file_records(log_dir)) == n, 20, "every line in the file")
        elapsed = time.monotonic() - start
    finally:
        os.kill(journald.proc.pid, signal.SIGCONT)
    assert elapsed < 10, f"the file copy waited for a stopped journald ({elapsed:.1f}s)"
    assert logger.finish() == 0

    def settled():
        entries = journald.entries("openfaas-fn:burst")
        return entries if entries and entries[-1]["PRIORITY"] == "4" else None
    entries = harness.wait_until(settled, 20, "the dropped-lines report")
    report = entries[-1]["MESSAGE"]
    dropped = int(report.split("faasd-logger: ")[1].split(" ")[0])
    copied = [e["MESSAGE"] for e in entries[:-1]]
    assert dropped > 0 and len(copied) + dropped == n, report
    # What was copied is in order and is what the function printed.
    numbers = [int(m.split()[1]) for m in copied]
    assert numbers == sorted(numbers) and copied[0] == "line 0"
