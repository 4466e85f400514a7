#!/usr/bin/env bash
# Builds .bundle/ for the lent GPU machine (device tool): that machine has CUDA 13, driver 580 and
# PyTorch, but no MPI, parallel HDF5, Boost.ProgramOptions or OpenBLAS runtime and no package
# registry. This script, run HERE (Debian 12 with the registry), `apt-get download`s the runtime
# .debs of those libraries plus every dependency a bare Debian 12 lacks, optionally copies built
# binaries next to them, and writes .bundle/env.sh, which on the device unpacks the .debs into
# .bundle/root (dpkg -x, or a Python fallback where dpkg is missing) and exports PATH,
# LD_LIBRARY_PATH and the OpenMPI/PMIx relocation variables. Usage (docs/cuda.md has the session):
#   scripts/device-bundle.sh [--bin build-cuda/test_gpu --bin build-cuda/mira_hpc ...] [--gpu-session BUILD]
# --gpu-session BUILD adds what bench/gpu_session.sh runs from the CUDA build tree BUILD: mira_hpc, test_gpu,
# test_gpu_mpi_nccl_exchange, test_gpu_mpi_staged_exchange, test_gpu_mpi_device_aggregate, bench/bench_kernels,
# bench/train_gpu_main, bench/bench_exchange_device (all into .bundle/bin, stripped and xz-compressed;
# env.sh unpacks them into .bundle/root/bin and exports that folder as MIRA_BUNDLE_BIN, first on PATH).
# Environment: MIRA_BUNDLE_DIR (default <repo>/.bundle); MIRA_BUNDLE_BASELINE = a file with the
# package names installed on the device (`dpkg-query -W -f '${Package}\n'` run there) to bundle only
# what it lacks; without it, a bare debian:bookworm image is assumed (the list below).
# .bundle/ must stay out of git (.gitignore: /.bundle/). The device tool carries at most 64 MiB
# (tree + carried paths): the script prints the size and fails above MIRA_BUNDLE_MAX_MB (default 48).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out=${MIRA_BUNDLE_DIR:-$repo/.bundle}
max_mb=${MIRA_BUNDLE_MAX_MB:-48}  # leaves ~16 MiB of the 64 MiB transfer for the source tree
bins=()
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bins+=("$2"); shift 2 ;;
    --gpu-session)
      for b in mira_hpc test_gpu test_gpu_mpi_nccl_exchange test_gpu_mpi_staged_exchange test_gpu_mpi_device_aggregate bench/bench_kernels \
               bench/train_gpu_main bench/bench_exchange_device; do
        bins+=("$2/$b")
      done
      shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "device-bundle.sh: unknown argument '$1' (allowed: --bin FILE, --gpu-session BUILD)" >&2; exit 2 ;;
  esac
done
for b in "${bins[@]}"; do  # before any download: a missing binary is a build step left out
  [ -x "$b" ] || { echo "device-bundle.sh: $b is not an executable (build it first, docs/cuda.md)" >&2; exit 2; }
done

# What the binaries need at run time (DESIGN.md libraries; PCRE2 and libstdc++ are in the base).
roots=(libopenmpi3 openmpi-bin libhdf5-openmpi-103-1 libboost-program-options1.74.0 libopenblas0-openmp)

# Packages of a bare debian:bookworm image (docker.io/library/debian:bookworm, 12.x): assumed present.
# Not libunistring2: the lent H200 machine lacked it (mira_hpc needs it through libidn2), 2026-11-26.
baseline_default="adduser apt base-files base-passwd bash bsdutils coreutils dash debconf
debian-archive-keyring debianutils diffutils dpkg e2fsprogs findutils gcc-12-base gpgv grep gzip
hostname init-system-helpers libacl1 libapt-pkg6.0 libattr1 libaudit-common libaudit1 libblkid1
libbz2-1.0 libc-bin libc6 libcap-ng0 libcap2 libcom-err2 libcrypt1 libdb5.3 libdebconfclient0
libext2fs2 libffi8 libgcc-s1 libgcrypt20 libgmp10 libgnutls30 libgpg-error0 libhogweed6 libidn2-0
liblz4-1 liblzma5 libmd0 libmount1 libnettle8 libp11-kit0 libpam-modules libpam-modules-bin
libpam-runtime libpam0g libpcre2-8-0 libseccomp2 libselinux1 libsemanage-common libsemanage2
libsepol2 libsmartcols1 libss2 libstdc++6 libsystemd0 libtasn1-6 libtinfo6 libudev1
libuuid1 libxxhash0 libzstd1 login logsave mawk mount ncurses-base ncurses-bin passwd perl-base sed
sysvinit-utils tar tzdata usr-is-merged util-linux util-linux-extra zlib1g"
# Pulled in by the closure but not needed to run binaries unpacked with dpkg -x: package-management
# and installer tools (their maintainer scripts never run), and the ssh launcher OpenMPI uses only
# to start ranks on other nodes (the device is one node).
skip="cdebconf libdebian-installer4 libnewt0.52 libslang2 libtextwrap1 install-info readline-common
libreadline8 openssh-client libedit2 libfido2-1 libcbor0.8 libbsd0 libxext6 libxau6 libxdmcp6 libxcb1 libx11-6
libx11-data libxnvctrl0 ocl-icd-libopencl1"

if [ -n "${MIRA_BUNDLE_BASELINE:-}" ]; then
  baseline=$(cat "$MIRA_BUNDLE_BASELINE")
else
  baseline=$baseline_default
fi
declare -A have=()
for p in $baseline $skip; do have[$p]=1; done

# Dependency closure (Depends + Pre-Depends, all alternatives), real packages only.
mapfile -t closure < <(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
  --no-replaces --no-enhances "${roots[@]}" | grep -v '^[ <]' | sed 's/:amd64$//' | grep -v ':' | sort -u)
need=()
for p in "${closure[@]}"; do
  if [ -n "${have[$p]:-}" ]; then continue; fi
  if apt-cache show --no-all-versions "$p" 2>/dev/null | grep -q '^Essential: yes'; then continue; fi
  need+=("$p")
done
echo "device-bundle: ${#need[@]} packages (closure ${#closure[@]}, minus the base and tools):" >&2
echo "  ${need[*]}" >&2

rm -rf "$out"
mkdir -p "$out/debs" "$out/bin"
(cd "$out/debs" && apt-get download "${need[@]}" >&2)
# Binaries travel stripped and xz-compressed (about 4x smaller: the transfer limit is 64 MiB with
# the tree); env.sh unpacks them into root/bin on first use.
for b in "${bins[@]}"; do
  strip --strip-unneeded -o "$out/bin/$(basename "$b")" "$b"
  xz -6 -T2 "$out/bin/$(basename "$b")"
done
printf '%s\n' "${need[@]}" > "$out/packages.txt"

cat > "$out/env.sh" <<'ENV'
# Source on the device machine (bash): `source .bundle/env.sh`. First use unpacks the .debs into
# .bundle/root; then PATH / LD_LIBRARY_PATH point there and OpenMPI + PMIx are relocated to it.
MIRA_BUNDLE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
_r=$MIRA_BUNDLE/root
if [ ! -f "$_r/.unpacked" ]; then
  mkdir -p "$_r"
  for _d in "$MIRA_BUNDLE"/debs/*.deb; do
    if command -v dpkg-deb > /dev/null; then
      dpkg-deb -x "$_d" "$_r"
    else  # no dpkg: a .deb is an ar archive holding data.tar.*
      python3 - "$_d" "$_r" <<'PY'
import io, sys, tarfile
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"!<arch>\n", "not a .deb"
pos = 8
while pos < len(data):
    name = data[pos:pos + 16].decode().strip().rstrip("/")
    size = int(data[pos + 48:pos + 58])
    body = data[pos + 60:pos + 60 + size]
    if name.startswith("data.tar"):
        tarfile.open(fileobj=io.BytesIO(body)).extractall(sys.argv[2])
    pos += 60 + size + (size & 1)
PY
    fi
  done
  # Debian's alternatives are set up by maintainer scripts, which dpkg -x does not run.
  ln -sf mpirun.openmpi "$_r/usr/bin/mpirun"
  ln -sf mpiexec.openmpi "$_r/usr/bin/mpiexec"
  ln -sf ../libpsm1/libpsm_infinipath.so.1.16 "$_r/usr/lib/x86_64-linux-gnu/libpsm_infinipath.so.1"
  mkdir -p "$_r/bin"
  for _x in "$MIRA_BUNDLE"/bin/*.xz; do
    [ -f "$_x" ] || continue
    _o=$_r/bin/$(basename "$_x" .xz)
    if command -v xz > /dev/null; then
      xz -dc "$_x" > "$_o"
    else
      python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$_x" "$_o"
    fi
    chmod +x "$_o"
  done
  touch "$_r/.unpacked"
fi
_lib=$_r/usr/lib/x86_64-linux-gnu
export MIRA_BUNDLE_BIN=$_r/bin                   # the unpacked binaries (bin/ holds them xz-compressed)
export PATH=$MIRA_BUNDLE_BIN:$_r/usr/bin:$PATH
# Some bookworm packages still install under /lib (before the /usr merge): both trees.
export LD_LIBRARY_PATH=$_lib:$_r/lib/x86_64-linux-gnu:$_lib/openmpi/lib:$_lib/openblas-openmp:$_lib/pmix2/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export OPAL_PREFIX=$_r/usr                       # OpenMPI: install prefix moved from /usr
export OPAL_SYSCONFDIR=$_r/etc/openmpi           # openmpi-mca-params.conf (outside the prefix)
export PMIX_INSTALL_PREFIX=$_lib/pmix2           # PMIx: its own prefix and MCA components
export HWLOC_PLUGINS_PATH=$_lib/hwloc
# One node, run as root in the tool: shared-memory transports only, no oversubscription errors.
export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader OMPI_MCA_mtl=^ofi,psm,psm2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
# cuBLAS comes from the device's CUDA 13 toolkit; NCCL may only be in PyTorch's wheels.
for _d in /usr/local/cuda/lib64 /usr/local/cuda/lib; do
  [ -d "$_d" ] && LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$_d
done
if ! ldconfig -p 2> /dev/null | grep -q 'libnccl.so.2' && [ ! -e /usr/local/cuda/lib64/libnccl.so.2 ] && [ ! -e /usr/local/cuda/lib/libnccl.so.2 ]; then
  _n=$(python3 -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "lib"))' 2> /dev/null || true)
  [ -n "$_n" ] && LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$_n
fi
export LD_LIBRARY_PATH
unset _r _lib _d _n
ENV

# Local check of env.sh itself: source it in a subshell (it unpacks into .bundle/root) and list,
# for each --bin and each library / launcher of the bundle (not the dlopen'ed MCA plugins), the
# libraries that would come neither from the bundle nor from a baseline package nor from CUDA -
# those would be missing on the device. .bundle/root is removed afterwards (the device unpacks).
missing=0
while read -r who so path; do
  owner=""
  for q in "$path" "$(readlink -f "$path")" "${path#/usr}"; do  # usr-merge: dpkg knows one spelling
    owner=$(dpkg -S "$q" 2> /dev/null | head -1 | cut -d: -f1 || true)
    [ -n "$owner" ] && break
  done
  if [ -z "$owner" ] || [ -z "${have[$owner]:-}" ] || [[ " $skip " == *" $owner "* ]]; then
    echo "device-bundle: $who needs $so ($path, package ${owner:-?}) which the bundle lacks" >&2
    missing=1
  fi
done < <(
  source "$out/env.sh"
  r=$out/root
  for b in "${bins[@]}" $(find "$r/usr/lib/x86_64-linux-gnu" "$r/lib/x86_64-linux-gnu" "$r/usr/lib/x86_64-linux-gnu/openmpi/lib" \
      "$r/usr/lib/x86_64-linux-gnu/openblas-openmp" "$r/usr/lib/x86_64-linux-gnu/pmix2/lib" -maxdepth 1 -name '*.so*' -type f \
      2> /dev/null) "$r/usr/bin/orterun" "$r/usr/bin/orted"; do
    ldd "$b" | awk -v who="$(basename "$b")" '/=>/ {print who, $1, $3}'
  done | grep -v -e " $out/" -e " /usr/local/cuda" -e ' $'
)
rm -rf "$out/root"

size_mb=$(du -sm "$out" | cut -f1)
echo "device-bundle: $out is ${size_mb} MiB (${#need[@]} .debs, ${#bins[@]} binaries); limit ${max_mb} MiB" >&2
if [ "$size_mb" -gt "$max_mb" ]; then
  echo "device-bundle: too large for the device transfer (64 MiB with the tree): drop binaries or set MIRA_BUNDLE_BASELINE" >&2
  exit 1
fi
exit $missing
