#!/usr/bin/env bash
# Unpacks the upstream source of Debian source packages, each of one exact version, into DEST:
#
#   scripts/debian_source.sh abseil 20220623.1-1+deb12u2 build-tsan-absl [PACKAGE VERSION DEST]...
#
# Every build compiles cpp-httplib from them, the static build prometheus-cpp's core too
# (meson.build); the ThreadSanitizer build Abseil's synchronization code (see tests/meson.build).
# apt fetches them from the deb-src twins of the machine's own deb entries, with a private list and
# cache, so the machine's apt state is left as it was; apt checks the archive's signature and the
# files' hashes. Nothing is fetched for a DEST that already holds its version; one `apt-get update`
# serves all the others. A lock beside each DEST keeps two builds from unpacking into it at once.
set -euo pipefail

if [[ $# -eq 0 || $(($# % 3)) -ne 0 ]]; then
  echo "usage: $0 SOURCE_PACKAGE VERSION DEST [SOURCE_PACKAGE VERSION DEST]..." >&2
  exit 2
fi

apt_dir=
cleanup() { [[ -z "$apt_dir" ]] || rm -rf "$apt_dir"; }
trap cleanup EXIT
# apt_ready: a private apt set-up listing the deb-src twins of the machine's sources, updated once.
apt=()
apt_ready() {
  [[ -z "$apt_dir" ]] || return 0
  apt_dir=$(mktemp -d /tmp/faasd-debian-source.XXXXXX)
  mkdir -p "$apt_dir/sources.list.d" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
  shopt -s nullglob
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f "$f" ]] && sed -n 's/^[[:space:]]*deb[[:space:]]/deb-src /p' "$f"
  done >"$apt_dir/sources.list.d/deb-src.list"
  : >"$apt_dir/sources.list"
  for f in /etc/apt/sources.list.d/*.sources; do
    sed 's/^Types:.*/Types: deb-src/' "$f" >"$apt_dir/sources.list.d/$(basename "$f")"
  done
  shopt -u nullglob
  apt=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=$apt_dir/sources.list.d"
       -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
       -o "APT::Sandbox::User=root")
  # A third-party repository without sources makes `update` complain; the package's own archive
  # is what matters, and `source` below fails clearly if it was not reached.
  apt-get "${apt[@]}" update >"$apt_dir/apt.log" 2>&1 || true
}

# unpack PACKAGE VERSION DEST, with DEST's lock held.
unpack() {
  local package=$1 version=$2 dest=$3
  local upstream=${version#*:}
  upstream=${upstream%-*}
  local stamp="$dest/.version"
  if [[ -f "$stamp" && $(cat "$stamp") == "$package $version" ]]; then
    return 0
  fi
  apt_ready
  local dl="$apt_dir/$package"
  mkdir -p "$dl"
  if ! (cd "$dl" && apt-get "${apt[@]}" source --download-only "$package=$version") \
      >>"$apt_dir/apt.log" 2>&1; then
    cat "$apt_dir/apt.log" >&2
    echo "debian_source.sh: could not fetch the source of $package $version" >&2
    exit 1
  fi
  local orig=("$dl/${package}_${upstream}".orig.tar.*)
  if [[ ${#orig[@]} -ne 1 || ! -f "${orig[0]}" ]]; then
    echo "debian_source.sh: no single upstream tarball for $package $version in $dl" >&2
    exit 1
  fi
  rm -rf "$dest"
  mkdir -p "$dest"
  tar -xf "${orig[0]}" -C "$dest" --strip-components=1
  echo "$package $version" >"$stamp"
}

while [[ $# -gt 0 ]]; do
  package=$1 version=$2 dest=$(realpath -m "$3")
  shift 3
  mkdir -p "$(dirname "$dest")"
  exec {lock}>"$dest.lock"
  flock "$lock"
  unpack "$package" "$version" "$dest"
  flock -u "$lock"
  exec {lock}>&-
done
