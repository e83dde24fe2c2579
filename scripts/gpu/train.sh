#!/usr/bin/env bash
# Run ON the GPU machine: trains the programs of scripts/gpu/train-programs.sh
# with `halo-run --device cuda` and checks save -> resume there.
#
#   scripts/gpu/train.sh <build dir with bin/halo-run> <programs dir> [125m steps]
#
# Logs and metrics go to $OUT (default build-gpu/results); exit status is the
# first failure's.
set -uo pipefail
cd "$(dirname "$0")/../.."
bin="$1/bin"
dir="$2"
steps125="${3:-300}"
out="${OUT:-build-gpu/results}"
mkdir -p "$out"
status=0
run() { # name, halo-run args...
  local name=$1
  shift
  echo "== $name"
  if "$bin/halo-run" "$@" >"$out/$name.log" 2>&1; then
    grep -E "^halo-run|^step|^done|warning" "$out/$name.log" | sed -n '1p;$p' | cut -c1-240
    tail -n 2 "$out/$name.log"
  else
    tail -n 20 "$out/$name.log"
    echo "== $name FAILED"
    status=1
  fi
}
for p in "$dir"/tiny-*.halo; do
  name=$(basename "$p" .halo)
  run "$name" "$p" --device cuda --data examples/data/tiny.bin --steps 300 --log-every 100 \
    --metrics "$out/$name.jsonl" --eval-every 300
done
# Save at 150, resume to 300: the losses must equal the uninterrupted run's.
p="$dir/tiny-halo2-fp8.halo"
run resume-a "$p" --device cuda --data examples/data/tiny.bin --steps 150 --save "$out/ck150"
run resume-b "$p" --device cuda --data examples/data/tiny.bin --steps 300 --log-every 100 \
  --resume "$out/ck150" --metrics "$out/resumed.jsonl"
python3 - "$out/tiny-halo2-fp8.jsonl" "$out/resumed.jsonl" <<'PY' || status=1
import json, sys
full = {d["step"]: d["loss"] for d in map(json.loads, open(sys.argv[1])) if "loss" in d}
res = {d["step"]: d["loss"] for d in map(json.loads, open(sys.argv[2])) if "loss" in d}
common = sorted(set(full) & set(res))
same = all(full[s] == res[s] for s in common)
print("resume: steps", common, "identical" if same else "DIFFER",
      [(s, full[s], res[s]) for s in common])
sys.exit(0 if same and common else 1)
PY
if [ ! -f "$out/data-125m.bin" ]; then
  python3 scripts/make_dataset.py --synthetic 16000000 --seed 2 -o "$out/data-125m.bin" >/dev/null
fi
for p in "$dir"/125m-*.halo; do
  name=$(basename "$p" .halo)
  run "$name" "$p" --device cuda --data "$out/data-125m.bin" --steps "$steps125" --log-every 50 \
    --metrics "$out/$name.jsonl" --eval-every "$steps125" --peak-tflops 989
done
rm -f "$out/data-125m.bin"
exit "$status"
