#!/usr/bin/env bash
# scripts/analyze_checkpoint.py on a short run's checkpoint: both PNG files are written and are valid
# PNG images (signature, IHDR with a sane size, IEND, CRC of every chunk); a corrupted checkpoint
# (one flipped byte in a client's adapter), a truncated file and a foreign file are refused with
# exit status 1 and no PNG is written. Skipped (exit 77) when python3 lacks h5py, numpy or
# matplotlib (scripts/setup.sh installs them).
# usage: analyze.sh MPIEXEC MIRA_HPC SOURCE_DIR [PYTHON]
set -euo pipefail
mpiexec=$1 bin=$2 src=$3 python=${4:-/usr/bin/python3}
. "$(dirname "$0")/lib.sh"
if ! "$python" -c 'import h5py, numpy, matplotlib' 2>/dev/null; then
  echo "SKIP: $python lacks h5py, numpy or matplotlib (scripts/setup.sh installs python3-h5py python3-numpy python3-matplotlib)"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
script=$src/scripts/analyze_checkpoint.py

train_short "$mpiexec" "$bin" "$work/run"
"$python" "$script" "$work/run/checkpoints" --out "$work/plots" >"$work/a.out" 2>"$work/a.err" ||
  { cat "$work/a.out" "$work/a.err"; fail "analyze_checkpoint.py failed"; }
cat "$work/a.out"
for png in loss_curves similarity; do
  f=$work/plots/$png.png
  [ -s "$f" ] || fail "$f missing"
  "$python" - "$f" <<'PY' || fail "$f is not a valid PNG"
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "PNG signature"
pos, chunks = 8, []
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    crc, = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
    assert zlib.crc32(kind + body) == crc, f"CRC of chunk {kind}"
    chunks.append((kind, body))
    pos += 12 + n
assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND", "IHDR first, IEND last"
w, h = struct.unpack(">II", chunks[0][1][:8])
assert 200 <= w <= 4000 and 200 <= h <= 4000, f"size {w}x{h}"
pixels = zlib.decompress(b"".join(b for k, b in chunks if k == b"IDAT"))
assert len(set(pixels)) > 8, "image has almost no distinct bytes"
print(f"{sys.argv[1]}: valid PNG {w}x{h}")
PY
done
[ "$(ls "$work/plots" | tr '\n' ' ')" = "loss_curves.png similarity.png " ] || fail "unexpected files: $(ls "$work/plots")"

cp "$work/run/checkpoints/ckpt-3.h5" "$work/flipped.h5"
flip_byte "$work/flipped.h5" /adapters/attn.c_attn/lora_A
head -c 6000 "$work/run/checkpoints/ckpt-3.h5" >"$work/truncated.h5"
for case in "flipped:$work/flipped.h5:CRC32C mismatch" "truncated:$work/truncated.h5:truncated file" \
            "foreign:$src/tests/fixtures/data/pretokenized_small.h5:not a mira-hpc-checkpoint file" \
            "missing:$work/none.h5:it does not exist"; do
  IFS=: read -r name file regex <<<"$case"
  set +e
  "$python" "$script" "$file" --out "$work/bad" >"$work/b.out" 2>"$work/b.err"
  rc=$?
  set -e
  [ "$rc" -eq 1 ] || { cat "$work/b.err"; fail "$name: exit status $rc, expected 1"; }
  [ "$(wc -l <"$work/b.err")" -eq 1 ] && grep -Eq "^analyze_checkpoint: checkpoint .* refused: .*$regex" "$work/b.err" ||
    { cat "$work/b.err"; fail "$name: not one 'refused' line matching /$regex/"; }
  [ ! -e "$work/bad" ] || fail "$name: output folder created for a refused checkpoint"
  echo "ok: $name refused: $(cat "$work/b.err")"
done
