#!/usr/bin/env python3
"""Regenerates tests/fixtures/export: a small deterministic checkpoint, the PEFT folder `mira_hpc
export` writes from it, and what Hugging Face PEFT makes of that folder (the peer check of issue 6).

Steps:
  1. a short deterministic run on the tiny Hugging Face GPT-2 fixture (K = 4, r = 4, all four GPT-2
     module types, a large learning rate so that the adapters change the logits clearly) -> ckpt-2.h5;
  2. `mira_hpc export --client 1` -> peft_client1/ (adapter_model.safetensors, adapter_config.json);
  3. peft 0.21: PeftModel.from_pretrained(GPT2LMHeadModel(tests/fixtures/model/gpt2_tiny_fp32),
     peft_client1) must load every tensor (checked against the file, bitwise), then records the
     logits of a fixed input with and without the adapter -> reference_logits.safetensors
     (input_ids I32 (B, T), logits F32 (B, T, V), base_logits F32 (B, T, V)) + reference.json;
  4. PEFT's own save_pretrained of the loaded model -> peft_saved_config.json (the key set PEFT
     writes; the CI test compares ours with it) and a check that PEFT re-saves the same tensors.
CI (no Python ML stack) then re-exports from ckpt-2.h5 and compares with peft_client1
(tests/tools/export.sh) and runs our model on the exported adapter against the logits
(tests/unit/io/test_peft_export.cpp).

Run from the repository root after building (needs mpirun, torch, transformers, peft, safetensors):
    /root/mira-venv/bin/python scripts/make_export_fixture.py --binary build/mira_hpc
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

# Relative to the repository root. mira_hpc stores base_model_path absolute (the committed ckpt-2.h5
# predates that and stores this relative text); tests/tools/export.sh accepts either.
MODEL = "tests/fixtures/model/gpt2_tiny_fp32"
CLIENT = 1
# Settings of the run; 2 rounds of 4 local steps at lr 0.02 move lora_B well away from zero.
TRAIN_ARGS = [
    "--run.clients", "4", "--federation.sample_fraction", "1", "--run.rounds", "2", "--run.seed", "7",
    "--train.mode", "steps", "--train.local_steps", "4", "--train.batch_size", "4",
    "--lora.rank", "4", "--lora.alpha", "16", "--lora.targets", "c_attn,c_proj,c_fc",
    "--optim.lr", "0.02", "--data.examples_per_client", "12", "--data.max_length", "32",
    "--model.path", MODEL, "--checkpoint.keep", "1",
]
# The fixed input: 2 sequences of 16 byte-tokenizer ids (< 257 < vocab 300).
INPUT_TEXT = [b"Reverse: abcdefg", b"Upper: hello wor"]


def run(cmd, **kw):
    print("+", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True, **kw)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", default="build/mira_hpc")
    ap.add_argument("--out", default="tests/fixtures/export")
    args = ap.parse_args()
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    os.makedirs(args.out, exist_ok=True)
    ckpt = os.path.join(args.out, "ckpt-2.h5")
    folder = os.path.join(args.out, f"peft_client{CLIENT}")

    with tempfile.TemporaryDirectory() as tmp:
        run(["mpirun", "-n", "2", args.binary, "train", *TRAIN_ARGS, "--run.output", tmp + "/run"], env=env,
            stdout=subprocess.DEVNULL)
        shutil.copyfile(tmp + "/run/checkpoints/ckpt-2.h5", ckpt)
    shutil.rmtree(folder, ignore_errors=True)
    run(["mpirun", "-n", "1", args.binary, "export", "--checkpoint", ckpt, "--client", str(CLIENT), "--out", folder],
        env=env)

    import peft
    import transformers
    from peft import PeftModel
    from peft.utils import get_peft_model_state_dict
    from transformers import GPT2LMHeadModel

    torch.manual_seed(0)
    base = GPT2LMHeadModel.from_pretrained(MODEL, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, folder)
    model.eval()
    ours = load_file(os.path.join(folder, "adapter_model.safetensors"))
    loaded = {k: v.detach().numpy() for k, v in get_peft_model_state_dict(model).items()}
    if sorted(loaded) != sorted(ours):
        sys.exit(f"PEFT loaded other tensors than the folder holds: {sorted(set(loaded) ^ set(ours))}")
    for k in ours:
        if loaded[k].shape != ours[k].shape or not np.array_equal(loaded[k], ours[k]):
            sys.exit(f"PEFT's {k} differs from the exported tensor")

    ids = np.array([list(t) for t in INPUT_TEXT], dtype=np.int32)  # (B, T)
    with torch.no_grad():
        logits = model(input_ids=torch.from_numpy(ids.astype(np.int64))).logits.numpy()
        with model.disable_adapter():
            base_logits = model(input_ids=torch.from_numpy(ids.astype(np.int64))).logits.numpy()
    save_file({"input_ids": ids, "logits": logits.astype(np.float32), "base_logits": base_logits.astype(np.float32)},
              os.path.join(args.out, "reference_logits.safetensors"))

    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        shutil.copyfile(os.path.join(tmp, "adapter_config.json"), os.path.join(args.out, "peft_saved_config.json"))
        resaved = load_file(os.path.join(tmp, "adapter_model.safetensors"))
        if sorted(resaved) != sorted(ours) or any(not np.array_equal(resaved[k], ours[k]) for k in ours):
            sys.exit("PEFT's save_pretrained writes other tensors than our export")

    ref = {
        "client": CLIENT, "checkpoint": "ckpt-2.h5", "base_model": MODEL, "B": int(ids.shape[0]),
        "T": int(ids.shape[1]), "vocab": int(logits.shape[-1]),
        "adapter_effect_max_abs": float(np.abs(logits - base_logits).max()),
        "peft": peft.__version__, "transformers": transformers.__version__, "torch": torch.__version__,
        "train_args": TRAIN_ARGS,
    }
    with open(os.path.join(args.out, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")
    print(json.dumps(ref), file=sys.stderr)


if __name__ == "__main__":
    main()
