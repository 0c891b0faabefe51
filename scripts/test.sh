#!/usr/bin/env bash
# The whole test suite from a fresh Debian 12 machine: install dependencies, build with
# warnings as errors, ctest; twice:
#   1. build/        against Debian's LibTorch 1.13 (CPU);
#   2. build-torch2/ against the CUDA LibTorch 2.x of PyPI's torch wheel (scripts/install_torch.sh),
#      with the CUDA code paths compiled; without a GPU the tests labelled gpu skip and say so.
# CI runs exactly this (.ci/run). TORCH2=0 skips the second half for a quick local run; any
# arguments go to both ctest runs (e.g. -L unit, -R sampler).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install_deps.sh"

run_suite() {  # NAME BUILD_DIR [cmake args...]; ctest arguments come from the script's own
  local name=$1 dir=$2 start
  shift 2
  start=$(date +%s)
  BUILD_DIR=$dir "$root/scripts/build.sh" -DDIFFUSE_WERROR=ON "$@"
  echo "[$name] build took $(( $(date +%s) - start )) s"
  start=$(date +%s)
  (cd "$dir" && ctest --output-on-failure -j "${JOBS:-$(nproc)}" "${ctest_args[@]}")
  echo "[$name] ctest took $(( $(date +%s) - start )) s"
}

ctest_args=("$@")
run_suite "LibTorch 1.13 CPU" "${BUILD_DIR:-$root/build}"
if [ "${TORCH2:-1}" != 0 ]; then
  "$root/scripts/install_torch.sh"
  run_suite "LibTorch 2.x CUDA" "$root/build-torch2" \
    -DCMAKE_PREFIX_PATH="$("$root/scripts/torch_cmake_path.sh")" -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc \
    -DDIFFUSE_PYTHON="$root/build-torch2/venv/bin/python"
fi
