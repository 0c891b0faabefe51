#!/usr/bin/env bash
# Installs a CUDA LibTorch 2.x for the second half of the test suite: PyPI's torch wheel
# (pinned to the GPU host's version) in a virtual environment under the build folder
# (git-ignored). Idempotent and quiet, like install_deps.sh. Prints nothing when present.
#
# The wheel is installed without its dependencies: the CUDA 13 runtime, cuBLAS, cuDNN,
# NCCL and the rest come from the toolkit at /usr/local/cuda (same CUDA major version as
# the cu130 wheel), so only the three libraries the toolkit lacks are added. Nothing here
# imports torch in Python at run time: diffuse needs only its C++ headers, libraries and
# CMake files; the interop test imports it (with safetensors) to check files both ways.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${TORCH_VENV:-$root/build-torch2/venv}
torch_version=2.11.0
# Shared libraries that libtorch_cuda.so needs and /usr/local/cuda does not ship; the wheel's
# RPATH looks for them in site-packages/nvidia/*/lib.
extras=(nvidia-cusparselt-cu13==0.8.0 nvidia-nvshmem-cu13==3.4.5 nvidia-cufile==1.15.1.6)
# What Python itself needs to import torch and read safetensors files, for the interop test
# (ctest python_interop, scripts/python_interop_check.py).
python_packages=(safetensors numpy typing_extensions sympy networkx jinja2 fsspec filelock)
marker="$venv/.diffuse-torch-$torch_version-interop"
[ -f "$marker" ] && exit 0

cuda=${CUDA_HOME:-/usr/local/cuda}
if [ ! -x "$cuda/bin/nvcc" ]; then
  echo "install_torch.sh: no CUDA toolkit at $cuda (expected $cuda/bin/nvcc; set CUDA_HOME)" >&2
  exit 1
fi
# Debian's python3 creates virtual environments only with python3-venv (ensurepip).
if ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi
echo "installing torch $torch_version (CUDA LibTorch) into $venv"
start=$(date +%s)
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps \
  "torch==$torch_version" "${extras[@]}"
"$venv/bin/pip" install --quiet --disable-pip-version-check "${python_packages[@]}"
touch "$marker"
echo "torch $torch_version installed in $(( $(date +%s) - start )) s ($(du -sh "$venv" | cut -f1))"
