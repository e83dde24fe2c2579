#!/usr/bin/env bash
# Issue 6's GPU validation in one command, ON the GPU machine:
#   1. halo-check-gpu on every program of .carry/programs (each kernel and
#      GEMM against the oracle on identical inputs, then 10 whole steps);
#   2. the independent check: `halo-run --device cuda --dump-step` on
#      .carry/ref/tiny-bf16-grads.halo, recomputed by Hugging Face
#      transformers in float32 (scripts/torch_reference.py) with BF16
#      tolerances (loss 1e-3, each gradient's relative L2 2e-2).
# Programs are compiled where haloc is: scripts/gpu/check-programs.sh and
#   haloc examples/tiny.json --precision bf16 --return-grads -o .carry/ref/tiny-bf16-grads.halo
# Results in $OUT (default build-gpu/results); exit status 1 if anything fails.
set -uo pipefail
cd "$(dirname "$0")/../.."
out="${OUT:-build-gpu/results}"
mkdir -p "$out"
HALO_ENABLE_TESTS=OFF bash scripts/gpu/build-runtime.sh build-gpu halo-run halo-check-gpu || exit 1
status=0
OUT="$out" bash scripts/gpu/check.sh build-gpu .carry/programs | tail -n 12 || status=1
echo "== transformers vs halo's GPU step (BF16)"
build-gpu/bin/halo-run .carry/ref/tiny-bf16-grads.halo --device cuda --data examples/data/tiny.bin \
  --steps 1 --dump-step "$out/gpu-step.safetensors" >"$out/dump.log" 2>&1 || { cat "$out/dump.log"; status=1; }
python3 scripts/torch_reference.py "$out/gpu-step.safetensors" --loss-tol 1e-3 --grad-tol 2e-2 \
  | tee "$out/torch_reference.log" | tail -n 24 || status=1
exit "$status"
