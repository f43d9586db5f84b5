"""What the provider and autoscaler benchmarks share: checks (built binaries, root), private
copies of the binaries (a rebuild during the run changes nothing), the integration harness
imported, a whole-run deadline and signals turned into Interrupted, and, whatever happens, the
daemon log kept, every harness piece closed in reverse, the work dir removed and the markdown
report written. Stdlib only."""

import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent


class Interrupted(Exception):
    pass


def on_signal(signum, _frame):
    raise Interrupted(f"signal {signum}")


def logger(tool):
    def log(msg):
        print(f"[{tool} {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
    return log


class Bench:
    """Handed to the work: `harness` (the module), `wd` (private work dir), `report` (lines to
    extend), `pieces` (harness objects to close, in order of start; see start()), `daemon`
    (set it: its log is kept)."""

    def __init__(self, harness, wd, title):
        self.harness = harness
        self.wd = wd
        self.pieces = []
        self.daemon = None
        self.report = [f"# {title} ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, "
                       f"load {os.getloadavg()[0]:.2f})", ""]

    def start(self, piece):
        """Registers `piece` for closing, then starts it; returns it."""
        self.pieces.append(piece)
        piece.start()
        return piece

    def function_stack(self, extra_args=()):
        """A loopback registry holding the test images, a CNI bridge, containerd and faasd
        (`extra_args` appended), each started and registered for closing; the daemon is
        `self.daemon`. Returns (images, cni, containerd, daemon)."""
        h = self.harness
        reg = self.start(h.Registry(self.wd))
        imgs = h.FunctionImages(self.wd, reg)
        self.pieces.append(imgs)
        imgs.build()
        cni = self.start(h.CniEnv(self.wd))
        ctd = self.start(h.Containerd(self.wd))
        self.daemon = self.start(h.FaasdDaemon(self.wd, ctd, cni, extra_args=list(extra_args)))
        return imgs, cni, ctd, self.daemon


def run(tool, build_dir, deadline, out, kept_log, title, work, cleanup=None):
    """Runs work(Bench) under the checks and clean-up above; `cleanup()` (optional) runs first
    in the clean-up (stop load threads). Returns the exit code: 0 done, 1 failed, 2 bad usage."""
    log = logger(tool)
    build = Path(build_dir).resolve()
    bins = {"FAASD_BIN": build / "src" / "faasd",
            "FNSERVER_BIN": build / "tests" / "fixtures" / "fnserver",
            "FAASD_LOGGER_BIN": build / "src" / "logs" / "faasd-logger"}
    for p in bins.values():
        if not os.access(p, os.X_OK):
            print(f"{tool}: {p}: not built", file=sys.stderr)
            return 2
    if os.geteuid() != 0:
        print(f"{tool}: needs root", file=sys.stderr)
        return 2

    wd = Path(tempfile.mkdtemp(prefix=f"faasd-{tool}-", dir="/tmp"))
    (wd / "bin").mkdir()
    for env, src in bins.items():
        dst = wd / "bin" / src.name
        shutil.copy2(src, dst)
        os.environ[env] = str(dst)
    sys.path.insert(0, str(REPO / "tests" / "integration"))
    import harness  # noqa: E402

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGALRM, on_signal)
    signal.alarm(deadline)
    b = Bench(harness, wd, title)
    ok = False
    try:
        work(b)
        ok = True
    except (Interrupted, Exception) as exc:  # noqa: BLE001  report what failed, then clean up
        log(f"run failed: {exc!r}")
        b.report += [f"**Run failed:** `{exc!r}`", ""]
    finally:
        signal.alarm(0)
        if cleanup is not None:
            cleanup()
        if b.daemon is not None:
            try:
                shutil.copy2(b.daemon.log_path, BENCH_DIR / kept_log)
            except OSError:
                pass
        for p in reversed(b.pieces):
            try:
                p.close()
            except Exception as exc:  # noqa: BLE001
                log(f"close {type(p).__name__}: {exc!r}")
        shutil.rmtree(wd, ignore_errors=True)
    Path(out).write_text("\n".join(b.report) + "\n")
    print("\n".join(b.report))
    return 0 if ok else 1
