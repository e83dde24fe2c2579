#!/usr/bin/env python3
"""The PyTorch side of halo's benchmark (issue 7): BF16 training steps of
transformers' LLaMA blocks, eager and torch.compile, timed with CUDA events.

  python3 bench/torch_baseline.py [--out results.json] [--quick] [--clip]

Configurations (ms/step is the median of --iters steps after --warmup):
  blocks3-s2048: the first 3 decoder blocks of Llama-3-8B (hidden 4096, 32 heads,
                 8 KV heads, FFN 14336), batch 4 x seq 2048
  blocks3-s512:  the same at batch 4 x seq 512 (the paper's setting)
  llama-125m:    examples/llama-125m.json as a whole LlamaForCausalLM
A step is forward, backward (through a random output gradient for the blocks;
the LM loss for the full model) and fused AdamW on BF16 weights. --clip adds
blocks3-s2048 with torch.compile and clip_grad_norm_(1.0) before AdamW (mode
"torch.compile+clip"; the HF Trainer's default, and what halo's step does). Model
TFLOP/s counts 6 x linear params x tokens plus causal attention (3 x forward).
"""
import argparse
import json
import statistics
import sys

import torch
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.models.llama.modeling_llama import LlamaDecoderLayer, LlamaRotaryEmbedding


class Blocks(torch.nn.Module):
    def __init__(self, cfg, n):
        super().__init__()
        self.layers = torch.nn.ModuleList(LlamaDecoderLayer(cfg, i) for i in range(n))
        self.rotary = LlamaRotaryEmbedding(cfg)

    def forward(self, h, position_ids):
        pe = self.rotary(h, position_ids)
        for layer in self.layers:
            out = layer(h, position_embeddings=pe, position_ids=position_ids)
            h = out[0] if isinstance(out, tuple) else out
        return h


def linear_params(cfg, layers):
    h, f = cfg.hidden_size, cfg.intermediate_size
    q = cfg.num_attention_heads * cfg.head_dim
    kv = cfg.num_key_value_heads * cfg.head_dim
    return layers * (h * q + 2 * h * kv + q * h + 3 * h * f)


def attention_flops(cfg, layers, b, s):
    # QK^T and PV: 2 * 2 * b * s^2 * heads * head_dim, half for causal; x3 fwd+bwd.
    return 3 * layers * 2 * b * s * s * cfg.num_attention_heads * cfg.head_dim


def time_steps(step, warmup, iters):
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        step()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def bench_blocks(cfg, b, s, compiled, warmup, iters, clip=False):
    torch.manual_seed(0)
    model = Blocks(cfg, 3).cuda().to(torch.bfloat16)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    run = torch.compile(model) if compiled else model
    x = torch.randn(b, s, cfg.hidden_size, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    pos = torch.arange(s, device="cuda").unsqueeze(0).expand(b, s)
    dy = torch.randn_like(x)

    def step():
        y = run(x, pos)
        y.backward(dy)
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    torch.cuda.reset_peak_memory_stats()
    ms = time_steps(step, warmup, iters)
    flops = 6 * linear_params(cfg, 3) * b * s + attention_flops(cfg, 3, b, s)
    return ms, flops, torch.cuda.max_memory_allocated()


def bench_full(cfg, b, s, compiled, warmup, iters):
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).cuda().to(torch.bfloat16)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    run = torch.compile(model) if compiled else model
    ids = torch.randint(0, cfg.vocab_size, (b, s), device="cuda")

    def step():
        loss = run(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    torch.cuda.reset_peak_memory_stats()
    ms = time_steps(step, warmup, iters)
    n = cfg.num_hidden_layers
    head = cfg.vocab_size * cfg.hidden_size
    flops = 6 * (linear_params(cfg, n) + head) * b * s + attention_flops(cfg, n, b, s)
    return ms, flops, torch.cuda.max_memory_allocated()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--quick", action="store_true", help="eager only (no torch.compile)")
    p.add_argument("--clip", action="store_true",
                   help="also blocks3-s2048 with torch.compile and gradient clipping")
    a = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit("no CUDA device: run this on the GPU machine")
    torch.backends.cuda.matmul.allow_tf32 = True
    common = dict(attn_implementation="sdpa", torch_dtype=torch.bfloat16, attention_bias=False,
                  mlp_bias=False, hidden_act="silu")
    l3 = LlamaConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=3,
                     num_attention_heads=32, num_key_value_heads=8, head_dim=128,
                     vocab_size=128256, max_position_embeddings=8192, rope_theta=500000.0,
                     rms_norm_eps=1e-5, **common)
    with open("examples/llama-125m.json") as f:
        m = json.load(f)["model"]
    small = LlamaConfig(**{k: v for k, v in m.items()}, **common)
    rows = []
    for name, fn, cfg, b, s in [("blocks3-s2048", bench_blocks, l3, 4, 2048),
                                ("blocks3-s512", bench_blocks, l3, 4, 512),
                                ("llama-125m", bench_full, small, 8, 1024)]:
        runs = [(False, False)] if a.quick else [(False, False), (True, False)]
        if a.clip and not a.quick and name == "blocks3-s2048":
            runs.append((True, True))
        for compiled, clip in runs:
            extra = dict(clip=True) if clip else {}
            ms, flops, peak = fn(cfg, b, s, compiled, a.warmup, a.iters, **extra)
            mode = ("torch.compile" if compiled else "eager") + ("+clip" if clip else "")
            rows.append(dict(config=name, mode=mode, batch=b, seq=s,
                             step_ms=ms, tokens_per_s=b * s / ms * 1e3, tflops=flops / ms / 1e9,
                             peak_gib=peak / 2**30))
            r = rows[-1]
            print(f"{name:14} {r['mode']:13} b{b} s{s}: {ms:8.2f} ms/step  {r['tokens_per_s']:9.0f} tok/s  "
                  f"{r['tflops']:6.1f} TFLOP/s  peak {r['peak_gib']:.1f} GiB", flush=True)
            torch.cuda.empty_cache()
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
