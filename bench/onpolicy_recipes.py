"""Which DPO recipe moves the embedded default's answers? Offline vs on-policy pairs, side by side.

Takes a finished run of the default workflow (its SFT checkpoint, data split and SFT
evaluation), and for each recipe and seed: builds the DPO training pairs (the offline train
split, on-policy pairs sampled from the policy and judged by the task verifier
(prefalign.onpolicy), or a mix), trains DPO (prefalign.train.dpo, in this process), evaluates
the result on the held-out split and compares it with SFT (prefalign.evaluation), as the
workflow does. Rounds > 1 sample again from the previous round's DPO model, which is also
that round's start and reference (iterative DPO).

Prints one line per run and writes every figure (pair counts, times, judge accuracy and win
rates with their 95% intervals) to the JSON output.

    python bench/onpolicy_recipes.py --run /tmp/default-run --recipes "offline onpolicy-k4+dpo.use_lora=false" \
        --seeds 1234 1 2 --out bench/results/onpolicy_recipes.json

A recipe is a name from RECIPES, optionally with `+key=value,...` overrides (JSON values;
`dpo.<key>` for DPO settings), e.g. `onpolicy-k4+dpo.use_lora=false,dpo.beta=0.3`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI sets it (prefalign.cli), before torch loads

# Every recipe starts from the former default's DPO (the cpu-demo preset's values with LoRA r16,
# beta 0.1, the reference scored on the fly: the runs in bench/results/onpolicy_recipes.json
# were made from it) and turns some knobs. `pairs`: offline | onpolicy | mixed | gold
# (on-policy, and prompts with no right sample pair the data's chosen reply with the worst
# sample); `offline_share` for mixed. `default` is the embedded default's recipe now.
FORMER_DPO = {"use_lora": True, "beta": 0.1, "precompute_ref_log_probs": False}
BASE = {"pairs": "offline", "samples_per_prompt": 4, "temperature": 1.0, "top_p": 1.0, "max_prompts": None,
        "offline_share": 0.5, "rounds": 1, "dpo": FORMER_DPO}
RECIPES = {
    "default": {"pairs": "onpolicy", "dpo": {"use_lora": False, "beta": 0.3, "precompute_ref_log_probs": True}},
    "offline": {},
    "offline-100": {"dpo": {"max_steps": 100}},
    "onpolicy-k4": {"pairs": "onpolicy"},
    "onpolicy-k4-100": {"pairs": "onpolicy", "dpo": {"max_steps": 100}},
    "onpolicy-k4-sigmoid": {"pairs": "onpolicy", "dpo": {"loss_type": ["sigmoid"], "loss_weights": None}},
    "onpolicy-k8": {"pairs": "onpolicy", "samples_per_prompt": 8},
    "mixed-k4": {"pairs": "mixed"},
    "gold-k4": {"pairs": "gold"},
}


def recipe(name: str) -> dict:
    """A named recipe, or `base+key=value,...` overrides as JSON values (dpo.<key> for DPO settings)."""
    spec = json.loads(json.dumps(BASE))
    head, _, extra = name.partition("+")
    if head not in RECIPES:
        raise SystemExit(f"unknown recipe {head!r}; known: {', '.join(RECIPES)}")
    for key, value in RECIPES[head].items():
        spec[key] = {**spec["dpo"], **value} if key == "dpo" else value
    for item in filter(None, re.split(r",(?![^\[]*\])", extra)):  # commas outside [...] separate items
        key, _, value = item.partition("=")
        parsed = json.loads(value) if value[:1] in "[{0123456789-.ntf" else value
        if key.startswith("dpo."):
            spec["dpo"][key[4:]] = parsed
        else:
            spec[key] = parsed
    return spec


def default_settings():
    from prefalign.config.schema import load_config, step_settings

    return step_settings(load_config(REPO / "config.yaml"))


def sample_pairs(policy: Path, train: Path, spec: dict, round_: int, seed: int):
    """(pairs, stats, seconds) of one round, through prefalign.onpolicy as the workflow's step makes them."""
    from prefalign.onpolicy import build, sample

    settings = sample.OnPolicySettings(samples_per_prompt=spec["samples_per_prompt"], temperature=spec["temperature"],
                                       top_p=spec["top_p"], max_prompts=spec["max_prompts"], round=round_, seed=seed,
                                       greedy=spec.get("greedy", False), batch_size=spec.get("batch_size", 64))
    start = time.perf_counter()
    judged, judge = sample.run(policy, train, settings)
    seconds = time.perf_counter() - start
    pairs, ledger, _, stats = build.build(judged, settings, judge.describe(), str(policy))
    if spec["pairs"] == "gold":
        gold = gold_pairs(judged, ledger)
        pairs, stats["gold_pairs"] = pairs + gold, len(gold)
    return pairs, stats, seconds


def gold_pairs(judged, ledger) -> list[dict]:
    """Prompts with no right sample: the data's chosen reply against the policy's first (wrong) sample."""
    from prefalign.records import make_record

    wrong = {row["id"] for row in ledger if row["reason"] == "all_wrong"}
    return [make_record(f"gold/{j.record['id']}", "gold", j.record["prompt"], j.record["chosen"][0]["content"],
                        j.answers[0], {"from_id": j.record["id"]}) for j in judged if j.record["id"] in wrong]


def train_dpo(start: Path, pairs: list[dict], overrides: dict, seed: int, work: Path) -> tuple[dict, float]:
    from prefalign.records import write_jsonl
    from prefalign.train import dpo

    settings = dataclasses.replace(default_settings()["dpo"], seed=seed, **overrides)
    train = work / "train.jsonl"
    write_jsonl(train, pairs)
    begin = time.perf_counter()
    metrics, _ = dpo.train(start, train, work / "model", None, settings)
    return {**metrics["train"], "settings": settings.to_dict()}, time.perf_counter() - begin


def evaluate(model: Path, reference: Path, test: Path, sft_eval: tuple, beta: float, seed: int) -> dict:
    from prefalign.evaluation import compare, evaluate as ev
    from prefalign.records import write_jsonl

    settings = dataclasses.replace(default_settings()["eval:dpo"], beta=beta)
    result, generations, _ = ev.evaluate(model, reference, test, settings)
    write_jsonl(model.parent / "generations.jsonl", generations)
    win = compare.compare((result, generations), sft_eval, compare.CompareSettings(seed=settings.seed))
    m, iv = result["metrics"], result["intervals"]
    return {
        "judge_accuracy": m["judge_accuracy"], "judge_accuracy_interval": iv["judge_accuracy"],
        "sampled_judge_accuracy": m["sampled_judge_accuracy"],
        "sampled_judge_accuracy_interval": iv["sampled_judge_accuracy"],
        "implicit_reward_accuracy": m["implicit_reward_accuracy"], "kl_mean": m["kl_mean"],
        "generation_length_mean": m["generation_length_mean"],
        "win_rate": {d: {k: win[d][k] for k in ("win_rate", "wins", "ties", "losses")} | {
            "low": win[d]["interval"]["low"], "high": win[d]["interval"]["high"]} for d in ("greedy", "sampled")},
    }


def run_recipe(name: str, seed: int, run: Path, work: Path, sft_eval: tuple) -> dict:
    from prefalign.records import load_records

    spec = recipe(name)
    data, sft = run / "results/data", run / "results/sft/model"
    offline = load_records(data / "train.jsonl")
    start, rounds = sft, []
    for r in range(1, spec["rounds"] + 1):
        folder = work / f"{name}-{seed}/round-{r}"
        entry = {"round": r}
        if spec["pairs"] == "offline":
            pairs = offline
        else:
            onpolicy, stats, seconds = sample_pairs(start, data / "train.jsonl", spec, r, seed)
            entry.update(sample_s=round(seconds, 1), prompts=stats["prompts"], gold=stats.get("gold_pairs"))
            if spec["pairs"] == "mixed":
                from prefalign.onpolicy.build import mix

                pairs, entry["mix"] = mix(onpolicy, offline, spec["offline_share"], seed)
            else:
                pairs = onpolicy
        entry["train_pairs"] = len(pairs)
        train, seconds = train_dpo(start, pairs, spec["dpo"], seed, folder)
        entry.update(train_s=round(seconds, 1), train={k: train.get(k) for k in (
            "steps", "train_loss", "loss", "rewards/accuracies", "rewards/margins")})
        rounds.append(entry)
        start = folder / "model"
    outcome = evaluate(start, sft, data / "test.jsonl", sft_eval, spec["dpo"].get("beta", 0.1), seed)
    return {"recipe": name, "spec": spec, "seed": seed, "rounds": rounds, "eval": outcome}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="working directory of a finished default run")
    parser.add_argument("--recipes", required=True, help="comma-free list separated by spaces or ';' of recipes")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1234], help="DPO and sampling seeds")
    parser.add_argument("--work", type=Path, default=Path("/tmp/prefalign-onpolicy"), help="scratch folder")
    parser.add_argument("--out", type=Path, required=True, help="JSON output (appended to when it exists)")
    args = parser.parse_args()

    from prefalign.evaluation.compare import load

    results_dir = args.run / "results"
    sft_eval = load([results_dir / "eval/sft/metrics.json", results_dir / "eval/sft/generations.jsonl"])
    sft_metrics = sft_eval[0]["metrics"]
    previous = json.loads(args.out.read_text()) if args.out.exists() else {"runs": []}
    runs = previous["runs"]
    for name in args.recipes.replace(";", " ").split():
        for seed in args.seeds:
            began = time.perf_counter()
            result = run_recipe(name, seed, args.run, args.work, sft_eval)
            result["wall_s"] = round(time.perf_counter() - began, 1)
            runs.append(result)
            e, g, s = result["eval"], result["eval"]["win_rate"]["greedy"], result["eval"]["win_rate"]["sampled"]
            half = (e["judge_accuracy_interval"]["high"] - e["judge_accuracy_interval"]["low"]) / 2
            print(f"{name:40s} seed {seed:5d}: judge {e['judge_accuracy']:.3f} "
                  f"(sft {sft_metrics['judge_accuracy']:.3f}, "
                  f"+-{half:.3f}) sampled {e['sampled_judge_accuracy']:.3f} | greedy win {g['win_rate']:.3f} "
                  f"[{g['low']:.3f}, {g['high']:.3f}] {g['wins']}/{g['ties']}/{g['losses']} | sampled win "
                  f"{s['win_rate']:.3f} [{s['low']:.3f}, {s['high']:.3f}] | kl {e['kl_mean']:.3f} | pairs "
                  f"{[r['train_pairs'] for r in result['rounds']]} train {[r['train_s'] for r in result['rounds']]} s "
                  f"sample {[r.get('sample_s') for r in result['rounds']]} s", flush=True)
            summary = {
                "command": "python " + " ".join(sys.argv),
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "run": str(args.run), "sft": {k: sft_metrics[k] for k in ("judge_accuracy", "sampled_judge_accuracy")},
                "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                            "load_average": os.getloadavg()},
                "runs": runs,
            }
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(summary, indent=1) + "\n")
    for name in dict.fromkeys(r["recipe"] for r in runs):
        accs = [r["eval"]["judge_accuracy"] for r in runs if r["recipe"] == name]
        lows = [r["eval"]["win_rate"]["greedy"]["low"] for r in runs if r["recipe"] == name]
        print(f"{name:40s} judge accuracy median {statistics.median(accs):.3f} over {len(accs)} seeds; "
              f"greedy win-rate lows {', '.join(f'{x:.3f}' for x in lows)}")


if __name__ == "__main__":
    main()
