#!/usr/bin/env bash
# Builds the faasd packages from a build tree: a .deb (dpkg-deb) and an .rpm (rpmbuild, from
# Debian's `rpm`), both holding faasd, fwatchdog, faasd-logger, the systemd units, the default
# config and the CNI conflist. The version is meson's project version (`faasd version` prints
# the same); --revision N is the package revision (an upgrade of the same code is N+1); given
# more than once, one package each from the same tree (the CI test's upgrade).
#
#   packaging/build.sh [--arch native|arm64|armhf|all] [--build-dir DIR] [--out DIR]
#                      [--revision N] [--with-images[=DIR]] [--no-rpm] [--fast]
#
# --arch: native (the default) packages DIR (./build); arm64 and armhf cross-compile in DIR-ARCH
# (build-arm64, build-armhf) with packaging/cross/ARCH.ini, set up there on first use with
# -Dtests=false (scripts/deps.sh cross-ARCH installs the toolchain and libraries); all is native,
# arm64 and armhf. Only the three shipped binaries are built. A cross build's `faasd version` is
# checked under qemu-user-static; its packages are faasd_V-R_arm64.deb / faasd-V-R.aarch64.rpm
# and faasd_V-R_armhf.deb / faasd-V-R.armv7hl.rpm.
# --fast compresses the .deb with gzip -1 instead of xz -6 (the CI test: 1 s instead of 30 s on
# a busy 2-core box, 40% larger).
# --with-images adds the OCI archives packaging/images/out/*.tar (the sidecar images that
# packaging/images/ builds; --with-images=DIR: DIR/*.tar) under /usr/share/faasd/images/;
# native only, since the images hold this machine's nats-server and prometheus. The build tree
# is brought up to date with ninja (incremental), never rebuilt from scratch. Prints the paths
# of the packages.
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$(pwd)
build=build out=packaging/out revisions=() with_images=0 rpm=1 level=6 deb_compression=(-Zxz -z6)
images_dir=packaging/images/out
archs=(native)
usage="usage: $0 [--arch native|arm64|armhf|all] [--build-dir DIR] [--out DIR] [--revision N] [--with-images[=DIR]] [--no-rpm] [--fast]"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --arch)
      case "${2:-}" in
        native|arm64|armhf) archs=("$2") ;;
        all) archs=(native arm64 armhf) ;;
        *) echo "$usage" >&2; exit 2 ;;
      esac
      shift 2 ;;
    --build-dir) build=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --revision) revisions+=("$2"); shift 2 ;;
    --with-images) with_images=1; shift ;;
    --with-images=*) with_images=1; images_dir=${1#--with-images=}; shift ;;
    --no-rpm) rpm=0; shift ;;
    --fast) level=1; deb_compression=(-Zgzip -z1); shift ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done
[[ ${#revisions[@]} -gt 0 ]] || revisions=(1)
for revision in "${revisions[@]}"; do
  [[ $revision =~ ^[0-9]+$ ]] || { echo "build.sh: --revision $revision: not a number" >&2; exit 2; }
done
die() { echo "build.sh: $*" >&2; exit 1; }

mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# package ARCH BUILD_DIR: the packages of one architecture (native, arm64 or armhf) from one
# build tree; w is its own scratch folder.
package() {
  local arch=$1 build=$2 w=$work/$1 native=0 rpm_arch strip=strip run=() triplet cpu
  mkdir -p "$w"
  if [[ $arch == native ]]; then
    native=1 arch=$(dpkg --print-architecture) rpm_arch=$(uname -m)
    [[ -f $build/build.ninja ]] || die "$build is not a meson build dir (meson setup $build)"
  else
    triplet=$(dpkg-architecture -a "$arch" -qDEB_HOST_MULTIARCH 2>/dev/null)
    cpu=$(dpkg-architecture -a "$arch" -qDEB_HOST_GNU_CPU 2>/dev/null)
    case $arch in arm64) rpm_arch=aarch64 ;; armhf) rpm_arch=armv7hl ;; esac
    strip=$triplet-strip
    run=("qemu-$cpu-static")  # faasd version, below; its $arch libraries are installed
    for tool in "$triplet-g++" "$strip" "${run[0]}"; do
      command -v "$tool" >/dev/null || die "no $tool: scripts/deps.sh cross-$arch installs it"
    done
    if [[ ! -f $build/build.ninja ]]; then
      meson setup "$build" --cross-file "packaging/cross/$arch.ini" -Dtests=false \
        >"$w/setup.log" 2>&1 || { cat "$w/setup.log" >&2; die "meson setup $build failed"; }
    fi
  fi
  ninja -C "$build" src/faasd src/watchdog/fwatchdog src/logs/faasd-logger >/dev/null
  version=$(meson introspect --projectinfo "$build" | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')
  built=$("${run[@]}" "$build/src/faasd" version | awk '{print $2}')
  [[ $built == "$version" ]] || die "faasd version says $built, meson says $version: reconfigure $build"

  # --- The tree both packages carry ----------------------------------------------------------
  root=$w/root
  install -D -m 0755 "$build/src/faasd" "$root/usr/sbin/faasd"
  # Found by faasd through FindCompanionBinary (base/companion.h): /usr/lib/faasd/NAME.
  install -D -m 0755 "$build/src/logs/faasd-logger" "$root/usr/lib/faasd/faasd-logger"
  install -D -m 0755 "$build/src/watchdog/fwatchdog" "$root/usr/lib/faasd/fwatchdog"
  "$strip" --strip-unneeded "$root/usr/sbin/faasd" "$root/usr/lib/faasd/faasd-logger" \
    "$root/usr/lib/faasd/fwatchdog"
  install -D -m 0644 systemd/faasd.service "$root/lib/systemd/system/faasd.service"
  install -D -m 0644 systemd/faasd.socket "$root/lib/systemd/system/faasd.socket"
  install -D -m 0644 packaging/faasd.conf "$root/etc/faasd/faasd.conf"
  install -D -m 0644 cni/10-openfaas.conflist "$root/usr/share/faasd/10-openfaas.conflist"
  install -D -m 0644 README.md "$root/usr/share/doc/faasd/README.md"
  if [[ $with_images -eq 1 ]]; then
    [[ $native -eq 1 ]] || die "--with-images: the sidecar images hold this machine's binaries, not $arch ones"
    shopt -s nullglob
    images=("$images_dir"/*.tar)
    shopt -u nullglob
    [[ ${#images[@]} -gt 0 ]] || die "--with-images: no $images_dir/*.tar (packaging/images/build.sh builds them)"
    for image in "${images[@]}"; do
      install -D -m 0644 "$image" "$root/usr/share/faasd/images/$(basename "$image")"
    done
  fi

  # The units as systemd reads them, with ExecStart pointing into the tree (verify checks that
  # the program exists; this host has no /usr/sbin/faasd).
  if command -v systemd-analyze >/dev/null; then
    mkdir -p "$w/units"
    sed "s|/usr/sbin/faasd|$root/usr/sbin/faasd|" systemd/faasd.service >"$w/units/faasd.service"
    cp systemd/faasd.socket "$w/units/faasd.socket"
    systemd-analyze verify "$w/units/faasd.socket" "$w/units/faasd.service" \
      >"$w/verify.log" 2>&1 || { cat "$w/verify.log" >&2; die "systemd-analyze verify failed"; }
    if [[ -s $w/verify.log ]]; then cat "$w/verify.log" >&2; die "systemd-analyze verify warned"; fi
  fi

  # --- .deb ---------------------------------------------------------------------------------
  deb=$w/deb
  cp -a "$root" "$deb"
  mkdir -p "$deb/DEBIAN" "$deb/usr/share/lintian/overrides"
  install -m 0644 packaging/debian/copyright "$deb/usr/share/doc/faasd/copyright"
  install -m 0644 packaging/debian/lintian-overrides "$deb/usr/share/lintian/overrides/faasd"
  for script in postinst prerm postrm; do
    install -m 0755 "packaging/debian/$script" "$deb/DEBIAN/$script"
  done
  (cd "$deb" && find etc -type f -printf '/%p\n') >"$deb/DEBIAN/conffiles"
  # Shared libraries faasd still links (README: "What is statically linked"), as package names.
  mkdir -p "$w/shlibs/debian"
  printf 'Source: faasd\n\nPackage: faasd\nArchitecture: any\n' >"$w/shlibs/debian/control"
  shlibs=$(cd "$w/shlibs" && DEB_HOST_ARCH=$arch dpkg-shlibdeps -O "$deb/usr/sbin/faasd" 2>/dev/null |
    sed -n 's/^shlibs:Depends=//p')
  [[ -n $shlibs ]] || die "dpkg-shlibdeps found no library packages for faasd"
  date=$(date -R -d @"${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}")
  for revision in "${revisions[@]}"; do
    sed "s/@VERSION@/$version-$revision/; s/@DATE@/$date/" packaging/debian/changelog |
      gzip -9n >"$deb/usr/share/doc/faasd/changelog.Debian.gz"
    size=$(du -sk --exclude=DEBIAN "$deb" | cut -f1)
    cat >"$deb/DEBIAN/control" <<CONTROL
Package: faasd
Version: $version-$revision
Architecture: $arch
Maintainer: faasd-cpp maintainers <faasd-cpp@example.org>
Installed-Size: $size
Depends: $shlibs, containerd, runc, containernetworking-plugins, iptables
Section: admin
Priority: optional
Homepage: https://www.openfaas.com/
Description: single-node OpenFaaS appliance on containerd
 faasd-cpp serves the OpenFaaS gateway and provider API (faas-cli, the UI and
 go-sdk work against it) and runs each function as a containerd container on a
 CNI bridge. It pulls images itself, so besides containerd, runc and the CNI
 plugins it needs nothing at run time.
CONTROL
    deb_file="$out/faasd_${version}-${revision}_${arch}.deb"
    dpkg-deb --root-owner-group "${deb_compression[@]}" --build "$deb" "$deb_file" >/dev/null
    echo "$deb_file"
  done

  # --- .rpm ---------------------------------------------------------------------------------
  if [[ $rpm -eq 1 ]]; then
    top=$w/rpm
    mkdir -p "$top"/{BUILD,RPMS,SPECS,SOURCES,BUILDROOT}
    for revision in "${revisions[@]}"; do
      sed "s/@VERSION@/$version/; s/@RELEASE@/$revision/" packaging/rpm/faasd.spec \
        >"$top/SPECS/faasd.spec"
      (cd "$root" && find . -type f -o -type l | sed 's|^\.||' | sort) |
        grep -v '^/etc/faasd/faasd.conf$' >"$top/files.list"
      rpmbuild -bb --quiet --target "$rpm_arch" \
        --define "_topdir $top" --define "_stage $root" --define "_files_list $top/files.list" \
        --define "_build_id_links none" --define "_binary_payload w$level.xzdio" \
        "$top/SPECS/faasd.spec" >"$w/rpmbuild.log" 2>&1 ||
        { cat "$w/rpmbuild.log" >&2; die "rpmbuild failed"; }
      rpm_file="$out/faasd-${version}-${revision}.${rpm_arch}.rpm"
      mv "$top/RPMS/$rpm_arch/faasd-${version}-${revision}.${rpm_arch}.rpm" "$rpm_file"
      echo "$rpm_file"
    done
  fi
}

for arch in "${archs[@]}"; do
  if [[ $arch == native ]]; then package native "$build"; else package "$arch" "$build-$arch"; fi
done
