#!/usr/bin/env bash
# The main job on the embedded default data, from a fresh Debian 12 machine: install,
# build, summarise Fashion-MNIST, train configs/fashion_unet.yaml on the CPU (about 12
# minutes on 2 cores), then sample a class-conditional grid with classifier-free guidance.
# Outputs: runs/fashion_unet/ (checkpoints, metrics, sample grids) and out/demo_samples/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install_deps.sh"
"$root/scripts/build.sh"
cd "$root"
bin=build/bin/diffuse
$bin info --config configs/fashion_unet.yaml --out out/demo_info
$bin train --config configs/fashion_unet.yaml ${DEMO_STEPS:+--set train.steps=$DEMO_STEPS}
$bin sample --checkpoint runs/fashion_unet/ckpt/last.pt --sampler dpmpp2m --steps 20 --cfg 3 \
  --classes 0-9 --seeds 0-99 --out out/demo_samples
echo "sample grid: $root/out/demo_samples/grid.png (one column per class)"
