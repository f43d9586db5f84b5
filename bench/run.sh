#!/bin/sh
# Usage: bench/run.sh [BUILD_DIR]   (default ./build; needs root, wrk, and the integration deps)
# Builds nothing: expects BUILD_DIR/src/faasd and BUILD_DIR/tests/fixtures/fnserver.
# Extra arguments after BUILD_DIR go to bench.py (e.g. --duration 4 --deploys 3).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-./build}
[ $# -gt 0 ] && shift
exec python3 "$here/bench.py" --build-dir "$build" "$@"
