#!/usr/bin/env bash
# A real single-node SLURM cluster for tests: Debian slurm-wlm 22.05 + munge, one node with a
# fake GPU (gres gpu:fake:1) and two partitions, cpu (the default) and gpu.
#
#   cluster.sh start STATE_DIR   write the config, start munged, slurmctld and slurmd (as root),
#                                wait until the node is idle; PIDs go to STATE_DIR/*.pid
#   cluster.sh stop STATE_DIR    cancel what is left, stop the daemons by PID, restore the
#                                /etc/slurm files that were there before
#
# Needs root and the packages munge and slurm-wlm (tests/slurm/run.sh installs them). Traps it
# avoids (each met on a real single-node SLURM 22.05; docs/usage.md, "Running on a cluster"):
# - slurm.conf must be /etc/slurm/slurm.conf: the plugin's in-job step drops SLURM_CONF.
# - a GPU in gres.conf without File= drains the node; /dev/null stands in for the device.
# - RealMemory above what `slurmd -C` detects makes the node invalid, unless the node's
#   configuration is declared authoritative (SlurmdParameters=config_overrides, used here so
#   the profile's memory requests fit on small CI machines: nothing enforces memory here,
#   TaskPlugin is task/none).
# - without an accounting database, job records live only in slurmctld for MinJobAge seconds:
#   3600 keeps every job of a test run readable with `scontrol show job`.
set -euo pipefail

SLURM_ETC=/etc/slurm
MIN_MEMORY_MB=65536  # >= the profile's largest request (train_*: 32000 MB, doubled on retry)

die() { echo "cluster.sh: $*" >&2; exit 1; }

detected() {  # detected KEY: a value from `slurmd -C` (CPUs, RealMemory, ...)
  slurmd -C | tr ' ' '\n' | sed -n "s/^$1=//p" | head -1
}

write_config() {
  local state=$1 host cpus memory
  host=$(hostname -s)
  cpus=$(detected CPUs)
  memory=$(detected RealMemory)
  if (( memory < MIN_MEMORY_MB )); then memory=$MIN_MEMORY_MB; fi
  for name in slurm.conf gres.conf; do
    if [[ -e $SLURM_ETC/$name ]] && ! grep -q '^# prefalign test cluster' "$SLURM_ETC/$name"; then
      cp -p "$SLURM_ETC/$name" "$state/$name.saved"
    fi
  done
  mkdir -p "$SLURM_ETC" "$state/spool" "$state/ctld"
  cat > "$SLURM_ETC/slurm.conf" <<EOF
# prefalign test cluster ($state), written by tests/slurm/cluster.sh; removed when it stops
ClusterName=prefalign-ci
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.daemon.pid
SlurmdPidFile=$state/slurmd.daemon.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
MpiDefault=none
ReturnToService=2
MinJobAge=3600
MailProg=/bin/true
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
GresTypes=gpu
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory Gres=gpu:fake:1 State=UNKNOWN
PartitionName=cpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=ALL MaxTime=INFINITE State=UP
EOF
  cat > "$SLURM_ETC/gres.conf" <<EOF
# prefalign test cluster ($state), written by tests/slurm/cluster.sh; removed when it stops
NodeName=$host Name=gpu Type=fake File=/dev/null
EOF
}

start_daemon() {  # start_daemon NAME COMMAND...: run in the background, PID to $state/NAME.pid
  local name=$1; shift
  "$@" > "$state/$name.out" 2>&1 &
  echo $! > "$state/$name.pid"
}

wait_for() {  # wait_for SECONDS WHAT COMMAND...
  local seconds=$1 what=$2; shift 2
  for _ in $(seq $(( seconds * 5 ))); do
    "$@" > /dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}

start() {
  local state=$1
  [[ $(id -u) == 0 ]] || die "must run as root (it starts slurmctld, slurmd and munged)"
  for tool in munged slurmctld slurmd sbatch scontrol; do
    command -v "$tool" > /dev/null || die "$tool not found: apt-get install munge slurm-wlm"
  done
  if command -v pgrep > /dev/null && { pgrep -x slurmctld > /dev/null || pgrep -x slurmd > /dev/null; }; then
    die "a slurmctld or slurmd is already running on this machine; stop it first"
  fi
  mkdir -p "$state"
  state=$(cd "$state" && pwd)
  write_config "$state"

  if munge -n 2> /dev/null | unmunge > /dev/null 2>&1; then
    echo "cluster.sh: using the munged that is already running"
  else
    mkdir -p /run/munge && chown munge: /run/munge
    [[ -s /etc/munge/munge.key ]] || die "/etc/munge/munge.key is missing (reinstall munge)"
    start_daemon munged setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged --foreground
    wait_for 10 munge sh -c 'munge -n | unmunge' || die "munged did not start: $(cat "$state/munged.out")"
  fi
  start_daemon slurmctld slurmctld -D -i
  wait_for 20 slurmctld scontrol ping || die "slurmctld did not answer: $(tail -20 "$state/slurmctld.log")"
  start_daemon slurmd slurmd -D
  local host
  host=$(hostname -s)
  wait_for 30 "an idle node" sh -c "sinfo -h -n $host -o %T | grep -qx idle" \
    || die "node $host not idle: $(sinfo -N -h -o '%N %T %E' 2>&1); $(tail -20 "$state/slurmd.log")"
  echo "cluster.sh: SLURM up on $host ($(detected CPUs) CPUs, gres gpu:fake:1, partitions cpu and gpu), state in $state"
}

stop() {
  local state=$1 name pid
  [[ -d $state ]] || die "no state directory $state"
  # Jobs first, so no slurmstepd outlives its slurmd.
  if [[ -s $state/slurmctld.pid ]] && kill -0 "$(cat "$state/slurmctld.pid")" 2> /dev/null; then
    local jobs
    jobs=$(squeue -h -o %i 2> /dev/null | tr '\n' ' ')
    if [[ -n ${jobs// /} ]]; then
      # shellcheck disable=SC2086  # one argument per job id
      scancel $jobs 2> /dev/null || true
      wait_for 20 "no jobs" sh -c '[ -z "$(squeue -h -o %i)" ]' || true
    fi
  fi
  for name in slurmd slurmctld munged; do
    [[ -s $state/$name.pid ]] || continue
    pid=$(cat "$state/$name.pid")
    if kill -0 "$pid" 2> /dev/null; then
      kill "$pid"
      wait_for 15 "$name to stop" sh -c "! kill -0 $pid" || kill -9 "$pid" 2> /dev/null || true
    fi
    rm -f "$state/$name.pid"
  done
  for name in slurm.conf gres.conf; do
    if [[ -e $state/$name.saved ]]; then
      mv "$state/$name.saved" "$SLURM_ETC/$name"
    elif grep -qs '^# prefalign test cluster' "$SLURM_ETC/$name"; then
      rm -f "$SLURM_ETC/$name"
    fi
  done
  echo "cluster.sh: SLURM stopped"
}

case ${1:-} in
  start | stop) [[ -n ${2:-} ]] || die "usage: $0 start|stop STATE_DIR"; "$1" "$2" ;;
  *) die "usage: $0 start|stop STATE_DIR" ;;
esac
