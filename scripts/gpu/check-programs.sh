#!/usr/bin/env bash
# Compiles the programs that scripts/gpu/check.sh checks on the GPU machine.
# Run where haloc is (the GPU machine builds only the runtime):
#
#   scripts/gpu/check-programs.sh [out-dir]      (default: .carry/programs)
#
# examples/tiny.json at BF16 and at HALO-0/1/2 x FP8/INT8, each with
# --return-grads so that halo-check-gpu also compares every gradient; BF16 and
# HALO-2 FP8 once more with BF16 AdamW moments, and with BF16 moments and BF16
# weights (--master-dtype bf16). Copies of tiny with head dims 64
# (seq 256) and 128 (seq 200) run the attention kernels of the larger models
# (on sm_90, attention_wgmma.cuh): BF16 and HALO-2 FP8, and BF16.
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
compile bf16-bf16w --precision bf16 --moment-dtype bf16 --master-dtype bf16
compile fp8-halo2-bf16w --level 2 --precision fp8 --moment-dtype bf16 --master-dtype bf16
for precision in fp8 int8; do
  for level in 0 1 2; do
    compile "$precision-halo$level" --level "$level" --precision "$precision"
  done
done
variant() { # name, hidden, heads, kv heads, seq: tiny.json with those sizes
  python3 - "$root/examples/tiny.json" "$@" <<'PY'
import json, sys
src, name, hidden, heads, kv, seq = sys.argv[1:]
m = json.load(open(src))
m["model"].update(hidden_size=int(hidden), intermediate_size=2 * int(hidden),
                  num_attention_heads=int(heads), num_key_value_heads=int(kv),
                  max_position_embeddings=int(seq))
m["train"].update(seq_len=int(seq), batch_size=2)
json.dump(m, open(name, "w"), indent=1)
PY
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
variant "$tmp/hd64.json" 256 4 2 256
variant "$tmp/hd128.json" 256 2 1 200
for v in "hd64 bf16 --precision bf16" "hd64 fp8-halo2 --level 2 --precision fp8" \
         "hd128 bf16 --precision bf16"; do
  set -- $v
  name="$1-$2"
  model="$tmp/$1.json"
  compile "$name" "${@:3}"
done
