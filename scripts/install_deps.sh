#!/usr/bin/env bash
# Installs what diffuse needs on Debian 12 (as root; idempotent and quiet).
set -euo pipefail
# libopenblas0-openmp replaces the netlib reference BLAS behind libtorch's libblas.so.3
# (update-alternatives): Linear and attention layers run ~20x faster on CPU with it, and
# its OpenMP threading cooperates with LibTorch's.
packages=(g++ cmake ninja-build libtorch-dev libopenblas0-openmp libopencv-dev libyaml-cpp-dev
          libspdlog-dev libgtest-dev nlohmann-json3-dev libgloo-dev dataset-fashion-mnist)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
