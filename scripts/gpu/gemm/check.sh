#!/usr/bin/env bash
# GPU correctness of the GEMM layer: runs halo-blas-tests (the device cases
# compare every supported FP8/INT8/BF16 combination with a float64 reference
# and print each case's error margin as "[gemm] ..." lines, and the layout
# probe as "[probe] ..." lines). Usage, from anywhere:
#   scripts/gpu/gemm/check.sh [gtest flags]
# Writes the log to $OUT/blas-tests.log when OUT is set.
set -euo pipefail
cd "$(dirname "$0")/../../.."
source scripts/gpu/gemm/env.sh
halo_build halo-blas-tests
log=${OUT:-/tmp}/blas-tests.log
"$HALO_BUILD_DIR/bin/halo-blas-tests" "$@" 2>&1 | tee "$log"
