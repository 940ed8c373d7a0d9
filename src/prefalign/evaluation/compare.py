"""Step `compare`: judge win rate of one model against another on the same held-out prompts.

Reads two `evaluate` outputs (metrics and generations) of models answered on the same test
split with the same judge, pairs their judged answers by record id, and counts for each
prompt a win (the model's judge score is higher), a tie or a loss. Reported for the greedy
and the sampled answers:

  win_rate      (wins + ties / 2) / prompts, with a 95% percentile-bootstrap interval over prompts
  wins, ties, losses, prompts
  lc            the length-controlled win rate (prefalign.evaluation.length_control) with its
                bootstrap interval, and the length slope of the fit
  lengths       mean answer tokens of the model and the baseline on those prompts

and a verdict (prefalign.evaluation.verdict): better / no measurable change / worse from the
greedy win rate's interval (better when its lower end is above 1/2, worse when its upper end is
below), weighed by the judge: with a reward-model judge whose held-out pairwise accuracy
(--judge-eval, `prefalign evaluate-judge`) is not shown above chance, `cannot tell`; the
length-controlled verdict beside it. `judges` (from the model's metrics) says which judge graded
the answers and which picked DPO's pairs. When the judge is a
reward model and some prompts are task prompts, `judge_agreement` says how often the judge
preferred the answer the task verifier accepts, on the answer pairs the verifier separates
(one right, one wrong; greedy and sampled), with an interval clustered by prompt.

Prompts judged for only one of the two are counted in `unmatched` (and not compared), so
nothing leaves the comparison silently; a metric that cannot be computed is None with its
reason in `unavailable`. Raises ConfigError when the two were scored by different judges, or
share no judged prompt (the message names the config key eval.judge to change).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

from prefalign.errors import ConfigError
from prefalign.evaluation import intervals
from prefalign.evaluation.length_control import lc_win_rate
from prefalign.evaluation.verdict import verdict
from prefalign.jsonl import read_jsonl, write_json
from prefalign.settings import Settings, expect, seed_field


@dataclass
class CompareSettings(Settings):
    SECTION = "eval"
    bootstrap_samples: int = field(default=2000, metadata={"help": "resamples of the bootstrap interval"})
    seed: int = seed_field("the bootstrap")

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


def decoding_result(pairs: list[tuple[dict, dict]], settings: CompareSettings) -> dict:
    """Raw and length-controlled win rates and mean lengths of one decoding's (model, baseline) answers."""
    points = outcomes([a["score"] for a, _ in pairs], [b["score"] for _, b in pairs])
    model_lengths = [float(a["tokens"]) for a, _ in pairs]
    baseline_lengths = [float(b["tokens"]) for _, b in pairs]
    result = win_rate(points, settings)
    result["lc"] = lc_win_rate(points, model_lengths, baseline_lengths, settings.bootstrap_samples, settings.seed)
    result["lengths"] = {"model": intervals.mean(model_lengths), "baseline": intervals.mean(baseline_lengths),
                         "unit": "tokens"}
    return result


def agreement(matched: list[tuple[dict, dict]], settings: CompareSettings) -> tuple[dict | None, str | None]:
    """How often the judge prefers the answer the task verifier accepts, where the verifier separates the two."""
    points, prompts = [], []
    for a, b in matched:
        for x, y in ((a, b), (a["sampled"], b["sampled"])):
            if x.get("correct") is None or y.get("correct") is None or x["correct"] == y["correct"]:
                continue
            right, wrong = (x, y) if x["correct"] else (y, x)
            points.append(1.0 if right["score"] > wrong["score"] else 0.5 if right["score"] == wrong["score"] else 0.0)
            prompts.append(a["id"])
    if not points:
        return None, ("no held-out answer pair is one right and one wrong by the task verifier (on data without task "
                      "prompts the verifier cannot check the judge)")
    interval = intervals.bootstrap_interval(points, settings.bootstrap_samples, settings.seed, clusters=prompts)
    return {
        "pairs": len(points), "prompts": len(set(prompts)),
        "agree": sum(p == 1.0 for p in points), "judge_ties": sum(p == 0.5 for p in points),
        "disagree": sum(p == 0.0 for p in points), "rate": intervals.mean(points),
        "interval": {"low": interval[0], "high": interval[1],
                     "method": f"bootstrap over prompts ({settings.bootstrap_samples} resamples)"},
    }, None


def judged(rows: list[dict]) -> list[dict]:
    """Rows whose greedy and sampled answers the judge scored (older outputs have no `judged` key)."""
    return [r for r in rows if r.get("judged", True) and r.get("score") is not None
            and r["sampled"].get("score") is not None]


def nothing_in_common(model_result: dict, base_result: dict, model_rows: list[dict], base_rows: list[dict]) -> str:
    judge = model_result["judge"]["kind"]
    why = model_result.get("unavailable", {}).get("judge_score_mean") or model_result.get("judge_choice", {}).get("why")
    return (f"eval.judge: no held-out prompt was judged for both {model_result['model']} ({len(judged(model_rows))} "
            f"judged) and {base_result['model']} ({len(judged(base_rows))} judged) by the {judge} judge"
            + (f" ({why})" if why else "") + ". Set eval.judge to auto or trained (a reward model the workflow trains "
            "on the train split), or to reward_model with eval.reward_model naming one")


def compare(model: tuple[dict, list[dict]], baseline: tuple[dict, list[dict]], settings: CompareSettings,
            judge_eval: dict | None = None) -> dict:
    """The comparison; `judge_eval`: the judge's held-out accuracy (evaluate-judge), which the verdict weighs."""
    (model_result, model_rows), (base_result, base_rows) = model, baseline
    expect(model_result["judge"] == base_result["judge"], "judge",
           f"both models scored by the same judge ({model_result['model']}: {model_result['judge']})",
           f"{base_result['model']}: {base_result['judge']}")
    expect(judge_eval is None or judge_eval["judge"] == model_result["judge"], "judge_eval",
           f"the held-out accuracy of the judge that scored the answers ({model_result['judge']})",
           judge_eval and judge_eval["judge"])
    model_judged, base_judged = judged(model_rows), judged(base_rows)
    by_id = {row["id"]: row for row in base_judged}
    matched = [(row, by_id[row["id"]]) for row in model_judged if row["id"] in by_id]
    if not matched:
        raise ConfigError(nothing_in_common(model_result, base_result, model_rows, base_rows))
    unmatched = len(model_judged) + len(base_judged) - 2 * len(matched)
    greedy = decoding_result(matched, settings)
    sampled = decoding_result([(a["sampled"], b["sampled"]) for a, b in matched], settings)
    unavailable = {}
    judge_kind = model_result["judge"]["kind"]
    if judge_kind == "task":
        agreement_result = None
        unavailable["judge_agreement"] = "the judge is the task verifier itself"
    else:
        agreement_result, reason = agreement(matched, settings)
        if reason:
            unavailable["judge_agreement"] = reason
    return {
        "model": model_result["model"], "baseline": base_result["model"], "judge": model_result["judge"],
        "judge_choice": model_result.get("judge_choice"), "judges": model_result.get("judges"),
        "settings": settings.to_dict(), "unmatched": unmatched,
        "greedy": greedy, "sampled": sampled,
        "verdict": verdict(greedy, sampled, model_result["judge"], judge_eval),
        "judge_agreement": agreement_result,
        "unavailable": unavailable,
        # Flat headline figures (what expected/*.yaml bounds address).
        "metrics": {"win_rate": greedy["win_rate"], "win_rate_sampled": sampled["win_rate"],
                    "lc_win_rate": greedy["lc"]["win_rate"], "lc_win_rate_sampled": sampled["lc"]["win_rate"],
                    "ties": greedy["ties"], "ties_sampled": sampled["ties"], "prompts": len(matched),
                    "model_length_mean": greedy["lengths"]["model"],
                    "baseline_length_mean": greedy["lengths"]["baseline"],
                    "judge_agreement": agreement_result["rate"] if agreement_result else None},
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
    parser.add_argument("--judge-eval", type=Path, help="the reward-model judge's held-out accuracy (JSON from "
                                                        "`prefalign evaluate-judge`), which the verdict weighs")
    CompareSettings.add_arguments(parser)


def main(args: argparse.Namespace) -> None:
    settings = CompareSettings.from_args(args)
    judge_eval = json.loads(args.judge_eval.read_text(encoding="utf-8")) if args.judge_eval else None
    result = compare(load(args.model), load(args.baseline), settings, judge_eval)
    write_json(args.out, result)
    for decoding in ("greedy", "sampled"):
        r = result[decoding]
        interval, lc = r["interval"], r["lc"]
        print(f"{result['model']} vs {result['baseline']} ({decoding}): win rate {r['win_rate']:.3f} "
              f"[{interval['low']:.3f}, {interval['high']:.3f}], length-controlled {lc['win_rate']:.3f} "
              f"[{lc['interval']['low']:.3f}, {lc['interval']['high']:.3f}] over {r['prompts']} prompts "
              f"({r['wins']} wins, {r['ties']} ties, {r['losses']} losses)")
    v = result["verdict"]
    print(f"verdict: {v['result']} (greedy; length-controlled: {v['length_controlled']}; judge: {v['judge']['why']})")
