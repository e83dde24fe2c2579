#!/usr/bin/env python3
"""Where PyTorch's BF16 training step spends its GPU time: torch.profiler over
a few steps of bench/torch_baseline.py's 3-block Llama-3-8B step, kernels
grouped as GEMM / attention / optimizer / other, so that halo's own profile
(`halo-bench-step --profile`) has a per-category counterpart.

  python3 bench/torch_profile.py [--seq 2048] [--steps 3] [--eager] [--top 25]
"""
import argparse
import collections
import os
import re
import sys

import torch
from transformers import LlamaConfig

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_baseline import Blocks  # noqa: E402

CATEGORIES = [
    ("attention", re.compile(r"flash|fmha|attn|attention|cudnn|sdpa", re.I)),
    ("gemm", re.compile(r"gemm|xmma|nvjet|cutlass|cublas|sm90_|sm80_|Kernel2", re.I)),
    ("optimizer", re.compile(r"adam|multi_tensor|foreach", re.I)),
]


def category(name):
    for cat, pattern in CATEGORIES:
        if pattern.search(name):
            return cat
    return "other"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seq", type=int, default=2048)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--eager", action="store_true", help="profile eager instead of torch.compile")
    p.add_argument("--top", type=int, default=25)
    a = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit("no CUDA device: run this on the GPU machine")
    cfg = LlamaConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=3,
                      num_attention_heads=32, num_key_value_heads=8, head_dim=128, vocab_size=128256,
                      max_position_embeddings=8192, rope_theta=500000.0, rms_norm_eps=1e-5,
                      attn_implementation="sdpa", torch_dtype=torch.bfloat16, attention_bias=False,
                      mlp_bias=False, hidden_act="silu")
    torch.manual_seed(0)
    model = Blocks(cfg, 3).cuda().to(torch.bfloat16)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    run = model if a.eager else torch.compile(model)
    x = torch.randn(a.batch, a.seq, 4096, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    pos = torch.arange(a.seq, device="cuda").unsqueeze(0).expand(a.batch, a.seq)
    dy = torch.randn_like(x)

    def step():
        run(x, pos).backward(dy)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(5):
        step()
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(a.steps):
            step()
        torch.cuda.synchronize()
    per_kernel = collections.defaultdict(lambda: [0.0, 0])
    for e in prof.events():
        if e.device_type == torch.autograd.DeviceType.CUDA:
            k = per_kernel[e.name]
            k[0] += e.device_time_total / 1e3 / a.steps
            k[1] += 1
    cats = collections.defaultdict(float)
    for name, (ms, _) in per_kernel.items():
        cats[category(name)] += ms
    total = sum(cats.values())
    mode = "eager" if a.eager else "torch.compile"
    print(f"torch {torch.__version__} {mode}, 3 blocks b{a.batch} s{a.seq}: GPU kernel time per step {total:.2f} ms")
    for cat in ("gemm", "attention", "optimizer", "other"):
        print(f"  {cat:10} {cats[cat]:8.2f} ms  {100 * cats[cat] / total:5.1f}%")
    print(f"top {a.top} kernels (ms per step, launches per step):")
    for name, (ms, n) in sorted(per_kernel.items(), key=lambda kv: -kv[1][0])[:a.top]:
        print(f"  {ms:8.3f} {n / a.steps:5.0f}  [{category(name)}] {name[:110]}")


if __name__ == "__main__":
    main()
