#!/usr/bin/env bash
# Air-gapped: the package with its sidecar images, plus a function's image archive, make a
# working appliance on a host with no network at all. Builds the .deb with --with-images (the
# NATS and Prometheus archives of packaging/images/build.sh) unless one is given, then, in new
# network and mount namespaces where only `lo` is up and nothing routes out, runs
# tests/package/test_airgap.py: install, the daemon as faasd.service's ExecStart with the
# socket held (LISTEN_FDS), sidecars from /usr/share/faasd/images, a function built with
# `faasd build --archive` and imported, deployed, invoked sync and async, Prometheus scraping
# the gateway, and the kernel's no-route counters showing nothing even tried to leave.
#
#   tests/package/test_airgap.sh [BUILD_DIR]      (root; scripts/test.sh runs it)
#
# FAASD_AIRGAP_DEB=PATH uses that .deb (built with --with-images) instead of building one;
# FAASD_SIDECAR_IMAGES=DIR, the archives packaging/images/build.sh put there already.
# Like test_package.sh: /var/lib/faasd, /etc/cni/net.d and /var/lib/cni are empty folders of
# the test's own, /run/containerd a private tmpfs (the test's containerd listens at the
# default address, runc keeps its state there); /usr/sbin/faasd, /usr/lib/faasd, /etc/faasd
# and the sysctl drop-in are real for the test's duration and purged at its end, also when it
# fails. The network namespace, its bridge, veths and iptables rules end when its last process
# does. Where a faasd package is installed already it says so and skips.
set -euo pipefail

cd "$(dirname "$0")/../.."
repo=$(pwd)
build=${1:-build}
[[ $build = /* ]] || build=$repo/$build

if [[ -z ${FAASD_AIRGAP_NS:-} ]]; then
  [[ $(id -u) -eq 0 ]] || { echo "test_airgap.sh: run as root" >&2; exit 2; }
  if dpkg-query -W -f='${Status}' faasd 2>/dev/null | grep -q 'installed'; then
    echo "test_airgap.sh: skipped: a faasd package is installed on this host; not touching it"
    exit 0
  fi
  out=$(mktemp -d /tmp/fag-XXXXXX)
  trap 'rm -rf "$out"' EXIT
  deb=${FAASD_AIRGAP_DEB:-}
  if [[ -z $deb ]]; then
    start=$SECONDS
    images=${FAASD_SIDECAR_IMAGES:-}
    if [[ -z $images ]]; then
      images=$out/images
      packaging/images/build.sh "$images" >/dev/null
    fi
    deb=$(packaging/build.sh --build-dir "$build" --out "$out" --with-images="$images" \
            --no-rpm --fast | grep '\.deb$')
    echo "test_airgap.sh: sidecar images and package built in $((SECONDS - start)) s"
  fi
  [[ -f $deb ]] || { echo "test_airgap.sh: no package $deb" >&2; exit 1; }
  made=()
  for d in /var/lib/faasd /etc/cni/net.d /var/lib/cni /run/containerd; do
    if [[ ! -e $d ]]; then mkdir -p "$d"; made+=("$d"); fi
  done
  rc=0
  # Names the test's services namespace and function: their cgroups are host-wide.
  tag=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
  FAASD_AIRGAP_NS=1 FAASD_AIRGAP_DEB=$deb FAASD_AIRGAP_TAG=$tag \
    unshare --net --mount --propagation private -- "$0" "$build" || rc=$?
  for d in "${made[@]}"; do rmdir "$d" 2>/dev/null || true; done
  exit $rc
fi

# --- In the private network and mount namespaces ----------------------------------------------
ip link set lo up
scratch=$(mktemp -d /tmp/fag-ns-XXXXXX)
mkdir -p "$scratch/state" "$scratch/cni-conf" "$scratch/cni-lib"
mount --bind "$scratch/state" /var/lib/faasd
mount --bind "$scratch/cni-conf" /etc/cni/net.d
mount --bind "$scratch/cni-lib" /var/lib/cni
mount -t tmpfs -o mode=0711 tmpfs /run/containerd
cleanup() {
  local rc=$?
  # The test's own processes only, should its cleanup have failed: whatever still runs in the
  # cgroups of its services and function, then in this network namespace (the daemon,
  # containerd, shims), never this shell; a dpkg or apt of the test's (pytest killed mid-purge)
  # is waited for, never killed. One pass in Python: a fork per /proc entry costs minutes on a
  # busy box.
  python3 - "$$" "$FAASD_AIRGAP_TAG" <<'PY' || true
import os, re, signal, sys, time
me, tag = sys.argv[1], sys.argv[2]
ours = re.compile(rf":/(airgap-{tag}|openfaas-fn/echo-{tag}-[0-9a-f]+)(/|$)", re.M)
net = os.readlink(f"/proc/{me}/ns/net")
def read(pid, name):
    with open(f"/proc/{pid}/{name}", "rb") as f:
        return f.read().decode(errors="replace")
def pids(match):
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if pid not in (me, str(os.getpid())) and match(pid):
                out.append(pid)
        except OSError:
            pass
    return out
in_net = lambda pid: os.readlink(f"/proc/{pid}/ns/net") == net
packaging = lambda pid: read(pid, "comm").strip() in ("dpkg", "apt", "apt-get")
deadline = time.monotonic() + 300
while pids(lambda p: in_net(p) and packaging(p)) and time.monotonic() < deadline:
    time.sleep(0.5)  # polling dpkg's exit, bounded
for match in (lambda p: ours.search(read(p, "cgroup")),
              lambda p: in_net(p) and not packaging(p)):
    for pid in pids(match):
        try:
            cmd = read(pid, "cmdline").replace("\0", " ")
            print(f"test_airgap.sh: killing pid {pid}, left by the test: {cmd}")
            os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass
PY
  # Whatever happened: no faasd package stays installed (purge runs here, in the namespace).
  # Another apt run on the host may hold dpkg's lock for minutes: wait for it, and say so
  # loudly (and fail) if the package stays.
  if dpkg-query -W -f='${Status}' faasd 2>/dev/null | grep -q 'installed\|config-files'; then
    echo "test_airgap.sh: purging the faasd package left by the test"
    apt-get purge -y -qq -o DPkg::Lock::Timeout=600 faasd >/dev/null ||
      dpkg --purge faasd >/dev/null || true
    if dpkg-query -W -f='${Status}' faasd 2>/dev/null | grep -q 'installed\|config-files'; then
      echo "test_airgap.sh: FAILED TO PURGE the faasd package: purge it in a private mount" \
           "namespace with /var/lib/faasd and /etc/cni/net.d bound to empty folders" >&2
      rc=1
    fi
  fi
  rmdir /sys/fs/cgroup/*/"airgap-$FAASD_AIRGAP_TAG"/*/ /sys/fs/cgroup/*/"airgap-$FAASD_AIRGAP_TAG" \
    2>/dev/null || true
  umount -l /run/containerd /var/lib/cni /etc/cni/net.d /var/lib/faasd 2>/dev/null || true
  rm -rf "$scratch"
  exit $rc
}
trap cleanup EXIT

mkdir "$scratch/work"
FAASD_AIRGAP_WORK=$scratch/work PYTHONDONTWRITEBYTECODE=1 \
  /usr/bin/python3 -m pytest -v -p no:cacheprovider -rA ${PYTEST_ARGS:-} \
  tests/package/test_airgap.py
