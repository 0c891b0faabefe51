#!/usr/bin/env bash
# The one-call check on a GPU host with no network (../shared/gpu/README.md): configure and
# build against the host's pip torch with OpenCV off, run the gpu-labelled tests, then the
# rest of the suite, then the speed benchmark on CUDA; print one JSON object with the test
# counts and the benchmark figures. Needs .gpu/ staged on a networked Debian machine first
# (../shared/gpu/prepare.sh). Under 8 minutes on the H200 host (16 cores).
#
# Usage: scripts/gpu_check.sh [--modes "eager default graphs"]   (benchmark modes; default: default)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
modes="default"
while [[ $# -gt 0 ]]; do
  case $1 in
    --modes) modes=${2:?--modes needs a value}; shift 2 ;;
    *) echo "error: unknown argument '$1' (valid: --modes LIST)" >&2; exit 2 ;;
  esac
done
[ -f .gpu/env.sh ] || { echo "error: .gpu/env.sh missing: run ../shared/gpu/prepare.sh on a networked machine first" >&2; exit 1; }
# shellcheck disable=SC1091
source .gpu/env.sh
build=${BUILD_DIR:-$root/build-gpu}
log=$build/gpu_check
mkdir -p "$log"
start=$(date +%s)
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDIFFUSE_WITH_OPENCV=OFF \
  -DDIFFUSE_WERROR=ON >"$log/configure.txt" 2>&1 || { tail -30 "$log/configure.txt" >&2; exit 1; }
cmake --build "$build" -j "$(nproc)" >"$log/build.txt" 2>&1 || { grep -m5 -A5 "error" "$log/build.txt" >&2; exit 1; }
build_s=$(( $(date +%s) - start ))

# ctest_counts LABEL_ARGS...: runs ctest, prints "passed failed skipped" from its summary.
ctest_counts() {
  local name=$1
  shift
  (cd "$build" && ctest --output-on-failure -j "$(nproc)" "$@" >"$log/ctest_$name.txt" 2>&1) || true
  local total failed skipped
  total=$(sed -n 's/.*tests passed, \([0-9]*\) tests failed out of \([0-9]*\).*/\2/p' "$log/ctest_$name.txt")
  failed=$(sed -n 's/.*tests passed, \([0-9]*\) tests failed out of.*/\1/p' "$log/ctest_$name.txt")
  skipped=$(grep -c '(Skipped)\|\*\*\*Skipped' "$log/ctest_$name.txt" || true)
  total=${total:-0} failed=${failed:-0}
  echo "$(( total - failed - skipped )) $failed $skipped"
}
read -r gpu_pass gpu_fail gpu_skip < <(ctest_counts gpu -L gpu)
read -r rest_pass rest_fail rest_skip < <(ctest_counts rest -LE gpu)

bench_json=""
for mode in $modes; do
  figures=$(DIFFUSE_BIN="$build/bin/diffuse" scripts/bench.sh --device cuda --mode "$mode" 2>"$log/bench_$mode.txt" | tr -d '\n') \
    || figures="{\"error\": \"bench.sh failed, see $log/bench_$mode.txt\"}"
  bench_json+="${bench_json:+, }\"$mode\": $figures"
done
cat <<JSON
{"host_gpu": "$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)", "build_s": $build_s,
 "gpu_tests": {"passed": $gpu_pass, "failed": $gpu_fail, "skipped": $gpu_skip},
 "other_tests": {"passed": $rest_pass, "failed": $rest_fail, "skipped": $rest_skip},
 "bench": {$bench_json}, "total_s": $(( $(date +%s) - start )), "logs": "$log"}
JSON
