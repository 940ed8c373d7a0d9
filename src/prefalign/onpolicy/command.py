"""Step `onpolicy`: on-policy preference pairs for DPO (sample -> judge -> pair), and their mix with
offline pairs.

    prefalign onpolicy sample --policy results/sft/model --train results/data/train.jsonl \
        --pairs P --ledger L --samples S --stats J [settings]
    prefalign onpolicy mix --onpolicy P --offline results/data/train.jsonl --out M --stats J \
        --mix-ratio 0.5 --seed 1234

`sample` answers each train prompt the judge can score `samples_per_prompt` times with the
policy (prefalign.onpolicy.sample), has the run's judge score every answer, and pairs the best
with the worst answer of each prompt (prefalign.onpolicy.pairs). It writes the pairs as
canonical records, the ledger of prompts that gave no pair (one line each, with the reason:
all_correct, all_wrong, tie, below_margin), every sample with its score, and stats whose
counts are checked in code to add up from the train rows on (train rows -> distinct prompts ->
prompts the judge can score -> sampled = paired + dropped: prefalign.onpolicy.pairs). `mix` adds a seeded draw of
offline pairs to the on-policy ones (dpo.pairs: mixed).

Outputs are written under temporary names and renamed at the end, so a failed step leaves
no half-written output. Raises ConfigError for bad settings, an empty train split, no prompt
the judge can score, and for a round that produced no pair at all (DPO would have nothing
to train on; the ledger says why).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from prefalign.errors import ConfigError
from prefalign.jsonl import atomic_path, read_jsonl, write_json, write_jsonl
from prefalign.onpolicy import build, sample
from prefalign.settings import Settings, expect, seed_field


@dataclass
class MixSettings(Settings):
    SECTION = "dpo"
    mix_ratio: float = field(default=0.5, metadata={
        "help": "the offline pairs' share of the mixed DPO train set, in [0, 1): every on-policy pair is kept and "
                "offline pairs are drawn (seeded) to make up this share"})
    seed: int = seed_field("the draw and the shuffle")

    def __post_init__(self):
        expect(0 <= self.mix_ratio < 1, "mix_ratio", "a number in [0, 1)", self.mix_ratio)


def commit(outputs: dict[Path, object]) -> None:
    """Write every output beside its path, then move them all into place; on a failure none is moved
    and no temporary file stays behind (jsonl.atomic_path)."""
    with contextlib.ExitStack() as stack:
        for path, content in outputs.items():
            scratch = stack.enter_context(atomic_path(path))
            (write_jsonl if isinstance(content, list) else write_json)(scratch, content)


def run_sample(args: argparse.Namespace) -> None:
    settings = sample.OnPolicySettings.from_args(args)
    print("settings:", json.dumps(settings.to_dict(), sort_keys=True), flush=True)
    judged, judge, steps = sample.run(args.policy, args.train, settings)
    pairs, ledger, samples, stats = build.build(judged, settings, judge.describe(), str(args.policy), steps)
    stats["judge_choice"] = {"role": "pairs", "kind": settings.judge, "why": settings.judge_reason}
    if not pairs:
        raise ConfigError(f"round {settings.round}: no prompt gave a pair ({stats['prompts']['dropped_by_reason']}); "
                          "sample more answers per prompt (samples_per_prompt), raise the temperature or lower margin")
    commit({args.pairs: pairs, args.ledger: ledger, args.samples: samples, args.stats: stats})
    print("onpolicy:", json.dumps({"round": settings.round, **stats["prompts"],
                                   "sample_score_mean": stats["sample_score_mean"]}, sort_keys=True))


def run_mix(args: argparse.Namespace) -> None:
    settings = MixSettings.from_args(args)
    onpolicy, offline = read_jsonl(args.onpolicy), read_jsonl(args.offline)
    mixed, counts = build.mix(onpolicy, offline, settings.mix_ratio, settings.seed)
    stats = {"settings": dataclasses.asdict(settings), **counts}
    commit({args.out: mixed, args.stats: stats})
    print("mix:", json.dumps(counts, sort_keys=True))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    text = "sample K answers per train prompt from a policy, judge them, pair best vs worst"
    one = sub.add_parser("sample", help=text, description=text)
    one.add_argument("--policy", type=Path, required=True, help="checkpoint folder that answers (SFT, or the "
                                                                 "previous round's DPO model)")
    one.add_argument("--train", type=Path, required=True, help="training records (JSONL): the prompts")
    one.add_argument("--pairs", type=Path, required=True, help="output: the on-policy pairs (canonical JSONL)")
    one.add_argument("--ledger", type=Path, required=True, help="output: prompts without a pair and why (JSONL)")
    one.add_argument("--samples", type=Path, required=True, help="output: every sample with its score (JSONL)")
    one.add_argument("--stats", type=Path, required=True, help="output: counts per outcome, settings, judge (JSON)")
    sample.OnPolicySettings.add_arguments(one)
    text = "add a seeded draw of offline pairs to the on-policy pairs (dpo.pairs: mixed)"
    two = sub.add_parser("mix", help=text, description=text)
    two.add_argument("--onpolicy", type=Path, required=True, help="on-policy pairs (JSONL)")
    two.add_argument("--offline", type=Path, required=True, help="offline pairs: the train split (JSONL)")
    two.add_argument("--out", type=Path, required=True, help="output: the mixed DPO train set (JSONL)")
    two.add_argument("--stats", type=Path, required=True, help="output: how many of each (JSON)")
    MixSettings.add_arguments(two)


def main(args: argparse.Namespace) -> None:
    run_sample(args) if args.action == "sample" else run_mix(args)
