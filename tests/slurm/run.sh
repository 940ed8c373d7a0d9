#!/usr/bin/env bash
# CI step "SLURM end to end": bring up a real single-node SLURM cluster (tests/slurm/cluster.sh),
# run the default workflow through `--profile profiles/slurm`, and check that the artifacts are
# identical to a local run's (PREFALIGN_DEFAULT_RUN, the test session's, when CI kept it) and that
# SLURM received the expected --gpus, partition, memory and time requests
# (tests/slurm/check_slurm_run.py). The daemons are stopped by PID on every exit.
#
#   tests/slurm/run.sh [WORK_DIR]     (as root; `make test-slurm` runs it with the project's venv)
#
# Installs munge and slurm-wlm with apt when they are missing. Only one run at a time per
# machine (the cluster uses /etc/slurm and SLURM's fixed ports): a second one waits for the lock.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${VENV_PYTHON:-.venv/bin/python}  # the project environment (make passes its own)
start=$(date +%s)

[[ $(id -u) == 0 ]] || { echo "tests/slurm/run.sh: must run as root (apt, munged, slurmctld, slurmd)" >&2; exit 1; }
if ! command -v slurmctld > /dev/null || ! command -v munged > /dev/null; then
  echo "tests/slurm/run.sh: installing munge and slurm-wlm"
  # Another apt may hold the dpkg lock on a shared machine: wait for it instead of failing.
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
    munge slurm-wlm > /dev/null
fi

mkdir -p /run/lock
exec 9> /run/lock/prefalign-slurm-test.lock
flock -w 1800 9 || { echo "tests/slurm/run.sh: another SLURM test holds the lock" >&2; exit 1; }

work=${1:-$(mktemp -d /tmp/prefalign-slurm.XXXXXX)}
mkdir -p "$work"
state="$work/cluster"
check=
stop_cluster() {
  status=$?
  if [[ -n $check ]] && kill -0 "$check" 2> /dev/null; then
    kill -TERM "$check"; wait "$check" || true
  fi
  if (( status != 0 )) && [[ -f $state/slurmctld.log ]]; then
    echo "--- slurmctld.log (end)"; tail -15 "$state/slurmctld.log"
    echo "--- slurmd.log (end)"; tail -15 "$state/slurmd.log" 2> /dev/null || true
  fi
  tests/slurm/cluster.sh stop "$state" || status=1
  echo "tests/slurm/run.sh: $( ((status == 0)) && echo passed || echo FAILED) in $(( $(date +%s) - start )) s (work dir $work)"
  exit "$status"
}
trap stop_cluster EXIT
trap 'exit 130' INT TERM

tests/slurm/cluster.sh start "$state"
# In the background and waited for, so that a TERM reaches the trap at once; the check stops its
# Snakemake runs when it is terminated.
# The local run to compare with: the test session's run of the default when CI kept it (.ci/run),
# else check_slurm_run.py makes one beside the SLURM run.
local_run=()
if [[ -n ${PREFALIGN_DEFAULT_RUN:-} && -f $PREFALIGN_DEFAULT_RUN/results/manifest.json ]]; then
  local_run=(--local-run "$PREFALIGN_DEFAULT_RUN")
fi
"$PYTHON" tests/slurm/check_slurm_run.py "$work" "${local_run[@]}" &
check=$!
wait "$check"
