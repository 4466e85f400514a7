#!/usr/bin/env python3
# Peer side of bench/train_gpu.sh: PyTorch + Hugging Face transformers + PEFT LoRA training steps
# (forward + backward + clip_grad_norm_ + AdamW) on the GPU, same shape and settings as our driver
# (bench/train_gpu_main.cpp): random-init GPT-2 124M shape, base dropout off, LoRA r on c_attn +
# c_proj (attn.c_proj and mlp.c_proj), alpha 8, LoRA dropout 0.05, AdamW lr 3e-4 wd 1e-2, clip 5.
# What a PyTorch user would run: fp32 master weights with bf16 autocast, the model's default
# attention (SDPA), fused AdamW, and torch.compile of the forward + loss where it works:
#   --compile auto (default): try torch.compile; if compiling or the first compiled steps fail, fall
#                             back to eager and say why in the "compile" field
#   --compile on / off:       compile (a failure is an error) / eager
# Prints ONE JSON object on stdout: {"skipped":"no CUDA device: ..."} when torch sees no GPU (or is
# not importable), {"skipped":"no peer: ..."} when transformers or peft are missing, else
# {"tokens_per_s",...,"n_params","n_lora",...}; progress on stderr.
#   python bench/train_gpu_peer.py --seq 1024 --batch 8 --r 16 --steps 10 --warmup 2 [--compile auto]
# --device cpu runs the same code on the CPU (bf16 autocast on the CPU, no memory figures): only to
# check this script on a machine without a GPU (tests/tools/gpu_bench_smoke.sh, tiny shapes).
# STATUS: never run on a GPU (docs/cuda.md); on a machine without a device only the skip path ran.
import argparse
import json
import sys
import time


def skip(reason):
    print(json.dumps({"skipped": reason}))
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--r", type=int, default=16)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--compile", choices=["auto", "on", "off"], default="auto")
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--width", type=int, default=768)
    a = ap.parse_args()
    try:
        import torch
    except Exception as e:  # noqa: BLE001 - any import failure means no peer here
        return skip(f"no CUDA device for the peer: torch is not importable ({type(e).__name__}: {e})")
    on_gpu = a.device == "cuda"
    if on_gpu and not torch.cuda.is_available():
        why = "torch.cuda.is_available() is False"
        try:
            torch.cuda.init()  # raises with the driver's own message
        except Exception as e:  # noqa: BLE001
            why += f" ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
        return skip(f"no CUDA device: {why}")
    try:
        from peft import LoraConfig, get_peft_model
        from transformers import GPT2Config, GPT2LMHeadModel
    except Exception as e:  # noqa: BLE001 - e.g. a GPU machine whose Python has torch only
        return skip(f"no peer: transformers + peft not importable with {sys.executable} ({type(e).__name__}: {e})")

    dev = torch.device(a.device)

    def sync():
        if on_gpu:
            torch.cuda.synchronize()
    torch.manual_seed(0)
    t_init = time.time()
    cfg = GPT2Config(vocab_size=a.vocab, n_positions=1024, n_embd=a.width, n_layer=a.layers, n_head=12,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)  # base dropout off, as ours
    model = GPT2LMHeadModel(cfg).to(dev)
    n_params = sum(p.numel() for p in model.parameters())  # tied wte counted once, as llm.c does
    attn = getattr(model.config, "_attn_implementation", None) or "default"
    pm = get_peft_model(model, LoraConfig(r=a.r, lora_alpha=8, lora_dropout=0.05, bias="none",
                                          target_modules=["c_attn", "c_proj"], fan_in_fan_out=True))
    pm.train()
    params = [p for p in pm.parameters() if p.requires_grad]
    n_lora = sum(p.numel() for p in params)
    try:
        opt = torch.optim.AdamW(params, lr=3e-4, weight_decay=1e-2, fused=on_gpu)
        fused = on_gpu
    except (RuntimeError, TypeError):
        opt = torch.optim.AdamW(params, lr=3e-4, weight_decay=1e-2)
        fused = False
    ids = torch.randint(0, a.vocab, (a.batch, a.seq), device=dev)
    tgt = torch.randint(0, a.vocab, (a.batch, a.seq), device=dev)

    def loss_eager(ids, tgt):
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            logits = pm(input_ids=ids).logits
            return torch.nn.functional.cross_entropy(logits.reshape(-1, a.vocab), tgt.reshape(-1))

    def make_step(loss_fn):
        def step():
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(ids, tgt)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            return loss
        return step

    compile_state = "off"
    step = make_step(loss_eager)
    warmup = a.warmup
    if a.compile != "off":
        try:
            step = make_step(torch.compile(loss_eager))
            t_c = time.time()
            for _ in range(max(warmup, 3)):  # the first calls compile forward and backward (and may recompile once)
                step()
            sync()
            compile_state = f"on ({time.time() - t_c:.0f} s to compile + warm up)"
            warmup = 0
        except Exception as e:  # noqa: BLE001 - auto: any compile failure falls back to eager
            if a.compile == "on":
                raise
            msg = str(e).splitlines()[0][:200] if str(e) else ""
            compile_state = f"failed, eager fallback ({type(e).__name__}: {msg})"
            print(f"torch.compile failed, running eager: {type(e).__name__}: {msg}", file=sys.stderr)
            step = make_step(loss_eager)
            opt.zero_grad(set_to_none=True)
    for _ in range(warmup):
        step()
    sync()
    init_s = time.time() - t_init
    name = torch.cuda.get_device_name() if on_gpu else "cpu"
    print(f"peer: {name} torch {torch.__version__}, compile {compile_state}, "
          f"attn {attn}, fused AdamW {fused}, trainable {n_lora}", file=sys.stderr)
    ms = []
    t0 = time.time()
    loss = None
    for s in range(a.steps):
        ts = time.time()
        loss = step()
        sync()
        ms.append(1e3 * (time.time() - ts))
        print(f"step {s} loss {loss.item():.4f} {ms[-1]:.1f} ms", file=sys.stderr)
    sec = time.time() - t0
    ms.sort()
    med = ms[len(ms) // 2] if len(ms) % 2 else 0.5 * (ms[len(ms) // 2 - 1] + ms[len(ms) // 2])
    free_b, total_b = torch.cuda.mem_get_info() if on_gpu else (0, 0)
    print(json.dumps({
        "tokens_per_s": a.batch * a.seq * a.steps / sec, "ms_per_step": 1e3 * sec / a.steps,
        "ms_per_step_median": med, "steps": a.steps, "loss": float(loss.item()), "n_params": n_params,
        "n_lora": n_lora, "n_layer": cfg.n_layer, "n_embd": cfg.n_embd, "seq": a.seq, "batch": a.batch,
        "device": name, "device_mem_in_use_gib": (total_b - free_b) / 2**30 if on_gpu else None,
        "max_allocated_gib": torch.cuda.max_memory_allocated() / 2**30 if on_gpu else None, "init_s": init_s,
        "compile": compile_state, "attn": attn, "fused_adamw": fused,
        "torch": torch.__version__,
        "precision": "bf16 autocast, fp32 master weights"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
