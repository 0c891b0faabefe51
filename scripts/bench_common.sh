# Shared by scripts/bench.sh and scripts/bench_sample.sh (sourced, not run): helpers that run
# the real `diffuse` commands and pull figures out of what they write.

# The diffuse binary: $DIFFUSE_BIN, else build/bin/diffuse (built by scripts/build.sh).
bench_binary() {
  local root=$1
  local bin=${DIFFUSE_BIN:-$root/build/bin/diffuse}
  if [[ ! -x $bin ]]; then
    echo "error: $bin not found; build first (scripts/build.sh) or set DIFFUSE_BIN" >&2
    exit 1
  fi
  echo "$bin"
}

# value_of KEY FILE: the value of a top-level `KEY: value` line of a YAML file.
value_of() {
  sed -n "s/^$1: *//p" "$2" | head -n 1
}

# json_field KEY LINE: a number field of a one-line JSON object (metrics.jsonl rows).
json_field() {
  sed -n "s/.*\"$1\": *\([-0-9.eE+]*\).*/\1/p" <<<"$2"
}

# sample_figures CHECKPOINT OUT SAMPLER STEPS BATCH DEVICE [extra sample flags...]:
# runs `diffuse sample` for one batch of BATCH images, prints
# "img_per_s ms_per_batch peak_mb" (timing excludes writing the images).
sample_figures() {
  local checkpoint=$1 out=$2 sampler=$3 steps=$4 batch=$5 device=$6
  shift 6
  "$BIN" sample --checkpoint "$checkpoint" --sampler "$sampler" --steps "$steps" \
    --batch-size "$batch" --seeds "0-$((batch - 1))" --out "$out" --device "$device" \
    --log-level warn "$@" >&2
  local ips seconds peak
  ips=$(value_of images_per_second "$out/sampling.yaml")
  seconds=$(value_of seconds "$out/sampling.yaml")
  peak=$(value_of peak_memory_mb "$out/sampling.yaml")
  echo "$ips $(awk -v s="$seconds" 'BEGIN { printf "%.1f", s * 1000 }') $peak"
}
