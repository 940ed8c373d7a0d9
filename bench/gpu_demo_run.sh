#!/usr/bin/env bash
# One run of the GPU demo (config.yaml + configs/gpu-demo.yaml, profile gpu) in its own folder, on
# a GPU machine with bench/gpu_env.sh sourced; bench/gpu_reruns.sh starts several side by side.
# Writes RUN/pipeline.log and RUN/summary.json (bench/gpu_spread.py summarize). The environment
# passes through to every job (PREFALIGN_GPU_DETERMINISTIC=0 turns the deterministic settings off).
#
#   bash bench/gpu_demo_run.sh RUN_DIR [CORES] [LABEL]
#   bash bench/gpu_demo_run.sh RUN_DIR [CORES] [LABEL] check     # only the check target, after a run
set -uo pipefail
run=$1; cores=${2:-4}; label=${3:-run}; target=${4:-all}
repo=$PWD
mkdir -p "$run"
# The target comes first: Snakemake 9's --quiet takes every word after it as one of its choices
# (`--quiet all check` failed with "invalid choice: 'check'"), so it is last here, with its choice.
smk=(snakemake "$target" -s "$repo/Snakefile" -d "$run" --profile "$repo/profiles/gpu" --cores "$cores"
     --configfile "$repo/config.yaml" "$repo/configs/gpu-demo.yaml" --quiet all)
if [ "$target" = check ]; then
  "${smk[@]}" > "$run/check.log" 2>&1
  rc=$?
  echo "$label check rc=$rc: $(grep -E '^check:' "$run/check.log" | tail -1)"
  exit $rc
fi
start=$(date +%s.%N)
"${smk[@]}" > "$run/pipeline.log" 2>&1
rc=$?
wall=$(python3 -c "import time; print(round(time.time() - $start, 1))")
echo "$label pipeline rc=$rc in $wall s"
python3 bench/gpu_spread.py summarize "$run" --label "$label" --rc "$rc" --wall-s "$wall" \
  --deterministic "${PREFALIGN_GPU_DETERMINISTIC:-1}" --out "$run/summary.json" || echo "$label: summary failed"
exit $rc
