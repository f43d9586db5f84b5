#!/usr/bin/env bash
# Unpacks the upstream source of one Debian source package, of one exact version, into DEST:
#
#   scripts/debian_source.sh abseil 20220623.1-1+deb12u2 build-tsan-absl
#
# The ThreadSanitizer build compiles Abseil's synchronization code from it (see tests/meson.build).
# apt fetches it from the deb-src twins of the machine's own deb entries, with a private list and
# cache under DEST, so the machine's apt state is left as it was; apt checks the archive's
# signature and the files' hashes. Nothing is fetched when DEST already holds that version.
set -euo pipefail

if [[ $# -ne 3 ]]; then
  echo "usage: $0 SOURCE_PACKAGE VERSION DEST" >&2
  exit 2
fi
package=$1 version=$2 dest=$(realpath -m "$3")
upstream=${version#*:}
upstream=${upstream%-*}
stamp="$dest/.version"
if [[ -f "$stamp" && $(cat "$stamp") == "$package $version" ]]; then
  exit 0
fi

rm -rf "$dest"
apt_dir="$dest/.apt"
mkdir -p "$apt_dir/sources.list.d" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
shopt -s nullglob
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
  [[ -f "$f" ]] && sed -n 's/^[[:space:]]*deb[[:space:]]/deb-src /p' "$f"
done >"$apt_dir/sources.list.d/deb-src.list"
: >"$apt_dir/sources.list"
for f in /etc/apt/sources.list.d/*.sources; do
  sed 's/^Types:.*/Types: deb-src/' "$f" >"$apt_dir/sources.list.d/$(basename "$f")"
done
apt=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=$apt_dir/sources.list.d"
     -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
     -o "APT::Sandbox::User=root")
log="$apt_dir/apt.log"
# A third-party repository without sources makes `update` complain; the package's own archive is
# what matters, and `source` below fails clearly if it was not reached.
apt-get "${apt[@]}" update >"$log" 2>&1 || true
if ! (cd "$apt_dir" && apt-get "${apt[@]}" source --download-only "$package=$version") >>"$log" 2>&1; then
  cat "$log" >&2
  echo "debian_source.sh: could not fetch the source of $package $version" >&2
  exit 1
fi
orig=("$apt_dir/${package}_${upstream}".orig.tar.*)
if [[ ${#orig[@]} -ne 1 ]]; then
  echo "debian_source.sh: no single upstream tarball for $package $version in $apt_dir" >&2
  exit 1
fi
tar -xf "${orig[0]}" -C "$dest" --strip-components=1
rm -rf "$apt_dir"
echo "$package $version" >"$stamp"
