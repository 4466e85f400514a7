#!/usr/bin/env bash
# Benchmark: tokens/s and MFU of LoRA training (forward + backward + clip + AdamW step) on the GPU,
# GPT-2 124M shape (12/12/768, vocab 50257), seq 1024, batch 8 and 32, r 16 on the paper targets
# (c_attn + attn.c_proj + mlp.c_proj), LoRA dropout 0.05: ours (bench/train_gpu_main.cpp, the CUDA
# backend; --precision bf16 (default): bf16 frozen base weights, or fp32: the parity mode) beside PyTorch + HF transformers + PEFT on the same GPU in the same run
# (bench/train_gpu_peer.py: bf16 autocast, SDPA attention, fused AdamW, torch.compile with an eager
# fallback), one after the other for each batch size.
#   bench/run.sh train_gpu [--batch "8 32"] [--seq 1024] [--r 16] [--steps 10] [--warmup 2]
#                          [--compile auto|on|off] [--precision bf16|fp32]
# JSON lines on stdout, per batch size: tokens_per_s, ms_per_step, mfu_lora, mfu_llmc (ours vs peer,
# ratio = ours / peer), fp32_util_lora (ours only: against the fp32 non-tensor peak our fp32
# GEMMs can use) and device_mem_in_use_gib (ratio = peer / ours). MFU formulas: see the Python below.
# Without a CUDA device each side prints one line {"bench":"train_gpu","side":"ours"|"peer",
# "skipped":"no CUDA device: ..."} and the script exits 0. A side that fails prints a line with
# "error" (the other side still runs) and the script exits 1.
# Our program: $MIRA_TRAIN_GPU_BIN, else ${MIRA_BUILD_DIR:-build/ci}/bench/train_gpu_main (target
# train_gpu_main, CUDA builds only). Peer Python: $MIRA_PY, else /root/mira-venv/bin/python when it
# exists (the dev machine's venv), else python3 (a GPU machine's own PyTorch).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
batches="8 32" seq=1024 r=16 steps=10 warmup=2 compile=auto precision=bf16
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || { echo "bench/train_gpu.sh: $1 needs a value" >&2; exit 2; }
  case $1 in
    --batch) batches=$2 ;; --seq) seq=$2 ;; --r) r=$2 ;; --steps) steps=$2 ;; --warmup) warmup=$2 ;;
    --compile) compile=$2 ;; --precision) precision=$2 ;;
    *) echo "bench/train_gpu.sh: unknown option $1 (allowed: --batch --seq --r --steps --warmup --compile --precision)" >&2; exit 2 ;;
  esac
  shift 2
done
. "$here/lib.sh"
. "$here/gpu_lib.sh"
bin=${MIRA_TRAIN_GPU_BIN:-}
no_cuda=0
if [ -z "$bin" ]; then
  rc=0
  bin=$(gpu_bench_binary train_gpu_main) || rc=$?
  if [ "$rc" -eq 1 ]; then no_cuda=1; elif [ "$rc" -ne 0 ]; then exit "$rc"; fi
fi
py=${MIRA_PY:-}
if [ -z "$py" ]; then
  if [ -x /root/mira-venv/bin/python ]; then py=/root/mira-venv/bin/python; else py=$(command -v python3 || echo python3); fi
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# run_side SIDE BATCH CMD...: the side's JSON object into $work/SIDE.BATCH, or {"error": ...}
# with the exit code and the last lines of its stderr.
run_side() {
  local side=$1 b=$2 rc=0
  shift 2
  "$@" >"$work/$side.$b" 2>"$work/$side.$b.err" || rc=$?
  tail -n 3 "$work/$side.$b.err" | sed "s/^/$side: /" >&2
  if [ "$rc" -ne 0 ] || ! grep -q '^{' "$work/$side.$b"; then
    python3 - "$rc" "$work/$side.$b.err" >"$work/$side.$b" <<'PY'
import json, sys
tail = open(sys.argv[2], errors="replace").read().strip().splitlines()[-3:]
print(json.dumps({"error": f"exit code {sys.argv[1]}: " + " | ".join(tail)}))
PY
  fi
}

ours_skipped=0 peer_skipped=0
args=(--seq "$seq" --r "$r" --steps "$steps" --warmup "$warmup")
for b in $batches; do
  if [ "$no_cuda" -eq 1 ]; then
    echo "{\"skipped\":\"$GPU_BENCH_NO_CUDA\"}" >"$work/ours.$b"
  elif [ "$ours_skipped" -eq 0 ]; then
    echo "ours: $bin ${args[*]} --batch $b --precision $precision" >&2
    run_side ours "$b" "$bin" "${args[@]}" --batch "$b" --precision "$precision"
  fi
  grep -q '"skipped"' "$work/ours.$b" 2>/dev/null && ours_skipped=1
  if [ "$peer_skipped" -eq 0 ]; then
    if ! command -v "$py" >/dev/null 2>&1; then
      echo "{\"skipped\":\"no peer: $py is not an executable Python (set MIRA_PY to one with torch, transformers, peft)\"}" >"$work/peer.$b"
    else
      echo "peer: torch+peft ${args[*]} --batch $b --compile $compile" >&2
      run_side peer "$b" "$py" "$here/train_gpu_peer.py" "${args[@]}" --batch "$b" --compile "$compile"
    fi
  fi
  grep -q '"skipped"' "$work/peer.$b" 2>/dev/null && peer_skipped=1
done

# Peak table (bench/device_peaks.h) for the device the sides ran on, through our program.
device=$(python3 -c 'import json, sys
for f in sys.argv[1:]:
    try:
        d = json.load(open(f)).get("device")
    except (OSError, ValueError):
        continue
    if d:
        print(d); break' "$work"/ours.* "$work"/peer.* 2>/dev/null || true)
peaks='{}'
if [ -n "$device" ] && [ "$no_cuda" -eq 0 ]; then peaks=$("$bin" --peaks "$device" 2>/dev/null) || peaks='{}'; fi

python3 - "$work" "$seq" "$r" "$peaks" $batches <<'PY'
import json, os, sys

work, seq, r, peaks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
batches = [int(b) for b in sys.argv[5:]]


def load(side, b):
    p = os.path.join(work, f"{side}.{b}")
    return json.load(open(p)) if os.path.exists(p) else None


# FLOPs per trained token, N = all parameters (tied wte once, wpe included, as llm.c counts them),
# N_lora = LoRA parameters, L layers, C width, T sequence length:
#   llm.c full-training accounting (train_gpt2.cu, gpt2_estimate_mfu):   6 N + 6 L C T
#     6N: every weight matmul forward (2N) and backward (input and weight gradients, 4N);
#     6 L C T: the attention score and value products (q k^T, P v) forward and backward with the
#     causal half counted (PaLM's 12 L C T counts the full T x T).
#   LoRA accounting (what LoRA training must compute):                   4 N + 6 N_lora + 6 L C T
#     the frozen weights need forward (2N) and the input gradient (2N) but no weight gradient;
#     LoRA's own matmuls need all three (6 N_lora); attention has no weights, so its term is the
#     same as above. (Small terms ignored: layer 0's input gradient, element-wise ops.)
def flops_per_token(d, lora):
    N, L, C = d["n_params"], d["n_layer"], d["n_embd"]
    att = 6 * L * C * d["seq"]
    return (4 * N + 6 * d["n_lora"] + att) if lora else (6 * N + att)


def line(metric, value, unit, peer_value, ratio, cfg, peer="torch+peft", **extra):
    d = {"bench": "train_gpu", "metric": metric, "value": value, "unit": unit, "peer": peer,
         "peer_value": peer_value, "ratio": ratio, "config": cfg}
    d.update(extra)
    print(json.dumps(d))


def rnd(x, n=4):
    return None if x is None else round(x, n)


failed = False
for side in ("ours", "peer"):
    runs = [load(side, b) for b in batches]
    skipped = [x for x in runs if x and "skipped" in x]
    if skipped:  # a side that skips does so for every batch size: one line
        print(json.dumps({"bench": "train_gpu", "side": side,
                          "peer": "torch+peft" if side == "peer" else None, "skipped": skipped[0]["skipped"]}))

bf16, fp32, key = peaks.get("bf16_dense_TFLOPs"), peaks.get("fp32_TFLOPs"), peaks.get("peak")
for b in batches:
    o, p = load("ours", b), load("peer", b)
    for side, x in (("ours", o), ("peer", p)):
        if x and "error" in x:
            failed = True
            print(json.dumps({"bench": "train_gpu", "side": side, "batch": b, "error": x["error"]}))
    ok = lambda x: x is not None and "tokens_per_s" in x
    if not ok(o) and not ok(p):
        continue
    cfg = (f"gpt2-124m-shape seq{seq} b{b} r{r} adamw lora_dropout0.05 clip5"
           f" | ours: {o['precision'] if ok(o) else 'n/a'}"
           f" | peer: {('torch ' + p['torch'] + ' ' + p['precision'] + ', compile ' + p['compile'] + ', attn ' + p['attn'] + ', fused AdamW ' + str(p['fused_adamw'])) if ok(p) else 'n/a'}"
           f" | peak: {key or 'unknown device'}")
    if ok(o) and ok(p) and o["n_params"] != p["n_params"]:
        print(f"train_gpu: parameter counts differ: ours {o['n_params']}, peer {p['n_params']}", file=sys.stderr)
    ov = lambda f: f(o) if ok(o) else None
    pv = lambda f: f(p) if ok(p) else None
    ratio = lambda a, c: round(a / c, 3) if a is not None and c else None
    tps_o, tps_p = ov(lambda x: x["tokens_per_s"]), pv(lambda x: x["tokens_per_s"])
    dev = (o if ok(o) else p)["device"]
    line("tokens_per_s", rnd(tps_o, 1), "tok/s", rnd(tps_p, 1), ratio(tps_o, tps_p), cfg, batch=b, device=dev)
    ms_o, ms_p = ov(lambda x: x["ms_per_step"]), pv(lambda x: x["ms_per_step"])
    line("ms_per_step", rnd(ms_o, 2), "ms", rnd(ms_p, 2), ratio(ms_p, ms_o), cfg, batch=b, device=dev,
         median_ms=rnd(ov(lambda x: x["ms_per_step_median"]), 2), peer_median_ms=rnd(pv(lambda x: x["ms_per_step_median"]), 2))
    for metric, lora, formula in (("mfu_lora", True, "(4N + 6N_lora + 6LCT) tok/s / bf16 dense peak"),
                                  ("mfu_llmc", False, "(6N + 6LCT) tok/s / bf16 dense peak (llm.c)")):
        mo = ov(lambda x: x["tokens_per_s"] * flops_per_token(x, lora) / (bf16 * 1e12)) if bf16 else None
        mp = pv(lambda x: x["tokens_per_s"] * flops_per_token(x, lora) / (bf16 * 1e12)) if bf16 else None
        line(metric, rnd(mo), "fraction", rnd(mp), ratio(mo, mp), cfg, batch=b, device=dev, formula=formula,
             flops_per_token=ov(lambda x: flops_per_token(x, lora)) or pv(lambda x: flops_per_token(x, lora)),
             peak_TFLOPs=bf16)
    uo = ov(lambda x: x["tokens_per_s"] * flops_per_token(x, True) / (fp32 * 1e12)) if fp32 else None
    if ok(o):
        line("fp32_util_lora", rnd(uo), "fraction", None, None, cfg, peer=None, batch=b, device=dev,
             formula="(4N + 6N_lora + 6LCT) tok/s / fp32 non-tensor peak (ours is fp32)", peak_TFLOPs=fp32)
    mem_o, mem_p = ov(lambda x: x["device_mem_in_use_gib"]), pv(lambda x: x["device_mem_in_use_gib"])
    line("device_mem_in_use_gib", rnd(mem_o, 2), "GiB", rnd(mem_p, 2), ratio(mem_p, mem_o), cfg, batch=b, device=dev,
         note="cudaMemGetInfo total - free at the end of the run, CUDA context included (ratio = peer / ours)")
sys.exit(1 if failed else 0)
PY
