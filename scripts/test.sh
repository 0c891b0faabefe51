#!/usr/bin/env bash
# The whole test suite from a fresh Debian 12 machine: install dependencies, build, ctest.
# CI runs exactly this (.ci/run).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install_deps.sh"
start=$(date +%s)
"$root/scripts/build.sh" -DDIFFUSE_WERROR=ON
echo "build took $(( $(date +%s) - start )) s"
cd "${BUILD_DIR:-$root/build}"
ctest --output-on-failure -j "${JOBS:-$(nproc)}" "$@"
