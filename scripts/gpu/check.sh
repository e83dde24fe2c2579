#!/usr/bin/env bash
# On the GPU machine: checks compiled programs against the CPU oracle with
# halo-check-gpu (per kernel and whole training steps; docs/validation.md,
# "GPU vs oracle"). Not CI: CI has no GPU.
#
#   scripts/gpu/check.sh [build-dir] [programs-dir]
#
# build-dir (default build-gpu) should hold bin/halo-check-gpu; if it does not,
# scripts/gpu/build-runtime.sh builds it there (no MLIR on that machine).
# programs-dir (default .carry/programs) holds the *.halo files of
# scripts/gpu/check-programs.sh, compiled where haloc is.
# Each report goes to $OUT/check-<name>.json and its log to check-<name>.log
# ($OUT defaults to build-gpu/results). Exits 1 if any program fails.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
build="${1:-build-gpu}"
programs="${2:-.carry/programs}"
out="${OUT:-build-gpu/results}"
mkdir -p "$out"
bin="$build/bin/halo-check-gpu"
if [ ! -x "$bin" ]; then
  bash scripts/gpu/build-runtime.sh "$build" halo-check-gpu || exit 1
fi
shopt -s nullglob
files=("$programs"/*.halo)
if [ ${#files[@]} -eq 0 ]; then
  echo "check.sh: no .halo files in $programs; compile them with scripts/gpu/check-programs.sh" >&2
  exit 1
fi
status=0
names=()
for program in "${files[@]}"; do
  name="$(basename "$program" .halo)"
  names+=("$name")
  echo "== $name"
  if "$bin" "$program" --data examples/data/tiny.bin --steps 10 \
    --report "$out/check-$name.json" >"$out/check-$name.log" 2>&1; then
    tail -n 3 "$out/check-$name.log"
  else
    tail -n 40 "$out/check-$name.log"
    echo "== $name FAILED (log: $out/check-$name.log)"
    status=1
  fi
done

# One line per program from its report: the worst number of each check.
python3 - "$out" "${names[@]}" <<'PY' || true
import json, math, sys
out, names = sys.argv[1], sys.argv[2:]
def worst(values):  # the JSON writes NaN and infinity as null
    values = [math.nan if v is None else v for v in values]
    return max(values, key=lambda v: math.inf if math.isnan(v) else v) if values else None
def fmt(v):
    return "-" if v is None else f"{v:.1e}"
print(f"\n{'program':<18} {'kernel steps':>12} {'failed':>6} {'loss rel':>9} {'gnorm rel':>9} "
      f"{'grads rel':>9} {'params rel':>10}  result")
for name in names:
    try:
        r = json.load(open(f"{out}/check-{name}.json"))
    except (OSError, ValueError):
        print(f"{name:<18} (no report: see {out}/check-{name}.log)")
        continue
    steps = [s for f in r.get("kernels", {}).values() for s in f]
    failed = sum(not s["pass"] for s in steps)
    w = r.get("whole_step", {})
    loss = worst(s["loss_rel"] for s in w.get("steps", []))
    gnorm = worst(s["grad_norm_rel"] for s in w.get("steps", []) if "grad_norm_rel" in s)
    grads = worst(g["rel_l2"] for g in w.get("gradients", []))
    params = worst(p["rel_l2"] for p in w.get("parameters", []))
    print(f"{name:<18} {len(steps):>12} {failed:>6} {fmt(loss):>9} {fmt(gnorm):>9} "
          f"{fmt(grads):>9} {fmt(params):>10}  {'PASS' if r['pass'] else 'FAIL'}")
PY
exit "$status"
