#!/usr/bin/env bash
# The main job on the embedded default data, from a fresh Debian 12 machine: install, build,
# summarise Fashion-MNIST, train configs/fashion_unet.yaml on the CPU (14 minutes on 2
# cores), sample class-conditional grids without and with classifier-free guidance, show
# where the model is weak (its denoising error per σ band), then measure it with diffuse's
# own evaluation: FD and class accuracy of 1000 samples at CFG 1 and 3 under a Fashion-MNIST
# classifier that diffuse trains first (configs/fashion_features.yaml, about 9 minutes),
# against the floor of 1000 real training images.
#   DEMO_EVAL=0   skips the measurement (the demo then ends after the grids);
#   DEMO_STEPS=N  trains N steps instead of the config's.
# Outputs: runs/fashion_unet/ (checkpoints, metrics, curves.png), out/demo_cfg1/ and
# out/demo_cfg3/ (grids), out/demo_calibration/, out/demo_eval/ (samples, metrics JSON).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install_deps.sh"
"$root/scripts/build.sh"
cd "$root"
bin=build/bin/diffuse
ckpt=runs/fashion_unet/ckpt/last.pt
start=$(date +%s)
$bin info --config configs/fashion_unet.yaml --out out/demo_info
$bin train --config configs/fashion_unet.yaml ${DEMO_STEPS:+--set train.steps=$DEMO_STEPS}
for w in 1 3; do
  $bin sample --checkpoint $ckpt --sampler euler_a --steps 20 --cfg $w --classes 0-9 --seeds 0-99 --out out/demo_cfg$w
done
$bin info --checkpoint $ckpt --calibration --out out/demo_calibration

# The number after "key": in a JSON file written by diffuse eval (one key per line), to 3 places.
json_number() { printf '%.3f' "$(sed -n "s/^ *\"$2\": \([-0-9.e+]*\),*$/\1/p" "$1" | head -n 1)"; }

summary=()
if [ "${DEMO_EVAL:-1}" != 0 ]; then
  features=runs/fashion_features/ckpt/last.pt
  e=out/demo_eval
  mkdir -p $e
  [ -f $features ] || $bin train --config configs/fashion_features.yaml
  [ -f $e/fashion_test.pt ] || $bin eval --features $features --ref fashion:test --save-stats $e/fashion_test.pt
  $bin eval --features $features --ref $e/fashion_test.pt --samples fashion:train --limit 1000 --classes --out $e/floor.json
  summary+=("real training images (floor): FD $(json_number $e/floor.json fd), class accuracy $(json_number $e/floor.json class_accuracy)")
  for w in 1 3; do
    $bin sample --checkpoint $ckpt --sampler euler_a --steps 20 --cfg $w --classes 0-9 --seeds 0-999 --grid-cols 40 \
      --out $e/samples_cfg$w
    $bin eval --features $features --ref $e/fashion_test.pt --samples $e/samples_cfg$w --classes --out $e/cfg$w.json
    summary+=("CFG $w, Euler ancestral 20 steps: FD $(json_number $e/cfg$w.json fd), class accuracy $(json_number $e/cfg$w.json class_accuracy)")
  done
fi

echo
echo "demo finished in $(( ($(date +%s) - start) / 60 )) min (after the build)"
echo "sample grids (one column per class): $root/out/demo_cfg1/grid.png (CFG 1), $root/out/demo_cfg3/grid.png (CFG 3)"
echo "denoising error per sigma band: $root/out/demo_calibration/calibration.png"
echo "training curves: $root/runs/fashion_unet/curves.png"
if [ ${#summary[@]} -gt 0 ]; then
  echo "quality of 1000 samples against the 10000 test images (diffuse eval, features of configs/fashion_features.yaml):"
  printf '  %s\n' "${summary[@]}"
  echo "  (metrics: $root/out/demo_eval/*.json)"
fi
