#!/usr/bin/env bash
# Run HERE (needs haloc): compiles the programs scripts/gpu/train.sh trains on
# the GPU machine into ${1:-.carry/train}: tiny at BF16 and HALO-0/1/2 x
# FP8/INT8, and llama-125m at BF16 and HALO-2 FP8 / INT8; tiny HALO-2 FP8 and
# llama-125m BF16 / HALO-2 FP8 again with BF16 AdamW moments, and llama-125m
# BF16 / HALO-2 FP8 with BF16 moments and BF16 weights (--master-dtype bf16).
set -euo pipefail
cd "$(dirname "$0")/../.."
dir="${1:-.carry/train}"
haloc="${HALOC:-build/bin/haloc}"
mkdir -p "$dir"
"$haloc" examples/tiny.json --precision bf16 -o "$dir/tiny-bf16.halo" >/dev/null
for level in 0 1 2; do
  for p in fp8 int8; do
    "$haloc" examples/tiny.json --level "$level" --precision "$p" -o "$dir/tiny-halo$level-$p.halo" >/dev/null
  done
done
"$haloc" examples/llama-125m.json --precision bf16 -o "$dir/125m-bf16.halo" >/dev/null
for p in fp8 int8; do
  "$haloc" examples/llama-125m.json --level 2 --precision "$p" -o "$dir/125m-halo2-$p.halo" >/dev/null
done
# BF16 AdamW moments (--moment-dtype bf16) at BF16 and HALO-2 FP8.
"$haloc" examples/tiny.json --level 2 --precision fp8 --moment-dtype bf16 -o "$dir/tiny-halo2-fp8-bf16m.halo" >/dev/null
"$haloc" examples/llama-125m.json --precision bf16 --moment-dtype bf16 -o "$dir/125m-bf16-bf16m.halo" >/dev/null
"$haloc" examples/llama-125m.json --level 2 --precision fp8 --moment-dtype bf16 -o "$dir/125m-halo2-fp8-bf16m.halo" >/dev/null
# BF16 weights without FP32 masters (--master-dtype bf16).
for mode in "bf16=--precision bf16" "halo2-fp8=--level 2 --precision fp8"; do
  # shellcheck disable=SC2086 # the mode's flags are split on purpose
  "$haloc" examples/llama-125m.json ${mode#*=} --moment-dtype bf16 --master-dtype bf16 \
    -o "$dir/125m-${mode%%=*}-bf16w.halo" >/dev/null
done
ls -la "$dir"
