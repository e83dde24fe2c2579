#!/usr/bin/env python3
"""Merges halo-bench-gemm and torch_gemm.py JSON lines into a Markdown table
of TFLOP/s (TOP/s for INT8) and halo/torch ratios (time ratio torch_ms /
halo_ms, so > 1 means halo is faster; the target is >= 0.95).

Usage: report.py HALO.jsonl TORCH.jsonl [HALO2.jsonl ...]
Several halo files (runs before and after the PyTorch one) are combined by
taking, per case, the median run's time (the middle of the sorted list).
"""
import json
import sys


def load(path):
    rows = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                r = json.loads(line)
                rows[(r["kind"], r["M"], r["N"], r["K"])] = r
    return rows


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    halo_runs = [load(sys.argv[1])] + [load(p) for p in sys.argv[3:]]
    torch_rows = load(sys.argv[2])
    order = ["fp8", "fp8-row", "bf16", "int8-i32", "int8"]
    keys = sorted(halo_runs[0], key=lambda k: (k[2], k[3], order.index(k[0])
                                               if k[0] in order else 99))
    print("| kind | M | N | K | halo ms | halo TFLOP/s | torch ms | "
          "torch TFLOP/s | halo/torch | halo plan |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    worst = {}
    for key in keys:
        runs = sorted((r[key] for r in halo_runs if key in r),
                      key=lambda r: r["ms"])
        h = runs[len(runs) // 2]
        t = torch_rows.get(key)
        ratio = t["ms"] / h["ms"] if t else None
        if ratio is not None:
            worst[key[0]] = min(worst.get(key[0], 9e9), ratio)
        print(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {h['ms']:.4f} | "
              f"{h['tflops']:.0f} | "
              + (f"{t['ms']:.4f} | {t['tflops']:.0f} | {ratio:.3f}" if t
                 else "- | - | -")
              + f" | {h.get('plan', '')} |")
    print()
    for kind, ratio in worst.items():
        verdict = "ok" if ratio >= 0.95 else "BELOW 0.95"
        print(f"worst halo/torch for {kind}: {ratio:.3f} ({verdict})")


if __name__ == "__main__":
    main()
