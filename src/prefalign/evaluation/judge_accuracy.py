"""Step `evaluate-judge`: how far to trust a reward-model judge, on the held-out pairs.

Scores every test pair's chosen and rejected reply with the judge (a `reward_model` or the
run's `trained` one, prefalign.evaluation.judges) and reports

  accuracy           share of pairs where the judge scores chosen above rejected (a tie counts
                     half), with a 95% bootstrap interval over prompts (pairs of one prompt
                     resampled together: they are not independent evidence)
  ties, margin_mean  pairs scored equal; mean score(chosen) - score(rejected)
  per_source         the accuracy per dataset of the mix
  verifier_agreement on test pairs whose prompt is a task prompt and whose chosen reply the
                     task verifier accepts and rejected reply it refuses: the share the judge
                     ranks the same way (the demo's check of a trained judge against the truth)

A metric that cannot be computed is None with its reason in `unavailable`. The test split is
never trained on, so this is held-out accuracy: the judge's own error rate bounds what its
win rates can show. Raises ConfigError for a judge that is not a reward model.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

from prefalign import runtime
from prefalign.data import tasks
from prefalign.evaluation import intervals
from prefalign.evaluation.judges import make_judge
from prefalign.jsonl import read_jsonl, write_json
from prefalign.records import last_user_turn, prompt_key
from prefalign.settings import Settings, expect, seed_field, threads_field

KINDS = ("reward_model", "trained")


@dataclass
class JudgeEvalSettings(Settings):
    SECTION = "eval"
    judge: str = field(default="trained", metadata={"derived": "eval.judge", "help": f"the judge evaluated: {', '.join(KINDS)}"})
    reward_model: str | None = field(default=None, metadata={"derived": "eval.reward_model",
                                                                "help": "its folder, or a hub id"})
    reward_model_revision: str | None = field(default=None, metadata={"derived": "eval.reward_model_revision",
                                                                         "help": "40-hex commit of a hub reward model"})
    max_pairs: int | None = field(default=None, metadata={"help": "score at most this many test pairs; none = all"})
    batch_size: int = field(default=64, metadata={"help": "sequences per forward pass"})
    bootstrap_samples: int = field(default=2000, metadata={"help": "resamples of the bootstrap interval"})
    seed: int = seed_field("the bootstrap")
    threads: int = threads_field()

    def __post_init__(self):
        expect(self.judge in KINDS, "judge", f"one of {', '.join(KINDS)} (a reward model)", self.judge)
        for key in ("batch_size", "bootstrap_samples", "threads"):
            expect(getattr(self, key) >= 1, key, "an integer >= 1", getattr(self, key))


def reply(messages: list[dict]) -> str:
    return "\n\n".join(m["content"] for m in messages)


def pair_points(chosen: list[float], rejected: list[float]) -> list[float]:
    """1 where chosen scores higher, 1/2 for a tie, 0 where rejected does."""
    return [1.0 if c > r else 0.5 if c == r else 0.0 for c, r in zip(chosen, rejected)]


def accuracy(points: list[float], clusters: list[str], settings: JudgeEvalSettings) -> tuple[float | None, dict | None]:
    interval = intervals.bootstrap_interval(points, settings.bootstrap_samples, settings.seed, clusters=clusters)
    if interval is None:
        return None, None
    return intervals.mean(points), {"low": interval[0], "high": interval[1],
                                    "method": f"bootstrap over prompts ({settings.bootstrap_samples} resamples)"}


def evaluate_judge(records: list[dict], judge, settings: JudgeEvalSettings) -> dict:
    prompts = [r["prompt"] for r in records]
    chosen = judge.score(prompts, [reply(r["chosen"]) for r in records])
    rejected = judge.score(prompts, [reply(r["rejected"]) for r in records])
    points = pair_points(chosen, rejected)
    keys = [prompt_key(p) for p in prompts]
    value, interval = accuracy(points, keys, settings)
    metrics = {"pairs": len(records), "accuracy": value, "ties": sum(p == 0.5 for p in points),
               "margin_mean": intervals.mean([c - r for c, r in zip(chosen, rejected)])}
    bounds = {"accuracy": interval}
    per_source = {}
    for source in dict.fromkeys(r["source"] for r in records):
        index = [i for i, r in enumerate(records) if r["source"] == source]
        per_source[source] = {"pairs": len(index), "accuracy": intervals.mean([points[i] for i in index])}
    checked = [i for i, r in enumerate(records)
               if tasks.judge(last_user_turn(r["prompt"]), reply(r["chosen"])) is True
               and tasks.judge(last_user_turn(r["prompt"]), reply(r["rejected"])) is False]
    unavailable = {}
    metrics["verifier_pairs"] = len(checked)
    metrics["verifier_agreement"], bounds["verifier_agreement"] = accuracy(
        [points[i] for i in checked], [keys[i] for i in checked], settings)
    if not checked:
        unavailable["verifier_agreement"] = ("no test pair has a task prompt whose chosen reply the task verifier "
                                             "accepts and rejected reply it refuses")
    return {"judge": judge.describe(), "settings": settings.to_dict(), "metrics": metrics,
            "intervals": {k: v for k, v in bounds.items() if v}, "per_source": per_source, "unavailable": unavailable}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--test", type=Path, required=True, help="held-out records (JSONL)")
    parser.add_argument("--out", type=Path, required=True, help="output: the judge's held-out accuracy (JSON)")
    JudgeEvalSettings.add_arguments(parser)


def main(args: argparse.Namespace) -> None:
    settings = JudgeEvalSettings.from_args(args)
    print("settings:", json.dumps(settings.to_dict(), sort_keys=True), flush=True)
    runtime.setup(settings.seed, settings.threads)
    records = read_jsonl(args.test)
    expect(bool(records), "test", "a non-empty test split", str(args.test))
    if settings.max_pairs is not None:
        records = records[: settings.max_pairs]
    judge = make_judge(settings.judge, settings.reward_model, settings.batch_size, settings.reward_model_revision)
    result = evaluate_judge(records, judge, settings)
    write_json(args.out, result)
    m, i = result["metrics"], result["intervals"].get("accuracy")
    print(f"{settings.judge} judge: held-out pairwise accuracy {m['accuracy']:.3f} [{i['low']:.3f}, {i['high']:.3f}] "
          f"on {m['pairs']} pairs ({m['ties']} ties)")
