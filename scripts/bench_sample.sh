#!/usr/bin/env bash
# Sampling speed of one model: images/s, ms per batch and peak memory of `diffuse sample`
# for a sampler, step count and batch size, printed as one JSON line. The model is a
# checkpoint, or a config whose freshly initialised model is saved after one training step
# (speed does not depend on the weights).
#
# Usage: scripts/bench_sample.sh (--checkpoint C | --config X.yaml [--set key=value ...])
#          [--sampler dpmpp2m] [--steps 20] [--batch-size 64] [--device auto] [--cfg W]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/bench_common.sh"

checkpoint="" config="" sampler=dpmpp2m steps=20 batch=64 device=auto
sets=() extra=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --checkpoint) checkpoint=${2:?}; shift 2 ;;
    --config) config=${2:?}; shift 2 ;;
    --set) sets+=(--set "${2:?}"); shift 2 ;;
    --sampler) sampler=${2:?}; shift 2 ;;
    --steps) steps=${2:?}; shift 2 ;;
    --batch-size) batch=${2:?}; shift 2 ;;
    --device) device=${2:?}; shift 2 ;;
    --cfg) extra+=(--cfg "${2:?}"); shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
if [[ -z $checkpoint && -z $config ]] || [[ -n $checkpoint && -n $config ]]; then
  echo "error: give exactly one of --checkpoint C or --config X.yaml" >&2
  exit 2
fi
BIN=$(bench_binary "$root")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

model=${checkpoint:-$config}
if [[ -n $config ]]; then
  "$BIN" train --config "$config" --log-level warn --set run_dir="$work/run" \
    --set train.steps=1 --set train.sample_every=0 --set train.ckpt_every=1 \
    --set train.device="$device" "${sets[@]}" >&2
  checkpoint=$work/run/ckpt/last.pt
fi
read -r ips ms peak < <(sample_figures "$checkpoint" "$work/samples" "$sampler" "$steps" "$batch" \
  "$device" "${extra[@]}")
nfe=$(value_of nfe_per_batch "$work/samples/sampling.yaml")
dev=$(value_of device "$work/samples/sampling.yaml")
echo "{\"model\": \"$model\", \"sampler\": \"$sampler\", \"steps\": $steps, \"nfe\": $nfe, \"batch\": $batch, \"device\": \"$dev\", \"img_per_s\": $ips, \"ms_per_batch\": $ms, \"peak_memory_mb\": $peak}"
