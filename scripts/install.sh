#!/usr/bin/env bash
# THE run command: installs dependencies, builds, installs /usr/local/sbin/faasd and the systemd
# unit, then starts containerd and faasd -- with systemd when it is PID 1, otherwise as
# background processes (logs in /var/log/faasd/, pidfiles in /run/faasd/). faasd-logger, which
# the containerd shim runs per function task to keep its output, is installed beside faasd.
#
#   sudo scripts/install.sh         install and start
#   sudo scripts/install.sh stop    stop what a previous run started without systemd
set -euo pipefail

cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
faasd_bin=/usr/local/sbin/faasd  # meson's default prefix + sbindir; matches systemd/faasd.service
logger_bin=/usr/local/sbin/faasd-logger  # found by faasd beside itself
ctd_sock=/run/containerd/containerd.sock
run_dir=/run/faasd
log_dir=/var/log/faasd
state_dir=/var/lib/faasd
gateway=http://127.0.0.1:8080

die() { echo "install.sh: $*" >&2; exit 1; }

# Stops the process in pidfile $1 if it is still the program $2 we started.
stop_pidfile() {
  local pidfile=$1 prog=$2 pid
  [[ -f $pidfile ]] || return 0
  pid=$(cat "$pidfile")
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null &&
      tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$prog"; then
    kill -TERM "$pid"
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
    echo "stopped $prog (pid $pid)"
  fi
  rm -f "$pidfile"
}

# Polls command "$@" for up to $timeout seconds.
wait_for() {
  local timeout=$1; shift
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    [[ $SECONDS -lt $deadline ]] || return 1
    sleep 0.2
  done
}

[[ $(id -u) -eq 0 ]] || die "run as root (sudo $0)"

if [[ ${1:-} == stop ]]; then
  stop_pidfile "$run_dir/faasd.pid" faasd
  stop_pidfile "$run_dir/containerd.pid" containerd
  exit 0
fi
[[ $# -eq 0 ]] || die "usage: $0 [stop]"

bash scripts/deps.sh build run
if [[ -f "$build/build.ninja" ]]; then
  meson setup --reconfigure "$build" >/dev/null
else
  meson setup "$build" >/dev/null
fi
ninja -C "$build" -j"$(nproc)"
meson install -C "$build" --no-rebuild --quiet
[[ -x $faasd_bin ]] || die "$faasd_bin missing after meson install (was the prefix changed?)"
[[ -x $logger_bin ]] || die "$logger_bin missing after meson install (was the prefix changed?)"
# The units name the package's /usr/sbin/faasd; this install is under /usr/local.
sed "s|/usr/sbin/faasd|$faasd_bin|" systemd/faasd.service >/etc/systemd/system/faasd.service
install -D -m 0644 systemd/faasd.socket /etc/systemd/system/faasd.socket
# The NATS and Prometheus sidecars from Debian's packages, no registry needed: faasd imports the
# archives in <state-dir>/images at start.
install -d -m 0700 "$state_dir"
bash packaging/images/build.sh "$state_dir/images" >/dev/null

if [[ -d /run/systemd/system ]]; then
  systemctl daemon-reload
  systemctl enable --now containerd
  systemctl enable faasd.socket faasd
  systemctl restart faasd.socket faasd
  logs_hint="journalctl -u faasd -f"
else
  mkdir -p "$run_dir" "$log_dir"
  if ! ctr --address "$ctd_sock" version >/dev/null 2>&1; then
    setsid containerd </dev/null >>"$log_dir/containerd.log" 2>&1 &
    echo $! >"$run_dir/containerd.pid"
    wait_for 30 ctr --address "$ctd_sock" version ||
      die "containerd did not answer on $ctd_sock; see $log_dir/containerd.log"
  fi
  # faasd rotates its own log (--log-max-bytes x --log-files); stderr only catches a crash.
  # It writes its pid file once it serves.
  up=("$faasd_bin" up --state-dir="$state_dir" --log-file="$log_dir/faasd.log"
      --pid-file="$run_dir/faasd.pid")
  pid=$(cat "$run_dir/faasd.pid" 2>/dev/null || true)
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null &&
      tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- faasd; then
    # A re-install: the running daemon hands its socket to the new binary at its path
    # (faasd up finds it by the pid file and sends SIGUSR2), so no connection is refused.
    rc=0
    "${up[@]}" || rc=$?
    # 3: it exited without a successor (a faasd from before SIGUSR2 handover): start afresh.
    [[ $rc -eq 0 || $rc -eq 3 ]] ||
      die "the running faasd (pid $pid) did not hand over; see $log_dir/faasd.log"
  fi
  if [[ ${rc:-3} -eq 3 ]]; then
    setsid "${up[@]}" </dev/null >>"$log_dir/faasd.stderr" 2>&1 &
  fi
  logs_hint="tail -F $log_dir/faasd.log"
fi

wait_for 60 curl -sf "$gateway/healthz" ||
  die "faasd did not become healthy on $gateway; see: $logs_hint"

cat <<MSG
faasd is up on $gateway  (logs: $logs_hint)
Log in with faas-cli:
  faas-cli login --gateway $gateway --password-stdin < $state_dir/secrets/basic-auth-password
Or with curl:
  curl -u admin:\$(cat $state_dir/secrets/basic-auth-password) $gateway/system/functions
MSG
