#!/usr/bin/env bash
# Compiles the programs that scripts/gpu/check.sh checks on the GPU machine.
# Run where haloc is (the GPU machine builds only the runtime):
#
#   scripts/gpu/check-programs.sh [out-dir]      (default: .carry/programs)
#
# examples/tiny.json at BF16 and at HALO-0/1/2 x FP8/INT8, each with
# --return-grads so that halo-check-gpu also compares every gradient; BF16 and
# HALO-2 FP8 once more with BF16 AdamW moments.
# HALOC names the compiler (default: build/bin/haloc).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:-$root/.carry/programs}"
haloc="${HALOC:-$root/build/bin/haloc}"
model="$root/examples/tiny.json"
if [ ! -x "$haloc" ]; then
  echo "check-programs.sh: no haloc at $haloc (build it, or set HALOC)" >&2
  exit 1
fi
mkdir -p "$out"
compile() { # name, haloc options...
  local name=$1
  shift
  "$haloc" "$model" "$@" --return-grads -o "$out/tiny-$name.halo" >/dev/null
  echo "wrote $out/tiny-$name.halo"
}
compile bf16 --precision bf16
compile bf16-bf16m --precision bf16 --moment-dtype bf16
compile fp8-halo2-bf16m --level 2 --precision fp8 --moment-dtype bf16
for precision in fp8 int8; do
  for level in 0 1 2; do
    compile "$precision-halo$level" --level "$level" --precision "$precision"
  done
done
