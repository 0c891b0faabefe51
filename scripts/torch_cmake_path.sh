#!/usr/bin/env bash
# Prints the CMAKE_PREFIX_PATH for the CUDA LibTorch installed by install_torch.sh, without
# importing torch: the torch folder itself (so that TorchConfig's find_library finds
# torch/lib/libtorch.so before Debian's /usr/lib one) and its share/cmake (the config files).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${TORCH_VENV:-$root/build-torch2/venv}
for dir in "$venv"/lib/python3*/site-packages/torch/share/cmake; do
  [ -f "$dir/Torch/TorchConfig.cmake" ] && { echo "$(dirname "$(dirname "$dir")");$dir"; exit 0; }
done
echo "torch_cmake_path.sh: no torch in $venv (run scripts/install_torch.sh)" >&2
exit 1
