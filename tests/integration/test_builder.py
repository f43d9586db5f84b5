"""`faasd build`: reproducible OCI images from a stack.yml, import into containerd, deploy with
no registry. These tests use tests/fixtures/fnserver as the image's "watchdog" (it serves :8080
and echoes or forks `fprocess`), so they check the builder and the import, not fwatchdog."""

import json
import os
import subprocess
from pathlib import Path

import pytest

import harness

NO_PULL = {"faasd.pull-policy": "IfNotPresent"}


def faasd_build(*args, env=None, check=True):
    full_env = dict(os.environ)
    full_env.pop("SOURCE_DATE_EPOCH", None)
    full_env.update(env or {})
    proc = subprocess.run([harness.FAASD_BIN, "build", *map(str, args)], capture_output=True,
                          text=True, timeout=300, env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(f"faasd build {args}: exit {proc.returncode}: {proc.stderr}")
    return proc


def built(proc):
    """{name: (reference, digest)} from `faasd build` output lines."""
    out = {}
    for line in proc.stdout.splitlines():
        name, ref, digest = line.split()
        out[name] = (ref, digest)
    return out


@pytest.fixture
def fn_dir(tmp_path):
    """A function folder whose image runs fnserver in fork mode with `cat`."""
    d = tmp_path / "fn"
    (d / "handler" / "sub").mkdir(parents=True)
    (d / "handler" / "data.txt").write_text("payload\n")
    (d / "handler" / "sub" / "run.sh").write_text("#!/bin/sh\ncat\n")
    os.chmod(d / "handler" / "sub" / "run.sh", 0o755)
    (d / "stack.yml").write_text(
        "version: 1.0\n"
        "provider: {name: openfaas, gateway: http://127.0.0.1:8080}\n"
        "functions:\n"
        "  bt-cat:\n"
        "    handler: ./handler\n"
        "    image: bt-cat:latest\n"
        "    fprocess: cat\n"
        "    environment: {mode: fork, greeting: from-stack}\n"
        "    annotations: {faasd.pull-policy: IfNotPresent}\n")
    return d


def layout_files(layout):
    return {str(p.relative_to(layout)): p.read_bytes()
            for p in sorted(Path(layout).rglob("*")) if p.is_file()}


def test_same_inputs_same_digest(tmp_path, fn_dir):
    a = faasd_build("--watchdog", harness.FNSERVER_BIN, "--output", tmp_path / "a",
                    "--archive", tmp_path / "a.tar", fn_dir)
    # A copy of the folder, with other mtimes and a different umask's modes, builds the same.
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(fn_dir), str(copy)], check=True)
    os.utime(copy / "handler" / "data.txt", (1, 1))
    os.chmod(copy / "handler" / "data.txt", 0o600)
    b = faasd_build("--watchdog", harness.FNSERVER_BIN, "--output", tmp_path / "b",
                    "--archive", tmp_path / "b.tar", copy)
    assert built(a) == built(b)
    assert built(a)["bt-cat:latest"][0] == "docker.io/library/bt-cat:latest"
    assert layout_files(tmp_path / "a") == layout_files(tmp_path / "b")
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    index = json.loads((tmp_path / "a" / "index.json").read_text())
    m = index["manifests"][0]
    assert m["annotations"]["org.opencontainers.image.ref.name"] == "bt-cat:latest"
    assert m["digest"] == built(a)["bt-cat:latest"][1]
    # Content and SOURCE_DATE_EPOCH do change it.
    (copy / "handler" / "data.txt").write_text("other\n")
    c = faasd_build("--watchdog", harness.FNSERVER_BIN, "--output", tmp_path / "c", copy)
    assert built(c) != built(a)
    d = faasd_build("--watchdog", harness.FNSERVER_BIN, "--output", tmp_path / "d", fn_dir,
                    env={"SOURCE_DATE_EPOCH": "1700000000"})
    assert built(d) != built(a)


def test_layout_is_valid_for_umoci_and_skopeo(tmp_path, fn_dir):
    """Independent OCI tools read what we write: umoci unpacks the layout, skopeo the archive."""
    faasd_build("--watchdog", harness.FNSERVER_BIN, "--output", tmp_path / "oci",
                "--archive", tmp_path / "img.tar", fn_dir)
    harness.run(["umoci", "unpack", "--image", f"{tmp_path / 'oci'}:bt-cat:latest",
                 tmp_path / "bundle"])
    rootfs = tmp_path / "bundle" / "rootfs"
    try:
        assert (rootfs / "home" / "app" / "data.txt").read_text() == "payload\n"
        assert os.access(rootfs / "home" / "app" / "sub" / "run.sh", os.X_OK)
        assert os.access(rootfs / "usr" / "bin" / "fwatchdog", os.X_OK)
        assert os.readlink(rootfs / "bin" / "sh") == "/bin/busybox"
        config = json.loads((tmp_path / "bundle" / "config.json").read_text())
        assert config["process"]["args"] == ["/usr/bin/fwatchdog"]
        assert config["process"]["cwd"] == "/home/app"
        assert "fprocess=cat" in config["process"]["env"]
    finally:
        harness.unmount_under(tmp_path)
    info = json.loads(harness.run(["skopeo", "inspect", "--config",
                                   f"oci-archive:{tmp_path / 'img.tar'}"]).stdout)
    assert info["config"]["Entrypoint"] == ["/usr/bin/fwatchdog"]
    assert len(info["rootfs"]["diff_ids"]) == 3


def test_import_then_deploy_without_registry(containerd, functions, fn_dir, tmp_path, api):
    out = faasd_build("--watchdog", harness.FNSERVER_BIN, "--output", tmp_path / "oci",
                      "--import", "--containerd-address", containerd.address, fn_dir)
    ref, digest = built(out)["bt-cat:latest"]
    images = containerd.lines("images", "check", namespace=harness.NAMESPACE)
    line = next((l for l in images if l.split()[0] == ref), None)
    assert line is not None, images
    assert digest in line and "complete" in line, line
    assert line.split()[-1] == "true", f"not unpacked: {line}"  # UNPACKED column

    name = functions.deploy("bt", image="bt-cat:latest", annotations=NO_PULL)
    r = api.invoke(name, body="built without docker")
    assert r.status == 200 and r.text == "built without docker", r

    # A second import of the same build is a no-op that keeps the image usable.
    faasd_build("--watchdog", harness.FNSERVER_BIN, "--output", tmp_path / "oci",
                "--import", "--containerd-address", containerd.address, fn_dir)
    name2 = functions.deploy("bt", image="bt-cat:latest", annotations=NO_PULL)
    assert api.invoke(name2, body="again").text == "again"


def test_image_env_from_stack(containerd, functions, tmp_path, api):
    """environment: in stack.yml is the image's env (fnserver echo mode reports it)."""
    d = tmp_path / "envfn"
    (d / "h").mkdir(parents=True)
    (d / "h" / "x").write_text("x")
    (d / "stack.yml").write_text(
        "functions:\n  bt-env:\n    handler: h\n    image: bt-env:1\n"
        "    environment: {mode: echo, greeting: from-stack}\n")
    faasd_build("--watchdog", harness.FNSERVER_BIN, "--output", tmp_path / "oci", "--import",
                "--containerd-address", containerd.address, "--env", "extra=from-flag", d)
    name = functions.deploy("bte", image="bt-env:1", annotations=NO_PULL)
    for var, want in [("greeting", "from-stack"), ("extra", "from-flag"), ("mode", "echo")]:
        r = api.invoke(name, method="GET", headers={"X-Echo-Env": var})
        assert r.status == 200 and r.headers.get(f"X-Fn-Env-{var}") == want, (var, r)


@pytest.mark.parametrize("stack, message", [
    ("functions:\n  a:\n    handler: h\n    image: a:1\n    enviroment: {}\n",
     "unknown key `enviroment`"),
    ("functions:\n  a:\n    image: a:1\n", "`handler`"),
    ("functions:\n  a:\n    handler: missing\n    image: a:1\n", "handler \"missing\": no such folder"),
    ("functions:\n  a:\n    handler: h\n    image: a:1\n    build_command: exit 7\n", "exited 7"),
])
def test_bad_stack_fails_with_a_named_cause(tmp_path, stack, message):
    (tmp_path / "h").mkdir()
    (tmp_path / "stack.yml").write_text(stack)
    p = faasd_build("--watchdog", harness.FNSERVER_BIN, "--output", tmp_path / "oci", tmp_path,
                    check=False)
    assert p.returncode == 1, p
    assert message in p.stderr, p.stderr
    assert not (tmp_path / "oci" / "index.json").exists()


def test_bad_flags_and_outputs(tmp_path, fn_dir):
    p = faasd_build("--watchdog", tmp_path / "nope", "--output", tmp_path / "o", fn_dir,
                    check=False)
    assert p.returncode == 1 and "watchdog" in p.stderr, p.stderr
    p = faasd_build("--bogus", fn_dir, check=False)
    assert p.returncode == 2 and "unknown flag" in p.stderr, p.stderr
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "keep.txt").write_text("mine")
    p = faasd_build("--watchdog", harness.FNSERVER_BIN, "--output", stranger, fn_dir, check=False)
    assert p.returncode == 1 and "refusing" in p.stderr, p.stderr
    assert (stranger / "keep.txt").read_text() == "mine"
    p = faasd_build("--watchdog", harness.FNSERVER_BIN, "--filter", "nope", "--output",
                    tmp_path / "o", fn_dir, check=False)
    assert p.returncode == 1 and "no function nope" in p.stderr, p.stderr
    p = faasd_build("--watchdog", harness.FNSERVER_BIN, "--import", "--containerd-address",
                    tmp_path / "no.sock", "--output", tmp_path / "o2", fn_dir, check=False)
    assert p.returncode == 1 and "import" in p.stderr, p.stderr
