#!/usr/bin/env bash
# The left quantizer's standalone measurements (docs/kernels.md, "Stores of the codes"), run on
# the GPU machine:
#
#   HALO_GPU_CHECK_BIN=<halo-kernels-gpu-check> scripts/gpu/left/run.sh [GRID]
#
# Dumps the generated kernel sources (--dump-sources), builds left_quant_bench.cu with nvcc for
# each fused cluster quantizer (Q(H_T E) + plain Q(E)^T) among them and times it with a grid of
# GRID CTAs (default 264: 2 per SM, clusters of 8), then measures the distributed shared memory
# (dsmem_bandwidth.cu). Edit a dumped source and rebuild to compare a variant: the printed
# hashes must stay the same. Output: stdout and $OUT/left.log (default build-gpu/left).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${HALO_GPU_CHECK_BIN:?set HALO_GPU_CHECK_BIN to a halo-kernels-gpu-check binary}"
out="${OUT:-$here/../../../build-gpu/left}"
mkdir -p "$out"
tmp="$(mktemp -d)"
"$bin" --dump-sources="$tmp"
nvcc=/usr/local/cuda/bin/nvcc
{
  for f in "$tmp"/*cluster_plain_*.cu; do
    prog=$(grep -o 'halo_hql_[0-9]*x[0-9]*_[a-z0-9]*_cl[0-9]_plain_absmax' "$f" | head -1)
    prog=${prog%_absmax}
    cols=$(sed -E 's/halo_hql_[0-9]+x([0-9]+)_.*/\1/' <<< "$prog")
    # The largest launch's shared memory (the paired _quant's staging included).
    "$nvcc" -arch=sm_90a -std=c++17 -O3 -DVARIANT="\"$f\"" -DLB_COLS="$cols" \
      -DLB_SMEM=$((65536 + 256 + 16384)) -DLB_ABSMAX="${prog}_absmax" -DLB_QUANT="${prog}_quant" \
      "$here/left_quant_bench.cu" -o "$tmp/bench_$cols"
    "$tmp/bench_$cols" "${1:-264}"
  done
  "$nvcc" -arch=sm_90a -std=c++17 -O3 "$here/dsmem_bandwidth.cu" -o "$tmp/dsmem"
  "$tmp/dsmem"
} 2>&1 | tee "$out/left.log"
