"""`faasd export` against the running daemon, and the config file as `faasd up` and
`faasd config` read it."""

import random
import subprocess

import pytest
import yaml

import harness


def faasd_cmd(*args, timeout=60):
    return subprocess.run([harness.FAASD_BIN, *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def export(api, *extra):
    return faasd_cmd("export", f"--listen=127.0.0.1:{api.port}",
                     f"--state-dir={api.state_dir}", *extra)


@pytest.fixture
def secret(request, api):
    name = f"exp-{random.getrandbits(24):06x}"
    r = api.request("POST", "/system/secrets", {"name": name, "value": "v"})
    assert r.status in (200, 201, 202), r
    request.addfinalizer(lambda: api.request("DELETE", "/system/secrets", {"name": name}))
    return name


def test_export_writes_a_stack_faas_cli_deploys(api, functions, secret):
    name = functions.deploy(
        "exp", envProcess="cat", envVars={"A": "1", "QUOTED": "x: y # z"},
        labels={"team": "a"}, annotations={"faasd.pull-policy": "IfNotPresent"},
        secrets=[secret], limits={"memory": "64Mi", "cpu": "500m"}, requests={"cpu": "100m"})
    r = export(api)
    assert r.returncode == 0, r.stderr
    stack = yaml.safe_load(r.stdout)
    assert stack["provider"] == {"name": "openfaas", "gateway": f"http://127.0.0.1:{api.port}"}
    fn = stack["functions"][name]
    assert fn["image"] == functions.images.refs["echo"]
    assert fn["fprocess"] == "cat"
    assert fn["environment"] == {"A": "1", "QUOTED": "x: y # z"}
    assert fn["labels"]["team"] == "a"
    assert fn["annotations"]["faasd.pull-policy"] == "IfNotPresent"
    assert fn["secrets"] == [secret]
    assert fn["limits"] == {"memory": "64Mi", "cpu": "500m"}
    assert fn["requests"] == {"cpu": "100m"}
    assert "namespace" not in fn  # the default one
    # What faas-cli would send back: the same deployment, so an update changes nothing.
    again = {"service": name, "image": fn["image"], "envProcess": fn["fprocess"],
             "envVars": fn["environment"], "labels": fn["labels"],
             "annotations": fn["annotations"], "secrets": fn["secrets"],
             "limits": fn["limits"], "requests": fn["requests"]}
    assert api.request("PUT", "/system/functions", again).status in (200, 202)
    api.wait_ready(name)
    r2 = export(api, "--namespace=openfaas-fn")
    assert r2.returncode == 0, r2.stderr
    assert yaml.safe_load(r2.stdout)["functions"][name] == fn


def test_export_errors_name_the_request(api, tmp_path):
    (tmp_path / "secrets").mkdir(mode=0o700)
    (tmp_path / "secrets" / "basic-auth-user").write_text("admin\n")
    (tmp_path / "secrets" / "basic-auth-password").write_text("wrong\n")
    r = faasd_cmd("export", f"--listen=127.0.0.1:{api.port}", f"--state-dir={tmp_path}")
    assert r.returncode == 1
    assert "GET /system/namespaces: HTTP 401" in r.stderr, r.stderr
    r = faasd_cmd("export", f"--listen=127.0.0.1:{harness.free_port()}",
                  f"--state-dir={api.state_dir}")
    assert r.returncode == 1
    assert "GET /system/namespaces:" in r.stderr and "(is faasd up?)" in r.stderr, r.stderr


def test_config_file_is_read_and_its_errors_stop_up(tmp_path):
    good = tmp_path / "good.conf"
    good.write_text("# comment\nstop-grace = 7\nnameserver = 192.0.2.1\nnameserver = 192.0.2.2\n")
    r = faasd_cmd("config", f"--config={good}", "--log-level=debug")
    assert r.returncode == 0, r.stderr
    assert f"stop-grace = 7  # {good}:2" in r.stdout
    assert f"nameserver = 192.0.2.1  # {good}:3" in r.stdout  # a key's first line
    assert "nameserver = 192.0.2.2  #" in r.stdout
    assert "log-level = debug  # --log-level" in r.stdout
    assert "basic-auth-password (not shown)" in r.stdout
    for text, error in [
        ("stop-grace = 7\nbogus = 1\n", f"{tmp_path}/bad.conf:2: unknown key \"bogus\""),
        ("pull-policy = sometimes\n",
         f"{tmp_path}/bad.conf:1: pull-policy = sometimes: not one of Always, IfNotPresent, Never"),
        ("listen 8080\n", f"{tmp_path}/bad.conf:1: \"listen 8080\" is not `key = value`"),
    ]:
        (tmp_path / "bad.conf").write_text(text)
        r = faasd_cmd("up", f"--config={tmp_path}/bad.conf")
        assert r.returncode == 2 and error in r.stderr, (text, r.stderr)
    r = faasd_cmd("up", f"--config={tmp_path}/missing.conf")
    assert r.returncode == 2
    assert f"config {tmp_path}/missing.conf: No such file or directory" in r.stderr
