# Shared body of the Slurm job scripts in jobs/ (sourced by them, not submitted itself): argument
# parsing, the output directory, the binary, the launch (srun or mpirun) in the background, the
# signal relay for preemption and time limits, and the requeue after a checkpointed stop.
# Documented for users in docs/cluster.md. Bash; the job scripts run it with `set -euo pipefail`.
#
# Arguments of every job script:  CONFIG.ini [OUTPUT_DIR] [--section.key VALUE ...]
# Environment (sbatch passes the submitting shell's environment to the job by default):
#   MIRA_HPC       the mira_hpc binary (default: <repo>/build/release/mira_hpc, then
#                  <repo>/build/cpu/mira_hpc, then mira_hpc on PATH)
#   MIRA_LAUNCHER  srun (default: srun --mpi=pmix, Slurm starts the ranks) or mpirun (OpenMPI's
#                  mpirun inside the allocation, for clusters without Slurm's PMIx plugin)
#   MIRA_RUNS_DIR  parent of the per-job output directories (default: <submit dir>/runs)
#   MIRA_MAX_REQUEUES  stop requeueing after this many restarts (default 100)
# Set by a job script before mira_job_run: MIRA_JOB_DEFAULTS=(key=value ...), keys the script pins
# unless the user's overrides set them (the CPU script: run.backend=cpu).

# mira_log MESSAGE: one line on the job's log (stdout), with time stamp and job id.
mira_log() { echo "[mira-job $(date -u +%FT%TZ) job ${SLURM_JOB_ID:-?}] $*"; }

# mira_repo_dir: the repository holding jobs/ (this file's parent's parent).
mira_repo_dir() { cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P; }

# mira_find_binary: print the mira_hpc binary to run, or fail with a message.
mira_find_binary() {
  local repo cand
  if [ -n "${MIRA_HPC:-}" ]; then
    [ -x "$MIRA_HPC" ] || { mira_log "error: MIRA_HPC='$MIRA_HPC' is not an executable file"; return 2; }
    echo "$MIRA_HPC"; return 0
  fi
  repo=$(mira_repo_dir)
  for cand in "$repo/build/release/mira_hpc" "$repo/build/cpu/mira_hpc"; do
    [ -x "$cand" ] && { echo "$cand"; return 0; }
  done
  if command -v mira_hpc >/dev/null; then command -v mira_hpc; return 0; fi
  mira_log "error: no mira_hpc binary: build it (cmake --preset release) or set MIRA_HPC=/path/to/mira_hpc"
  return 2
}

# mira_job_id: the job's identity for directory names: <array job>_<task> in an array, else the
# job id. A requeued job keeps its id, so its restart finds the same directory and resumes.
mira_job_id() {
  if [ -n "${SLURM_ARRAY_JOB_ID:-}" ] && [ -n "${SLURM_ARRAY_TASK_ID:-}" ]; then
    echo "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
  else
    echo "${SLURM_JOB_ID:-local-$$}"
  fi
}

# mira_parse_args ARGS...: sets MIRA_CONFIG, MIRA_OUTPUT (empty when not given) and the array
# MIRA_OVERRIDES from the job script's arguments.
mira_parse_args() {
  MIRA_CONFIG="" MIRA_OUTPUT="" MIRA_OVERRIDES=()
  if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then
    mira_log "error: usage: sbatch ${MIRA_JOB_SCRIPT:-jobs/<script>.sbatch} CONFIG.ini [OUTPUT_DIR] [--section.key VALUE ...]"
    return 2
  fi
  MIRA_CONFIG=$1; shift
  [ -r "$MIRA_CONFIG" ] || { mira_log "error: cannot read config file '$MIRA_CONFIG'"; return 2; }
  MIRA_CONFIG=$(realpath "$MIRA_CONFIG")
  if [ $# -ge 1 ] && [ "${1#-}" = "$1" ]; then MIRA_OUTPUT=$1; shift; fi
  MIRA_OVERRIDES=("$@")
}

# mira_has_override KEY [ALIAS]: true when the overrides already set KEY (--KEY V or --KEY=V).
mira_has_override() {
  local a k
  for a in "${MIRA_OVERRIDES[@]+"${MIRA_OVERRIDES[@]}"}"; do
    for k in "$@"; do
      case $a in "--$k"|"--$k="*) return 0 ;; esac
    done
  done
  return 1
}

# Signal relay. The batch shell is the only process that `--signal=B:USR1@T` and
# `scancel --batch --signal=USR1` reach; bash runs a trap only between commands, so the step runs
# in the background and the shell sits in `wait`, which a trapped signal interrupts.
MIRA_STEP_PID="" MIRA_PENDING_SIGNAL="" MIRA_GOT_USR1=0 MIRA_GOT_TERM=0 MIRA_WAKE=0
mira_on_signal() {  # mira_on_signal USR1|TERM
  MIRA_WAKE=1
  case $1 in USR1) MIRA_GOT_USR1=1 ;; TERM) MIRA_GOT_TERM=1 ;; esac
  if [ -n "$MIRA_STEP_PID" ]; then
    # OpenMPI's mpirun takes SIGTERM as "abort the job": it SIGKILLs the ranks 1 s later
    # (odls_base_sigkill_timeout) and exits with 1, before a large stop checkpoint is written. It
    # forwards SIGUSR1 as is, and mira_hpc stops alike on both, so mpirun gets USR1 (MIRA_GOT_TERM
    # above still records the TERM: no requeue follows). srun forwards TERM and waits (KillWait).
    local sig=$1
    if [ "${MIRA_LAUNCHER:-srun}" = mpirun ] && [ "$sig" = TERM ]; then sig=USR1; fi
    mira_log "SIG$1 received: forwarding it to the job step (PID $MIRA_STEP_PID) as SIG$sig; mira_hpc checkpoints and stops"
    kill -s "$sig" "$MIRA_STEP_PID" 2>/dev/null || true
  else
    mira_log "SIG$1 received before the job step started: it will be forwarded when the step starts"
    MIRA_PENDING_SIGNAL=$1
  fi
}

# mira_run_step CMD...: run CMD in the background, relay USR1/TERM to it, wait for its end
# (again after each relayed signal) and return its exit status. With MIRA_STEP_ERRCOPY set to a
# file, CMD's stderr also goes there (through tee, so the job log still shows it as it comes).
mira_run_step() {
  local rc fifo="" tee_pid=""
  trap 'mira_on_signal USR1' USR1
  trap 'mira_on_signal TERM' TERM
  if [ -n "${MIRA_STEP_ERRCOPY:-}" ]; then
    fifo="$MIRA_STEP_ERRCOPY.fifo"
    rm -f "$fifo"
    mkfifo "$fifo"
    # tee ignores USR1: `scancel --full --signal=USR1` reaches every process of the batch step.
    (trap '' USR1 USR2; exec tee -a "$MIRA_STEP_ERRCOPY" <"$fifo" >&2) &
    tee_pid=$!
    "$@" 2>"$fifo" &
  else
    "$@" &
  fi
  MIRA_STEP_PID=$!
  if [ -n "$MIRA_PENDING_SIGNAL" ]; then mira_on_signal "$MIRA_PENDING_SIGNAL"; fi
  while :; do
    MIRA_WAKE=0
    rc=0
    wait "$MIRA_STEP_PID" || rc=$?
    # A trapped signal makes `wait` return early (status > 128) while the step still runs; the
    # shell remembers the step's real status, so waiting again returns it once the step ends.
    [ "$MIRA_WAKE" = 1 ] && continue
    break
  done
  if [ -n "$tee_pid" ]; then
    wait "$tee_pid" 2>/dev/null || true
    rm -f "$fifo"
  fi
  MIRA_STEP_PID=""
  trap - USR1 TERM
  return "$rc"
}

# mira_launch BINARY ARGS...: start the MPI ranks of this allocation with MIRA_LAUNCHER.
mira_launch() {
  local cpus=${SLURM_CPUS_PER_TASK:-1}
  case ${MIRA_LAUNCHER:-srun} in
    srun)
      # Slurm 22.05's srun does not take --cpus-per-task from the allocation: pass it on.
      # --cpu-bind=cores: each rank is bound to its own cores; its threads stay on them.
      # Slurm 22.05's srun exits with 0 when the step fails to launch ("task 0 launch failed"),
      # so srun's own messages are kept and a 0 with such a message counts as a failure.
      local errcopy rc=0
      errcopy=$(mktemp "${TMPDIR:-/tmp}/mira-srun.XXXXXX")
      MIRA_STEP_ERRCOPY=$errcopy mira_run_step srun --mpi=pmix --cpus-per-task="$cpus" --cpu-bind=cores \
        --kill-on-bad-exit=1 "$@" || rc=$?
      if [ "$rc" = 0 ] && grep -qE "^srun: error: .*launch failed|^srun: Job step aborted" "$errcopy"; then
        mira_log "error: the job step did not launch (srun reported a launch failure but exit code 0)"
        rc=1
      fi
      rm -f "$errcopy"
      return "$rc"
      ;;
    mpirun)
      # OpenMPI reads the allocation (nodes, tasks per node) from Slurm; PE=cpus gives each rank
      # its cores (sbatch --overcommit: ranks share cores, so binding must allow overload).
      # Root needs OpenMPI's explicit consent (containers, CI).
      mira_run_step env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
        mpirun -n "${SLURM_NTASKS:-1}" --map-by "slot:PE=$cpus" \
        --bind-to "core${SLURM_OVERCOMMIT:+:overload-allowed}" "$@"
      ;;
    *)
      mira_log "error: MIRA_LAUNCHER='$MIRA_LAUNCHER': expected srun or mpirun"
      return 2
      ;;
  esac
}

# mira_job_run OUTPUT_DIR: train with MIRA_CONFIG and MIRA_OVERRIDES into OUTPUT_DIR, resuming
# from its latest checkpoint, and requeue the job when mira_hpc stopped on our USR1 (exit 3).
# Returns the exit status the job should end with.
mira_job_run() {
  local out bin rc=0 restarts=${SLURM_RESTART_COUNT:-0}
  out=$(realpath -m "$1")
  bin=$(mira_find_binary) || return 2
  mkdir -p "$(dirname "$out")"
  # Cluster file systems (Lustre, GPFS, NFS) often lack the POSIX locks HDF5 takes by default.
  export HDF5_USE_FILE_LOCKING=FALSE
  # mira_hpc takes its thread count from SLURM_CPUS_PER_TASK; keep OpenMP threads on the rank's cores.
  export OMP_PROC_BIND=${OMP_PROC_BIND:-close} OMP_PLACES=${OMP_PLACES:-cores}
  local args=(train --config "$MIRA_CONFIG" --run.output "$out")
  mira_has_override run.resume resume || args+=(--run.resume auto)
  # A job script may pin keys (the CPU script: run.backend = cpu) unless the user sets them.
  local kv
  for kv in "${MIRA_JOB_DEFAULTS[@]+"${MIRA_JOB_DEFAULTS[@]}"}"; do
    mira_has_override "${kv%%=*}" || args+=("--${kv%%=*}" "${kv#*=}")
  done
  args+=("${MIRA_OVERRIDES[@]+"${MIRA_OVERRIDES[@]}"}")
  mira_log "start (restart $restarts) on ${SLURM_JOB_NUM_NODES:-1} node(s) [${SLURM_JOB_NODELIST:-$(hostname)}]," \
    "${SLURM_NTASKS:-1} ranks x ${SLURM_CPUS_PER_TASK:-1} CPUs, launcher ${MIRA_LAUNCHER:-srun}"
  mira_log "output: $out"
  mira_log "command: $bin ${args[*]}"
  mira_launch "$bin" "${args[@]}" || rc=$?
  case $rc in
    0) mira_log "done: $out/metrics.jsonl" ;;
    2) mira_log "mira_hpc refused the configuration or input (exit 2): see the message above" ;;
    3)
      if [ "$MIRA_GOT_TERM" = 1 ] && [ "$MIRA_GOT_USR1" = 0 ]; then
        # SIGTERM comes from scancel, a preemption or an operator's requeue: Slurm decides whether
        # the job comes back; requeueing here would undo a cancel.
        mira_log "stopped on SIGTERM after a checkpoint (exit 3); not requeueing (Slurm decides)"
      elif [ "$restarts" -ge "${MIRA_MAX_REQUEUES:-100}" ]; then
        mira_log "stopped after a checkpoint (exit 3); restart $restarts reached MIRA_MAX_REQUEUES, not requeueing"
      elif [ -z "${SLURM_JOB_ID:-}" ]; then
        mira_log "stopped after a checkpoint (exit 3); not in a Slurm job, resubmit to resume"
      else
        mira_log "stopped after a checkpoint (exit 3): requeueing job $SLURM_JOB_ID; it resumes from $out/checkpoints/latest"
        # Slurm ends this shell as part of the requeue; nothing after this line is guaranteed to run.
        if scontrol requeue "$SLURM_JOB_ID"; then
          sleep 60 || true
          return 0
        fi
        mira_log "error: scontrol requeue $SLURM_JOB_ID failed; resubmit the job with the same output directory to resume"
      fi
      ;;
    *) mira_log "mira_hpc failed with exit code $rc" ;;
  esac
  return "$rc"
}
