#!/usr/bin/env python3
# Builds the model golden fixtures under tests/fixtures/model/ with the real peers (Hugging Face
# transformers GPT2LMHeadModel + PEFT LoRA): small random-init GPT-2 folders (config.json +
# model.safetensors written by save_pretrained) and, for fixed inputs and loss masks, the reference
# logits, loss, every LoRA gradient and the losses of 10 optimiser steps with grad-norm clipping.
# CI has no Python ML stack, so the outputs are committed; rerun only when the fixtures must change:
#     /root/mira-venv/bin/python scripts/make_model_fixtures.py [out_dir]
# Output per fixture <name>/: config.json, model.safetensors (the HF folder our loader reads),
# ref.safetensors (inputs, targets, mask, logits, LoRA A/B with PEFT names, their gradients) and
# ref.json (hyper-parameters, loss, the step losses). gpt2_micro_fullft/ holds the full fine-tuning
# reference (gradients of every base weight, 3 AdamW steps).
import json
import os
import sys

import torch
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel

FIXTURES = [
    # Even shape, fp32 weights, paper targets (c_attn + attn.c_proj + mlp.c_proj by suffix), AdamW.
    dict(name="gpt2_tiny_fp32", n_embd=64, n_head=4, n_layer=2, vocab=300, n_positions=32,
         dtype="float32", targets=["c_attn", "c_proj"], r=4, alpha=8, B=2, T=12,
         optimizer="adamw", lr=1e-2, weight_decay=0.01, clip=0.5, seed=1),
    # Odd shape (head dim 16, 5 heads, vocab 1000), fp16 weights on disk, all four targets, Adam
    # with L2 weight decay (torch.optim.Adam adds wd*param to the gradient).
    dict(name="gpt2_odd_fp16", n_embd=80, n_head=5, n_layer=2, vocab=1000, n_positions=64,
         dtype="float16", targets=["c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"], r=8,
         alpha=16, B=2, T=10, optimizer="adam", lr=5e-3, weight_decay=0.01, clip=0.2, seed=2),
]
STEPS = 10


def build(fx, out_root):
    torch.manual_seed(fx["seed"])
    cfg = GPT2Config(vocab_size=fx["vocab"], n_positions=fx["n_positions"], n_embd=fx["n_embd"],
                     n_layer=fx["n_layer"], n_head=fx["n_head"], resid_pdrop=0.0, embd_pdrop=0.0,
                     attn_pdrop=0.0, activation_function="gelu_new",
                     bos_token_id=fx["vocab"] - 1, eos_token_id=fx["vocab"] - 1)
    cfg._attn_implementation = "eager"
    model = GPT2LMHeadModel(cfg).float()
    with torch.no_grad():
        # Non-trivial LayerNorm parameters and biases (HF init leaves them at 1/0, which would not
        # test that we read them).
        for n, p in model.named_parameters():
            if "ln" in n or n.endswith(".bias"):
                p.add_(0.05 * torch.randn_like(p))
        if fx["dtype"] == "float16":
            # Round to fp16 so the fp32 reference uses exactly the weights the loader will read.
            for p in model.parameters():
                p.copy_(p.half().float())
    out = os.path.join(out_root, fx["name"])
    os.makedirs(out, exist_ok=True)
    save_model = GPT2LMHeadModel(cfg)
    save_model.load_state_dict(model.state_dict())
    if fx["dtype"] == "float16":
        save_model = save_model.half()
    save_model.save_pretrained(out, safe_serialization=True)
    for extra in ("generation_config.json",):
        if os.path.exists(os.path.join(out, extra)):
            os.remove(os.path.join(out, extra))

    lcfg = LoraConfig(r=fx["r"], lora_alpha=fx["alpha"], lora_dropout=0.0, bias="none",
                      target_modules=fx["targets"], fan_in_fan_out=True, init_lora_weights=False)
    pm = get_peft_model(model, lcfg)
    lora = {}
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_A" in n:
                p.copy_(torch.empty_like(p).uniform_(-1, 1) / p.shape[1] ** 0.5)
            elif "lora_B" in n:
                p.copy_(0.1 * torch.randn_like(p))  # non-zero B so that lora_A gets a gradient
            if "lora_" in n:
                lora[n] = p
    pm.eval()  # dropouts are 0 anyway

    B, T = fx["B"], fx["T"]
    seq = torch.randint(0, fx["vocab"], (B, T + 1))
    inputs, targets = seq[:, :T].contiguous(), seq[:, 1:].contiguous()
    mask = torch.zeros(B, T)
    mask[0, 3:] = 1.0          # prompt of 3 tokens, response to the end
    mask[1, 5:T - 2] = 1.0     # prompt of 5, then 2 positions of right padding
    targets[1, T - 2:] = 0     # padding positions still hold a valid id (masked out)

    def loss_fn():
        logits = pm(input_ids=inputs).logits
        ce = F.cross_entropy(logits.reshape(-1, fx["vocab"]), targets.reshape(-1), reduction="none")
        return logits, (ce * mask.reshape(-1)).sum() / mask.sum()

    logits, loss = loss_fn()
    loss.backward()
    tensors = {"input_ids": inputs.to(torch.int32), "targets": targets.to(torch.int32),
               "loss_mask": mask.to(torch.float32), "logits": logits.detach().float()}
    for n, p in lora.items():
        key = n.replace(".default", "")
        tensors[key] = p.detach().clone()
        tensors["grad." + key] = p.grad.detach().clone()
    pm.zero_grad()

    params = list(lora.values())
    if fx["optimizer"] == "adamw":
        opt = torch.optim.AdamW(params, lr=fx["lr"], weight_decay=fx["weight_decay"])
    else:
        opt = torch.optim.Adam(params, lr=fx["lr"], weight_decay=fx["weight_decay"])
    step_losses, grad_norms = [], []
    for _ in range(STEPS):
        opt.zero_grad()
        _, l = loss_fn()
        l.backward()
        gn = torch.nn.utils.clip_grad_norm_(params, fx["clip"])
        opt.step()
        step_losses.append(l.item())
        grad_norms.append(gn.item())
    _, final = loss_fn()
    for n, p in lora.items():
        tensors["final." + n.replace(".default", "")] = p.detach().clone()

    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out, "ref.safetensors"))
    ref = {k: fx[k] for k in ("targets", "r", "alpha", "B", "T", "optimizer", "lr", "weight_decay",
                              "clip", "dtype")}
    ref.update(loss=loss.item(), step_losses=step_losses, grad_norms=grad_norms,
               final_loss=final.item(), steps=STEPS,
               peft_module_names=sorted({n.split(".lora_")[0].replace("base_model.model.", "")
                                         for n in lora}),
               generator="scripts/make_model_fixtures.py", torch=torch.__version__,
               peft=__import__("peft").__version__,
               transformers=__import__("transformers").__version__)
    with open(os.path.join(out, "ref.json"), "w") as f:
        json.dump(ref, f, indent=1)
    print(fx["name"], "loss", loss.item(), "steps", step_losses[0], "->", step_losses[-1],
          "grad norms", grad_norms[0], grad_norms[-1], file=sys.stderr)


def build_full_ft(out_root):
    """Full fine-tuning reference (no LoRA): gradients of every base weight, the tied wte included
    (embedding + LM head), and the losses of 3 AdamW steps with clipping."""
    torch.manual_seed(3)
    name, V, B, T = "gpt2_micro_fullft", 64, 2, 8
    cfg = GPT2Config(vocab_size=V, n_positions=16, n_embd=32, n_layer=2, n_head=2, resid_pdrop=0.0,
                     embd_pdrop=0.0, attn_pdrop=0.0, activation_function="gelu_new",
                     bos_token_id=V - 1, eos_token_id=V - 1)
    cfg._attn_implementation = "eager"
    model = GPT2LMHeadModel(cfg).float()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "ln" in n or n.endswith(".bias"):
                p.add_(0.05 * torch.randn_like(p))
    out = os.path.join(out_root, name)
    os.makedirs(out, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    if os.path.exists(os.path.join(out, "generation_config.json")):
        os.remove(os.path.join(out, "generation_config.json"))
    model.train()
    seq = torch.randint(0, V, (B, T + 1))
    inputs, targets = seq[:, :T].contiguous(), seq[:, 1:].contiguous()
    mask = torch.zeros(B, T)
    mask[0, 2:] = 1.0
    mask[1, 4:T - 1] = 1.0

    def loss_fn():
        logits = model(input_ids=inputs).logits
        ce = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), reduction="none")
        return (ce * mask.reshape(-1)).sum() / mask.sum()

    loss = loss_fn()
    loss.backward()
    tensors = {"input_ids": inputs.to(torch.int32), "targets": targets.to(torch.int32),
               "loss_mask": mask.to(torch.float32)}
    for n, p in model.named_parameters():  # the tied lm_head appears once, as transformer.wte
        tensors["grad." + n.replace("transformer.", "")] = p.grad.detach().clone()
    model.zero_grad()
    params = list(model.parameters())
    opt = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.01)
    step_losses = []
    for _ in range(3):
        opt.zero_grad()
        l = loss_fn()
        l.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step_losses.append(l.item())
    final = loss_fn().item()
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out, "ref.safetensors"))
    with open(os.path.join(out, "ref.json"), "w") as f:
        json.dump({"B": B, "T": T, "loss": loss.item(), "optimizer": "adamw", "lr": 1e-2,
                   "weight_decay": 0.01, "clip": 1.0, "step_losses": step_losses, "final_loss": final,
                   "generator": "scripts/make_model_fixtures.py"}, f, indent=1)
    print(name, "loss", loss.item(), "steps", step_losses, "final", final, file=sys.stderr)


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out_root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "tests", "fixtures", "model")
    torch.set_num_threads(1)
    for fx in FIXTURES:
        build(fx, out_root)
    build_full_ft(out_root)


if __name__ == "__main__":
    main()
