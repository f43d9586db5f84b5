#!/usr/bin/env bash
# Runs one fuzz target from a copy of its seed corpus, so the repository's corpus stays as it is.
#
#   tests/fuzz/run.sh TARGET SECONDS [LIBFUZZER_ARG...]
#
# TARGET is a name under tests/fuzz/corpus (quantity, http_request, ...). The binary comes from
# $FUZZ_BUILD_DIR (default build-fuzz). The run's corpus, and any crash-*, leak-*, timeout-* or
# oom-* reproducer, land in $FUZZ_WORK_DIR/TARGET (default: a new folder under ${TMPDIR:-/tmp}),
# which is printed; with a reproducer, its path and its bytes are printed too and the exit
# status is non-zero. Extra arguments go to libFuzzer (e.g. -jobs=2, -max_len=65536).
set -uo pipefail

cd "$(dirname "$0")/../.."
target=${1:?usage: tests/fuzz/run.sh TARGET SECONDS [LIBFUZZER_ARG...]}
seconds=${2:?usage: tests/fuzz/run.sh TARGET SECONDS [LIBFUZZER_ARG...]}
shift 2
bin="${FUZZ_BUILD_DIR:-build-fuzz}/tests/fuzz/fuzz_$target"
[[ -x "$bin" ]] || { echo "fuzz: $bin not built (see tests/fuzz/README)" >&2; exit 2; }
[[ -d "tests/fuzz/corpus/$target" ]] || { echo "fuzz: no seed corpus tests/fuzz/corpus/$target" >&2; exit 2; }

if [[ -n "${FUZZ_WORK_DIR:-}" ]]; then
  work="$FUZZ_WORK_DIR/$target"
  mkdir -p "$work"
else
  work=$(mktemp -d "${TMPDIR:-/tmp}/fuzz-$target-XXXXXX")
fi
mkdir -p "$work/corpus"
cp -r "tests/fuzz/corpus/$target/." "$work/corpus/"

# Dictionaries: JSON keys for the JSON documents, HTTP tokens for the request framing.
case "$target" in
  deploy_json|scale_json|secret_json|manifest|cni_result) dict=(-dict=tests/fuzz/dict/json.dict) ;;
  http_request) dict=(-dict=tests/fuzz/dict/http.dict) ;;
  *) dict=() ;;
esac
# Inputs up to 16 KiB (a tar seed is 3 KiB; JSON, YAML and heads are far smaller). A run past
# 2 GiB of RSS or 10 s on one input is a finding (oom-*, timeout-*).
TMPDIR="$work" "$bin" -max_total_time="$seconds" -max_len=16384 -rss_limit_mb=2048 -timeout=10 \
  -print_final_stats=1 -artifact_prefix="$work/" "${dict[@]}" "$@" "$work/corpus" \
  >"$work/log" 2>&1
rc=$?
found=0
for f in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
  [[ -f "$f" ]] || continue
  found=1
  echo "fuzz $target: reproducer $f ($(stat -c %s "$f") bytes):"
  head -c 2048 "$f" | od -A d -c | head -n 40
  echo "fuzz $target: run it again with: $bin $f"
done
if [[ $rc -ne 0 || $found -ne 0 ]]; then
  grep -E -A40 '^==[0-9]+==ERROR|runtime error|deadly signal|Timeout|out-of-memory' "$work/log" | head -n 80
  echo "fuzz $target: FAILED (exit $rc); log $work/log"
  exit 1
fi
echo "fuzz $target: $(grep -oE 'Done [0-9]+ runs in [0-9]+ second' "$work/log" | tail -1)s, no finding; corpus $work/corpus"
