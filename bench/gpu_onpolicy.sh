#!/usr/bin/env bash
# On a lent GPU machine: the default workflow through Snakemake with configs/gpu-demo.yaml and
# profile gpu (on-policy pairs sampled on the GPU, full-model DPO, backend and precision auto),
# then the claims of expected/default.yaml (`snakemake check`). Writes the summary JSON, the
# pipeline log and the report to $OUT. If the DPO step fails with the Unsloth backend, the run
# is resumed once with dpo.backend trl (recorded in the summary as `dpo_backend_fallback`).
#
#   bash bench/gpu_onpolicy.sh          (on the device, from the repository root)
set -uo pipefail
source bench/gpu_env.sh || exit 1
out=${OUT:-/tmp/out}; mkdir -p "$out"
run=/tmp/gpurun; rm -rf $run; mkdir -p $run
# `--quiet all`: a bare --quiet would take the next word (a target such as `check`) as its choice.
smk=(snakemake -s "$PWD/Snakefile" -d $run --profile profiles/gpu --quiet all)
start=$(date +%s)
"${smk[@]}" --configfile "$PWD/config.yaml" "$PWD/configs/gpu-demo.yaml" > "$out/pipeline.log" 2>&1
rc=$?
fallback=false
if [ $rc -ne 0 ] && grep -q "train_dpo" "$out/pipeline.log"; then
  fallback=true
  cp $run/logs/train_dpo.log "$out/train_dpo_unsloth.log" 2>/dev/null
  printf 'dpo:\n  backend: trl\n' > /tmp/trl.yaml
  "${smk[@]}" --configfile "$PWD/config.yaml" "$PWD/configs/gpu-demo.yaml" /tmp/trl.yaml >> "$out/pipeline.log" 2>&1
  rc=$?
fi
wall=$(( $(date +%s) - start ))
echo "pipeline rc=$rc in $wall s (fallback $fallback)"
tail -3 "$out/pipeline.log"
"${smk[@]}" check --configfile "$PWD/config.yaml" "$PWD/configs/gpu-demo.yaml" > "$out/check.log" 2>&1
echo "check rc=$?"; grep -E "^\| (dpo|sft|dpo_vs_sft)\.|check:" "$out/check.log"
python3 - "$run" "$rc" "$wall" "$fallback" > "$out/gpu_onpolicy_summary.json" <<'PY'
import json, sys, pathlib, datetime
run, rc, wall, fallback = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "true"
res = run / "results"
def read(p):
    p = res / p
    return json.loads(p.read_text()) if p.exists() else None
out = {"command": "bash bench/gpu_onpolicy.sh (snakemake --profile profiles/gpu --configfile config.yaml "
                  "configs/gpu-demo.yaml; then the check target)",
       "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
       "pipeline_rc": rc, "pipeline_wall_s": wall, "dpo_backend_fallback": fallback}
for m in ("sft", "dpo"):
    e = read(f"eval/{m}/metrics.json")
    if e:
        out[m] = {k: e["metrics"].get(k) for k in ("judge_accuracy", "sampled_judge_accuracy", "implicit_reward_accuracy",
                                                   "kl_mean", "judged_prompts")}
        out[m]["intervals"] = {k: e["intervals"].get(k) for k in ("judge_accuracy", "sampled_judge_accuracy")}
c = read("eval/compare/dpo_vs_sft.json")
if c:
    out["win_rate"] = {d: {k: c[d][k] for k in ("win_rate", "wins", "ties", "losses", "interval")}
                       for d in ("greedy", "sampled")}
s = read("onpolicy/round-1/stats.json")
if s:
    out["onpolicy"] = {"prompts": s["prompts"], "sample_score_mean": s["sample_score_mean"]}
for step in ("sft", "dpo"):
    d = read(f"{step}/metrics.json")
    if d:
        out[f"{step}_resolved"], out[f"{step}_train"] = d["resolved"], d["train"]
bench = {str(p.relative_to(run / "benchmarks")): p.read_text().splitlines()[-1]
         for p in (run / "benchmarks").rglob("*.tsv")}
out["rule_seconds"] = {k: float(v.split("\t")[0]) for k, v in bench.items()}
print(json.dumps(out, indent=2))
PY
cp $run/results/report/report.md "$out/report_gpu.md" 2>/dev/null
cp $run/logs/train_dpo.log "$out/train_dpo.log" 2>/dev/null
python3 -c "import json; d=json.load(open('$out/gpu_onpolicy_summary.json')); print({k: d.get(k) for k in ('win_rate', 'sft', 'dpo')})"
