#!/usr/bin/env bash
# The step benchmark of issue 7 on the GPU machine, in one command: halo's
# compiled training steps beside PyTorch BF16 (eager and torch.compile) at the
# same shapes, one table.
#
#   scripts/gpu/bench.sh [--programs DIR] [--configs a,b] [--warmup N] [--iters N]
#                        [--no-torch | --torch FILE] [--no-start]
#
# The programs are compiled beforehand where haloc is (this machine has no
# MLIR): scripts/gpu/bench-programs.sh writes DIR (default .carry/bench),
# which travels with the working tree. Then, here:
#   1. builds halo-bench-step (build-gpu, configured as scripts/gpu/all.sh does),
#      unless HALO_BENCH_BIN names a prebuilt one;
#   2. start-up: blocks3-s2048.halo2-fp8 with an empty kernel cache (NVRTC
#      cold), then again with that cache (unless --no-start);
#   3. compiles every program's kernels into the kernel cache (all cores),
#      then times each program in its own process (halo-bench-step);
#   4. times bench/torch_baseline.py (or takes --torch FILE, an earlier
#      run's torch_baseline.json);
#   5. bench/report.py prints the table.
# --configs keeps only those configurations' halo programs (blocks3-s2048,
# blocks3-s512, llama-125m). Output in $OUT (default build-gpu/bench):
# bench.jsonl (every row: halo and torch), torch_baseline.json, table.md,
# logs. The exit status is 1 if anything failed or a step was not finite.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
out="${OUT:-build-gpu/bench}"
build="${HALO_BUILD_DIR:-build-gpu}"
programs=.carry/bench
configs=""
warmup=5
iters=20
torch=run
start=1
while [ $# -gt 0 ]; do
  case "$1" in
    --programs) programs=$2; shift 2 ;;
    --configs) configs=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --iters) iters=$2; shift 2 ;;
    --no-torch) torch=""; shift ;;
    --torch) torch=$2; shift 2 ;;
    --no-start) start=0; shift ;;
    *) echo "bench.sh: unknown argument $1 (see the comment at the top)" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
rows="$out/bench.jsonl"
: >"$rows"
status=0

progs=()
for p in "$programs"/*.halo; do
  [ -e "$p" ] || continue
  name=$(basename "$p")
  if [ -n "$configs" ] && [[ ",$configs," != *",${name%%.*},"* ]]; then
    continue
  fi
  progs+=("$p")
done
if [ ${#progs[@]} = 0 ]; then
  echo "bench.sh: no programs in $programs; run scripts/gpu/bench-programs.sh where haloc is" \
    "built and carry $programs" >&2
  exit 1
fi

bench="${HALO_BENCH_BIN:-}"
if [ -z "$bench" ]; then
  echo "== build"
  generator=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  if ! { cmake "${generator[@]}" -S . -B "$build" -DHALO_ENABLE_COMPILER=OFF \
           -DCMAKE_BUILD_TYPE=Release && cmake --build "$build" --target halo-bench-step \
           -j "$(nproc)"; } >"$out/build.log" 2>&1; then
    tail -n 30 "$out/build.log"
    exit 1
  fi
  bench="$build/bin/halo-bench-step"
fi
export PYTHONUNBUFFERED=1

if [ "$start" = 1 ]; then
  first="$programs/blocks3-s2048.halo2-fp8.halo"
  [ -e "$first" ] || first=${progs[0]}
  cache=$(mktemp -d)
  for tag in start-cold start-cached; do
    echo "== $tag: $first"
    HALO_CACHE_DIR="$cache" "$bench" "$first" --warmup 1 --iters 3 --tag "$tag" \
      --json "$rows" || status=1
  done
  rm -rf "$cache"
fi

echo "== halo: ${#progs[@]} programs, $warmup warm-up + $iters timed steps each"
"$bench" "${progs[@]}" --compile-only --jobs "$(nproc)" || status=1
for p in "${progs[@]}"; do
  "$bench" "$p" --warmup "$warmup" --iters "$iters" --json "$rows" --profile || status=1
done

torch_json="$out/torch_baseline.json"
if [ "$torch" = run ]; then
  echo "== torch: bench/torch_baseline.py"
  python3 bench/torch_baseline.py --warmup "$warmup" --iters "$iters" --clip --out "$torch_json" \
    || status=1
elif [ -n "$torch" ]; then
  [ "$torch" -ef "$torch_json" ] || cp "$torch" "$torch_json" || status=1
fi
if [ -n "$torch" ] && [ -s "$torch_json" ]; then
  python3 -c 'import json, sys
for r in json.load(open(sys.argv[1])):
    print(json.dumps(dict(r, engine="torch")))' "$torch_json" >>"$rows" || status=1
fi

echo "== table"
python3 bench/report.py "$rows" | tee "$out/table.md" || status=1
exit "$status"
