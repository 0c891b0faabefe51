#!/usr/bin/env bash
# Score distillation from the Fashion demo checkpoint, measured: SDS, VSD and SDI over pixels
# and over the Fourier neural field, each with particles cycling over the 10 classes (CFG 3,
# the configs' step counts), and SDS over a voxel volume (class 0) for the turntable. For each
# run it prints the time, the share of renders that the project's classifier
# (configs/fashion_features.yaml) assigns to the requested class, and the mean saturation and
# sharpness of the renders (mean |x|, Laplacian variance), and writes docs/fashion_distill.png:
# one row per method × generator (particles 0-9, classes 0-9), then the volume's turntable.
# About 25 minutes on 2 CPU cores. Needs build/bin/diffuse, runs/fashion_unet/ckpt/last.pt
# (scripts/demo.sh) and runs/fashion_features/ckpt/last.pt (trained here when absent), and
# ImageMagick's convert (installed when absent).
#   PARTICLES_PIXELS=20 PARTICLES_FIELD=10   particles per run (a multiple of 10)
#   OUT=runs/distill_eval                    where the runs go
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin=build/bin/diffuse
ckpt=runs/fashion_unet/ckpt/last.pt
features=runs/fashion_features/ckpt/last.pt
out=${OUT:-runs/distill_eval}
[ -f $ckpt ] || { echo "error: $ckpt not found: run scripts/demo.sh first" >&2; exit 1; }
[ -f $features ] || $bin train --config configs/fashion_features.yaml
command -v convert >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends imagemagick
mkdir -p "$out"
[ -f "$out/fashion_test.pt" ] || $bin eval --features $features --ref fashion:test --save-stats "$out/fashion_test.pt"

# The number after "key": in a JSON file (one key per line), to 3 places.
json_number() { printf '%.3f' "$(sed -n "s/^ *\"$2\": \([-0-9.e+]*\),*$/\1/p" "$1" | head -n 1)"; }

rows=()
report=()
for generator in pixels field; do
  n=$([ $generator = pixels ] && echo "${PARTICLES_PIXELS:-20}" || echo "${PARTICLES_FIELD:-10}")
  for method in sds vsd sdi; do
    run="$out/${method}_$generator"
    start=$(date +%s)
    $bin distill --checkpoint $ckpt --config configs/distill/${method}_$generator.yaml --out "$run" \
      --set particles=$n --set class=-1 --set 'classes=[0,1,2,3,4,5,6,7,8,9]' --log-level warn
    seconds=$(( $(date +%s) - start ))
    $bin eval --features $features --ref "$out/fashion_test.pt" --samples "$run/renders" --classes \
      --out "$run/eval.json" --log-level warn
    report+=("$(printf '%-4s %-7s %3d particles %5d s   class share %s   mean |x| %s   Laplacian variance %s' \
      $method $generator "$n" "$seconds" "$(json_number "$run/eval.json" class_accuracy)" \
      "$(json_number "$run/distill.json" mean_abs)" "$(json_number "$run/distill.json" laplacian_variance)")")
    row=()
    for k in 0 1 2 3 4 5 6 7 8 9; do row+=("$run/renders/particle_${k}_class$k.png"); done
    convert "${row[@]}" +append "$run/row.png"
    rows+=("$run/row.png")
  done
done
start=$(date +%s)
$bin distill --checkpoint $ckpt --config configs/distill/sds_volume.yaml --out "$out/sds_volume" --log-level warn
report+=("sds  volume    4 particles $(printf '%5d' $(( $(date +%s) - start ))) s   (class 0; turntable of particle 0 in the picture)")
views=()
for v in 0 1 2 3 4 5 6 7; do views+=("$out/sds_volume/turntable/particle_0_view_$v.png"); done
convert "${views[@]}" +append "$out/turntable_row.png"
mkdir -p docs
convert "${rows[@]}" "$out/turntable_row.png" -background black -gravity west -append \
  -filter point -resize 300% docs/fashion_distill.png
printf '%s\n' "${report[@]}"
echo "picture: $root/docs/fashion_distill.png"
