"""Does FP8 DPO hurt? The embedded default's DPO in bf16 and in FP8 on a GPU, side by side.

Takes a finished run of the default workflow (its SFT checkpoint and data split), reruns its
DPO step through the `prefalign` CLI with the default config's DPO settings and precision
bf16 or fp8 (Unsloth, LoRA), for each seed in turn while the time budget lasts, evaluates each
checkpoint on the held-out split, and writes per-run and per-precision figures: held-out
implicit-reward and judge accuracy, and the noise of the logged training margins.

    python bench/fp8_quality.py --run /tmp/gpurun --seeds 1234 1 2 --out bench/results/fp8_quality.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def dpo_and_eval(run: Path, precision: str, seed: int, work: Path) -> dict:
    from prefalign.config.resolve import load_config
    from prefalign.config.steps import step_settings
    from prefalign.settings import to_cli_flags

    settings = step_settings(load_config(REPO / "config.yaml"))
    dpo = {**settings["dpo"].to_dict(), "precision": precision, "backend": "unsloth", "seed": seed}
    evaluation = {**settings["eval:dpo"].to_dict(), "seed": seed}
    tag = work / f"{precision}-{seed}"
    start = time.perf_counter()
    subprocess.run(f"prefalign dpo --sft {run}/results/sft/model --train {run}/results/data/train.jsonl "
                   f"--out {tag}/model --metrics {tag}/metrics.json --log-history {tag}/log.jsonl "
                   f"{to_cli_flags(dpo)} > {tag}.dpo.log 2>&1", shell=True, check=True)
    train_s = time.perf_counter() - start
    subprocess.run(f"prefalign evaluate --model {tag}/model --reference {run}/results/sft/model "
                   f"--test {run}/results/data/test.jsonl --metrics {tag}/eval.json --generations {tag}/gen.jsonl "
                   f"{to_cli_flags(evaluation)} > {tag}.eval.log 2>&1", shell=True, check=True)
    metrics = json.loads((tag / "eval.json").read_text())["metrics"]
    log = [json.loads(line) for line in (tag / "log.jsonl").read_text().splitlines()]
    margins = [e["rewards/margins"] for e in log if "rewards/margins" in e]
    resolved = json.loads((tag / "metrics.json").read_text())["resolved"]
    return {
        "precision": precision, "seed": seed, "resolved_precision": resolved["precision"], "gpu": resolved["gpu_name"],
        "train_wall_s": round(train_s, 1),
        "implicit_reward_accuracy": metrics["implicit_reward_accuracy"], "judge_accuracy": metrics["judge_accuracy"],
        "reward_margin_mean": metrics["reward_margin_mean"], "logp_accuracy": metrics["logp_accuracy"],
        "train_margin_abs_mean": statistics.mean(abs(m) for m in margins),
        "train_margin_step_std": statistics.pstdev([b - a for a, b in zip(margins, margins[1:])]),
        "loss_step1": log[0].get("loss"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="working directory of a finished default run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1234, 1, 2])
    parser.add_argument("--budget-s", type=float, default=420, help="start no new seed after this many seconds")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/fp8_quality.json")
    args = parser.parse_args()
    work = args.run / "fp8_quality"
    work.mkdir(exist_ok=True)
    runs, start = [], time.perf_counter()
    for seed in args.seeds:
        if time.perf_counter() - start > args.budget_s:
            break
        for precision in ("bf16", "fp8"):
            runs.append(dpo_and_eval(args.run, precision, seed, work))
            print(json.dumps(runs[-1]), flush=True)
    summary = {}
    for precision in ("bf16", "fp8"):
        rows = [r for r in runs if r["precision"] == precision]
        summary[precision] = {k: statistics.mean(r[k] for r in rows) for k in (
            "implicit_reward_accuracy", "judge_accuracy", "reward_margin_mean", "train_margin_abs_mean",
            "train_margin_step_std", "train_wall_s")}
        summary[precision]["seeds"] = [r["seed"] for r in rows]
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "command": " ".join(["python", "bench/fp8_quality.py", *sys.argv[1:]]), "runs": runs, "mean": summary}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
