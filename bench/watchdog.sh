#!/usr/bin/env bash
# fwatchdog benchmark: builds fwatchdog, the fnserver fixture and a tiny spawn baseline in
# BUILD_DIR (default build), then runs bench/watchdog_bench.py, which prints a markdown report.
# Optional: UPSTREAM_CLASSIC / UPSTREAM_OFWATCHDOG = paths of upstream Go watchdogs built
# locally for comparison (never commit them). BENCH_DURATION (default 5s) per wrk run.
# The machine has 2 cores shared by wrk, the watchdog and the function: compare ratios from
# one run, not absolute numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
ninja -C "$build" src/watchdog/fwatchdog tests/fixtures/fnserver >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc -O2 -o "$tmp/forker" bench/watchdog_forker.c
FWATCHDOG_BIN="$PWD/$build/src/watchdog/fwatchdog" \
FNSERVER_BIN="$PWD/$build/tests/fixtures/fnserver" \
FORKER_BIN="$tmp/forker" \
  /usr/bin/python3 bench/watchdog_bench.py
