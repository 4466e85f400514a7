#!/usr/bin/env python3
# Peer side of bench/train_cpu.sh: PyTorch + Hugging Face transformers + PEFT LoRA training steps
# (forward + backward + clip_grad_norm_ + AdamW) on a random-init GPT-2 of the same shape as our
# driver, same threads, same batch. Prints one JSON object with tokens/s on stdout. Run with
#   /root/mira-venv/bin/python bench/train_cpu_peer.py --seq 512 --batch 4 --r 16 --steps 3 --warmup 1 --threads 2
import argparse
import json
import resource
import sys
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import GPT2Config, GPT2LMHeadModel


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--r", type=int, default=16)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=50257)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    t_init = time.time()
    cfg = GPT2Config(vocab_size=a.vocab, n_positions=1024, n_embd=768, n_layer=12, n_head=12,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)  # base dropout off, as ours
    model = GPT2LMHeadModel(cfg)
    pm = get_peft_model(model, LoraConfig(r=a.r, lora_alpha=8, lora_dropout=0.05, bias="none",
                                          target_modules=["c_attn", "c_proj"], fan_in_fan_out=True))
    pm.train()
    params = [p for p in pm.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=3e-4, weight_decay=1e-2)
    ids = torch.randint(0, a.vocab, (a.batch, a.seq))
    tgt = torch.randint(0, a.vocab, (a.batch, a.seq))
    print(f"init {time.time() - t_init:.1f} s, trainable {sum(p.numel() for p in params)}, "
          f"threads {torch.get_num_threads()}, attn {cfg._attn_implementation}", file=sys.stderr)

    def step():
        opt.zero_grad(set_to_none=True)
        logits = pm(input_ids=ids).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, a.vocab), tgt.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        return loss.item()

    for _ in range(a.warmup):
        step()
    t0 = time.time()
    for s in range(a.steps):
        loss = step()
        print(f"step {s} loss {loss:.4f}", file=sys.stderr)
    sec = time.time() - t0
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    print(json.dumps({"tokens_per_s": a.batch * a.seq * a.steps / sec, "ms_per_step": 1e3 * sec / a.steps,
                      "steps": a.steps, "loss": loss, "threads": torch.get_num_threads(),
                      "peak_rss_mib": peak_rss_mib}))


if __name__ == "__main__":
    main()
