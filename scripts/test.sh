#!/usr/bin/env bash
# THE test command: installs build+test dependencies, builds everything in ./build, runs the
# unit tests (meson) and the integration suite (pytest, needs root), and ends with one line
# "N passed, N failed" counting test cases: Catch2 cases of the unit and live binaries plus
# pytest cases. Exits non-zero on any failure.
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

# Unit tests and the live adapter tests (real registry, real CNI plugins). Meson counts one
# test per binary; the closing line counts test cases, read from the binaries' Catch2 summaries
# in meson's JSON log.
unit_json="$build/meson-logs/test-sh.json"
rm -f "$unit_json"
meson test -C "$build" --no-rebuild --suite unit --suite live --print-errorlogs \
  --logbase test-sh 2>&1 | tee "$logs/unit.log"
unit_rc=${PIPESTATUS[0]}
if [[ -f "$unit_json" ]] && read -r unit_ok unit_fail < <(python3 scripts/unit_case_counts.py "$unit_json"); then
  passed=$((passed + unit_ok))
  failed=$((failed + unit_fail))
  echo "unit and live: ${unit_ok} test cases passed, ${unit_fail} failed"
else
  unit_ok=0; unit_fail=0
fi
if [[ $unit_rc -ne 0 && $unit_fail -eq 0 ]]; then
  echo "test.sh: meson test failed without a failed test case (exit $unit_rc)"
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
