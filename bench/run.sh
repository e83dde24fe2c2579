#!/usr/bin/env bash
# The step benchmark (issue 7) in one command on a machine that has both haloc
# and a GPU: compiles the programs if .carry/bench has none, then runs
# scripts/gpu/bench.sh (arguments are passed on). Where the GPU machine has no
# MLIR, run scripts/gpu/bench-programs.sh here and scripts/gpu/bench.sh there.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! compgen -G ".carry/bench/*.halo" >/dev/null; then
  scripts/gpu/bench-programs.sh .carry/bench
fi
exec scripts/gpu/bench.sh "$@"
