#!/usr/bin/env python3
"""The step benchmark's table (issue 7): halo-bench-step rows beside
bench/torch_baseline.py rows, one Markdown table per configuration.

Usage: report.py FILE...   (.jsonl: one row per line, as halo-bench-step
--json and scripts/gpu/bench.sh write them; .json: torch_baseline.py --out)

Columns: step ms (median), tokens/s, model TFLOP/s, speed-up over
torch.compile BF16 of the same configuration (its ms / this ms: > 1 is
faster), peak GiB (torch: max_memory_allocated; halo: device memory taken
from cuMemGetInfo, all allocated up front), kernel launches + GEMMs per step
(halo). Model FLOPs are torch_baseline.py's formula for both; for the
blocks3-* configurations, whose PyTorch side has no LM head, halo's
(small, vocab 256) LM head is left out of the count. Rows tagged
start-cold / start-cached are the start-time runs, listed after the tables;
"kind": "profile" rows (halo-bench-step --profile) make a per-category table.
"""
import json
import sys

TARGETS = {("blocks3-s2048", mode): target
           for base, target in (("bf16", 1.0), ("halo2-fp8", 1.3))
           for mode in (base, base + "-bf16w")}
LEVELS = ["bf16", "halo0-fp8", "halo1-fp8", "halo2-fp8", "halo2-int8"]
MODES = (["eager", "torch.compile", "torch.compile+clip"] + LEVELS + ["bf16-f32m", "halo2-fp8-f32m"] +
         [m + "-bf16w" for m in LEVELS])


def load(paths):
    rows = []
    for path in paths:
        with open(path) as f:
            if path.endswith(".jsonl"):
                rows += [json.loads(line) for line in f if line.strip()]
            else:
                rows += json.load(f)
    for r in rows:
        r.setdefault("engine", "torch")
    return rows


def tflops(r):
    if r["engine"] == "torch":
        return r["tflops"]
    flops = r["flops"] - (r["head_flops"] if r["config"].startswith("blocks") else 0)
    return flops / r["step_ms"] / 1e9


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    rows = load(sys.argv[1:])
    profiles = [r for r in rows if r.get("kind") == "profile"]
    rows = [r for r in rows if r.get("kind") != "profile"]
    errors = [r for r in rows if "error" in r]
    timed = [r for r in rows if "error" not in r and not r.get("tag")]
    starts = [r for r in rows if "error" not in r and r.get("tag")]
    configs = []
    for r in timed:
        if r["config"] not in configs:
            configs.append(r["config"])
    verdicts = []
    for config in configs:
        group = [r for r in timed if r["config"] == config]
        group.sort(key=lambda r: (r["engine"] != "torch",
                                  MODES.index(r["mode"]) if r["mode"] in MODES else 99))
        ref = next((r for r in group if r["engine"] == "torch" and r["mode"] == "torch.compile"),
                   None)
        b, s = group[0]["batch"], group[0]["seq"]
        print(f"### {config} (batch {b} x seq {s})\n")
        print("| engine | mode | ms/step | tokens/s | model TFLOP/s | vs torch.compile | "
              "peak GiB | launches + GEMMs |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for r in group:
            speedup = ref["step_ms"] / r["step_ms"] if ref else None
            work = f"{r['launches']} + {r['gemms']}" if r["engine"] == "halo" else "-"
            flag = "" if r.get("finite", True) else " (NOT FINITE)"
            print(f"| {r['engine']} | {r['mode']}{flag} | {r['step_ms']:.2f} | "
                  f"{r['tokens_per_s']:,.0f} | {tflops(r):.1f} | "
                  f"{f'{speedup:.2f}x' if speedup else '-'} | {r['peak_gib']:.1f} | {work} |")
            target = TARGETS.get((config, r["mode"])) if r["engine"] == "halo" else None
            if target and speedup:
                ok = "met" if speedup >= target else "NOT met"
                verdicts.append(f"{config} {r['mode']}: {speedup:.2f}x torch.compile "
                                f"(target >= {target}x): {ok}")
        print()
    for v in verdicts:
        print(v)
    if starts:
        print("\nstart-up, seconds from loading the CUDA driver to the end of the first step "
              "(the benchmark's random parameter fill left out); start-cold: NVRTC into an "
              "empty kernel cache, start-cached: the same cache again:\n")
        print("| run | program | start s | context | read | GEMM engine | kernels (cached/all) | "
              "train_step set-up | graph capture | first step |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in starts:
            print(f"| {r['tag']} | {r['config']}.{r['mode']} | {r['start_s']:.2f} | "
                  f"{r['context_s']:.2f} | {r['read_s']:.2f} | {r['gemm_engine_s']:.2f} | "
                  f"{r['load_s']:.2f} ({r['from_cache']}/{r['kernel_programs']}) | "
                  f"{r['create_s']:.2f} | {r['capture_s']:.2f} | {r['first_step_s']:.2f} |")
    programs = []
    for r in profiles:
        if (r["config"], r["mode"], r.get("tag")) not in programs:
            programs.append((r["config"], r["mode"], r.get("tag")))
    for config, mode, tag in programs:
        print(f"\nprofile of {config}.{mode}{f' ({tag})' if tag else ''}, step by step without "
              "the graph (median of 3 per step):\n")
        print("| category | count | total ms | % of step | GB/s | % of D2D copy |")
        print("|---|---:|---:|---:|---:|---:|")
        for r in profiles:
            if (r["config"], r["mode"], r.get("tag")) == (config, mode, tag):
                gbs = f"{r['gb_s']:.0f}" if "gb_s" in r else "-"
                pct = f"{r['copy_pct']:.0f}%" if "copy_pct" in r else "-"
                print(f"| {r['category']} | {r['count']} | {r['ms']:.3f} | {r['pct']:.1f}% | "
                      f"{gbs} | {pct} |")
    for r in errors:
        print(f"\nERROR {r.get('program')}: {r['error']}")


if __name__ == "__main__":
    main()
