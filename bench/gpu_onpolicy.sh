#!/usr/bin/env bash
# On a lent GPU machine: one run of the GPU demo (config.yaml + configs/gpu-demo.yaml, profile gpu:
# on-policy pairs sampled on the GPU, full-model DPO, backend and precision auto, i.e. Unsloth),
# then its check target against expected/gpu-demo.yaml. The run and the check are
# bench/gpu_demo_run.sh's (the target named before the options: Snakemake 9's --quiet took
# `check` for one of its choices here before); several runs side by side and the bounds:
# bench/gpu_reruns.sh. No fallback to TRL: a failing Unsloth step fails the run.
#
#   bash bench/gpu_onpolicy.sh          (on the device, from the repository root)
set -uo pipefail
source bench/gpu_env.sh || exit 1
out=${OUT:-/tmp/out}; mkdir -p "$out"
run=/tmp/gpurun; rm -rf $run
bash bench/gpu_demo_run.sh $run 16 gpu-demo; rc=$?
bash bench/gpu_demo_run.sh $run 16 gpu-demo check; check=$?
cp $run/summary.json "$out/gpu_onpolicy_summary.json" 2>/dev/null
cp $run/pipeline.log $run/check.log "$out/" 2>/dev/null
cp $run/results/report/report.md "$out/report_gpu.md" 2>/dev/null
echo "pipeline rc=$rc, check rc=$check"
exit $(( rc || check ))
