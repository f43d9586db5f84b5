#!/usr/bin/env bash
# THE test command: installs build+test dependencies, builds everything in ./build, runs the
# unit tests (meson) and the integration suite (pytest, needs root), and ends with one line
# "N passed, N failed" summing both. Exits non-zero on any failure.
#
# Environment: BUILD_DIR (default build), PYTEST_ARGS (extra pytest arguments, e.g. "-k restart").
set -uo pipefail

cd "$(dirname "$0")/.."
repo=$(pwd)
build=${BUILD_DIR:-build}
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

passed=0
failed=0
finish() {
  echo "${passed} passed, ${failed} failed"
  if [[ $failed -gt 0 || $1 -ne 0 ]]; then exit 1; fi
  exit 0
}

bash scripts/deps.sh build test || { echo "test.sh: dependencies could not be installed"; failed=1; finish 1; }

if [[ -f "$build/build.ninja" ]]; then
  meson setup --reconfigure "$build" >"$logs/setup.log" 2>&1
else
  meson setup "$build" >"$logs/setup.log" 2>&1
fi || { cat "$logs/setup.log"; echo "test.sh: meson setup failed"; failed=1; finish 1; }

if ! ninja -C "$build" -j"$(nproc)"; then
  echo "test.sh: build failed"
  failed=1
  finish 1
fi

# Unit tests and the live adapter tests (real registry, real CNI plugins): meson counts one
# test per binary.
meson test -C "$build" --no-rebuild --suite unit --suite live --print-errorlogs 2>&1 | tee "$logs/unit.log"
unit_rc=${PIPESTATUS[0]}
count() { awk -v k="$1" -F: '$1 == k { gsub(/ /, "", $2); print $2; exit }' "$logs/unit.log"; }
unit_ok=$(count "Ok"); unit_fail=$(count "Fail"); unit_timeout=$(count "Timeout")
unit_xpass=$(count "Unexpected Pass")
passed=$((passed + ${unit_ok:-0}))
failed=$((failed + ${unit_fail:-0} + ${unit_timeout:-0} + ${unit_xpass:-0}))
if [[ $unit_rc -ne 0 && -z "$unit_fail$unit_timeout" ]]; then
  echo "test.sh: meson test failed without a summary (exit $unit_rc)"
  failed=$((failed + 1))
fi

# Integration: pytest directly, so its own summary line shows.
PYTHONDONTWRITEBYTECODE=1 \
FAASD_BIN="$repo/$build/src/faasd" \
FNSERVER_BIN="$repo/$build/tests/fixtures/fnserver" \
TASK_METRICS_BIN="$repo/$build/tests/fixtures/task-metrics" \
FWATCHDOG_BIN="$repo/$build/src/watchdog/fwatchdog" \
FAASD_LOGGER_BIN="$repo/$build/src/logs/faasd-logger" \
  /usr/bin/python3 -m pytest -v -p no:cacheprovider ${PYTEST_ARGS:-} tests/integration 2>&1 |
  tee "$logs/integration.log"
it_rc=${PIPESTATUS[0]}
summary=$(grep -E '^=+ .*(passed|failed|error|no tests ran).* in [0-9.]+s' "$logs/integration.log" | tail -1)
pick() { grep -oE "[0-9]+ $1" <<<"$summary" | head -1 | cut -d' ' -f1; }
it_passed=$(pick passed); it_failed=$(pick failed); it_errors=$(pick 'errors?')
passed=$((passed + ${it_passed:-0}))
failed=$((failed + ${it_failed:-0} + ${it_errors:-0}))
if [[ $it_rc -ne 0 && -z "$it_failed$it_errors" ]]; then
  echo "test.sh: pytest failed without a summary (exit $it_rc)"
  failed=$((failed + 1))
fi

finish $((unit_rc | it_rc))
