"""Checks of the bench itself, without the daemon: when these fail, the other failures are the
bench's, not faasd's."""

import json
import random

import harness

NS = "fdt-harness"


def test_registry_serves_all_images(registry, fn_image):
    for name, ref in fn_image.refs.items():
        r = harness.http_request("127.0.0.1", registry.port, "GET", f"/v2/{name}/manifests/latest",
                                 headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
        assert r.status == 200, f"manifest of {ref}: {r}"


def test_image_pulls_and_runs_in_private_containerd(containerd, fn_image):
    ref = fn_image.refs["echo"]
    cid = "fdt-run-%06x" % random.getrandbits(24)
    port = harness.free_port()
    try:
        containerd.ctr("images", "pull", "--plain-http", ref, namespace=NS, timeout=300)
        check = containerd.ctr("images", "check", namespace=NS).stdout
        assert any(ref in l and "complete" in l for l in check.splitlines()), check
        containerd.ctr("run", "-d", "--net-host", "--env", f"port={port}", ref, cid,
                       namespace=NS)
        harness.wait_until(
            lambda: harness.http_request("127.0.0.1", port, "GET", "/_/health",
                                         timeout=2).status == 200,
            30, f"fnserver in container {cid} on :{port}")
        r = harness.http_request("127.0.0.1", port, "POST", "/x", body="ping",
                                 headers={"X-Echo-Env": "greeting"})
        assert r.status == 200 and r.text == "ping", r
        assert r.headers.get("X-Fn-Env-greeting") == "from-image"
    finally:
        containerd.ctr("tasks", "kill", "-s", "SIGKILL", cid, namespace=NS, check=False)
        harness.wait_until(
            lambda: containerd.ctr("tasks", "delete", cid, namespace=NS,
                                   check=False).returncode == 0
            or cid not in containerd.lines("tasks", "ls", "-q", namespace=NS),
            15, f"task {cid} deleted")
        containerd.ctr("containers", "delete", cid, namespace=NS, check=False)
        containerd.ctr("images", "rm", ref, namespace=NS, check=False)


def test_cni_subnet_is_private(cni):
    assert cni.subnet.prefixlen == 24 and cni.subnet.subnet_of(cni.POOL)
    # Runs before any daemon test (see conftest.py), so nothing may exist yet.
    assert harness.run(["ip", "link", "show", cni.bridge], check=False).returncode != 0
    rules, chains = cni.iptables_leftovers()
    assert not rules and not chains, (rules, chains)


def cni_exec(plugin, config, cid, netns, command="ADD"):
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": netns,
           "CNI_IFNAME": "eth1", "CNI_PATH": "/usr/lib/cni", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    proc = harness.subprocess.run(["/usr/lib/cni/" + plugin], input=json.dumps(config),
                                  capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, f"{plugin} {command}: {proc.stdout} {proc.stderr}"
    return json.loads(proc.stdout) if proc.stdout.strip() else None


def test_cni_cleanup_removes_what_the_plugins_create(workdir):
    """Runs bridge(ipMasq)+firewall like the daemon does, then checks CniEnv.close() undoes it."""
    env = harness.CniEnv(workdir + "/selfcheck")
    netns = "fdt-ns-%06x" % random.getrandbits(24)
    cid = "fdtselfcheck%06x" % random.getrandbits(24)
    try:
        env.start()
        harness.run(["ip", "netns", "add", netns])
        base = {"cniVersion": "0.4.0", "name": env.network}
        bridge = dict(base, type="bridge", bridge=env.bridge, isGateway=True, ipMasq=True,
                      ipam={"type": "host-local", "subnet": str(env.subnet),
                            "dataDir": str(env.ipam_dir), "routes": [{"dst": "0.0.0.0/0"}]})
        result = cni_exec("bridge", bridge, cid, "/run/netns/" + netns)
        cni_exec("firewall", dict(base, type="firewall", prevResult=result), cid,
                 "/run/netns/" + netns)
        rules, chains = env.iptables_leftovers()
        assert rules and chains, "plugins made no rules this harness would recognise"
    finally:
        harness.run(["ip", "netns", "del", netns], check=False)
        env.close()
    assert harness.run(["ip", "link", "show", env.bridge], check=False).returncode != 0
    rules, chains = env.iptables_leftovers()
    assert not rules and not chains, (rules, chains)
