#!/usr/bin/env bash
# Issue 22 items 3-4 on a lent GPU: DPO throughput on real hh-rlhf lengths and on fixed 512-token
# sequences (bench/dpo_throughput.py: 1.104 B Llama, LoRA r16, 32 pairs per optimizer step), the
# reference pass counted for cached setups, MFU by the stated convention against spec and measured
# peak, the baselines (TRL standalone with and without activation checkpointing, micro-batch 16 and
# 32; Unsloth standalone 16 and 32), then bench/dpo_floors.py. Essentials first; the rest as far as
# the deadline allows. bench/gpu_env.sh sourced by this script; data/hh_rlhf_lengths.json present.
#
#   bash bench/gpu_throughput.sh [DEADLINE_S] [RUNS]
# $OUT: log.txt, dpo_real_lengths.json, dpo_fixed512.json, dpo_real_lengths_extra.json, floors.json
set -uo pipefail
deadline=${1:-540}; runs=${2:-3}
source bench/gpu_env.sh || exit 1
out=${OUT:-/tmp/out}; mkdir -p "$out"
exec > >(tee -a "$out/log.txt") 2>&1
t0=$(date +%s)
left() { echo $(( deadline - ($(date +%s) - t0) )); }
quiet() { grep -vE "it/s\]|s/it\]|Warning|warn|^\{'|^resolved:|^settings:|Tokeniz|Dropping|Extracting|Applying|^ *$"; }
lengths=data/hh_rlhf_lengths.json; model=/tmp/bench-model; raw=/tmp/bench-raw; mkdir -p $raw
bench() {  # name lengths setups [extra args]
  local name=$1 kind=$2 setups=$3; shift 3
  [ "$(left)" -gt 60 ] || { echo "skipped $name: no time left"; return; }
  timeout "$(( $(left) - 15 ))" python3 bench/dpo_throughput.py --lengths $kind --lengths-file "$lengths" \
    --model $model --raw-dir $raw --out "$out/$name.json" --warmup 2 --steps 5 --runs "$runs" --setups "$setups" \
    --timeout "$(( $(left) - 20 ))" "$@" 2>&1 | quiet
  echo "$name rc=${PIPESTATUS[0]} at $(( $(date +%s) - t0 )) s"
}
# PREFALIGN_GPU_DETERMINISTIC is left at its default (on) for prefalign's setups: what a user runs.
bench dpo_real_lengths hh-rlhf "unsloth-bf16-packed,unsloth-bf16-packed-cached,trl-standalone,unsloth-standalone"
bench dpo_fixed512 fixed "unsloth-bf16-packed,unsloth-bf16-packed-cached" --seq 512
bench dpo_real_lengths_extra hh-rlhf "trl-standalone-noac,trl-standalone@16,unsloth-standalone@16,trl-bf16-packed"
python3 bench/dpo_floors.py --real "$out/dpo_real_lengths.json" --real-extra "$out/dpo_real_lengths_extra.json" \
  --fixed "$out/dpo_fixed512.json" --out "$out/floors.json"
echo "all done at $(( $(date +%s) - t0 )) s"
