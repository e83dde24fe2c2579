#!/usr/bin/env bash
# Everything halo checks on the GPU machine, in one command (not CI: CI has no GPU).
#
#   scripts/gpu/all.sh [--no-baseline]
#
# 1. builds the runtime there (no MLIR on that machine: -DHALO_ENABLE_COMPILER=OFF);
# 2. runs every test with ctest, the GPU cases included (they skip elsewhere);
# 3. checks every CUDA kernel template against the CPU oracle (scripts/gpu/kernels);
# 4. runs the cuBLASLt GEMM checks (scripts/gpu/gemm/check.sh);
# 5. if HALO_STEP_DUMP names a `halo-run --dump-step` file (made where haloc is),
#    checks that step against Hugging Face transformers (scripts/torch_reference.py);
# 6. times the PyTorch baseline (bench/torch_baseline.py) unless --no-baseline.
# Logs go to $OUT (or build-gpu/results); the exit status is the first failure's.
set -uo pipefail
cd "$(dirname "$0")/../.."
out="${OUT:-build-gpu/results}"
mkdir -p "$out"
baseline=1
[ "${1:-}" = "--no-baseline" ] && baseline=0
status=0
step() { # name, command...
  local name=$1
  shift
  echo "== $name"
  if "$@" >"$out/$name.log" 2>&1; then
    tail -n 4 "$out/$name.log"
  else
    tail -n 30 "$out/$name.log"
    echo "== $name FAILED (log: $out/$name.log)"
    [ "$status" = 0 ] && status=1
  fi
}

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
step configure cmake "${generator[@]}" -S . -B build-gpu -DHALO_ENABLE_COMPILER=OFF -DCMAKE_BUILD_TYPE=Release
step build cmake --build build-gpu -j "$(nproc)"
step ctest ctest --test-dir build-gpu -j 8 --output-on-failure
step kernels env HALO_GPU_CHECK_BIN=build-gpu/bin/halo-kernels-gpu-check OUT="$out" \
  bash scripts/gpu/kernels/check.sh --no-timing
step gemm env HALO_BUILD_DIR=build-gpu OUT="$out" bash scripts/gpu/gemm/check.sh
if [ -n "${HALO_STEP_DUMP:-}" ]; then
  step torch_reference python3 scripts/torch_reference.py "$HALO_STEP_DUMP"
fi
if [ "$baseline" = 1 ]; then
  step torch_baseline python3 bench/torch_baseline.py --out "$out/torch_baseline.json"
fi
exit "$status"
