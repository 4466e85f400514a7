#!/usr/bin/env python3
# Peer side of bench/train_cpu.sh: PyTorch + Hugging Face transformers + PEFT LoRA training steps
# (forward + backward + clip_grad_norm_ + AdamW) on a random-init GPT-2 of the same shape as our
# driver, same threads, same batch. Prints one JSON object with tokens/s on stdout. Run with
#   /root/mira-venv/bin/python bench/train_cpu_peer.py --seq 512 --batch 4 --r 16 --steps 3 --warmup 1 --threads 2
# --profile: also run one extra step under torch.profiler (CPU, record_shapes off) and print on
# stderr each family's share of that step, grouped as bench/train_cpu_main.cpp's MIRA_PROFILE=1
# table (GEMMs incl. LoRA, attention, LM head + softmax + CE, LayerNorm, GELU, optimiser, other).
# GPT-2's GELU ("gelu_new") is a chain of element-wise aten ops and the LM head is a plain mm, so
# their spans are marked by zero-length record_function markers from module and tensor hooks (forward:
# module pre/post hooks; backward: hooks on the module's output gradient (start) and input gradient
# (end)); an op is booked to a marked family when it starts inside such a span.
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
    ap.add_argument("--profile", action="store_true")
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
        with torch.autograd.profiler.record_function("mira::optim"):
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
    if a.profile:
        profile_step(pm, step)


def mark(name):
    """A zero-length profiler event: a timestamp on the profiler's clock."""
    with torch.autograd.profiler.record_function(name):
        pass


def hook_spans(module, fam):
    """Marks module's forward and backward spans as mira::<fam>:begin / :end events."""
    def pre(mod, args):
        mark(f"mira::{fam}:begin")
        if args[0].requires_grad:  # its gradient is the last thing the module's backward computes
            args[0].register_hook(lambda g: mark(f"mira::{fam}:end"))

    def post(mod, args, out):
        mark(f"mira::{fam}:end")
        if out.requires_grad:  # the module's backward starts once its output gradient is there
            out.register_hook(lambda g: mark(f"mira::{fam}:begin"))

    module.register_forward_pre_hook(pre)
    module.register_forward_hook(post)


FAMILIES = ["gemm (incl. LoRA)", "attention", "lm head + softmax + CE", "layernorm", "gelu",
            "optimiser (clip + AdamW)", "other"]


def family_by_name(n):
    if n in ("aten::addmm", "aten::mm", "aten::bmm", "aten::matmul", "aten::linear", "aten::baddbmm"):
        return FAMILIES[0]
    if "scaled_dot_product" in n or "flash_attention" in n or "efficient_attention" in n:
        return FAMILIES[1]
    if "log_softmax" in n or "nll_loss" in n or "cross_entropy" in n:
        return FAMILIES[2]
    if "layer_norm" in n:
        return FAMILIES[3]
    return None


def profile_step(pm, step):
    from torch.profiler import ProfilerActivity, profile
    base = pm.base_model.model
    hook_spans(base.lm_head, "lmhead")
    for blk in base.transformer.h:
        hook_spans(blk.mlp.act, "gelu")
    with profile(activities=[ProfilerActivity.CPU], record_shapes=False) as prof:
        with torch.autograd.profiler.record_function("mira::step"):
            step()
    evs = list(prof.events())
    spans = {"lmhead": [], "gelu": []}
    opened = {}
    for e in sorted((e for e in evs if e.name.startswith("mira::") and ":" in e.name[6:]),
                    key=lambda e: e.time_range.start):
        fam, edge = e.name[6:].split(":")
        if edge == "begin":
            opened[fam] = e.time_range.start
        elif fam in opened:
            spans[fam].append((opened.pop(fam), e.time_range.start))
    step_ev = [e for e in evs if e.name == "mira::step"][0]
    total = step_ev.time_range.end - step_ev.time_range.start  # us

    def in_span(fam, t):
        return any(b <= t <= e for b, e in spans[fam])

    def ancestor_named(e, prefix):
        p = e.cpu_parent
        while p is not None:
            if p.name.startswith(prefix):
                return True
            p = p.cpu_parent
        return False

    # CPU autograd runs the backward on the calling thread, so the step's ops are sequential and
    # their self times add up to at most the step's wall time.
    fam_t = dict.fromkeys(FAMILIES, 0.0)
    by_op = {}
    for e in evs:
        if e.name.startswith("mira::"):
            continue  # ranges and markers: their time is their ops' time
        t = e.self_cpu_time_total
        if ancestor_named(e, "mira::optim"):
            f = FAMILIES[5]
        elif in_span("lmhead", e.time_range.start):
            f = FAMILIES[2]
        elif in_span("gelu", e.time_range.start):
            f = FAMILIES[4]
        else:
            f = family_by_name(e.name) or FAMILIES[6]
        fam_t[f] += t
        name = e.name
        if f == FAMILIES[0]:  # base Conv1D = addmm forward, mm under AddmmBackward0; the rest is LoRA's nn.Linear
            base = name == "aten::addmm" or ancestor_named(e, "autograd::engine::evaluate_function: AddmmBackward0")
            name = ("gemm.base " if base else "gemm.lora ") + name
        by_op[(f, name)] = by_op.get((f, name), 0.0) + t
    unbooked = total - sum(fam_t.values())
    fam_t[FAMILIES[6]] += unbooked  # outside any recorded op (Python, autograd bookkeeping)
    print(f"profile (torch): one step {total / 1e6:.3f} s ({100 * unbooked / total:.1f}% outside ops; spans: "
          f"lm head {len(spans['lmhead'])}, gelu {len(spans['gelu'])}; threads {len({e.thread for e in evs})}); "
          "top ops (family, op, % of step):",
          file=sys.stderr)
    for (f, n), t in sorted(by_op.items(), key=lambda kv: -kv[1])[:25]:
        print(f"profile (torch): {f:26s} {n:50s} {100 * t / total:6.1f}%", file=sys.stderr)
    for f in FAMILIES:
        print(f"family (torch): {f:26s} {100 * fam_t[f] / total:6.1f}% {fam_t[f] / 1e3:9.0f} ms", file=sys.stderr)


if __name__ == "__main__":
    main()
