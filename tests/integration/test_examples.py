"""examples/: each function is built with `faasd build --import` (no Docker, no registry),
deployed the way `faas-cli deploy -f stack.yml` does it (envProcess = fprocess, envVars =
environment, labels, annotations incl. faasd.pull-policy=IfNotPresent), invoked, and its
answer checked. Needs the real fwatchdog: FWATCHDOG_BIN, or src/watchdog/fwatchdog next to
FAASD_BIN's build; without it these tests are skipped (and say so)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

import harness

EXAMPLES = harness.REPO / "examples"
FWATCHDOG_BIN = os.environ.get(
    "FWATCHDOG_BIN", str(Path(harness.FAASD_BIN).resolve().parent / "watchdog" / "fwatchdog"))


@pytest.fixture(scope="module")
def watchdog():
    if not os.access(FWATCHDOG_BIN, os.X_OK):
        pytest.skip(f"fwatchdog not built ({FWATCHDOG_BIN}); set FWATCHDOG_BIN")
    return FWATCHDOG_BIN


def build(example, out_dir, watchdog, containerd=None, env=None):
    """Builds examples/<example> from a scratch copy (build_command output stays out of the
    repo). Returns (image name from stack.yml, manifest digest, the stack's function entry)."""
    src = out_dir / "src"
    if not src.exists():
        shutil.copytree(EXAMPLES / example, src, symlinks=True,
                        ignore=shutil.ignore_patterns("build"))
    args = [harness.FAASD_BIN, "build", "--watchdog", watchdog, "--output", out_dir / "oci"]
    if containerd is not None:
        args += ["--import", "--containerd-address", containerd.address]
    full_env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    full_env.update(env or {})
    p = subprocess.run([str(a) for a in args] + [str(src)], capture_output=True, text=True,
                       timeout=600, env=full_env)
    assert p.returncode == 0, f"faasd build {example}: {p.stderr}"
    name, _ref, digest = p.stdout.split()
    stack = yaml.safe_load((src / "stack.yml").read_text())
    (fn_name, fn), = stack["functions"].items()
    assert fn["image"] == name and fn_name == example
    return name, digest, fn


def deploy_like_faas_cli(functions, image, fn, **overrides):
    fields = {"annotations": fn.get("annotations", {}), "labels": fn.get("labels", {}),
              "envVars": {k: str(v) for k, v in (fn.get("environment") or {}).items()}}
    if fn.get("fprocess"):
        fields["envProcess"] = fn["fprocess"]
    assert fields["annotations"].get("faasd.pull-policy") == "IfNotPresent"
    fields.update(overrides)
    return functions.deploy(fn["image"].split(":")[0][:20], image=image, **fields)


def test_every_example_has_stack_handler_and_readme():
    folders = sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir())
    assert len(folders) >= 5, folders
    for name in folders:
        d = EXAMPLES / name
        assert (d / "README.md").read_text().strip(), name
        stack = yaml.safe_load((d / "stack.yml").read_text())
        (fn_name, fn), = stack["functions"].items()
        assert fn_name == name
        assert stack["provider"]["name"] == "openfaas"
        assert fn["annotations"]["faasd.pull-policy"] == "IfNotPresent"


def test_echo(watchdog, containerd, functions, api, tmp_path):
    image, _, fn = build("echo", tmp_path, watchdog, containerd)
    name = deploy_like_faas_cli(functions, image, fn)
    r = api.invoke(name + ".openfaas-fn", body=b"hello from the echo example")
    assert r.status == 200 and r.body == b"hello from the echo example", r
    big = bytes(range(256)) * 1024
    r = api.invoke(name, body=big)
    assert r.status == 200 and r.body == big, (r.status, len(r.body))


def test_cgi_info(watchdog, containerd, functions, api, tmp_path):
    image, _, fn = build("cgi-info", tmp_path, watchdog, containerd)
    name = deploy_like_faas_cli(functions, image, fn)
    r = api.invoke(name, "/some/path?a=1&b=two", method="GET")
    assert r.status == 200, r
    assert r.text.strip() == "method=GET path=/some/path query=a=1&b=two body=", r
    r = api.invoke(name, body="xyz", method="PUT")
    assert r.status == 200 and r.text.strip() == "method=PUT path=/ query= body=xyz", r


def test_cpp_http(watchdog, containerd, functions, api, tmp_path):
    # http mode proxies to 127.0.0.1:8082 inside the container: this needs the function's
    # network namespace to have `lo` up (upstream faasd adds CNI's loopback plugin).
    if shutil.which("g++") is None:
        pytest.skip("g++ not installed: the cpp-http example compiles at build time")
    image, _, fn = build("cpp-http", tmp_path, watchdog, containerd)
    name = deploy_like_faas_cli(functions, image, fn)
    r = api.invoke(name, "/compute", body="12345")
    assert r.status == 200 and r.text == "hello from C++: POST /compute (5 bytes)\n", r
    r = api.invoke(name, "/", method="GET")
    assert r.status == 200 and r.text == "hello from C++: GET / (0 bytes)\n", r


def test_env_config(watchdog, containerd, functions, api, tmp_path):
    image, _, fn = build("env-config", tmp_path, watchdog, containerd)
    name = deploy_like_faas_cli(functions, image, fn)
    r = api.invoke(name, method="GET")
    assert r.status == 200 and r.text.strip() == "Hello, faasd!", r
    # The same image, configured differently at deploy time (faas-cli deploy --env target=...).
    env = dict(fn["environment"], target="operator")
    other = deploy_like_faas_cli(functions, image, fn, envVars=env)
    r = api.invoke(other, method="GET")
    assert r.status == 200 and r.text.strip() == "Hello, operator!", r


def test_static_site(watchdog, containerd, functions, api, tmp_path):
    image, _, fn = build("static-site", tmp_path, watchdog, containerd)
    name = deploy_like_faas_cli(functions, image, fn)
    index = (EXAMPLES / "static-site" / "handler" / "public" / "index.html").read_bytes()
    css = (EXAMPLES / "static-site" / "handler" / "public" / "style.css").read_bytes()
    r = api.invoke(name, "/", method="GET")
    assert r.status == 200 and r.body == index, r
    r = api.invoke(name, "/style.css", method="GET")
    assert r.status == 200 and r.body == css, r
    r = api.invoke(name, "/missing.html", method="GET")
    assert r.status == 404, r


def test_examples_build_reproducibly_and_import_complete(watchdog, containerd, tmp_path):
    for example in ["echo", "cgi-info", "env-config", "static-site"]:
        first = build(example, tmp_path / example / "1", watchdog, containerd)
        second = build(example, tmp_path / example / "2", watchdog)
        assert first[1] == second[1], example
        ref = "docker.io/library/" + first[0]
        checked = containerd.lines("images", "check", namespace=harness.NAMESPACE)
        line = next((l for l in checked if l.split()[0] == ref), None)
        assert line is not None and first[1] in line and "complete" in line, (ref, checked)
        assert line.split()[-1] == "true", f"{ref} not unpacked: {line}"
