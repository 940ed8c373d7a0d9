#!/usr/bin/env bash
# On a lent GPU machine: the default workflow through Snakemake with configs/gpu-demo.yaml
# (backend auto -> Unsloth; FP8 DPO on compute capability >= 9.0), then bench/fp8_quality.py
# on its SFT checkpoint. Copies the report, metrics and figures to $OUT.
set -uo pipefail
source bench/gpu_env.sh || exit 1
out=${OUT:-/tmp/out}; mkdir -p "$out"
run=/tmp/gpurun; rm -rf $run; mkdir -p $run
start=$(date +%s)
snakemake -s "$PWD/Snakefile" -d $run --configfile "$PWD/config.yaml" "$PWD/configs/gpu-demo.yaml" \
  --profile profiles/gpu --quiet > "$out/pipeline.log" 2>&1
echo "pipeline rc=$? in $(( $(date +%s) - start )) s"
tail -3 "$out/pipeline.log"
python3 - "$run" > "$out/pipeline_summary.json" <<'PY'
import json, sys, pathlib
run = pathlib.Path(sys.argv[1]) / "results"
out = {m: json.loads((run / f"eval/{m}/metrics.json").read_text())["metrics"] for m in ("base", "sft", "dpo")}
for step in ("sft", "dpo"):
    data = json.loads((run / f"{step}/metrics.json").read_text())
    out[f"{step}_resolved"], out[f"{step}_train"] = data["resolved"], data["train"]
bench = {p.stem: p.read_text().splitlines()[-1] for p in (run.parent / "benchmarks").rglob("*.tsv")}
out["rule_seconds"] = {k: float(v.split("\t")[0]) for k, v in bench.items()}
print(json.dumps(out, indent=2))
PY
cp $run/results/report/report.html "$out/report_gpu.html" 2>/dev/null
python3 -c "import json; d=json.load(open('$out/pipeline_summary.json')); print({k: d[k] for k in ('sft_resolved','dpo_resolved')}); print({m: (round(d[m]['implicit_reward_accuracy'],3), d[m]['judge_accuracy']) for m in ('base','sft','dpo')})"
python3 bench/fp8_quality.py --run $run --seeds 1234 1 2 --budget-s 330 --out "$out/fp8_quality.json" 2>&1 | tail -30
