#!/usr/bin/env bash
# Run HERE (needs haloc): compiles the programs scripts/gpu/train.sh trains on
# the GPU machine into ${1:-.carry/train}: tiny at BF16 and HALO-0/1/2 x
# FP8/INT8, and llama-125m at BF16 and HALO-2 FP8 / INT8; tiny HALO-2 FP8 and
# llama-125m BF16 / HALO-2 FP8 again with BF16 AdamW moments.
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
ls -la "$dir"
