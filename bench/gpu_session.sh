#!/usr/bin/env bash
# One device call for issues 21 (item 6) and 22 (items 1-2): the GPU demo reruns with the
# full-model DPO variants (bench/gpu_reruns.sh) and the user's path for both models
# (bench/gpu_user_paths.sh, ROWS hh-rlhf-shaped rows), side by side on one GPU, each within DEADLINE_S.
# Everything they print goes to $OUT/log.txt, prefixed with its part.
#
#   bash bench/gpu_session.sh [DEADLINE_S] [ROWS]
set -uo pipefail
deadline=${1:-550}; rows=${2:-2312}
out=${OUT:-/tmp/out}; mkdir -p "$out"
exec > >(tee "$out/log.txt") 2>&1
t0=$(date +%s)
source bench/gpu_env.sh || exit 1
echo "installed in $(( $(date +%s) - t0 )) s"
USER_PATH_ROWS=$rows bash bench/gpu_user_paths.sh $(( deadline - $(date +%s) + t0 )) > /tmp/user_paths.out 2>&1 &
users=$!
bash bench/gpu_reruns.sh 3 $(( deadline - $(date +%s) + t0 )) > /tmp/reruns.out 2>&1 &
reruns=$!
# Explicit PIDs: a bare `wait` also waits for the `tee` of `exec > >(tee ...)` above and never returns
# (bash 5.2; it cost a whole device call on 2026-12-06).
wait $users $reruns
sed 's/^/[user] /' /tmp/user_paths.out; sed 's/^/[reruns] /' /tmp/reruns.out
echo "session done at $(( $(date +%s) - t0 )) s"; ls -la "$out"
