#!/usr/bin/env bash
# Builds the MLIR-free runtime on the GPU machine into ${1:-build-gpu}
# (targets: the remaining arguments, default all). Quiet unless it fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir="${1:-build-gpu}"
shift || true
targets=()
for t in "$@"; do targets+=(--target "$t"); done
log="$(mktemp)"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if ! { cmake "${generator[@]}" -S . -B "$dir" -DHALO_ENABLE_COMPILER=OFF -DCMAKE_BUILD_TYPE=Release \
         -DHALO_ENABLE_TESTS="${HALO_ENABLE_TESTS:-OFF}" && cmake --build "$dir" -j "$(nproc)" "${targets[@]}"; } >"$log" 2>&1; then
  tail -n 40 "$log"
  exit 1
fi
