#!/usr/bin/env bash
# A cross-built package's binaries, run under qemu-user on this machine: from the .deb that
# `packaging/build.sh --arch ARCH` made, it unpacks faasd, fwatchdog and faasd-logger (never
# installs the package) and checks
#   - the package: Architecture ARCH, the binaries ARCH ELF files, fwatchdog and faasd-logger
#     static (README: "What is statically linked"), faasd dynamic with no RUNPATH;
#   - `faasd version` prints the package's upstream version;
#   - fwatchdog (classic mode, fprocess=cat) answers /_/health and echoes a POST on a free
#     loopback port;
#   - faasd-logger writes a line from its stdout pipe (fd 3) into its log directory;
#   - with RPM given: its arch is the rpm name of ARCH (aarch64, armv7hl) and it holds the same
#     three binaries as the .deb.
# Every wait has a deadline; the only processes it signals are the ones it started. Prints the
# binaries' and the package's sizes, then "N passed, N failed" (the closing line scripts/test.sh
# counts); exits non-zero on any failure.
#
#   tests/package/test_cross.sh ARCH DEB [RPM]   ARCH: arm64 or armhf (scripts/deps.sh cross-ARCH)
set -uo pipefail

if [[ $# -lt 2 || $# -gt 3 ]]; then
  echo "usage: $0 arm64|armhf PATH/faasd_VERSION-REV_ARCH.deb [PATH/faasd-VERSION-REV.RPMARCH.rpm]" >&2
  exit 2
fi
arch=$1 deb=$2 rpm=${3:-}
cpu=$(dpkg-architecture -a "$arch" -qDEB_HOST_GNU_CPU 2>/dev/null)
qemu=qemu-$cpu-static
case $arch in
  arm64) machine=ARM\ aarch64 rpm_arch=aarch64 ;;
  armhf) machine=ARM,\ EABI5 rpm_arch=armv7hl ;;
  *) echo "test_cross.sh: $arch: want arm64 or armhf" >&2; exit 2 ;;
esac
command -v "$qemu" >/dev/null || { echo "test_cross.sh: no $qemu (scripts/deps.sh cross-$arch)" >&2; exit 2; }
[[ -f $deb ]] || { echo "test_cross.sh: no package $deb" >&2; exit 2; }

work=$(mktemp -d /tmp/fcross-XXXXXX)
watchdog_pid=
cleanup() {
  if [[ -n $watchdog_pid ]]; then kill -KILL "$watchdog_pid" 2>/dev/null; wait "$watchdog_pid" 2>/dev/null; fi
  rm -rf "$work"
}
trap cleanup EXIT

passed=0 failed=0
pass() { echo "PASSED $1"; passed=$((passed + 1)); }
fail() { echo "FAILED $1: $2"; failed=$((failed + 1)); }

dpkg-deb -x "$deb" "$work/root"
faasd=$work/root/usr/sbin/faasd
fwatchdog=$work/root/usr/lib/faasd/fwatchdog
logger=$work/root/usr/lib/faasd/faasd-logger
version=$(dpkg-deb -f "$deb" Version)
upstream=${version%-*}

# --- The package ----------------------------------------------------------------------------
problems=()
[[ $(dpkg-deb -f "$deb" Architecture) == "$arch" ]] ||
  problems+=("Architecture $(dpkg-deb -f "$deb" Architecture)")
for bin in "$faasd" "$fwatchdog" "$logger"; do
  desc=$(file -b "$bin")
  [[ $desc == ELF*"$machine"* ]] || problems+=("$(basename "$bin"): $desc")
  if [[ $bin == "$faasd" ]]; then
    [[ $desc == *"dynamically linked"* ]] || problems+=("faasd not dynamic: $desc")
    # A RUNPATH would point into this machine's cross-build folders (lintian: an error).
    runpath=$(readelf -d "$bin" | grep -E 'RUNPATH|RPATH')
    [[ -z $runpath ]] || problems+=("faasd has $runpath")
    # Shared only what README's "What is statically linked" lists: glibc, cnats and OpenSSL.
    while read -r lib; do
      case $lib in
        libc.so.6 | libm.so.6 | ld-linux*.so.* | libnats.so.* | libssl.so.3 | libcrypto.so.3) ;;
        *) problems+=("faasd links $lib shared") ;;
      esac
    done < <(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  else
    [[ $desc == *"statically linked"* ]] || problems+=("$(basename "$bin") not static: $desc")
  fi
done
if [[ ${#problems[@]} -eq 0 ]]; then pass "package is $arch"; else fail "package is $arch" "${problems[*]}"; fi

# --- faasd version --------------------------------------------------------------------------
out=$(timeout 60 "$qemu" "$faasd" version 2>&1)
rc=$?
echo "faasd version (under $qemu): $out"
if [[ $rc -eq 0 && $(awk '{print $2}' <<<"$out") == "$upstream" ]]; then
  pass "faasd version"
else
  fail "faasd version" "exit $rc, want version $upstream"
fi

# --- fwatchdog serves a request -------------------------------------------------------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$work/tmp"
env -i PATH=/usr/bin:/bin TMPDIR="$work/tmp" fprocess=cat port="$port" \
  "$qemu" "$fwatchdog" >"$work/fwatchdog.log" 2>&1 &
watchdog_pid=$!
deadline=$((SECONDS + 60))
healthy=0
while [[ $SECONDS -lt $deadline ]] && kill -0 "$watchdog_pid" 2>/dev/null; do
  if curl -fsS --max-time 5 -o /dev/null "http://127.0.0.1:$port/_/health" 2>/dev/null; then
    healthy=1
    break
  fi
  sleep 0.2
done
if [[ $healthy -eq 1 ]]; then
  body="hello from $arch"
  answer=$(curl -sS --max-time 30 -w ' %{http_code}' --data-binary "$body" "http://127.0.0.1:$port/" 2>&1)
  if [[ $answer == "$body 200" ]]; then
    pass "fwatchdog serves a request"
    echo "fwatchdog (under $qemu, port $port): POST '$body' -> '$answer'"
  else
    fail "fwatchdog serves a request" "got '$answer'"
  fi
else
  fail "fwatchdog serves a request" "not healthy on port $port within 60 s"
fi
if kill -0 "$watchdog_pid" 2>/dev/null; then
  kill -TERM "$watchdog_pid"
  deadline=$((SECONDS + 20))
  while [[ $SECONDS -lt $deadline ]] && kill -0 "$watchdog_pid" 2>/dev/null; do sleep 0.2; done
fi
if kill -0 "$watchdog_pid" 2>/dev/null; then
  echo "test_cross.sh: fwatchdog still running 20 s after SIGTERM; killed"
  kill -KILL "$watchdog_pid" 2>/dev/null
fi
wait "$watchdog_pid" 2>/dev/null
watchdog_pid=
if [[ $healthy -ne 1 || $answer != "$body 200" ]]; then cat "$work/fwatchdog.log"; fi

# --- faasd-logger ----------------------------------------------------------------------------
# As containerd's shim runs it: the task's stdout on fd 3, its stderr on fd 4 (empty here), the
# ready pipe on fd 5, an empty environment but the ids. All three are given: qemu opens files of
# its own, which would otherwise land on 4 or 5.
line="a line from an $arch task"
printf '%s\n' "$line" |
  env -i CONTAINER_ID=cross CONTAINER_NAMESPACE=test \
    timeout 60 "$qemu" "$logger" dir "$work/logs" journal off 3<&0 4</dev/null 5>/dev/null \
    >"$work/logger.log" 2>&1
rc=$?
if [[ $rc -eq 0 ]] && grep -rqF "$line" "$work/logs" 2>/dev/null; then
  pass "faasd-logger writes the task's output"
else
  fail "faasd-logger writes the task's output" "exit $rc, line not in $work/logs"
  cat "$work/logger.log"
fi

# --- The rpm --------------------------------------------------------------------------------
if [[ -n $rpm ]]; then
  rpm_got=$(rpm -qp --qf '%{ARCH}' "$rpm" 2>/dev/null)
  binaries=$(rpm -qpl "$rpm" 2>/dev/null | grep -cxE '/usr/sbin/faasd|/usr/lib/faasd/(fwatchdog|faasd-logger)')
  if [[ $rpm_got == "$rpm_arch" && $binaries -eq 3 ]]; then
    pass "rpm is $rpm_arch"
  else
    fail "rpm is $rpm_arch" "arch '$rpm_got', $binaries of the 3 binaries"
  fi
fi

echo "sizes ($arch, stripped as packaged): faasd $(stat -c %s "$faasd") B," \
  "fwatchdog $(stat -c %s "$fwatchdog") B, faasd-logger $(stat -c %s "$logger") B;" \
  "$(basename "$deb") $(stat -c %s "$deb") B${rpm:+, $(basename "$rpm") $(stat -c %s "$rpm") B}"
echo "${passed} passed, ${failed} failed"
[[ $failed -eq 0 ]]
