#!/usr/bin/env bash
# THE test command: installs build+test dependencies, builds everything in ./build, runs the
# unit tests (meson) and the integration suite (pytest, needs root); then the same code under
# sanitizers: an AddressSanitizer + UndefinedBehaviorSanitizer build (${BUILD_DIR}-asan) runs the
# unit and live tests and the integration suite with its own faasd, and a ThreadSanitizer build
# (${BUILD_DIR}-tsan) runs the unit tests of the gateway (worker pool included) and the provider.
# Both compile at nice 19 in the background while earlier tests run.
# The arm64 packages (packaging/build.sh --arch arm64, ${BUILD_DIR}-arm64) are cross-built at nice
# 19 while the normal build's tests run, and their binaries run under qemu-user after the
# sanitized runs (tests/package/test_cross.sh).
# Then the libFuzzer targets of tests/fuzz (clang, ${BUILD_DIR}-fuzz) run a few seconds each.
# Each run prints its own count; the closing line "N passed, N failed" adds up the test cases of
# every run (Catch2 cases of the unit and live binaries plus pytest cases, and one case per fuzz
# target), and a sanitizer report of the sanitized faasd counts as one more failed case. Exits non-zero on any failure.
#
# Environment: BUILD_DIR (default build), PYTEST_ARGS (extra pytest arguments, e.g. "-k restart"),
# PYTEST_WORKERS (default 1, one file after another; N runs the integration files side by side
# on N pytest-xdist workers, each with its own containerd, registry, bridge and daemon, as the
# harness makes them anyway, a file's tests on one worker, in order. Not the default yet: with 2
# on a loaded box, two load tests fell short of their request counts),
# SANITIZERS (default "asan tsan"; "asan" leaves the TSan run out; "" runs the normal build only),
# FUZZ_SECONDS (default 5: how long each libFuzzer target of tests/fuzz runs; 0 skips fuzzing),
# CROSS (default "": none; "arm64" cross-builds the arm64 packages at nice 19 beside the tests
# and runs their binaries under qemu-user at the end, "arm64 armhf" both. .ci/run sets "arm64":
# the arm64 build is about 1,250 CPU-seconds on a 2-core dev box, about a quarter of that on CI's).
set -uo pipefail

cd "$(dirname "$0")/.."
repo=$(pwd)
build=${BUILD_DIR:-build}
sanitizers=${SANITIZERS-asan tsan}
fuzz_seconds=${FUZZ_SECONDS:-5}
pytest_workers=${PYTEST_WORKERS:-1}
cross_archs=${CROSS-}
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

passed=0
failed=0
timings=()
finish() {
  printf 'test.sh: %s\n' "${timings[@]}"
  echo "${passed} passed, ${failed} failed"
  if [[ $failed -gt 0 || $1 -ne 0 ]]; then exit 1; fi
  exit 0
}
# count LABEL PASSED FAILED EXIT_CODE: adds one run's cases; a failed run without a failed case
# (a crash before any summary) counts as one failed case.
count() {
  passed=$((passed + $2))
  failed=$((failed + $3))
  if [[ $4 -ne 0 && $3 -eq 0 ]]; then
    echo "test.sh: $1 failed without a failed test case (exit $4)"
    failed=$((failed + 1))
  fi
}

# took LABEL START: notes a step's wall time (since START, in $SECONDS) for the summary.
took() { timings+=("$1 took $(($SECONDS - $2)) s"); }

bash scripts/deps.sh build test || { echo "test.sh: dependencies could not be installed"; failed=1; finish 1; }
# Before anything compiles: Multi-Arch: same libraries move in lockstep, so this can upgrade
# native -dev packages too. Without them the cross step fails alone.
cross_deps=()
for arch in $cross_archs; do
  if bash scripts/deps.sh "cross-$arch"; then
    cross_deps+=("$arch")
  else
    echo "test.sh: the $arch cross toolchain and libraries could not be installed"
    failed=$((failed + 1))
  fi
done

# compile DIR [SETUP_OPTION...] -- [NINJA_TARGET...]: meson setup (or reconfigure) and ninja.
compile() {
  local dir=$1 opts=() start=$SECONDS
  shift
  while [[ $# -gt 0 && $1 != -- ]]; do opts+=("$1"); shift; done
  shift
  if [[ -f "$dir/build.ninja" ]]; then
    meson setup --reconfigure "$dir" "${opts[@]}" >"$logs/setup-${dir##*/}.log" 2>&1
  else
    meson setup "$dir" "${opts[@]}" >"$logs/setup-${dir##*/}.log" 2>&1
  fi || { cat "$logs/setup-${dir##*/}.log"; echo "test.sh: meson setup of $dir failed"; return 1; }
  ninja -C "$dir" -j"$(nproc)" "$@" || { echo "test.sh: build of $dir failed"; return 1; }
  took "build of $dir" "$start"
}

# unit LABEL DIR MESON_TEST_ARG...: meson counts one test per binary; the closing line counts test
# cases, read from the binaries' Catch2 summaries in meson's JSON log.
unit() {
  local label=$1 dir=$2 ok=0 fail=0 rc start=$SECONDS
  shift 2
  local json="$dir/meson-logs/test-sh.json"
  rm -f "$json"
  meson test -C "$dir" --no-rebuild --print-errorlogs --logbase test-sh "$@" 2>&1 |
    tee "$logs/unit.log"
  rc=${PIPESTATUS[0]}
  if [[ -f "$json" ]]; then
    read -r ok fail < <(python3 scripts/unit_case_counts.py "$json")
  fi
  ok=${ok:-0} fail=${fail:-0}
  echo "$label: ${ok} test cases passed, ${fail} failed"
  count "$label" "$ok" "$fail" "$rc"
  took "$label" "$start"
}

# Most integration tests wait on containerd, runc and the network: two files side by side keep
# the CPU busier and finish the pass sooner. --dist loadfile: a file's module fixtures (a daemon
# of its own, say) serve its tests on one worker.
xdist=()
if [[ $pytest_workers -gt 1 ]]; then xdist=(-n "$pytest_workers" --dist loadfile); fi

# integration LABEL DIR [PYTEST_ARG...]: pytest directly, so its own summary line shows, against DIR's faasd and
# task-metrics. fnserver, fwatchdog and faasd-logger always come from the normal build: they go
# into function images or are run by containerd's shim, so they must be static, and a sanitizer
# runtime cannot be linked statically.
integration() {
  local label=$1 dir=$2 rc summary start=$SECONDS
  shift 2
  PYTHONDONTWRITEBYTECODE=1 \
  FAASD_BIN="$repo/$dir/src/faasd" \
  TASK_METRICS_BIN="$repo/$dir/tests/fixtures/task-metrics" \
  FNSERVER_BIN="$repo/$build/tests/fixtures/fnserver" \
  FWATCHDOG_BIN="$repo/$build/src/watchdog/fwatchdog" \
  FAASD_LOGGER_BIN="$repo/$build/src/logs/faasd-logger" \
    /usr/bin/python3 -m pytest -v -p no:cacheprovider "${xdist[@]}" ${PYTEST_ARGS:-} "$@" \
      tests/integration 2>&1 |
    tee "$logs/integration.log"
  rc=${PIPESTATUS[0]}
  pytest_count "$label" "$logs/integration.log" "$rc"
  took "$label" "$start"
}

# pytest_count LABEL LOG EXIT_CODE: counts the cases of pytest's summary line in LOG.
pytest_count() {
  local summary ok fail errors
  summary=$(grep -E '^=+ .*(passed|failed|error|no tests ran).* in [0-9.]+s' "$2" | tail -1)
  pick() { grep -oE "[0-9]+ $1" <<<"$summary" | head -1 | cut -d' ' -f1; }
  ok=$(pick passed); fail=$(pick failed); errors=$(pick 'errors?')
  echo "$1: ${ok:-0} test cases passed, $((${fail:-0} + ${errors:-0})) failed"
  count "$1" "${ok:-0}" $((${fail:-0} + ${errors:-0})) "$3"
}

# sidecar_images: NATS and Prometheus as OCI archives (packaging/images/build.sh), built once
# into $logs for every run that needs them: test_services.py in both integration runs, and the
# packages of the package step (FAASD_SIDECAR_IMAGES). Should the build fail, each builds its own.
sidecar_images() {
  local start=$SECONDS
  if packaging/images/build.sh "$logs/sidecar-images" >"$logs/sidecar-images.log" 2>&1; then
    export FAASD_SIDECAR_IMAGES="$logs/sidecar-images"
  else
    cat "$logs/sidecar-images.log"
    echo "test.sh: the sidecar images could not be built here; the tests try again themselves"
  fi
  took "sidecar images" "$start"
}

# package DIR: the .deb built from DIR (with the sidecar images), installed, restarted under
# load, upgraded and purged (tests/package/test_package.sh; about 90 s, in a private mount
# namespace). The packages stay in $logs/packages for the air-gap step.
package() {
  local rc start=$SECONDS
  FAASD_PACKAGE_KEEP="$logs/packages" \
  FNSERVER_BIN="$repo/$1/tests/fixtures/fnserver" \
  FWATCHDOG_BIN="$repo/$1/src/watchdog/fwatchdog" \
    bash tests/package/test_package.sh "$1" 2>&1 | tee "$logs/package.log"
  rc=${PIPESTATUS[0]}
  pytest_count "package" "$logs/package.log" "$rc"
  took "package" "$start"
}

# airgap DIR: the package step's revision 1 (when it carries the sidecar images; else
# test_airgap.sh builds one from DIR) installed and run in a network namespace with no route
# out: sidecars and a function from archives, sync and async calls, Prometheus, and nothing
# that tried to leave (tests/package/test_airgap.sh).
airgap() {
  local rc start=$SECONDS deb=""
  if [[ -n ${FAASD_SIDECAR_IMAGES:-} ]]; then
    deb=$(ls "$logs"/packages/faasd_*-1_*.deb 2>/dev/null | head -n 1)
  fi
  FAASD_AIRGAP_DEB=$deb bash tests/package/test_airgap.sh "$1" 2>&1 | tee "$logs/airgap.log"
  rc=${PIPESTATUS[0]}
  pytest_count "airgap" "$logs/airgap.log" "$rc"
  took "airgap" "$start"
}

compile "$build" -- || { failed=$((failed + 1)); finish 1; }

# The sanitized builds: -O1 with line tables (-g1) for stack traces, and the normal build's
# containerd API library (generated code; see proto/meson.build) instead of compiling it again.
# NDEBUG as in that library and in production: protobuf's inline map code differs without it.
sanitized_opts=(-Doptimization=1 -Ddebug=true -Db_ndebug=true
                "-Dcontainerd_api_prebuilt=$repo/$build/proto")
asan_opts=("${sanitized_opts[@]}" -Db_sanitize=address,undefined -Db_lundef=false
           "-Dcpp_args=-g1 -fno-sanitize-recover=undefined")

# The ASan build compiles while the normal build's tests run, at the lowest CPU priority: the
# tests mostly wait on containerd, runc and the network, and take the CPU back whenever they
# want it (nice 19 weighs 1.5% of nice 0). About 10 minutes of compiling hide behind them.
asan_build_pid=
if [[ " $sanitizers " == *" asan "* ]]; then
  (
    exec >"$logs/asan-build.log" 2>&1
    renice -n 19 -p "$BASHPID" >/dev/null  # before anything is forked: children inherit it
    start=$SECONDS
    compile "$build-asan" "${asan_opts[@]}" -- && echo "$(($SECONDS - start))" >"$logs/asan-build.took"
  ) &
  asan_build_pid=$!
fi

sidecar_images

# The cross-built packages, likewise at nice 19 (packaging/build.sh: meson setup of
# $build-ARCH on first use, the three shipped binaries, .deb and .rpm); run at the end.
cross_build_pids=()
for arch in "${cross_deps[@]}"; do
  (
    exec >"$logs/cross-build-$arch.log" 2>&1
    renice -n 19 -p "$BASHPID" >/dev/null
    start=$SECONDS
    packaging/build.sh --arch "$arch" --build-dir "$build" --out "$logs/cross-$arch" --fast &&
      echo "$(($SECONDS - start))" >"$logs/cross-build-$arch.took"
  ) &
  cross_build_pids+=($!)
done

# The TSan build (Debian's abseil and cpp-httplib sources fetched, then three test binaries)
# compiles the same way, once the ASan build is done so it never delays that one: behind the ASan
# tests and the fuzz run. Its tests run last.
tsan_build_pid=
# source_of PACKAGE: the source version of the installed PACKAGE of the machine's architecture
# (a cross-build set-up may have installed it for another one too).
source_of() { dpkg-query -W -f='${source:Version}' "$1:$(dpkg --print-architecture)"; }
start_tsan_build() {
  [[ " $sanitizers " == *" tsan "* ]] || return 0
  (
    exec >"$logs/tsan-build.log" 2>&1
    renice -n 19 -p "$BASHPID" >/dev/null
    start=$SECONDS
    bash scripts/debian_source.sh abseil "$(source_of libabsl-dev)" "$build-tsan-absl" &&
      bash scripts/debian_source.sh cpp-httplib "$(source_of libcpp-httplib-dev)" \
        "$build-tsan-httplib" || exit 1
    echo "$(($SECONDS - start))" >"$logs/tsan-fetch.took"
    start=$SECONDS
    compile "$build-tsan" "${sanitized_opts[@]}" -Db_sanitize=thread -Dcpp_args=-g1 \
      "-Dabsl_source_dir=$repo/$build-tsan-absl" \
      "-Dhttplib_source_dir=$repo/$build-tsan-httplib" -- \
      tests/unit/gateway/gateway_test tests/unit/provider/provider_test \
      tests/unit/provider/provider_lifecycle_test &&
      echo "$(($SECONDS - start))" >"$logs/tsan-build.took"
  ) &
  tsan_build_pid=$!
}
if [[ -z "$asan_build_pid" ]]; then start_tsan_build; fi

unit "unit and live" "$build" --suite unit --suite live
integration "integration" "$build"
package "$build"
airgap "$build"

# AddressSanitizer + UndefinedBehaviorSanitizer: any finding aborts the process
# (-fno-sanitize-recover for UBSan; ASan always stops). The sanitized daemon's stderr ends up in
# files the harness deletes, so its reports go to files of their own, each counted as a failure.
if [[ " $sanitizers " == *" asan "* ]]; then
  reports="$logs/sanitizer-reports"
  mkdir -p "$reports"
  start=$SECONDS
  wait "$asan_build_pid"
  asan_built=$?
  start_tsan_build
  if [[ $asan_built -eq 0 ]]; then tail -n 3 "$logs/asan-build.log"; else cat "$logs/asan-build.log"; fi
  took "build of $build-asan (after the normal tests; compiling took $(cat "$logs/asan-build.took" 2>/dev/null || echo '?') s)" "$start"
  if [[ $asan_built -eq 0 ]]; then
    # Left out, to keep CI under 30 minutes: the harness's own tests, journald (its traffic is
    # faasd-logger's, which is not sanitized here; its code is, in the logs unit test) and the
    # five examples (the same `faasd build` and deploy paths as test_builder and test_functions).
    # Also left out: the tests that bound RSS (ASan's shadow memory and quarantine are what
    # they would measure) and the one that compares the functions' own cgroup figures (no
    # daemon code path of its own; it runs in the normal pass).
    # The portal's browser test too: its daemon side (static assets, the /system API) runs
    # under ASan in the gateway unit tests and the other integration files. And two that spend
    # their time waiting: 50 tasks' metrics timed (task-metrics, not faasd, does the work) and a
    # pull throttled to 6 MiB/s to be cut (it runs in the normal pass).
    asan_integration_skip=(--ignore=tests/integration/test_harness.py
                           --ignore=tests/integration/test_ui.py
                           --ignore=tests/integration/test_journal.py
                           --ignore=tests/integration/test_examples.py
                           --deselect=tests/integration/test_front_end.py::test_big_body_streams_through_without_being_held
                           --deselect=tests/integration/test_streaming.py::test_one_gib_each_way_with_bounded_daemon_memory
                           --deselect=tests/integration/test_hostile.py::test_build_streams_big_handler
                           --deselect=tests/integration/test_limits.py::test_usage_reports_cpu_and_memory_summed_over_replicas
                           --deselect=tests/integration/test_task_metrics.py::test_metrics_latency_for_1_and_50_tasks
                           --deselect=tests/integration/test_faults.py::test_registry_dying_mid_pull)
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    export ASAN_OPTIONS=detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1
    unit "asan+ubsan unit and live" "$build-asan" --suite unit --suite live --timeout-multiplier 3
    UBSAN_OPTIONS="$UBSAN_OPTIONS:log_path=$reports/ubsan" \
    ASAN_OPTIONS="$ASAN_OPTIONS:log_path=$reports/asan" \
      integration "asan+ubsan integration" "$build-asan" "${asan_integration_skip[@]}"
    unset UBSAN_OPTIONS ASAN_OPTIONS
    n=0
    for report in "$reports"/*; do
      [[ -f "$report" ]] || continue
      echo "test.sh: sanitizer report of the sanitized faasd, $report:"
      cat "$report"
      n=$((n + 1))
    done
    echo "asan+ubsan reports of faasd: ${n}"
    failed=$((failed + n))
  else
    failed=$((failed + 1))
  fi
fi

# The cross-built packages' binaries under qemu-user: faasd version, fwatchdog serving a
# request, faasd-logger writing a line, the packages' architectures (tests/package/test_cross.sh).
for i in "${!cross_deps[@]}"; do
  arch=${cross_deps[$i]}
  start=$SECONDS
  wait "${cross_build_pids[$i]}"
  if [[ $? -eq 0 ]]; then
    took "$arch packages (after the normal tests; building took $(cat "$logs/cross-build-$arch.took") s)" "$start"
    start=$SECONDS
    bash tests/package/test_cross.sh "$arch" "$logs/cross-$arch"/faasd_*_"$arch".deb \
      "$logs/cross-$arch"/faasd-*.rpm 2>&1 | tee "$logs/cross.log"
    rc=${PIPESTATUS[0]}
    read -r ok fail < <(sed -nE 's/^([0-9]+) passed, ([0-9]+) failed$/\1 \2/p' "$logs/cross.log" | tail -1)
    echo "$arch under qemu: ${ok:-0} test cases passed, ${fail:-0} failed"
    count "$arch under qemu" "${ok:-0}" "${fail:-0}" "$rc"
    took "$arch under qemu" "$start"
  else
    cat "$logs/cross-build-$arch.log"
    echo "test.sh: the $arch packages could not be built"
    failed=$((failed + 1))
  fi
done

# libFuzzer (tests/fuzz/README): clang builds the fuzz targets in ${BUILD_DIR}-fuzz with the ASan
# build's options (only the targets, and of the libraries only the parsers' object files), then
# each runs FUZZ_SECONDS from a copy of its seed corpus. A target is one test case, passed when
# it found nothing; a reproducer is printed (path and bytes) and fails it.
if [[ ${fuzz_seconds} -gt 0 ]]; then
  fuzz_names=()
  for dir in tests/fuzz/corpus/*/; do fuzz_names+=("$(basename "$dir")"); done
  if CXX=clang++ compile "$build-fuzz" "${asan_opts[@]}" -Dfuzz=true -Dtests=false -- \
       "${fuzz_names[@]/#/tests/fuzz/fuzz_}"; then
    start=$SECONDS
    fuzz_ok=0
    fuzz_failed=0
    for name in "${fuzz_names[@]}"; do
      if FUZZ_BUILD_DIR="$build-fuzz" FUZZ_WORK_DIR="$logs/fuzz" \
           bash tests/fuzz/run.sh "$name" "$fuzz_seconds"; then
        fuzz_ok=$((fuzz_ok + 1))
      else
        fuzz_failed=$((fuzz_failed + 1))
      fi
    done
    echo "fuzz: ${fuzz_ok} targets passed, ${fuzz_failed} failed"
    count "fuzz" "$fuzz_ok" "$fuzz_failed" 0
    took "fuzz (${#fuzz_names[@]} targets, ${fuzz_seconds} s each)" "$start"
  else
    failed=$((failed + 1))
  fi
fi

# ThreadSanitizer: the unit tests that run threads of ours against each other. TSan sees a lock
# only in instrumented code and Debian's Abseil is not built with it, so Abseil's locking code is
# compiled from Debian's abseil source of the installed version (tests/meson.build, which also
# says how two Abseil-internal false reports are avoided), and cpp-httplib, whose worker threads
# run our /system handlers, from its source (meson.build). Any report fails the run: TSan exits 66
# when it printed one, after the whole run (halt_on_error=0 shows them all).
if [[ -n "$tsan_build_pid" ]]; then
  start=$SECONDS
  wait "$tsan_build_pid"
  tsan_built=$?
  if [[ $tsan_built -eq 0 ]]; then tail -n 3 "$logs/tsan-build.log"; else cat "$logs/tsan-build.log"; fi
  fetch_took=$(cat "$logs/tsan-fetch.took" 2>/dev/null || echo '?')
  build_took=$(cat "$logs/tsan-build.took" 2>/dev/null || echo '?')
  took "build of $build-tsan (after the tests before it; fetching the sources took ${fetch_took} s, compiling ${build_took} s)" "$start"
  if [[ $tsan_built -eq 0 ]]; then
    TSAN_OPTIONS="halt_on_error=0:second_deadlock_stack=1:suppressions=$repo/tests/tsan.supp" \
      unit "tsan unit" "$build-tsan" --timeout-multiplier 3 gateway provider provider_lifecycle
  else
    failed=$((failed + 1))
  fi
fi

finish 0
