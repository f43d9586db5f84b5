#!/usr/bin/env bash
# Installs the Debian 12 packages faasd-cpp needs. Idempotent: asks apt only for what is
# missing, and runs `apt-get update` only then.
#
#   scripts/deps.sh build   compilers and libraries to build the daemon
#   scripts/deps.sh run     what the daemon drives at run time (containerd, runc, CNI, iptables)
#   scripts/deps.sh test    run + the integration bench (registry, umoci, skopeo, pytest, ...)
#   scripts/deps.sh         all of them
set -euo pipefail

build_pkgs=(
  meson ninja-build g++ pkg-config git
  protobuf-compiler protobuf-compiler-grpc libgrpc++-dev libprotobuf-dev libabsl-dev
  libcpp-httplib-dev nlohmann-json3-dev libyaml-cpp-dev libarchive-dev libnats-dev prometheus-cpp-dev catch2
  libssl-dev zlib1g-dev libzstd-dev
  libboost-dev  # Boost.Beast and Boost.Asio (header-only): the HTTP/1.1 parser and event loop
  golang-github-containerd-containerd-dev golang-github-gogo-protobuf-dev
  golang-github-gogo-googleapis-dev golang-github-containerd-cgroups-dev
)
run_pkgs=(containerd runc containernetworking-plugins iptables iproute2 ca-certificates busybox-static
  nats-server prometheus  # their binaries make the offline sidecar images (packaging/images)
)
test_pkgs=(
  "${run_pkgs[@]}"
  skopeo umoci docker-registry busybox-static util-linux
  python3 python3-pytest python3-yaml curl jq wrk
  systemd  # systemd-journald and journalctl, run in a private mount namespace by test_journal.py
  chromium chromium-driver python3-selenium  # test_ui.py drives the portal in a real browser
  # test_registry_auth.py: a CA and certificates, a JWT token server, an htpasswd file
  python3-cryptography python3-jwt python3-bcrypt
  python3-websocket  # test_streaming.py: a WebSocket client of its own, not ours, through the gateway
  clang libclang-rt-14-dev  # tests/fuzz: clang-14 and its libFuzzer (libclang_rt.fuzzer-x86_64.a)
)

want=()
if [[ $# -eq 0 ]]; then set -- build run test; fi
for group in "$@"; do
  case "$group" in
    build) want+=("${build_pkgs[@]}") ;;
    run) want+=("${run_pkgs[@]}") ;;
    test) want+=("${test_pkgs[@]}") ;;
    *) echo "usage: $0 [build] [run] [test]" >&2; exit 2 ;;
  esac
done

missing=()
for pkg in $(printf '%s\n' "${want[@]}" | sort -u); do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "deps.sh: missing packages (${missing[*]}); run as root" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "deps.sh: installing ${missing[*]}"
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
    >"$log" 2>&1; then
  cat "$log" >&2
  echo "deps.sh: apt-get failed installing: ${missing[*]}" >&2
  exit 1
fi
# Debian's prometheus package starts its own server on :9090 (the port faasd publishes its
# Prometheus on); only its binary is wanted, for the sidecar image.
if [[ " ${missing[*]} " == *" prometheus "* ]]; then
  if [[ -d /run/systemd/system ]]; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
  else
    invoke-rc.d prometheus stop >/dev/null 2>&1 || true
    update-rc.d prometheus disable >/dev/null 2>&1 || true
  fi
fi
