#!/usr/bin/env bash
# Installs the system packages mira_hpc needs on Debian 12 (idempotent; quiet when all are present).
# Run as root (or with sudo available). Slurm + munge are for the Slurm tests (a local one-node
# cluster, scripts/slurm-local.sh); MIRA_SETUP_SLURM=0 skips them.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  openmpi-bin libopenmpi-dev              # MPI (OpenMPI)
  libhdf5-openmpi-dev hdf5-tools          # parallel HDF5 + h5dump/h5ls
  libboost-program-options-dev            # CLI + INI parsing
  libopenblas-openmp-dev                  # OpenBLAS, OpenMP build (agrees with our OpenMP threads)
  nlohmann-json3-dev libpcre2-dev         # JSON (config.json, tokenizer.json), GPT-2 pre-tokeniser regex
  libgtest-dev                            # GoogleTest
  python3 python3-h5py python3-numpy python3-matplotlib  # scripts/analyze_checkpoint.py, test helpers
  rsync                                   # scripts/device-bundle.sh and test helpers
)
if [ "${MIRA_SETUP_SLURM:-1}" = 1 ]; then
  packages+=(slurmctld slurmd slurm-client munge)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup.sh: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
echo "setup.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup.sh: done"
