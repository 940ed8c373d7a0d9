#!/usr/bin/env bash
# Issue 21 item 6 and issue 22 item 1 on a lent GPU, one call: the GPU demo run RERUNS times side by
# side with the deterministic GPU settings on (the default) and once with them off
# (PREFALIGN_GPU_DETERMINISTIC=0, for their cost and the nondeterministic spread), each in its own
# folder with its own cores; the full-model DPO variants (bench/gpu_dpo_variants.sh) beside them.
# Then bench/gpu_spread.py derives expected/gpu-demo.yaml from the runs, and `snakemake check`
# runs on every one of them against it. Side by side the runs share the GPU, so their wall times
# are comparable with each other, not with a run alone.
#
# Device (from the repository root, wheels in .whl/ as bench/gpu_env.sh says):
#   bash bench/gpu_reruns.sh [RERUNS] [DEADLINE_S]
# $OUT receives: gpu_reruns.json (spread + checks), gpu-demo.yaml, variants.json, runs.tgz
set -uo pipefail
reruns=${1:-3}; deadline=${2:-540}
source bench/gpu_env.sh || exit 1
out=${OUT:-/tmp/out}; mkdir -p "$out"
t0=$(date +%s)
left() { echo $(( deadline - ($(date +%s) - t0) )); }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
echo "prefalign commit: $(cat COMMIT 2>/dev/null)"
python3 -c "import torch, transformers, trl, importlib.metadata as md; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0), {n: md.version(n) for n in ('transformers', 'trl', 'peft', 'unsloth', 'snakemake')})"
work=/tmp/reruns; rm -rf $work; mkdir -p $work
# The demo runs first (their budget is what is left minus the derivation and the checks).
budget=$(( $(left) - 60 ))
pids=()
for i in $(seq 1 "$reruns"); do
  PREFALIGN_GPU_DETERMINISTIC=1 timeout "$budget" bash bench/gpu_demo_run.sh $work/det$i 3 det$i & pids+=($!)
done
PREFALIGN_GPU_DETERMINISTIC=0 timeout "$budget" bash bench/gpu_demo_run.sh $work/nodet 3 nodet & pids+=($!)
timeout "$budget" bash bench/gpu_dpo_variants.sh $work/variants > $work/variants.log 2>&1 &
vpid=$!
wait "${pids[@]}"
wait $vpid; echo "variants rc=$?"; grep "^variant" $work/variants.log
cp $work/variants/variants.json "$out/variants.json" 2>/dev/null
summaries=$(ls $work/*/summary.json 2>/dev/null)
echo "runs done at $(( $(date +%s) - t0 )) s: $(echo $summaries | wc -w) summaries"
python3 bench/gpu_spread.py derive $summaries --expected-out expected/gpu-demo.yaml --out $work/spread.json \
  --made-by "bash bench/gpu_reruns.sh $reruns $deadline"
cp expected/gpu-demo.yaml "$out/gpu-demo.yaml"
# The check target on every run against the derived file.
checks=()
for run in $work/det* $work/nodet; do
  [ -f $run/summary.json ] && [ -f expected/gpu-demo.yaml ] || continue
  grep -q '"pipeline_rc": 0' $run/summary.json || continue
  timeout $(( $(left) - 10 )) bash bench/gpu_demo_run.sh $run 2 "$(basename $run)" check & checks+=($!)
done
[ ${#checks[@]} -eq 0 ] || wait "${checks[@]}"  # explicit PIDs: a bare `wait` under a caller's `exec > >(tee ...)` never returns
python3 - $work "$out/gpu_reruns.json" "$reruns" "$deadline" <<'PY'
import json, sys, pathlib, re
work, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
report = json.loads((work / "spread.json").read_text()) if (work / "spread.json").exists() else {}
checks = {}
for run in sorted(work.glob("*/check.log")):
    text = run.read_text(errors="replace")
    verdict = [l for l in text.splitlines() if l.startswith("check:")]
    checks[run.parent.name] = {"verdict": verdict[-1] if verdict else None,
                               "passed": bool(verdict) and "results reproduced" in verdict[-1],
                               "out_of_bounds": [l for l in text.splitlines() if re.search(r"\| (OUT|MISSING)", l)]}
report["checks"] = checks
report["command"] = "bash bench/gpu_reruns.sh " + " ".join(sys.argv[3:])
commit = pathlib.Path("COMMIT")
report["prefalign_commit"] = commit.read_text().strip() if commit.exists() else None
dest.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
for name, c in checks.items():
    print(name, c["verdict"])
PY
# What each run says about itself (no models, data or generations): logs, timings, metrics, manifests.
(cd $work && find . \( -name summary.json -o -name '*.log' -o -name '*.tsv' -o -name metrics.json \
   -o -name manifest.json -o -name environment.json -o -name report.md -o -name expected.md -o -name stats.json \
   -o -name '*.rc' -o -name 'variants.json' -o -name 'dpo_vs_sft.json' \) -not -path '*/.snakemake/*' \
   -not -path '*/tensorboard/*' -print0 | tar czf "$out/runs.tgz" --null -T -)
ls -la "$out"; echo "all done at $(( $(date +%s) - t0 )) s"
