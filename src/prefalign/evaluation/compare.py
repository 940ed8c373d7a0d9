"""Step `compare`: judge win rate of one model against another on the same held-out prompts.

Reads two `evaluate` outputs (metrics and generations) of models answered on the same test
split with the same judge, pairs their answers by record id, and counts for each prompt a
win (the model's judge score is higher), a tie or a loss. Reported for the greedy and the
sampled answers:

  win_rate   (wins + ties / 2) / prompts, with a 95% percentile-bootstrap interval over prompts
  wins, ties, losses, prompts

Prompts answered by only one of the two are counted in `unmatched` (and not compared), so
nothing leaves the comparison silently. Raises ConfigError when the two were scored by
different judges, or share no prompt.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

from prefalign.evaluation import intervals
from prefalign.jsonl import read_jsonl, write_json
from prefalign.settings import Settings, expect


@dataclass
class CompareSettings(Settings):
    SECTION = "eval"
    bootstrap_samples: int = field(default=2000, metadata={"help": "resamples of the bootstrap interval"})
    seed: int = field(default=1234, metadata={"key": "seed", "help": "seed of the bootstrap"})

    def __post_init__(self):
        expect(self.bootstrap_samples >= 1, "bootstrap_samples", "an integer >= 1", self.bootstrap_samples)


def outcomes(model_scores: list[float], baseline_scores: list[float]) -> list[float]:
    """1 for a win, 0.5 for a tie, 0 for a loss of the model, prompt by prompt."""
    return [1.0 if a > b else 0.5 if a == b else 0.0 for a, b in zip(model_scores, baseline_scores)]


def win_rate(points: list[float], settings: CompareSettings) -> dict:
    interval = intervals.bootstrap_interval(points, settings.bootstrap_samples, settings.seed)
    return {
        "prompts": len(points),
        "wins": sum(p == 1.0 for p in points),
        "ties": sum(p == 0.5 for p in points),
        "losses": sum(p == 0.0 for p in points),
        "win_rate": intervals.mean(points),
        "interval": None if interval is None else {
            "low": interval[0], "high": interval[1],
            "method": f"bootstrap over prompts ({settings.bootstrap_samples} resamples)"},
    }


def compare(model: tuple[dict, list[dict]], baseline: tuple[dict, list[dict]], settings: CompareSettings) -> dict:
    (model_result, model_rows), (base_result, base_rows) = model, baseline
    expect(model_result["judge"] == base_result["judge"], "judge",
          f"both models scored by the same judge ({model_result['model']}: {model_result['judge']})",
          f"{base_result['model']}: {base_result['judge']}")
    by_id = {row["id"]: row for row in base_rows}
    matched = [(row, by_id[row["id"]]) for row in model_rows if row["id"] in by_id]
    expect(bool(matched), "generations", "answers to common prompts", "no prompt answered by both")
    unmatched = len(model_rows) + len(base_rows) - 2 * len(matched)
    greedy = outcomes([a["score"] for a, _ in matched], [b["score"] for _, b in matched])
    sampled = outcomes([a["sampled"]["score"] for a, _ in matched], [b["sampled"]["score"] for _, b in matched])
    greedy_result, sampled_result = win_rate(greedy, settings), win_rate(sampled, settings)
    return {
        "model": model_result["model"], "baseline": base_result["model"], "judge": model_result["judge"],
        "settings": settings.to_dict(), "unmatched": unmatched,
        "greedy": greedy_result, "sampled": sampled_result,
        # Flat headline figures (what expected/*.yaml bounds address).
        "metrics": {"win_rate": greedy_result["win_rate"], "win_rate_sampled": sampled_result["win_rate"],
                    "prompts": len(matched)},
    }


def load(pair: list[Path]) -> tuple[dict, list[dict]]:
    metrics, generations = pair
    return json.loads(Path(metrics).read_text(encoding="utf-8")), read_jsonl(Path(generations))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, nargs=2, required=True, metavar=("METRICS", "GENERATIONS"),
                        help="the model's evaluate outputs: metrics (JSON) and generations (JSONL)")
    parser.add_argument("--baseline", type=Path, nargs=2, required=True, metavar=("METRICS", "GENERATIONS"),
                        help="the baseline's evaluate outputs: metrics (JSON) and generations (JSONL)")
    parser.add_argument("--out", type=Path, required=True, help="output: win rates with intervals (JSON)")
    CompareSettings.add_arguments(parser)


def main(args: argparse.Namespace) -> None:
    settings = CompareSettings.from_args(args)
    result = compare(load(args.model), load(args.baseline), settings)
    write_json(args.out, result)
    for decoding in ("greedy", "sampled"):
        r = result[decoding]
        interval = r["interval"]
        print(f"{result['model']} vs {result['baseline']} ({decoding}): win rate {r['win_rate']:.3f} "
              f"[{interval['low']:.3f}, {interval['high']:.3f}] over {r['prompts']} prompts "
              f"({r['wins']} wins, {r['ties']} ties, {r['losses']} losses)")
