#!/usr/bin/env bash
# Installs the Debian 12 packages faasd-cpp needs. Idempotent: asks apt only for what is
# missing, and runs `apt-get update` only then.
#
#   scripts/deps.sh build   compilers and libraries to build the daemon
#   scripts/deps.sh run     what the daemon drives at run time (containerd, runc, CNI, iptables)
#   scripts/deps.sh test    run + the integration bench (registry, umoci, skopeo, pytest, ...)
#   scripts/deps.sh cross-arm64 | cross-armhf
#                           build + what packaging/build.sh --arch ARCH needs: the foreign
#                           architecture added to dpkg, Debian's cross compilers, ARCH's -dev
#                           libraries (multiarch, beside the native ones) and qemu-user-static
#   scripts/deps.sh         build, run and test
#
# Every install is simulated first (apt-get -s): if apt would remove a package (a foreign -dev
# package that is not Multi-Arch: same replaces the native one, and the native build breaks),
# nothing is installed and this exits 1 naming them. Two -dev packages are such:
# libyaml-cpp-dev and prometheus-cpp-dev (which drags in civetweb). For a cross group their
# ARCH runtime libraries are installed through apt, and their ARCH -dev packages are only
# unpacked (apt-get download, dpkg-deb -x) into /opt/faasd-cross/ARCH, which
# packaging/cross/ARCH.ini adds to pkg-config's path: headers, .pc files, libyaml-cpp.a and the
# libprometheus-cpp-core.so link.
set -euo pipefail

build_pkgs=(
  meson ninja-build g++ pkg-config git
  protobuf-compiler protobuf-compiler-grpc libgrpc++-dev libprotobuf-dev libabsl-dev
  libcpp-httplib-dev nlohmann-json3-dev libyaml-cpp-dev libarchive-dev libnats-dev prometheus-cpp-dev catch2
  libssl-dev zlib1g-dev libzstd-dev
  liblzma-dev libbz2-dev libbrotli-dev  # static archives: libarchive's xz and bzip2, cpp-httplib's brotli
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
  python3-pytest-xdist  # scripts/test.sh runs the integration files on PYTEST_WORKERS workers
  systemd  # systemd-journald and journalctl, run in a private mount namespace by test_journal.py
  chromium chromium-driver python3-selenium  # test_ui.py drives the portal in a real browser
  # test_registry_auth.py: a CA and certificates, a JWT token server, an htpasswd file
  python3-cryptography python3-jwt python3-bcrypt
  python3-websocket  # test_streaming.py: a WebSocket client of its own, not ours, through the gateway
  clang libclang-rt-14-dev  # tests/fuzz: clang-14 and its libFuzzer (libclang_rt.fuzzer-x86_64.a)
  rpm dpkg-dev file  # packaging/build.sh (rpmbuild, dpkg-shlibdeps) and tests/package
)

# cross_pkgs ARCH: the packages of a cross build for ARCH (Debian's architecture name). The
# libraries are the ones build_pkgs has for the daemon, as ARCH packages; header-only and
# architecture-independent ones (nlohmann-json, the protos) and protoc with its gRPC plugin
# (they run on the build machine) are the native ones of build_pkgs.
cross_pkgs() {
  local arch=$1 lib
  printf '%s\n' "crossbuild-essential-$arch" qemu-user-static ccache "pkgconf:$arch" rpm file
  for lib in libgrpc++-dev libprotobuf-dev libabsl-dev libcpp-httplib-dev libarchive-dev \
             libnats-dev libssl-dev zlib1g-dev libzstd-dev libboost-dev \
             liblzma-dev libbz2-dev libbrotli-dev \
             libyaml-cpp0.7 libprometheus-cpp-core1.0; do  # the two unpacked -dev's runtimes
    printf '%s\n' "$lib:$arch"
  done
}
# The ARCH -dev packages that are not co-installable with the native ones: unpacked, not
# installed (the header of this file), each at the version of its runtime library.
unpacked_dev=(libyaml-cpp-dev=libyaml-cpp0.7 prometheus-cpp-dev=libprometheus-cpp-core1.0)

want=()
cross_archs=()
if [[ $# -eq 0 ]]; then set -- build run test; fi
for group in "$@"; do
  case "$group" in
    build) want+=("${build_pkgs[@]}") ;;
    run) want+=("${run_pkgs[@]}") ;;
    test) want+=("${test_pkgs[@]}") ;;
    cross-arm64|cross-armhf)
      arch=${group#cross-}
      cross_archs+=("$arch")
      want+=("${build_pkgs[@]}")
      mapfile -t -O "${#want[@]}" want < <(cross_pkgs "$arch") ;;
    *) echo "usage: $0 [build] [run] [test] [cross-arm64] [cross-armhf]" >&2; exit 2 ;;
  esac
done

overlay_root=/opt/faasd-cross
# overlay_ok ARCH: the unpacked -dev packages of ARCH are there, at their runtimes' versions.
overlay_ok() {
  [[ -f $overlay_root/$1/.versions && $(cat "$overlay_root/$1/.versions") == "$(overlay_versions "$1")" ]]
}
overlay_versions() {
  local pair
  for pair in "${unpacked_dev[@]}"; do
    printf '%s=%s\n' "${pair%%=*}" "$(dpkg-query -W -f='${Version}' "${pair#*=}:$1" 2>/dev/null)"
  done
}

missing=()
foreign_missing=()
for pkg in $(printf '%s\n' "${want[@]}" | sort -u); do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done
for arch in "${cross_archs[@]}"; do
  dpkg --print-foreign-architectures | grep -qx "$arch" || foreign_missing+=("$arch")
done
overlays_missing=()
for arch in "${cross_archs[@]}"; do
  overlay_ok "$arch" || overlays_missing+=("$arch")
done
if [[ ${#missing[@]} -eq 0 && ${#foreign_missing[@]} -eq 0 && ${#overlays_missing[@]} -eq 0 ]]; then
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "deps.sh: missing packages (${missing[*]}${foreign_missing[*]:+; dpkg architectures ${foreign_missing[*]}}); run as root" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for arch in "${foreign_missing[@]}"; do
  echo "deps.sh: dpkg --add-architecture $arch"
  dpkg --add-architecture "$arch"
done

if [[ ${#missing[@]} -gt 0 ]]; then
  echo "deps.sh: installing ${missing[*]}"
  # An index that fails to download (a foreign architecture's, mid mirror sync) leaves apt with
  # the old one; that is no reason to stop here. What apt then wants to do is checked below.
  if ! apt-get update -qq >"$log" 2>&1; then
    echo "deps.sh: apt-get update reported errors (continuing with the indexes apt has):" >&2
    grep -E '^(E|W):' "$log" >&2 || cat "$log" >&2
  fi
  # Simulated first: apt removes an installed package when a foreign -dev package that is not
  # Multi-Arch: same replaces it (or a foreign index lags the native one's versions); that
  # would break the native build, so nothing is installed then.
  if ! apt-get -s install --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
    cat "$log" >&2
    echo "deps.sh: apt-get cannot install: ${missing[*]}" >&2
    exit 1
  fi
  removed=$(sed -n 's/^Remv \([^ ]*\).*/\1/p' "$log" | tr '\n' ' ')
  if [[ -n $removed ]]; then
    echo "deps.sh: refusing: installing ${missing[*]} would make apt remove: $removed" >&2
    echo "deps.sh: (a package not co-installable with the native one; nothing was changed)" >&2
    exit 1
  fi
  # Multi-Arch: same packages move in lockstep: a foreign one at a newer version upgrades the
  # native one with it. Said, not hidden.
  upgraded=$(sed -n 's/^Inst \([^ ]*\) \[.*/\1/p' "$log" | tr '\n' ' ')
  [[ -z $upgraded ]] || echo "deps.sh: apt also upgrades: $upgraded"
  if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
    cat "$log" >&2
    echo "deps.sh: apt-get failed installing: ${missing[*]}" >&2
    exit 1
  fi
fi

# The -dev packages that cannot be installed beside the native ones (the header of this file).
for arch in "${cross_archs[@]}"; do
  overlay_ok "$arch" && continue
  dir=$overlay_root/$arch
  debs=$(mktemp -d)
  downloads=()
  while IFS='=' read -r dev version; do
    [[ -n $version ]] || { echo "deps.sh: no $dev runtime installed for $arch" >&2; exit 1; }
    downloads+=("$dev:$arch=$version")
  done < <(overlay_versions "$arch")
  echo "deps.sh: unpacking ${downloads[*]} into $dir"
  if ! (cd "$debs" && apt-get -o APT::Sandbox::User=root download "${downloads[@]}") >"$log" 2>&1; then
    cat "$log" >&2
    echo "deps.sh: apt-get download failed: ${downloads[*]}" >&2
    exit 1
  fi
  rm -rf "$dir"
  mkdir -p "$dir/pkgconfig"
  for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$dir"; done
  rm -rf "$debs"
  # Their .pc files name /usr as the prefix: point them at the unpacked tree, and put them where
  # the cross file's pkg_config_path looks.
  triplet=$(dpkg-architecture -qDEB_HOST_MULTIARCH -a "$arch" 2>/dev/null)
  for pc in "$dir/usr/lib/$triplet/pkgconfig"/*.pc; do
    sed "s|^prefix=/usr\$|prefix=$dir/usr|" "$pc" >"$dir/pkgconfig/$(basename "$pc")"
  done
  # A library with no static archive here is linked from the runtime library apt installed,
  # named by its path in the system directory: found through a -L into this tree, it would
  # become the binary's RUNPATH. The lib*.so links go (prometheus-cpp's pull and push point
  # at nothing installed).
  for link in "$dir/usr/lib/$triplet"/*.so; do
    [[ -L $link ]] || continue
    name=$(basename "$link" .so)
    runtime=/usr/lib/$triplet/$(basename "$(readlink "$link")")
    rm -f "$link"
    if [[ -e $runtime && ! -e $dir/usr/lib/$triplet/$name.a ]]; then
      sed -i -E "s#-l${name#lib}( |\$)#$runtime\1#" "$dir/pkgconfig"/*.pc
    fi
  done
  overlay_versions "$arch" >"$dir/.versions"
done
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
