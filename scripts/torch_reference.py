#!/usr/bin/env python3
"""Independent check of halo's training step against Hugging Face transformers.

Reads a `halo-run --dump-step` file (parameters, batch, loss and gradients of
step 1, with the model file in its metadata), builds the same
LlamaForCausalLM in float32, loads the parameters, recomputes the mean
cross-entropy of the batch and its gradients with PyTorch autograd, and
compares. Needs torch, transformers and safetensors (the GPU machine has
them; this is a reference check, not part of the product).

  scripts/torch_reference.py step.safetensors [--loss-tol 1e-5 --grad-tol 1e-4]

Exit status 1 if the loss or any gradient differs by more than the tolerance
(relative: |a-b| / |b| for the loss, ||a-b|| / ||b|| per gradient tensor).
"""
import argparse
import json
import sys

import torch
from safetensors import safe_open
from transformers import LlamaConfig, LlamaForCausalLM


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dump")
    p.add_argument("--loss-tol", type=float, default=1e-5)
    p.add_argument("--grad-tol", type=float, default=1e-4)
    a = p.parse_args()

    tensors = {}
    with safe_open(a.dump, framework="pt") as f:
        meta = f.metadata()
        for k in f.keys():
            tensors[k] = f.get_tensor(k)
    model_file = json.loads(meta["halo_model"])
    m, t = model_file["model"], model_file["train"]
    cfg = LlamaConfig(
        hidden_size=m["hidden_size"], intermediate_size=m["intermediate_size"],
        num_hidden_layers=m["num_hidden_layers"], num_attention_heads=m["num_attention_heads"],
        num_key_value_heads=m["num_key_value_heads"], head_dim=m["head_dim"],
        vocab_size=m["vocab_size"], max_position_embeddings=m["max_position_embeddings"],
        rms_norm_eps=m["rms_norm_eps"], rope_theta=m["rope_theta"],
        tie_word_embeddings=m["tie_word_embeddings"], attention_bias=False, mlp_bias=False,
        hidden_act="silu", attn_implementation="eager", torch_dtype=torch.float32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = LlamaForCausalLM(cfg).float()
    params = {k[len("param/"):]: v for k, v in tensors.items() if k.startswith("param/")}
    missing, unexpected = model.load_state_dict(params, strict=False)
    allowed_missing = {"lm_head.weight"} if cfg.tie_word_embeddings else set()
    if set(missing) - allowed_missing or unexpected:
        sys.exit(f"parameter names differ from transformers': missing {missing}, unexpected {unexpected}")
    if cfg.tie_word_embeddings:
        model.tie_weights()

    b, s = t["batch_size"], t["seq_len"]
    tokens = tensors["tokens"].long().view(b, s)
    targets = tensors["targets"].long().view(-1)
    logits = model(input_ids=tokens).logits.float().view(-1, cfg.vocab_size)
    loss = torch.nn.functional.cross_entropy(logits, targets, ignore_index=-100)
    loss.backward()

    halo_loss = float(meta["halo_loss"])
    worst = abs(halo_loss - loss.item()) / abs(loss.item())
    print(f"exact mode: {meta.get('halo_exact') == '1'}")
    print(f"loss: halo {halo_loss:.7f}  transformers {loss.item():.7f}  rel diff {worst:.2e}")
    failed = worst > a.loss_tol
    named = dict(model.named_parameters())
    checked = 0
    for key, g in sorted(tensors.items()):
        if not key.startswith("grad/"):
            continue
        name = key[len("grad/"):]
        ref = named[name].grad
        rel = ((g - ref).norm() / ref.norm()).item()
        checked += 1
        mark = "FAIL" if rel > a.grad_tol else "ok"
        print(f"  {mark:4} {name:55} rel diff {rel:.2e}")
        failed |= rel > a.grad_tol
    if checked != len(named):
        print(f"only {checked} of {len(named)} gradients were dumped")
        failed = True
    print("RESULT:", "FAIL" if failed else "PASS", f"({checked} gradients, tolerance {a.grad_tol:g})")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
