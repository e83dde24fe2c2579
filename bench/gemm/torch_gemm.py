#!/usr/bin/env python3
"""PyTorch baseline for halo-bench-gemm: the same shapes and kinds, timed the
same way (CUDA events around every call after a warm-up, median).

  fp8       torch._scaled_mm(x, w.t(), scale_a, scale_b, out_dtype=bf16),
            per-tensor float32 scales on the device (use_fast_accum=False)
  fp8-row   the same with row-wise scales: scale_a [M,1], scale_b [1,N]
  bf16      torch.matmul(x, w.t())  (= F.linear, x [M,K], w [N,K])
  int8-i32  torch._int_mm(x, w.t()) -> int32
  int8      torch._int_mm followed by the scaling in PyTorch ops
            ((acc.float() * (s_a * s_b)).bfloat16()), what an unfused
            PyTorch INT8 linear costs

A suffix "@ab" (a, b in {n, t}: transA, transB; default "@nt") selects the
layout for bf16 and int8-i32, as in halo-bench-gemm.

Usage: torch_gemm.py [--iters N] [--warmup N] [--m M] [--shapes NxK,...]
                     [--kinds ...] [--json FILE]
"""
import argparse
import json
import sys

import torch


def median_ms(fn, iters, warmup):
    for _ in range(warmup):
        fn()
    events = [torch.cuda.Event(enable_timing=True) for _ in range(iters + 1)]
    events[0].record()
    for i in range(iters):
        fn()
        events[i + 1].record()
    events[-1].synchronize()
    times = sorted(events[i].elapsed_time(events[i + 1]) for i in range(iters))
    return times[len(times) // 2]


def make_fn(name, M, N, K):
    """name = kind[@ab]: a, b in {n, t} are transA / transB (default nt)."""
    kind, _, layout = name.partition("@")
    layout = layout or "nt"
    dev = "cuda"

    def operands(dtype_fn):
        x = dtype_fn(K, M).t() if layout[0] == "t" else dtype_fn(M, K)
        w = dtype_fn(N, K).t() if layout[1] == "t" else dtype_fn(K, N)
        return x, w

    if kind in ("bf16", "int8-i32") and layout != "nt":
        if kind == "bf16":
            x, w = operands(lambda r, c: torch.randn(r, c, device=dev,
                                                     dtype=torch.bfloat16))
            return lambda: torch.matmul(x, w)
        x, w = operands(lambda r, c: torch.randint(-127, 128, (r, c),
                                                   device=dev,
                                                   dtype=torch.int8))
        return lambda: torch._int_mm(x, w)
    if layout != "nt":
        raise ValueError(f"layout {layout} not benchmarked for {kind}")
    if kind in ("fp8", "fp8-row"):
        x = (torch.randn(M, K, device=dev) * 2).to(torch.float8_e4m3fn)
        w = (torch.randn(N, K, device=dev) * 2).to(torch.float8_e4m3fn)
        if kind == "fp8":
            sa = torch.tensor(0.01, device=dev)
            sb = torch.tensor(0.02, device=dev)
        else:
            sa = torch.full((M, 1), 0.01, device=dev)
            sb = torch.full((1, N), 0.02, device=dev)
        wt = w.t()
        return lambda: torch._scaled_mm(x, wt, scale_a=sa, scale_b=sb,
                                        out_dtype=torch.bfloat16)
    if kind == "bf16":
        x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
        w = torch.randn(N, K, device=dev, dtype=torch.bfloat16)
        wt = w.t()
        return lambda: torch.matmul(x, wt)
    if kind in ("int8-i32", "int8"):
        x = torch.randint(-127, 128, (M, K), device=dev, dtype=torch.int8)
        w = torch.randint(-127, 128, (N, K), device=dev, dtype=torch.int8)
        wt = w.t()
        if kind == "int8-i32":
            return lambda: torch._int_mm(x, wt)
        sa = torch.tensor(0.01, device=dev)
        sb = torch.tensor(0.02, device=dev)
        return lambda: (torch._int_mm(x, wt).float() * (sa * sb)).bfloat16()
    raise SystemExit(f"unknown kind {kind}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--m", type=int, default=8192)
    parser.add_argument("--shapes",
                        default="4096x4096,14336x4096,4096x14336,6144x4096")
    parser.add_argument("--kinds", default="fp8,fp8-row,bf16,int8-i32,int8")
    parser.add_argument("--json")
    args = parser.parse_args()

    out = open(args.json, "w") if args.json else None
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, "
          f"CUDA {torch.version.cuda}")
    print(f"{'kind':9s} {'M':>6s} {'N':>6s} {'K':>6s} {'ms':>9s} {'TFLOP/s':>9s}")
    for shape in args.shapes.split(","):
        N, K = (int(v) for v in shape.split("x"))
        for kind in args.kinds.split(","):
            try:
                fn = make_fn(kind, args.m, N, K)
                ms = median_ms(fn, args.iters, args.warmup)
            except Exception as error:  # e.g. an op missing in this build
                print(f"{kind:9s} {args.m:6d} {N:6d} {K:6d}  failed: {error}",
                      file=sys.stderr)
                continue
            tflops = 2.0 * args.m * N * K / (ms * 1e-3) / 1e12
            print(f"{kind:9s} {args.m:6d} {N:6d} {K:6d} {ms:9.4f} {tflops:9.1f}",
                  flush=True)
            if out:
                out.write(json.dumps({"impl": "torch", "kind": kind, "M": args.m,
                                      "N": N, "K": K, "ms": ms,
                                      "tflops": round(tflops, 2)}) + "\n")
            del fn
            torch.cuda.empty_cache()
    if out:
        out.close()


if __name__ == "__main__":
    main()
