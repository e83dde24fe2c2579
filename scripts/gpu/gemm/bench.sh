#!/usr/bin/env bash
# halo's GEMMs against PyTorch at the Llama-3-8B linear shapes (M = 8192):
# halo-bench-gemm, then bench/gemm/torch_gemm.py (torch._scaled_mm,
# torch.matmul, torch._int_mm), then halo-bench-gemm again, in one go on
# one GPU; bench/gemm/report.py prints the Markdown table with TFLOP/s and
# halo/torch ratios (per case the slower of the two halo runs is used).
# Usage, from anywhere:
#   scripts/gpu/gemm/bench.sh [--iters N] [--warmup N] [--m M]
#                             [--shapes NxK,...] [--kinds fp8,bf16,...]
# Results go to $OUT (when set) or out/gemm: halo1.jsonl, torch.jsonl,
# halo2.jsonl, table.md.
set -euo pipefail
cd "$(dirname "$0")/../../.."
source scripts/gpu/gemm/env.sh
halo_build halo-bench-gemm
dir=${OUT:-out/gemm}
mkdir -p "$dir"
export PYTHONUNBUFFERED=1
"$HALO_BUILD_DIR/bin/halo-bench-gemm" --json "$dir/halo1.jsonl" "$@"
python3 bench/gemm/torch_gemm.py --json "$dir/torch.jsonl" "$@"
"$HALO_BUILD_DIR/bin/halo-bench-gemm" --json "$dir/halo2.jsonl" "$@"
python3 bench/gemm/report.py "$dir/halo1.jsonl" "$dir/torch.jsonl" \
  "$dir/halo2.jsonl" | tee "$dir/table.md"
