#!/usr/bin/env bash
# GPU checks of the CUDA kernel templates (not part of CI: CI has no GPU).
#
#   scripts/gpu/kernels/check.sh [--small] [--no-timing] [--filter=SUBSTR]
#
# Builds halo-kernels-gpu-check in build-gpu (unless HALO_GPU_CHECK_BIN names
# a prebuilt binary), then runs it: every kernel against the CPU oracle (codes
# and scales bit-exact, the rest within BF16 tolerances) and, unless
# --no-timing, the Hadamard+quantize kernels at Llama-3-8B shapes against a
# device-to-device copy measured in the same run. The log and a JSON summary
# go to $OUT (or build-gpu/kernels-check) as gpu_check.log / gpu_check.json.
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
out="${OUT:-$root/build-gpu/kernels-check}"
mkdir -p "$out"
bin="${HALO_GPU_CHECK_BIN:-}"
if [[ -z "$bin" ]]; then
  cmake -G Ninja -S "$root" -B "$root/build-gpu" -DHALO_ENABLE_COMPILER=OFF \
        -DHALO_ENABLE_TESTS=ON >/dev/null
  ninja -C "$root/build-gpu" halo-kernels-gpu-check
  bin="$root/build-gpu/bin/halo-kernels-gpu-check"
fi
# A fresh kernel cache, so every kernel is really compiled for this GPU.
export HALO_CACHE_DIR="${HALO_CACHE_DIR:-$(mktemp -d)}"
nvidia-smi -L 2>/dev/null || true
set -o pipefail
"$bin" --json="$out/gpu_check.json" "$@" 2>&1 | tee "$out/gpu_check.log"
