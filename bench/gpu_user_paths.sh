#!/usr/bin/env bash
# Issue 22 item 2 on a lent GPU, one call: bench/gpu_user_path.sh for the tiny model and for the
# pretrained-shaped Qwen2 model, side by side (each with its own cores), within DEADLINE_S.
# $OUT: user_path_tiny.json, user_path_qwen2.json, user_paths.tgz (logs, timings, metrics).
#
#   bash bench/gpu_user_paths.sh [DEADLINE_S]
set -uo pipefail
deadline=${1:-540}
source bench/gpu_env.sh || exit 1
out=${OUT:-/tmp/out}; mkdir -p "$out"
t0=$(date +%s)
echo "prefalign commit: $(cat COMMIT 2>/dev/null)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
work=/tmp/userpaths; rm -rf $work; mkdir -p $work
pids=()
for model in tiny qwen2; do
  timeout $(( deadline - 25 )) bash bench/gpu_user_path.sh $model $work/$model 4 & pids+=($!)
done
wait "${pids[@]}"  # explicit PIDs (see bench/gpu_session.sh)
for model in tiny qwen2; do
  cp $work/$model/user_path_$model.json "$out/" 2>/dev/null || echo "user path $model: no JSON (timed out?)"
  tail -5 $work/$model/pipeline.log 2>/dev/null
done
(cd $work && find . \( -name '*.log' -o -name '*.tsv' -o -name metrics.json -o -name environment.json \
   -o -name 'hh.yaml' -o -name stats.json -o -name judge.json -o -name 'dpo_vs_sft.json' -o -name 'inputs.json' \
   -o -name report.md \) -not -path '*/.snakemake/*' -not -path '*/tensorboard/*' -print0 \
   | tar czf "$out/user_paths.tgz" --null -T -)
echo "user paths done at $(( $(date +%s) - t0 )) s"
