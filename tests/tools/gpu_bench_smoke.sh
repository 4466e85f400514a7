#!/usr/bin/env bash
# Smoke test of the GPU benchmarks (bench/kernels.sh, bench/train_gpu.sh, bench/exchange_device.sh;
# docs/cuda.md): each exits 0 and prints only valid JSON lines. Without a usable CUDA device (or in
# a build without the CUDA backend) every line is a "skipped" line whose reason starts with
# "no CUDA device:" (train_gpu: one for ours, one for the peer); with a device the lines carry the
# metric fields (kernels: kernel, metric, value, unit, check = "pass"; train_gpu: metric, value; no
# "error" line). Then, on every machine, bench/train_gpu.sh's MFU arithmetic with stand-in sides
# (fixed JSON results on an "NVIDIA H100 80GB HBM3"): the lines, the peak from bench/device_peaks.h
# (through train_gpu_main --peaks) and the two FLOP formulas recomputed here; and the peak table's
# lookups through bench_kernels --peaks. A device present (nvidia-smi -L lists one) while a bench
# says "skipped" fails the test, unless the build has no CUDA backend.
# usage: gpu_bench_smoke.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 build=$2
. "$(dirname "$0")/lib.sh"
export MIRA_BUILD_DIR=$build
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
has_gpu=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then has_gpu=1; fi
cuda_build=0
grep -q '^cuda' "$build/bench/gpu_benches.txt" 2>/dev/null && cuda_build=1
echo "device listed by nvidia-smi: $has_gpu; CUDA build: $cuda_build"

# check_lines NAME FILE: every line valid JSON of bench NAME; prints "skipped" or "ran".
check_lines() {
  python3 - "$1" "$2" "$has_gpu" "$cuda_build" <<'PY'
import json, numbers, sys
name, path, has_gpu, cuda_build = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4] == "1"
lines = [l for l in open(path).read().splitlines()]
assert lines, f"{name}: no output on stdout"
objs = []
for i, l in enumerate(lines):
    try:
        objs.append(json.loads(l))
    except ValueError as e:
        sys.exit(f"{name}: line {i + 1} is not JSON ({e}): {l!r}")
for o in objs:
    assert isinstance(o, dict) and o.get("bench") == name, f"{name}: line without bench={name}: {o}"
    assert "error" not in o, f"{name}: error line: {o}"
skipped = [o for o in objs if "skipped" in o]
for o in skipped:
    assert o["skipped"].startswith("no CUDA device") or o.get("side") == "peer", f"{name}: odd skip reason: {o}"
    if has_gpu and cuda_build and o.get("side") != "peer":  # the peer may lack torch; ours may not skip
        sys.exit(f"{name}: skipped although nvidia-smi lists a GPU: {o['skipped']}")
if skipped and len(skipped) == len(objs):
    if name == "train_gpu":
        assert sorted(o.get("side") for o in skipped) == ["ours", "peer"], f"train_gpu: skip lines {skipped}"
    else:
        assert len(objs) == 1, f"{name}: {len(objs)} lines, expected one skip line"
    print("skipped")
    sys.exit(0)
for o in objs:
    if "skipped" in o:  # a side may skip alone (train_gpu: the peer without torch)
        assert name == "train_gpu" and o.get("side") in ("ours", "peer"), f"{name}: stray skip line {o}"
        continue
    for k in ("metric", "value", "unit", "config"):
        assert k in o, f"{name}: line without {k}: {o}"
    if name == "kernels":
        assert isinstance(o["value"], numbers.Number) and o["value"] > 0, f"kernels: value {o}"
        assert o.get("kernel") and o.get("check") == "pass", f"kernels: {o}"
print("ran")
PY
}

# 1. The kernel lab (all kernels, few repetitions; the CPU reference uses every core).
rc=0
OMP_NUM_THREADS=$(nproc) "$src/bench/run.sh" kernels --reps 3 --warmup 1 >"$work/kernels.out" 2>"$work/kernels.err" || rc=$?
[ "$rc" -eq 0 ] || { cat "$work/kernels.err" >&2; fail "bench/run.sh kernels: exit code $rc"; }
res=$(check_lines kernels "$work/kernels.out") || { cat "$work/kernels.out" >&2; fail "kernels output"; }
echo "ok: kernels $res"
cat "$work/kernels.out"

# 2. LoRA training on the GPU, one step at batch 8 (eager peer: no compile time in a smoke test).
rc=0
"$src/bench/run.sh" train_gpu --steps 1 --warmup 1 --batch 8 --compile off >"$work/train.out" 2>"$work/train.err" || rc=$?
[ "$rc" -eq 0 ] || { cat "$work/train.err" >&2; fail "bench/run.sh train_gpu: exit code $rc"; }
res=$(check_lines train_gpu "$work/train.out") || { cat "$work/train.out" >&2; fail "train_gpu output"; }
echo "ok: train_gpu $res"
cat "$work/train.out"

# 3. Device exchange, one rank, the smaller adapter.
rc=0
"$src/bench/run.sh" exchange_device --ranks 1 --models gpt2-124m --budget 0.05 >"$work/exch.out" 2>"$work/exch.err" || rc=$?
[ "$rc" -eq 0 ] || { cat "$work/exch.err" >&2; fail "bench/run.sh exchange_device: exit code $rc"; }
res=$(check_lines exchange_device "$work/exch.out") || { cat "$work/exch.out" >&2; fail "exchange_device output"; }
echo "ok: exchange_device $res"
cat "$work/exch.out"

# 4. The MFU arithmetic of bench/train_gpu.sh with stand-in sides on an H100 SXM name: ours 50000
#    tok/s, peer 100000 tok/s, GPT-2 124M shape (N = 124439808, N_lora = 1622016, L 12, C 768, T 1024).
real=$build/bench/train_gpu_main
cat >"$work/ours.sh" <<EOF
#!/usr/bin/env bash
if [ "\$1" = --peaks ]; then
  if [ -x "$real" ]; then exec "$real" --peaks "\$2"; fi
  printf '{"device":"%s","peak":"H100 SXM","hbm_GBps":3350,"bf16_dense_TFLOPs":989,"fp32_TFLOPs":67}\n' "\$2"; exit 0
fi
echo '{"tokens_per_s":50000.0,"ms_per_step":163.84,"ms_per_step_median":163.0,"steps":1,"loss":10.9,"n_params":124439808,"n_lora":1622016,"n_layer":12,"n_embd":768,"seq":1024,"batch":8,"device":"NVIDIA H100 80GB HBM3","device_mem_in_use_gib":20.5,"init_s":3.0,"precision":"fp32 parity (stand-in)"}'
EOF
cat >"$work/peer.sh" <<'EOF'
#!/usr/bin/env bash
echo '{"tokens_per_s":100000.0,"ms_per_step":81.92,"ms_per_step_median":81.0,"steps":1,"loss":10.9,"n_params":124439808,"n_lora":1622016,"n_layer":12,"n_embd":768,"seq":1024,"batch":8,"device":"NVIDIA H100 80GB HBM3","device_mem_in_use_gib":10.25,"max_allocated_gib":8.0,"init_s":9.0,"compile":"off","attn":"sdpa","fused_adamw":true,"torch":"stand-in","precision":"bf16 autocast, fp32 master weights"}'
EOF
chmod +x "$work/ours.sh" "$work/peer.sh"
MIRA_TRAIN_GPU_BIN=$work/ours.sh MIRA_PY=$work/peer.sh "$src/bench/run.sh" train_gpu --batch 8 --steps 1 >"$work/fake.out" 2>"$work/fake.err" ||
  { cat "$work/fake.err" >&2; fail "train_gpu with stand-in sides failed"; }
python3 - "$work/fake.out" <<'PY' || fail "train_gpu MFU lines"
import json, sys
rows = {o["metric"]: o for o in map(json.loads, open(sys.argv[1]).read().splitlines())}
assert set(rows) == {"tokens_per_s", "ms_per_step", "mfu_lora", "mfu_llmc", "fp32_util_lora", "device_mem_in_use_gib"}, rows.keys()
N, NL, L, C, T = 124439808, 1622016, 12, 768, 1024
lora, full = 4 * N + 6 * NL + 6 * L * C * T, 6 * N + 6 * L * C * T
def near(a, b):
    assert abs(a - b) <= 1e-4 * abs(b) + 1e-4, (a, b)
near(rows["tokens_per_s"]["value"], 50000); near(rows["tokens_per_s"]["ratio"], 0.5)
near(rows["mfu_lora"]["value"], 50000 * lora / 989e12); near(rows["mfu_lora"]["peer_value"], 100000 * lora / 989e12)
near(rows["mfu_llmc"]["value"], 50000 * full / 989e12); near(rows["mfu_llmc"]["ratio"], 0.5)
near(rows["fp32_util_lora"]["value"], 50000 * lora / 67e12); assert rows["fp32_util_lora"]["peer"] is None
near(rows["ms_per_step"]["ratio"], 0.5); near(rows["device_mem_in_use_gib"]["ratio"], 0.5)
assert "H100 SXM" in rows["mfu_lora"]["config"] and rows["mfu_lora"]["peak_TFLOPs"] == 989
print("ok: train_gpu MFU lines: lora %.4f, llm.c %.4f, fp32 util %.4f" % (
    rows["mfu_lora"]["value"], rows["mfu_llmc"]["value"], rows["fp32_util_lora"]["value"]))
PY

# 5. The peer script itself, on the CPU at a tiny shape (--device cpu), when its Python has torch,
#    transformers and peft: one JSON object with every field bench/train_gpu.sh reads.
py=${MIRA_PY:-/root/mira-venv/bin/python}
if [ -x "$py" ] && "$py" -c 'import torch, transformers, peft' 2>/dev/null; then
  "$py" "$src/bench/train_gpu_peer.py" --device cpu --layers 2 --width 96 --vocab 1000 --seq 64 --batch 2 --steps 2 \
    --warmup 1 --compile off >"$work/peer.out" 2>"$work/peer.err" || { cat "$work/peer.err" >&2; fail "peer on the CPU"; }
  python3 - "$work/peer.out" <<'PY' || fail "peer JSON"
import json, sys
d = json.loads(open(sys.argv[1]).read())
need = ["tokens_per_s", "ms_per_step", "ms_per_step_median", "n_params", "n_lora", "n_layer", "n_embd", "seq", "batch",
        "device", "device_mem_in_use_gib", "compile", "attn", "fused_adamw", "torch", "precision"]
missing = [k for k in need if k not in d]
assert not missing, f"peer JSON lacks {missing}: {d}"
assert d["tokens_per_s"] > 0 and d["n_layer"] == 2 and d["n_embd"] == 96 and d["n_lora"] > 0, d
print(f"ok: peer script on the CPU: {d['tokens_per_s']:.0f} tok/s, n_params {d['n_params']}, n_lora {d['n_lora']}")
PY
else
  echo "note: $py lacks torch/transformers/peft: peer script not exercised"
fi

# 6. The peak table through the kernel lab (CUDA builds; no CUDA call).
if [ "$cuda_build" -eq 1 ]; then
  k=$build/bench/bench_kernels
  for case in "NVIDIA H100 80GB HBM3:H100 SXM:3350:989:67" "NVIDIA H100 PCIe:H100 PCIe:2000:756:51" \
              "NVIDIA H200:H200:4800:989:67" "NVIDIA H100 NVL:None:None:None:None" "NVIDIA A100-SXM4-80GB:None:None:None:None"; do
    IFS=: read -r name key bw bf fp <<<"$case"
    "$k" --peaks "$name" | python3 -c 'import json, sys
d = json.load(sys.stdin); want = sys.argv[1:]
got = [str(d["peak"]), str(d["hbm_GBps"]), str(d["bf16_dense_TFLOPs"]), str(d["fp32_TFLOPs"])]
got = [g[:-2] if g.endswith(".0") else g for g in got]
assert got == want, (d, want)' "$key" "$bw" "$bf" "$fp" || fail "peak table entry for $name"
  done
  echo "ok: peak table lookups"
fi
