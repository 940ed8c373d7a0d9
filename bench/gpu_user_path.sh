#!/usr/bin/env bash
# Issue 22 item 2: a GPU user's path on a lent GPU, as the README gives it: `prefalign init` on an
# hh-rlhf-shaped file (bench/user_path_inputs.py: the committed real lengths), `prefalign config
# check`, then the workflow exactly as init prints it (no profile), with MODEL
#   tiny    the small Llama built offline (init: cpu-demo values, gpu.count 1 on a GPU machine)
#   qwen2   a pretrained-shaped Qwen2 model folder built here (init: preset by GPU memory, LoRA)
# bench/gpu_env.sh sourced; data/hh_rlhf_lengths.json copied from ../shared/data.
# Writes WORK/user_path_MODEL.json: exit statuses, per-rule times (Snakemake benchmark files), the
# device, backend and precision of every GPU-tagged rule, judge accuracies and win rates.
#
#   bash bench/gpu_user_path.sh MODEL WORK [CORES]
set -uo pipefail
model=$1; work=$2; cores=${3:-4}
repo=$PWD
rm -rf "$work"; mkdir -p "$work"
t0=$(date +%s)
python3 bench/user_path_inputs.py data "$work/hh-rlhf/train.jsonl" --lengths data/hh_rlhf_lengths.json \
  --rows "${USER_PATH_ROWS:-2312}" \
  > "$work/inputs.json" 2> "$work/inputs.log"
spec=tiny
if [ "$model" = qwen2 ]; then
  python3 bench/user_path_inputs.py qwen2 "$work/qwen2-shaped" --corpus "$work/hh-rlhf/train.jsonl" \
    >> "$work/inputs.json" 2>> "$work/inputs.log"
  spec="$work/qwen2-shaped"
fi
cd "$work"
prefalign init --model "$spec" --dataset hh-rlhf/train.jsonl --out hh.yaml > init.log 2>&1; init_rc=$?
prefalign config check hh.yaml > config_check.log 2>&1; check_rc=$?
start=$(date +%s)
snakemake -s "$repo/Snakefile" --configfile hh.yaml --directory runs/hh --cores "$cores" > pipeline.log 2>&1
rc=$?
wall=$(( $(date +%s) - start ))
cd "$repo"
echo "user path $model: init rc=$init_rc, config check rc=$check_rc, workflow rc=$rc in $wall s"
python3 - "$work" "$model" "$init_rc" "$check_rc" "$rc" "$wall" <<'PY'
import json, sys, pathlib, csv
work, model = pathlib.Path(sys.argv[1]), sys.argv[2]
init_rc, check_rc, rc, wall = map(int, sys.argv[3:7])
run = work / "runs" / "hh"
res = run / "results"
def read(rel):
    p = res / rel
    return json.loads(p.read_text()) if p.exists() else None
out = {"model": model, "init_rc": init_rc, "config_check_rc": check_rc, "workflow_rc": rc, "workflow_wall_s": wall,
       "inputs": [json.loads(l) for l in (work / "inputs.json").read_text().splitlines() if l.strip()],
       "config": (work / "hh.yaml").read_text() if (work / "hh.yaml").exists() else None}
seconds = {}
for p in sorted((run / "benchmarks").rglob("*.tsv")):
    rows = list(csv.DictReader(p.open(), delimiter="\t"))
    if rows:
        seconds[str(p.relative_to(run / "benchmarks")).removesuffix(".tsv")] = float(rows[-1]["s"])
out["rule_seconds"] = seconds
gpu_rules = {"train_sft": "sft/metrics.json", "train_dpo": "dpo/metrics.json",
             "train_reward_model": "reward_model/metrics.json", "reference_logps": "reference/logps.json"}
out["gpu_rules"] = {}
for rule, rel in gpu_rules.items():
    d = read(rel)
    if d is not None:
        r = d.get("resolved", {})
        out["gpu_rules"][rule] = {k: r.get(k) for k in ("device", "backend", "precision", "gpu_name", "why")}
        if "train" in d:
            out["gpu_rules"][rule]["train"] = {k: d["train"].get(k) for k in
                                               ("steps", "examples", "first_loss", "loss", "rewards/accuracies",
                                                "batching", "reference") if k in d["train"]}
for m in ("base", "sft", "dpo"):
    e = read(f"eval/{m}/metrics.json")
    env = read(f"eval/{m}/environment.json")
    if e:
        # A task verifier gives judge accuracies; a reward-model judge (hh-rlhf data) gives mean scores.
        keep = ("judge_accuracy", "sampled_judge_accuracy", "judge_score_mean", "sampled_judge_score_mean",
                "implicit_reward_accuracy", "kl_mean", "judged_prompts", "reward_margin_mean")
        out.setdefault("eval", {})[m] = {k: e["metrics"].get(k) for k in keep if k in e["metrics"]}
        out["eval"][m]["intervals"] = {k: e.get("intervals", {}).get(k) for k in (
            "judge_accuracy", "sampled_judge_accuracy", "judge_score_mean", "sampled_judge_score_mean")
            if e.get("intervals", {}).get(k)}
        out["eval"][m]["gpu"] = (env or {}).get("hardware", {}).get("gpu", {}).get("name")
j = read("eval/judge.json")
if j:
    out["judge"] = {"metrics": j.get("metrics"), "intervals": j.get("intervals")}
c = read("eval/compare/dpo_vs_sft.json")
if c:
    out["win_rate"] = {d: {k: c[d].get(k) for k in ("win_rate", "wins", "ties", "losses", "interval")}
                       for d in ("greedy", "sampled") if c.get(d)}
log = (work / "pipeline.log").read_text(errors="replace").splitlines()
out["pipeline_log_tail"] = log[-15:] if rc else log[-3:]
(work / f"user_path_{model}.json").write_text(json.dumps(out, indent=1) + "\n")
print(json.dumps({k: out.get(k) for k in ("gpu_rules", "win_rate")})[:1500])
PY
