"""Pulls from private registries the way they are run: TLS on loopback with a CA made for the
test (given with --registry-ca, never --insecure-registry), token auth (docker-registry's
`auth: token:` with a token server of the harness, secure_registry.py) and htpasswd auth, with
credentials from the docker config.json named by --docker-config. Also what an operator reads
when it goes wrong: a refused password, a CA faasd was not given, a certificate for another
name, each answered to the deploy and logged as a warning with its cause."""

import base64
import json
import random
import re
import shutil
from pathlib import Path

import pytest

import harness
import secure_registry

NS = harness.NAMESPACE
REPO = "private/echo"
USER, FIRST_PASSWORD = "alice", "first-secret"
BASIC_USER, BASIC_PASSWORD = "bob", "basic-secret"


class Bench:
    """The CA, the token server and three registries, built once for the module: `token` (token
    auth, holding REPO), `basic` (htpasswd, holding REPO), `misnamed` (a certificate for
    registry.invalid only)."""

    def __init__(self, request, workdir, fn_image):
        self.dir = Path(workdir) / "regauth"
        request.addfinalizer(lambda: shutil.rmtree(self.dir, ignore_errors=True))
        self.ca = secure_registry.TestCA(self.dir / "ca")
        self.tokens = secure_registry.TokenServer(self.ca)
        request.addfinalizer(self.tokens.close)
        self.tokens.set_password(USER, FIRST_PASSWORD)
        self.tokens.start()
        self.token = secure_registry.TlsRegistry(
            self.dir, "reg-token", self.ca,
            auth=secure_registry.TlsRegistry.token_auth(self.tokens, self.ca))
        request.addfinalizer(self.token.close)
        self.token.start()
        htpasswd = secure_registry.htpasswd_file(self.dir / "ca" / "htpasswd",
                                                 {BASIC_USER: BASIC_PASSWORD})
        self.basic = secure_registry.TlsRegistry(
            self.dir, "reg-basic", self.ca, auth=secure_registry.TlsRegistry.htpasswd_auth(htpasswd))
        request.addfinalizer(self.basic.close)
        self.basic.start()
        self.misnamed = secure_registry.TlsRegistry(self.dir, "reg-misnamed", self.ca,
                                                    cert_names=("registry.invalid",))
        request.addfinalizer(self.misnamed.close)
        self.misnamed.start()
        cert_dir = self.ca.skopeo_cert_dir()
        self.token_ref = fn_image.push("echo", f"{self.token.host}/{REPO}:latest",
                                       f"--dest-cert-dir={cert_dir}",
                                       f"--dest-creds={USER}:{FIRST_PASSWORD}")
        self.basic_ref = fn_image.push("echo", f"{self.basic.host}/{REPO}:latest",
                                       f"--dest-cert-dir={cert_dir}",
                                       f"--dest-creds={BASIC_USER}:{BASIC_PASSWORD}")
        self.misnamed_ref = f"{self.misnamed.host}/{REPO}:latest"
        self.docker_config = self.dir / "docker-config.json"

    def write_config(self, **by_host):
        """config.json with auths for each host: (user, password)."""
        auths = {host: {"auth": base64.b64encode(f"{u}:{p}".encode()).decode()}
                 for host, (u, p) in by_host.items()}
        tmp = self.docker_config.with_suffix(".tmp")
        tmp.write_text(json.dumps({"auths": auths}))
        tmp.replace(self.docker_config)

    def credentials(self, password=FIRST_PASSWORD):
        self.write_config(**{self.token.host: (USER, password),
                             self.basic.host: (BASIC_USER, BASIC_PASSWORD)})


@pytest.fixture(scope="module")
def bench(request, workdir, fn_image):
    return Bench(request, workdir, fn_image)


@pytest.fixture(scope="module")
def daemon(request, workdir, bench):
    d, _ = harness.private_daemon(
        request, workdir, "regauth", NS,
        extra_args=[f"--registry-ca={bench.ca.cert_path}",
                    f"--docker-config={bench.docker_config}"])
    bench.credentials()
    d.start()
    return d


@pytest.fixture
def deployed(request, daemon):
    """Deploys under unique names; deletes them after the test."""
    names = []

    def deploy(image, prefix="ra"):
        name = f"{prefix}-{random.getrandbits(24):06x}"
        names.append(name)
        return name, daemon.deploy(name, image)

    def cleanup():
        for n in names:
            daemon.delete(n)
        for n in names:
            harness.wait_until(lambda: daemon.describe(n).status == 404, 30, f"{n} deleted")
    request.addfinalizer(cleanup)
    return deploy


def failure_warnings(daemon, name, cause):
    """The daemon's log lines at level warning about deploying `name` that give `cause`."""
    return [l for l in harness.tail(daemon.log_path, 10**7).splitlines()
            if re.match(r"\S+ warning deploy ", l) and f" {name}.{NS} failed (" in l
            and cause in l]


def refusal_context(r, daemon, bench):
    """What to read when a pull that should be refused was not: the answer, the daemon's log,
    the token server's grants, the registries' access logs and the docker config."""
    return "\n".join([
        repr(r), "--- daemon log:", harness.tail(daemon.log_path, 3000),
        "--- token requests:", repr(bench.tokens.requests[-4:]),
        "--- connections the token server could not serve:", repr(bench.tokens.failures[-4:]),
        "--- token registry log:", harness.tail(bench.token.log_path, 1500),
        "--- htpasswd registry log:", harness.tail(bench.basic.log_path, 1500),
        "--- docker config (restored since):", bench.docker_config.read_text()])


def assert_answers(daemon, name, r):
    assert r.status in (200, 202), r
    daemon.wait_ready(name)
    e = daemon.invoke(name, body="over-tls")
    assert (e.status, e.text) == (200, "over-tls"), e


def test_token_auth_private_repository_pulls_with_configured_credentials(daemon, bench, deployed):
    before = bench.tokens.granted(USER)
    name, r = deployed(bench.token_ref)
    assert_answers(daemon, name, r)
    # The pull really went through the token server with the configured user.
    assert bench.tokens.granted(USER) > before


def test_anonymous_pull_of_private_repository_is_refused(daemon, bench, deployed):
    bench.write_config(**{bench.basic.host: (BASIC_USER, BASIC_PASSWORD)})  # none for `token`
    try:
        name, r = deployed(bench.token_ref)
    finally:
        bench.credentials()
    assert r.status == 400, refusal_context(r, daemon, bench)
    assert bench.token.host in r.text and "unauthorized" in r.text, r
    # It says what is missing, not "check credentials" in a config that has none for it.
    assert "registry wants credentials" in r.text, r
    assert f"{bench.docker_config} has no credentials for {bench.token.host}" in r.text, r


def test_wrong_password_fails_deploy_naming_registry_and_cause_and_logs_warning(
        daemon, bench, deployed):
    bench.credentials(password="not-the-password")
    try:
        name, r = deployed(bench.token_ref)
    finally:
        bench.credentials()
    assert r.status == 400, refusal_context(r, daemon, bench)
    assert bench.token.host in r.text, r
    assert "unauthorized" in r.text and str(bench.docker_config) in r.text, r
    assert bench.tokens.realm in r.text, r  # the token server, the one that refused
    assert failure_warnings(daemon, name, f"{bench.tokens.realm}: unauthorized"), \
        harness.tail(daemon.log_path, 4000)
    assert daemon.describe(name).status == 404


def test_changed_password_takes_effect_at_once(daemon, bench, deployed):
    name, r = deployed(bench.token_ref)
    assert r.status in (200, 202), r  # a token for the first password is cached now (1 h)
    try:
        bench.tokens.set_password(USER, "second-secret")
        # The old password, still in config.json, is refused at once: the cached token was
        # granted to these credentials, and the token server no longer accepts them...
        bench.credentials(password="stale-secret")
        name, r = deployed(bench.token_ref)
        assert r.status == 400 and "unauthorized" in r.text, refusal_context(r, daemon, bench)
        # ...and the new one works at once, with a token fetched for it.
        granted = bench.tokens.granted(USER)
        bench.credentials(password="second-secret")
        name, r = deployed(bench.token_ref)
        assert_answers(daemon, name, r)
        assert bench.tokens.granted(USER) > granted
    finally:
        bench.tokens.set_password(USER, FIRST_PASSWORD)
        bench.credentials()


def test_htpasswd_registry_pulls_with_basic_auth(daemon, bench, deployed):
    name, r = deployed(bench.basic_ref)
    assert_answers(daemon, name, r)
    bench.write_config(**{bench.basic.host: (BASIC_USER, "wrong")})
    try:
        name, r = deployed(bench.basic_ref)
    finally:
        bench.credentials()
    assert r.status == 400 and "unauthorized" in r.text and bench.basic.host in r.text, \
        refusal_context(r, daemon, bench)


def test_certificate_for_another_name_says_so(daemon, bench, deployed):
    name, r = deployed(bench.misnamed_ref)
    assert r.status == 502, r
    assert f"TLS certificate does not name {bench.misnamed.host}" in r.text, r
    assert failure_warnings(daemon, name, "does not name"), harness.tail(daemon.log_path, 4000)


def test_unknown_authority_without_registry_ca_hints_at_the_flag(request, workdir, bench):
    plain, _ = harness.private_daemon(request, workdir, "regauth-noca", NS,
                                      extra_args=[f"--docker-config={bench.docker_config}"])
    plain.start()
    name = f"noca-{random.getrandbits(24):06x}"
    r = plain.deploy(name, bench.token_ref)
    assert r.status == 502, r
    assert "signed by an unknown authority" in r.text and "--registry-ca=FILE" in r.text, r
    assert bench.token.host in r.text, r
    # Not retried over plain HTTP, which would only hide the cause.
    assert "http://" not in r.text, r
    assert failure_warnings(plain, name, "unknown authority"), harness.tail(plain.log_path, 4000)
