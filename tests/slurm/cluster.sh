#!/usr/bin/env bash
# A throw-away single-node SLURM cluster on 127.0.0.1 for tests/test_slurm.py (pytest -m slurm).
#
#   bash tests/slurm/cluster.sh up DIR     install Debian's slurm-wlm and munge if missing, write
#                                          DIR/slurm.conf, start munged (unless one runs), slurmctld
#                                          and slurmd, wait until the node is idle
#   bash tests/slurm/cluster.sh down DIR   stop the daemons that `up` started (by their pid files)
#
# Clients find the cluster through SLURM_CONF=DIR/slurm.conf and, for job steps, a link
# /etc/slurm/slurm.conf -> DIR/slurm.conf that `down` removes; nothing else is written under /etc
# except by apt-get. No cgroups (proctrack/linuxproc, task/none) and no slurmdbd (so no sacct):
# accounting storage is off, every finished job is appended to DIR/jobcomp.log (jobcomp/filetxt),
# and MinJobAge keeps finished jobs in squeue and `scontrol show job` for an hour, which is what the
# executor plugin then polls (--slurm-status-command squeue).
# The node has the machine's CPUs and memory (slurmd -C) and two stand-in GPUs (GRES backed by
# /dev/null device nodes): enough to check that --gpus requests are scheduled, not to run CUDA.
# Memory requests are enforced (jobacct_gather/linux with OverMemoryKill, PSS every 2 s), so a rule
# whose mem_mb is too small fails the test.
#
# Exit status 77: SLURM cannot be set up here (not root, no apt-get, install failed, a SLURM already
# running); the test skips with the reason printed on the last line.
set -euo pipefail

SKIP=77
skip() { echo "SKIP: $*"; exit "$SKIP"; }

command=${1:-}
dir=${2:-}
[[ $command == up || $command == down ]] && [[ -n $dir ]] || { echo "usage: $0 up|down DIR" >&2; exit 2; }
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
conf=$dir/slurm.conf
export SLURM_CONF=$conf

stop() {  # stop one daemon we started, by the pid in its pid file; wait for it to go
  local pidfile=$1 pid
  [[ -f $pidfile ]] || return 0
  pid=$(cat "$pidfile")
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

if [[ $command == down ]]; then
  # Cancel what is left, then stop slurmd before slurmctld, and munged only if we started it.
  [[ -f $dir/slurmctld.pid ]] && scancel --full --quiet --user root 2>/dev/null || true
  stop "$dir/slurmd.pid"
  stop "$dir/slurmctld.pid"
  stop "$dir/munged.pid"
  [[ -L /etc/slurm/slurm.conf && $(readlink /etc/slurm/slurm.conf) == "$conf" ]] && rm -f /etc/slurm/slurm.conf
  echo "SLURM cluster in $dir stopped"
  exit 0
fi

# ---- up -------------------------------------------------------------------------------------------
[[ $(id -u) -eq 0 ]] || skip "not root: installing and running slurmctld/slurmd needs root"
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
   || ! command -v munged >/dev/null; then
  command -v apt-get >/dev/null || skip "no apt-get to install slurm-wlm and munge"
  echo "installing slurm-wlm and munge with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends slurm-wlm munge; } \
    > "$dir/apt.log" 2>&1 || skip "apt-get install slurm-wlm munge failed (see $dir/apt.log)"
fi
if pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null; then
  skip "a SLURM daemon is already running on this machine; not starting a second cluster"
fi

# munge: the key comes with Debian's package; start munged unless one already runs.
if ! pgrep -x munged >/dev/null; then
  [[ -s /etc/munge/munge.key ]] || mungekey --create --keyfile=/etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key && chmod 600 /etc/munge/munge.key
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
  runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/fsw-test-munged.pid \
    || skip "munged did not start"
  cp /run/munge/fsw-test-munged.pid "$dir/munged.pid"
fi
munge -n | unmunge >/dev/null || skip "munge does not work (munge -n | unmunge)"

mkdir -p "$dir/state" "$dir/spool" "$dir/log"
host=$(hostname -s)
# The machine as slurmd sees it: CPUs, sockets, cores, threads, memory.
hardware=$(slurmd -C | head -1 | sed -E 's/^NodeName=[^ ]+ //; s/ UpTime=.*//')
cat > "$conf" <<EOF
# Written by tests/slurm/cluster.sh: a single-node test cluster on 127.0.0.1.
ClusterName=fswtest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
ReturnToService=2
MinJobAge=3600
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/jobcomp.log
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=2
JobAcctGatherParams=UsePss,OverMemoryKill
GresTypes=gpu
NodeName=$host NodeAddr=127.0.0.1 $hardware Gres=gpu:2 State=UNKNOWN
PartitionName=fsw Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
# Two stand-in GPUs: device nodes with /dev/null's numbers, so that SLURM schedules --gpus against
# them (gres.conf sits beside slurm.conf, where slurmd looks for it).
for i in 0 1; do [[ -c $dir/gpu$i ]] || mknod "$dir/gpu$i" c 1 3; done
printf 'AutoDetect=off\nNodeName=%s Name=gpu File=%s/gpu[0-1]\n' "$host" "$dir" > "$dir/gres.conf"

# Job steps (srun inside a job) read the default /etc/slurm/slurm.conf: the executor plugin's job
# step drops SLURM_* variables, SLURM_CONF among them. Link it to ours; `down` removes the link.
if [[ -e /etc/slurm/slurm.conf || -L /etc/slurm/slurm.conf ]]; then
  [[ $(readlink /etc/slurm/slurm.conf) == "$conf" ]] || skip "/etc/slurm/slurm.conf exists: not replacing a real SLURM configuration"
else
  mkdir -p /etc/slurm && ln -s "$conf" /etc/slurm/slurm.conf
fi

slurmctld -f "$conf" || skip "slurmctld did not start (see $dir/log/slurmctld.log)"
slurmd -f "$conf" -N "$host" || skip "slurmd did not start (see $dir/log/slurmd.log)"

# Wait for the node to register and become idle (at most a minute), failing fast if a daemon died.
state=
deadline=$((SECONDS + 60))
while ((SECONDS < deadline)); do
  for daemon in slurmctld slurmd; do
    if [[ -f $dir/$daemon.pid ]] && ! kill -0 "$(cat "$dir/$daemon.pid")" 2>/dev/null; then
      state="$daemon died"
      break 2
    fi
  done
  state=$(timeout 5 sinfo --noheader --nodes="$host" --format=%t 2>/dev/null | head -1 || true)
  [[ $state == idle ]] && break
  sleep 1
done
if [[ $state != idle ]]; then
  tail -n 20 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
  echo "node $host is not idle: '$state'" >&2
  exit 1
fi
sinfo --Node --long
echo "SLURM cluster up: export SLURM_CONF=$conf"
