#!/usr/bin/env bash
# Installs what diffuse needs on Debian 12 (as root; idempotent and quiet).
set -euo pipefail
packages=(g++ cmake ninja-build libtorch-dev libopencv-dev libyaml-cpp-dev libspdlog-dev
          libgtest-dev dataset-fashion-mnist)
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
