#!/usr/bin/env bash
# Compiles the step benchmark's programs (issue 7) where haloc is built (the
# GPU machine has no MLIR); scripts/gpu/bench.sh then times them there.
#
#   scripts/gpu/bench-programs.sh [DIR]      (default .carry/bench)
#
# DIR/<config>.<mode>.halo for each configuration of bench/torch_baseline.py
#   blocks3-s2048  examples/bench/llama3-8b-3blocks-s2048.json
#   blocks3-s512   examples/bench/llama3-8b-3blocks-s512.json
#   llama-125m     examples/llama-125m.json
# and each mode: bf16, halo0-fp8, halo1-fp8, halo2-fp8, halo2-int8, all with
# BF16 AdamW moments (--moment-dtype bf16; the PyTorch baseline keeps its
# moments in BF16 too, and no FP32 master at all), plus blocks3-s2048 at
# bf16-f32m and halo2-fp8-f32m with FP32 moments for comparison, and with
# BF16 weights instead of FP32 masters and BF16 copies (--master-dtype bf16,
# as PyTorch's BF16 modules; mode suffix -bf16w): every mode at
# blocks3-s2048, bf16 and halo2-fp8 at llama-125m.
# HALOC overrides the compiler (default: $HALO_BUILD_DIR/bin/haloc, else
# build/bin/haloc).
set -euo pipefail
cd "$(dirname "$0")/../.."
dir="${1:-.carry/bench}"
haloc="${HALOC:-${HALO_BUILD_DIR:-build}/bin/haloc}"
[ -x "$haloc" ] || { echo "bench-programs.sh: no haloc at $haloc (build it, or set HALOC)" >&2; exit 1; }
mkdir -p "$dir"
models=(blocks3-s2048=examples/bench/llama3-8b-3blocks-s2048.json
        blocks3-s512=examples/bench/llama3-8b-3blocks-s512.json
        llama-125m=examples/llama-125m.json)
modes=("bf16=--precision bf16"
       "halo0-fp8=--level 0 --precision fp8"
       "halo1-fp8=--level 1 --precision fp8"
       "halo2-fp8=--level 2 --precision fp8"
       "halo2-int8=--level 2 --precision int8")
for m in "${models[@]}"; do
  for mode in "${modes[@]}"; do
    out="$dir/${m%%=*}.${mode%%=*}.halo"
    # shellcheck disable=SC2086 # the mode's flags are split on purpose
    "$haloc" "${m#*=}" ${mode#*=} --moment-dtype bf16 -o "$out" >/dev/null
    echo "$out"
  done
done
for mode in "bf16-f32m=--precision bf16" "halo2-fp8-f32m=--level 2 --precision fp8"; do
  out="$dir/blocks3-s2048.${mode%%=*}.halo"
  # shellcheck disable=SC2086
  "$haloc" examples/bench/llama3-8b-3blocks-s2048.json ${mode#*=} --moment-dtype f32 -o "$out" >/dev/null
  echo "$out"
done
for m in "${models[@]}"; do
  for mode in "${modes[@]}"; do
    case "${m%%=*}.${mode%%=*}" in
      blocks3-s2048.* | llama-125m.bf16 | llama-125m.halo2-fp8) ;;
      *) continue ;;
    esac
    out="$dir/${m%%=*}.${mode%%=*}-bf16w.halo"
    # shellcheck disable=SC2086
    "$haloc" "${m#*=}" ${mode#*=} --moment-dtype bf16 --master-dtype bf16 -o "$out" >/dev/null
    echo "$out"
  done
done
