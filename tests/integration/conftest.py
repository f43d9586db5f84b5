"""Fixtures for the faasd integration tests. See harness.py for what each piece does.

Session-scoped (costly): workdir, containerd, registry, fn_image, hostile, cni, faasd.
Function-scoped: api (the session daemon, restarted first if a previous test left it down),
functions (deploys with unique names and deletes them afterwards).
Each fixture registers its cleanup before it starts anything, so a failed start still cleans up.
On failure, the daemon's log (and containerd's) is attached to the test report.
"""

import os
import random
import shutil
import tempfile

import pytest

import harness


def pytest_configure(config):
    if os.geteuid() != 0:
        raise pytest.UsageError("integration tests need root (containerd, CNI, iptables)")


@pytest.fixture(scope="session")
def workdir(request):
    path = tempfile.mkdtemp(prefix="fdt-", dir="/tmp")  # short: unix socket paths live here

    def cleanup():
        harness.unmount_under(path)
        shutil.rmtree(path, ignore_errors=True)
    request.addfinalizer(cleanup)
    return path


@pytest.fixture(scope="session")
def registry(request, workdir):
    reg = harness.Registry(workdir)
    request.addfinalizer(reg.close)
    reg.start()
    return reg


@pytest.fixture(scope="session")
def fn_image(request, workdir, registry):
    images = harness.FunctionImages(workdir, registry)
    request.addfinalizer(images.close)
    images.build()
    return images


@pytest.fixture(scope="session")
def hostile(request, workdir, registry):
    """Hand-made images (hostile_images.py): a working base plus one layer of the test's."""
    import hostile_images
    images = hostile_images.HostileImages(workdir, registry)
    request.addfinalizer(images.close)
    images.start()
    return images


@pytest.fixture(scope="session")
def cni(request, workdir):
    env = harness.CniEnv(workdir)
    request.addfinalizer(env.close)
    env.start()
    return env


@pytest.fixture(scope="session")
def containerd(request, workdir):
    ctd = harness.Containerd(workdir)
    request.addfinalizer(ctd.close)
    ctd.start()
    return ctd


@pytest.fixture(scope="session")
def faasd(request, workdir, fn_image, cni, containerd):
    # Argument order matters: teardown runs in reverse, so containerd's tasks are gone
    # before the CNI bridge and firewall rules are removed.
    daemon = harness.FaasdDaemon(workdir, containerd, cni)
    request.addfinalizer(daemon.close)
    daemon.start()
    return daemon


@pytest.fixture
def api(faasd):
    if not faasd.running():
        faasd.start()
    return faasd


class Functions:
    """Deploys functions with unique names; remembers them so the fixture can delete them."""

    def __init__(self, daemon, images):
        self.daemon = daemon
        self.images = images
        self.names = []

    def name(self, prefix="fn"):
        n = f"{prefix}-{random.getrandbits(24):06x}"
        self.names.append(n)
        return n

    def deploy(self, prefix="fn", image="echo", wait=True, **fields):
        n = self.name(prefix)
        ref = self.images.refs.get(image, image)
        r = self.daemon.deploy(n, ref, **fields)
        assert r.status in (200, 202), f"deploy {n} ({ref}): {r}"
        if wait:
            self.daemon.wait_ready(n)
        return n

    def cleanup(self):
        if not self.daemon.running():
            self.daemon.start()
        for n in self.names:
            self.daemon.delete(n)
        for n in self.names:
            harness.wait_until(lambda: self.daemon.describe(n).status == 404, 30,
                               f"function {n} to be deleted")


@pytest.fixture
def functions(request, api, fn_image):
    fns = Functions(api, fn_image)
    request.addfinalizer(fns.cleanup)
    return fns


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    funcargs = getattr(item, "funcargs", {})
    daemon = funcargs.get("faasd") or funcargs.get("api")
    if daemon is not None:
        report.sections.append(("faasd log (tail)", harness.tail(daemon.log_path, 8000)))
    ctd = funcargs.get("containerd")
    if ctd is not None:
        report.sections.append(("containerd log (tail)", harness.tail(ctd.log_path, 4000)))
    # A test's own daemons (harness.private_daemon) name their logs here.
    for title, path in getattr(item, "extra_logs", []):
        report.sections.append((title, harness.tail(path, 12000)))


def pytest_collection_modifyitems(session, config, items):
    """The harness self-checks run first: they assert a clean slate (no bridge, no firewall
    rules for our subnet) that the daemon tests legitimately change."""
    items.sort(key=lambda item: 0 if item.fspath.basename == "test_harness.py" else 1)
