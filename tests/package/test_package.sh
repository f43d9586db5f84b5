#!/usr/bin/env bash
# The package, end to end: builds the .deb and the .rpm twice from an existing build dir
# (revisions 1 and 2, gzip -1), then runs tests/package/test_package.py: apt-get install, the
# daemon started as faasd.service's ExecStart with the socket held by the test (LISTEN_FDS),
# deploy + invoke, a restart under 20 req/s with no failed request, the upgrade to revision 2
# (function, password and an edited config kept), purge (nothing left); then the .rpm with
# Debian's rpm on a database of its own: install (%post's `faasd install`), upgrade (edited
# config and password kept), erase. Prints sizes and idle RSS.
#
#   tests/package/test_package.sh [BUILD_DIR]      (root; scripts/test.sh runs it)
#
# FAASD_SIDECAR_IMAGES=DIR puts DIR's sidecar archives (packaging/images/build.sh) in the
# packages (--with-images); FAASD_PACKAGE_KEEP=DIR builds them into DIR and leaves them there
# (scripts/test.sh hands revision 1 to tests/package/test_airgap.sh). The daemon here runs
# with services off either way.
#
# It runs in a private mount namespace where /var/lib/faasd and /etc/cni/net.d are empty
# folders of its own: the package's postinst and postrm (purge removes /var/lib/faasd) never
# touch this host's faasd state. /usr/sbin/faasd, /usr/lib/faasd, /etc/faasd and the sysctl
# drop-in are real for the test's duration and purged at its end, also when it fails. Where a
# faasd package is installed already it says so and skips.
set -euo pipefail

cd "$(dirname "$0")/../.."
repo=$(pwd)
build=${1:-build}
[[ $build = /* ]] || build=$repo/$build

if [[ -z ${FAASD_PACKAGE_NS:-} ]]; then
  [[ $(id -u) -eq 0 ]] || { echo "test_package.sh: run as root" >&2; exit 2; }
  if dpkg-query -W -f='${Status}' faasd 2>/dev/null | grep -q 'installed'; then
    echo "test_package.sh: skipped: a faasd package is installed on this host; not touching it"
    exit 0
  fi
  if [[ -n ${FAASD_PACKAGE_KEEP:-} ]]; then
    out=$FAASD_PACKAGE_KEEP
    mkdir -p "$out"
  else
    out=$(mktemp -d /tmp/fpk-XXXXXX)
    trap 'rm -rf "$out"' EXIT
  fi
  images=()
  [[ -z ${FAASD_SIDECAR_IMAGES:-} ]] || images=(--with-images="$FAASD_SIDECAR_IMAGES")
  start=$SECONDS
  packaging/build.sh --build-dir "$build" --out "$out" --revision 1 --revision 2 --fast \
    "${images[@]}" >/dev/null
  echo "test_package.sh: two packages built in $((SECONDS - start)) s"
  # Mount points the namespace needs; made here (and removed after) only when missing.
  made=()
  for d in /var/lib/faasd /etc/cni/net.d; do
    if [[ ! -e $d ]]; then mkdir -p "$d"; made+=("$d"); fi
  done
  rc=0
  FAASD_PACKAGE_NS=1 FAASD_PACKAGE_OUT=$out BUILD_DIR=$build \
    unshare --mount --propagation private -- "$0" "$build" || rc=$?
  for d in "${made[@]}"; do rmdir "$d" 2>/dev/null || true; done
  exit $rc
fi

# --- In the private mount namespace ---------------------------------------------------------
scratch=$(mktemp -d /tmp/fpk-ns-XXXXXX)
mkdir -p "$scratch/state" "$scratch/cni"
mount --bind "$scratch/state" /var/lib/faasd
mount --bind "$scratch/cni" /etc/cni/net.d
cleanup() {
  # Whatever happened: no faasd package stays installed (purge runs here, in the namespace).
  if dpkg-query -W -f='${Status}' faasd 2>/dev/null | grep -q 'installed\|config-files'; then
    echo "test_package.sh: purging the faasd package left by the test"
    apt-get purge -y -qq -o DPkg::Lock::Timeout=120 faasd >/dev/null 2>&1 ||
      dpkg --purge faasd >/dev/null 2>&1 || true
  fi
  umount -l /var/lib/faasd /etc/cni/net.d 2>/dev/null || true
  rm -rf "$scratch"
}
trap cleanup EXIT

PYTHONDONTWRITEBYTECODE=1 \
FNSERVER_BIN=${FNSERVER_BIN:-$BUILD_DIR/tests/fixtures/fnserver} \
FWATCHDOG_BIN=${FWATCHDOG_BIN:-$BUILD_DIR/src/watchdog/fwatchdog} \
  /usr/bin/python3 -m pytest -v -p no:cacheprovider -rA ${PYTEST_ARGS:-} \
  tests/package/test_package.py
