#!/usr/bin/env bash
# A throw-away single-node Slurm cluster on localhost, for the Slurm tests (tests/slurm) and for
# trying the job scripts (jobs/) on a workstation. Everything lives under one state directory:
# configuration, a fresh MUNGE key, daemon logs, spool and state. Nothing in /etc is touched and no
# network beyond 127.0.0.1 is used. The daemons run as root (needs root, as in CI).
#
#   scripts/slurm-local.sh start DIR [--owner PID]  # start munged, slurmctld, slurmd; wait until
#                                            # the node is idle; with --owner, a watchdog stops the
#                                            # cluster when process PID is gone (e.g. a killed test)
#   scripts/slurm-local.sh stop DIR          # cancel jobs, stop exactly the daemons 'start' started (by PID)
#   scripts/slurm-local.sh run DIR -- CMD... # start, run CMD with SLURM_CONF set, stop (also on failure)
#   scripts/slurm-local.sh env DIR           # print 'export SLURM_CONF=...' for the client commands
#
# DIR must not exist or be empty for 'start'. Client commands (sbatch, squeue, scontrol...) find the
# cluster through SLURM_CONF=DIR/slurm.conf ('run' and 'env' set it).
#
# The node has the machine's real CPUs and memory (from `slurmd -C`); CPUs are the consumable
# resource (select/cons_tres, CR_CPU), so jobs that ask for more tasks than CPUs need --overcommit.
# MPI: MpiDefault=pmix (Slurm's PMIx plugin works with Debian's OpenMPI 4.1, which is built against
# the same external PMIx), so `srun ./mira_hpc` starts MPI ranks directly; `mpirun` inside an
# allocation works as well (OpenMPI reads the allocation from Slurm's environment).
# Process tracking is proctrack/linuxproc (no cgroups needed), CPU binding task/affinity.
# KillWait is 10 s here (Slurm's default is 30 s): the time between SIGTERM and SIGKILL when a job
# is cancelled, requeued or preempted.
#
# Stopping never kills by name: 'stop' reads the PIDs that 'start' recorded in DIR/pids and checks
# that each PID still runs a command line naming DIR before it sends SIGTERM (SIGKILL after 20 s).
set -euo pipefail

die() { echo "slurm-local.sh: $*" >&2; exit 1; }
usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

# free_port: a TCP port on 127.0.0.1 that nothing listens on (connect refused).
free_port() {
  local port tries=0
  while [ $tries -lt 200 ]; do
    port=$(( 20000 + (RANDOM % 20000) ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"; return 0
    fi
    tries=$((tries + 1))
  done
  die "no free TCP port found on 127.0.0.1"
}

# owned PID DIR: true when PID is alive and its command line names DIR (so it is ours, not a
# recycled PID).
owned() {
  [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "$2"
}

# launch NAME CMD...: start a daemon in the foreground mode of its own, in the background, with all
# of its file descriptors on files (so a calling ctest never waits on a pipe it holds), and record
# its PID.
launch() {
  local name=$1; shift
  "$@" </dev/null >"$dir/log/$name.out" 2>&1 &
  echo "$name $!" >>"$dir/pids"
}

print_logs() {
  local f
  for f in "$dir"/log/*; do
    [ -f "$f" ] || continue
    echo "---- $f (last 20 lines)" >&2
    tail -n 20 "$f" >&2
  done
}

cmd_start() {
  [ "$(id -u)" -eq 0 ] || die "start needs root (slurmd runs jobs as their users)"
  for tool in munged slurmctld slurmd sinfo; do
    command -v "$tool" >/dev/null || die "'$tool' not found; install slurmctld slurmd slurm-client munge (scripts/setup.sh does)"
  done
  mkdir -p "$dir"
  [ -z "$(ls -A "$dir")" ] || die "'$dir' is not empty (stop the cluster there first, or pick a new directory)"
  dir=$(cd "$dir" && pwd -P)
  chmod 0755 "$dir"
  mkdir -p "$dir/log" "$dir/state" "$dir/spool" "$dir/munge"
  chmod 0700 "$dir/munge"
  : >"$dir/pids"

  # MUNGE: a fresh key for this cluster only, our own socket.
  dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chmod 0400 "$dir/munge/munge.key"
  launch munged munged --foreground --force --socket="$dir/munge/munge.socket" \
    --key-file="$dir/munge/munge.key" --pid-file="$dir/munge/munged.pid" \
    --seed-file="$dir/munge/munged.seed" --log-file="$dir/log/munged.log"
  local i
  for i in $(seq 100); do
    [ -S "$dir/munge/munge.socket" ] && break
    sleep 0.1
  done
  [ -S "$dir/munge/munge.socket" ] || { print_logs; die "munged did not start"; }

  # The node as slurmd sees it: real CPUs, sockets, cores, threads and memory.
  local host node_hw ctld_port slurmd_port
  host=$(hostname -s)
  node_hw=$(slurmd -C | head -n 1 | sed -e 's/^NodeName=[^ ]* //')
  ctld_port=$(free_port)
  slurmd_port=$(free_port)
  while [ "$slurmd_port" = "$ctld_port" ]; do slurmd_port=$(free_port); done
  : >"$dir/plugstack.conf"   # no SPANK plugins from /etc
  cat >"$dir/slurm.conf" <<EOF
# Written by scripts/slurm-local.sh: a one-node cluster on localhost under $dir
ClusterName=miralocal
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
PlugStackConfig=$dir/plugstack.conf
MpiDefault=pmix
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobRequeue=1
ReturnToService=2
KillWait=10
MinJobAge=600
NodeName=$host NodeAddr=127.0.0.1 $node_hw State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  export SLURM_CONF="$dir/slurm.conf"
  launch slurmctld slurmctld -D -i -f "$dir/slurm.conf"
  launch slurmd slurmd -D -f "$dir/slurm.conf" -N "$host"

  # Wait until the node is idle (the controller answers and slurmd has registered).
  local state=""
  for i in $(seq 300); do
    state=$(sinfo -h -n "$host" -o %t 2>/dev/null || true)
    [ "$state" = idle ] && break
    sleep 0.2
  done
  if [ "$state" != idle ]; then
    print_logs
    cmd_stop || true
    die "node '$host' did not become idle within 60 s (state: '${state:-no answer}')"
  fi
  if [ -n "$owner" ]; then
    launch watchdog bash "$0" watch "$dir" "$owner"
  fi
  echo "slurm-local.sh: cluster up under $dir (node $host: $node_hw); export SLURM_CONF=$dir/slurm.conf" >&2
}

# cmd_watch OWNER: stop the cluster once process OWNER has ended (polls once a second).
cmd_watch() {
  while kill -0 "$1" 2>/dev/null; do sleep 1; done
  echo "slurm-local.sh: owner process $1 is gone; stopping the cluster" >&2
  cmd_stop
}

cmd_stop() {
  [ -f "$dir/pids" ] || die "'$dir' holds no cluster started by this script (no $dir/pids)"
  dir=$(cd "$dir" && pwd -P)
  export SLURM_CONF="$dir/slurm.conf"
  # Jobs first, so that slurmd's step daemons and the job's processes end through Slurm.
  local i name pid
  if scancel --full --quiet --user=root 2>/dev/null; then
    for i in $(seq 150); do
      [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
  # Then the daemons, in reverse start order, only if the PID is still one of ours.
  local pids=()
  while read -r name pid; do pids=("$name:$pid" "${pids[@]}"); done <"$dir/pids"
  for entry in "${pids[@]}"; do
    name=${entry%%:*} pid=${entry#*:}
    [ "$pid" != "$$" ] || continue   # the watchdog stopping the cluster
    owned "$pid" "$dir" || continue
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 200); do
      owned "$pid" "$dir" || break
      sleep 0.1
    done
    if owned "$pid" "$dir"; then
      echo "slurm-local.sh: $name (PID $pid) ignored SIGTERM for 20 s; sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  rm -f "$dir/pids"
  echo "slurm-local.sh: cluster under $dir stopped" >&2
}

[ $# -ge 2 ] || usage
action=$1 dir=$2
shift 2
case $action in
  start)
    owner=""
    if [ "${1:-}" = --owner ]; then
      if [ -z "${2:-}" ] || ! kill -0 "$2" 2>/dev/null; then die "--owner: '${2:-}' is not a running process"; fi
      owner=$2
    fi
    cmd_start ;;
  stop) cmd_stop ;;
  watch) cmd_watch "${1:?watch needs the owner PID}" ;;
  env) echo "export SLURM_CONF=$(cd "$dir" && pwd -P)/slurm.conf" ;;
  run)
    [ "${1:-}" = -- ] && shift
    [ $# -ge 1 ] || usage
    owner=$$
    cmd_start
    trap 'cmd_stop' EXIT
    set +e
    "$@"
    rc=$?
    set -e
    exit "$rc"
    ;;
  *) usage ;;
esac
