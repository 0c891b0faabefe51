#!/usr/bin/env bash
# Speed benchmark of the four reference workloads (issue 7), on synthetic data so that no
# dataset is needed, through the real `diffuse train` / `diffuse sample` commands:
#   unet_train   DDPM CIFAR-10 UNet (35.7M), batch 128, 32×32×3, configs/cifar10_ddpm.yaml
#   unet_sample  the same UNet, DDIM 50 steps, batch 256
#   dit_train    DiT-S/2 in pixel space, 3 channels, 10 classes, batch 128, configs/cifar10_dit_s2.yaml
#   dit_sample   the same DiT, DDIM 50 steps, batch 256 (conditional, no guidance)
# Prints one JSON object: img/s, ms per step (training) or per batch (sampling), peak
# memory, device, LibTorch version. Training figures come from the last logging window
# (the first window absorbs warm-up); sampling figures include the first batch.
#
# Usage: scripts/bench.sh [--small] [--device auto|cpu|cuda:N] [--mode M] [--nproc N] [--only W] [--out DIR]
#   --small  tiny batches and step counts, for a CPU check that the benchmark runs (CI).
#   --nproc  data-parallel scaling instead: each training workload on 1 process, then on N
#            (diffuse train --nproc N, the same batch per rank), with img/s at both and the
#            scaling efficiency img/s(N) / (N × img/s(1)). On CPU the N processes share the
#            cores (each gets cores/N threads); on CUDA each rank has its own GPU.
#   --only   one workload (unet_train or dit_train) with --nproc.
#   --mode   which CUDA speed features are on (the ratio of two modes is the feature's gain):
#            eager   per-tensor AdamW, NCHW convolutions: the baseline;
#            default the shipped defaults (fused AdamW, channels-last UNet);
#            graphs  default + train.cuda_graph and sample --cuda-graph.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/bench_common.sh"

small=0
device=auto
mode=default
out=""
nproc=0
only=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --small) small=1; shift ;;
    --device) device=${2:?--device needs a value}; shift 2 ;;
    --out) out=${2:?--out needs a value}; shift 2 ;;
    --mode) mode=${2:?--mode needs a value}; shift 2 ;;
    --nproc) nproc=${2:?--nproc needs a value}; shift 2 ;;
    --only) only=${2:?--only needs a value}; shift 2 ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "error: unknown argument '$1' (valid: --small, --device D, --mode M, --nproc N, --only W, --out DIR)" >&2; exit 2 ;;
  esac
done
if [[ $nproc != 0 ]] && ! [[ $nproc =~ ^[0-9]+$ && $nproc -ge 2 && $nproc -le 1024 ]]; then
  echo "error: --nproc: expected a process count in [2, 1024], found '$nproc'" >&2; exit 2
fi
case $only in
  ""|unet_train|dit_train) ;;
  *) echo "error: --only: expected unet_train or dit_train, found '$only'" >&2; exit 2 ;;
esac
case $mode in
  eager) train_mode=(--set train.fused_adamw=false --set train.channels_last=false); sample_mode=() ;;
  default) train_mode=(); sample_mode=() ;;
  graphs) train_mode=(--set train.cuda_graph=true); sample_mode=(--cuda-graph) ;;
  *) echo "error: --mode: expected eager, default or graphs, found '$mode'" >&2; exit 2 ;;
esac
BIN=$(bench_binary "$root")
if [[ -z $out ]]; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
fi

if [[ $small == 1 ]]; then
  train_batch=2; train_steps=2; log_every=1; sample_batch=2; sample_steps=2
else
  train_batch=128; train_steps=60; log_every=20; sample_batch=256; sample_steps=50
fi

# train_figures NAME CONFIG [--set ...]: trains on random data, prints "img_per_s ms_per_step peak_mb".
train_figures() {
  local name=$1 config=$2
  shift 2
  "$BIN" train --config "$root/configs/$config" --log-level warn \
    --set run_dir="$out/$name" --set data.type=random --set data.resolution=32 \
    --set data.channels=3 --set data.hflip=false --set train.device="$device" \
    --set train.batch_size=$train_batch --set train.steps=$train_steps \
    --set train.log_every=$log_every --set train.warmup_steps=0 --set train.sample_every=0 \
    --set train.ckpt_every=$train_steps ${train_mode[@]+"${train_mode[@]}"} "$@" >&2
  local row ips
  row=$(tail -n 1 "$out/$name/metrics.jsonl")
  ips=$(json_field img_per_s "$row")
  echo "$ips $(awk -v i="$ips" -v b=$train_batch 'BEGIN { printf "%.1f", 1000 * b / i }') $(json_field peak_memory_mb "$row")"
}

if [[ $nproc != 0 ]]; then
  torch_version=$("$BIN" --version | sed -n 's/.*LibTorch \([0-9.a-z+]*\).*/\1/p')
  rows=()
  for workload in unet_train dit_train; do
    [[ -n $only && $only != "$workload" ]] && continue
    config=cifar10_ddpm.yaml
    [[ $workload == dit_train ]] && config=cifar10_dit_s2.yaml
    read -r one_ips _ _ < <(train_figures "${workload}_1" $config)
    read -r n_ips _ n_mem < <(train_figures "${workload}_$nproc" $config --nproc "$nproc")
    efficiency=$(awk -v a="$one_ips" -v b="$n_ips" -v n="$nproc" 'BEGIN { printf "%.3f", b / (n * a) }')
    rows+=(" \"$workload\": {\"img_per_s_1\": $one_ips, \"img_per_s_$nproc\": $n_ips, \"scaling_efficiency\": $efficiency, \"batch_per_rank\": $train_batch, \"peak_memory_mb\": $n_mem}")
  done
  joined=$(IFS=,; echo "${rows[*]}")
  echo "{\"device\": \"$device\", \"libtorch\": \"$torch_version\", \"nproc\": $nproc, \"small\": $([[ $small == 1 ]] && echo true || echo false),$joined}"
  exit 0
fi

read -r ut_ips ut_ms ut_mem < <(train_figures unet_train cifar10_ddpm.yaml)
read -r us_ips us_ms us_mem < <(sample_figures "$out/unet_train/ckpt/last.pt" "$out/unet_sample" \
  ddim $sample_steps $sample_batch "$device" ${sample_mode[@]+"${sample_mode[@]}"})
read -r dt_ips dt_ms dt_mem < <(train_figures dit_train cifar10_dit_s2.yaml)
read -r ds_ips ds_ms ds_mem < <(sample_figures "$out/dit_train/ckpt/last.pt" "$out/dit_sample" \
  ddim $sample_steps $sample_batch "$device" --classes 0-9 ${sample_mode[@]+"${sample_mode[@]}"})

device_name=$(value_of device "$out/unet_sample/sampling.yaml")
torch_version=$("$BIN" --version | sed -n 's/.*LibTorch \([0-9.a-z+]*\).*/\1/p')
cat <<JSON
{"device": "$device_name", "libtorch": "$torch_version", "mode": "$mode", "small": $([[ $small == 1 ]] && echo true || echo false),
 "unet_train": {"img_per_s": $ut_ips, "ms_per_step": $ut_ms, "batch": $train_batch, "peak_memory_mb": $ut_mem},
 "unet_sample_ddim": {"img_per_s": $us_ips, "ms_per_batch": $us_ms, "batch": $sample_batch, "steps": $sample_steps, "peak_memory_mb": $us_mem},
 "dit_train": {"img_per_s": $dt_ips, "ms_per_step": $dt_ms, "batch": $train_batch, "peak_memory_mb": $dt_mem},
 "dit_sample_ddim": {"img_per_s": $ds_ips, "ms_per_batch": $ds_ms, "batch": $sample_batch, "steps": $sample_steps, "peak_memory_mb": $ds_mem}}
JSON
