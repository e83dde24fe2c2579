#!/usr/bin/env bash
# The main job: install dependencies, build, compile the tiny example model and
# train it: on the GPU when a CUDA driver and device are usable, else on the
# CPU oracle (halo-run's default device).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
build="${HALO_BUILD_DIR:-build}"
model="${1:-examples/tiny.json}"
"$build/bin/haloc" "$model" -o "$build/tiny.halo"
"$build/bin/halo-run" "$build/tiny.halo" --data examples/data/tiny.bin \
  --metrics "$build/tiny-metrics.jsonl" --eval-every 100 --save "$build/tiny-checkpoint"
echo "metrics: $build/tiny-metrics.jsonl"
