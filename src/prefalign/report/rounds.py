"""The report's DPO rounds section: what each round of on-policy DPO trained on and how it trained.

One row per round (dpo.pairs onpolicy or mixed; dpo.rounds of them): the policy that
answered, the prompts sampled, how many gave a pair and why the others did not (all
correct, all wrong, tie, below the margin), the mean judge score of the samples (for the
task verifier: the policy's sampled accuracy on train prompts), the pairs DPO trained on
(mixed: on-policy + offline), and DPO's final training metrics. Reads the files
`prefalign onpolicy` and `prefalign dpo` wrote (results/onpolicy/round-<r>/stats.json,
mixed.json, results/dpo/round-<r>/metrics.json and results/dpo/metrics.json for the last).

prefalign.report.render calls `add_arguments` and `rounds_section`, and puts the section right
after the summary. Without on-policy stats (dpo.pairs offline) there is no section.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from prefalign.report.document import Section, Table, Text

REASONS = ("all_correct", "all_wrong", "tie", "below_margin")
HEADER = ["round", "policy", "prompts", "paired", *REASONS, "sample score", "DPO pairs", "steps", "loss",
          "rewards/accuracies", "rewards/margins"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--onpolicy-stats", type=Path, nargs="*", default=[],
                        help="each round's `prefalign onpolicy sample` stats (JSON), in round order (optional)")
    parser.add_argument("--mix-stats", type=Path, nargs="*", default=[],
                        help="each round's `prefalign onpolicy mix` stats (JSON), in round order (dpo.pairs mixed)")
    parser.add_argument("--dpo-round-metrics", type=Path, nargs="*", default=[],
                        help="metrics of the DPO rounds before the last (JSON), in round order; "
                             "the last is --dpo-metrics")


def _read(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _num(value, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def rows(stats: list[dict], mixes: list[dict], dpo: list[dict]) -> list[list[str]]:
    out = []
    for i, round_stats in enumerate(stats):
        prompts = round_stats["prompts"]
        mix = mixes[i] if i < len(mixes) else None
        pairs = f"{mix['onpolicy']} + {mix['offline']} offline" if mix else str(prompts["paired"])
        train = dpo[i]["train"] if i < len(dpo) else {}
        out.append([str(round_stats["round"]), Path(round_stats["policy"]).parent.name or round_stats["policy"],
                    str(prompts["in"]), str(prompts["paired"]),
                    *[str(prompts["dropped_by_reason"].get(reason, 0)) for reason in REASONS],
                    _num(round_stats["sample_score_mean"]), pairs, str(train.get("steps", "-")),
                    _num(train.get("loss")), _num(train.get("rewards/accuracies")),
                    _num(train.get("rewards/margins"))])
    return out


def lines(stats: list[dict]) -> list[str]:
    first = stats[0]
    settings, judge = first["settings"], first["judge"]
    return [
        f"DPO trained on on-policy pairs, {len(stats)} round(s): each round the policy answered every train prompt "
        f"{settings['samples_per_prompt']} times (temperature {settings['temperature']:g}, top-p "
        f"{settings['top_p']:g}), the {judge['kind']} pair judge scored each answer, and the best answer was paired "
        f"with the worst (margin {settings['margin']:g}); prompts whose answers could not be told apart gave no "
        "pair (results/onpolicy/round-<r>/ledger.jsonl lists them with the reason). Round r > 1 samples from, "
        "starts at and is referenced to round r-1's DPO model.",
        "DPO's training preference accuracy (rewards/accuracies) is measured on these pairs of the policy's own "
        "answers, its held-out implicit-reward accuracy on the test split's pairs, which it never trained on: a gap "
        "between the two is expected here and is no sign of overfitting; the held-out judge metrics below say "
        "whether the answers got better.",
    ]


def funnel_lines(stats: list[dict]) -> list[str]:
    """Each round's prompts counted from the train rows on (prefalign.onpolicy.pairs.funnel), every step adding up."""
    out = []
    for round_stats in stats:
        p = round_stats["prompts"]
        if "train_rows" not in p:  # stats written before the counts started at the train rows
            continue
        out.append(f"Round {round_stats['round']}: {p['train_rows']:,} train rows -> {p['distinct_prompts']:,} distinct "
                   f"prompts ({p['repeated_prompt_rows']:,} rows repeat an earlier row's prompt) -> "
                   f"{p['judge_can_score']:,} the pair judge can score ({p['judge_cannot_score']:,} it cannot) -> "
                   f"{p['in']:,} sampled ({p['over_max_prompts']:,} beyond onpolicy.max_prompts) = "
                   f"{p['paired']:,} paired + {p['dropped']:,} dropped.")
    return out


def _with_interval(result: dict, key: str) -> str:
    value, interval = result["metrics"].get(key), result.get("intervals", {}).get(key)
    if value is None:
        return "-"
    return f"{value:.3f} [{interval['low']:.3f}, {interval['high']:.3f}]" if interval else f"{value:.3f}"


def outcome_lines(evaluations: dict[str, dict], comparisons: list[dict]) -> list[str]:
    """What the rounds changed, for greedy and for sampled answers alike (the default's claims name which)."""
    out = []
    if {"sft", "dpo"} <= set(evaluations):
        sft, dpo = evaluations["sft"], evaluations["dpo"]
        for label, key in (("greedy", "judge_accuracy"), ("sampled", "sampled_judge_accuracy")):
            if dpo["metrics"].get(key) is None or sft["metrics"].get(key) is None:
                continue
            out.append(f"Judge accuracy, {label} answers: SFT {_with_interval(sft, key)} -> DPO "
                       f"{_with_interval(dpo, key)} (95% intervals), a change of "
                       f"{dpo['metrics'][key] - sft['metrics'][key]:+.3f}.")
    for c in comparisons:
        if (c["model"], c["baseline"]) != ("dpo", "sft"):
            continue
        for label in ("greedy", "sampled"):
            r = c[label]
            interval = r.get("interval") or {}
            out.append(f"Win rate of DPO over SFT, {label} answers: {r['win_rate']:.3f} "
                       f"[{interval.get('low', float('nan')):.3f}, {interval.get('high', float('nan')):.3f}] "
                       f"({r['wins']} wins, {r['ties']} ties, {r['losses']} losses).")
    return out


def rounds_section(args: argparse.Namespace, run) -> Section | None:
    """The rounds section of a run with on-policy stats (`run`: prefalign.report.render.RunOutputs), else None."""
    if not args.onpolicy_stats:
        return None
    stats = [_read(p) for p in args.onpolicy_stats]
    mixes = [_read(p) for p in args.mix_stats]
    dpo = [_read(p) for p in args.dpo_round_metrics] + [run.training["dpo"]]
    text = lines(stats) + funnel_lines(stats) + outcome_lines(run.evaluations, run.comparisons)
    return Section("rounds", "DPO rounds (on-policy pairs)",
                   [*[Text(line) for line in text], Table(HEADER, rows(stats, mixes, dpo), html_id="rounds")])
