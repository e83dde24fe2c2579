#!/usr/bin/env bash
# Run HERE (needs haloc): compiles the programs scripts/gpu/train.sh trains on
# the GPU machine into ${1:-.carry/train}: tiny at BF16 and HALO-0/1/2 x
# FP8/INT8, and llama-125m at BF16 and HALO-2 FP8 / INT8.
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
ls -la "$dir"
