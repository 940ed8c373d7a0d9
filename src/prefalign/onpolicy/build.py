"""Judged samples -> canonical preference records, the ledger of prompts without a pair, and the mix
of on-policy with offline pairs that DPO trains on.

A pair is a canonical record (prefalign.records.make_record) whose `meta` says where it came
from: the round, the policy that answered, the train record the prompt came from, the
indices and judge scores of the chosen and rejected samples, every sample's score, the
judge and the decoding.
"""

from __future__ import annotations

import collections
import random

from prefalign.onpolicy.pairs import Choice, account, account_funnel, choose
from prefalign.onpolicy.sample import Judged, OnPolicySettings, question
from prefalign.records import make_record

SOURCE = "onpolicy"


def pair_record(judged: Judged, choice: Choice, settings: OnPolicySettings, judge: dict, policy: str) -> dict:
    record = judged.record
    meta = {
        "round": settings.round, "policy": policy, "from_id": record["id"], "from_source": record["source"],
        "chosen_sample": choice.chosen, "rejected_sample": choice.rejected,
        "chosen_score": judged.scores[choice.chosen], "rejected_score": judged.scores[choice.rejected],
        "scores": judged.scores, "samples": len(judged.answers), "greedy_first": settings.greedy, "judge": judge,
        "temperature": settings.temperature, "top_p": settings.top_p,
    }
    return make_record(f"{SOURCE}/round-{settings.round}/{record['id']}", SOURCE, record["prompt"],
                       judged.answers[choice.chosen], judged.answers[choice.rejected], meta)


def ledger_row(judged: Judged, choice: Choice, settings: OnPolicySettings) -> dict:
    return {"id": judged.record["id"], "source": judged.record["source"], "round": settings.round,
            "reason": choice.reason, "prompt": question(judged), "answers": judged.answers, "scores": judged.scores}


def sample_row(judged: Judged, choice: Choice, settings: OnPolicySettings) -> dict:
    """Every sample of one prompt with its score and what became of the prompt (the audit trail)."""
    return {"id": judged.record["id"], "round": settings.round, "prompt": question(judged),
            "answers": judged.answers, "tokens": judged.tokens, "scores": judged.scores,
            "outcome": "paired" if choice.paired else choice.reason,
            "chosen_sample": choice.chosen, "rejected_sample": choice.rejected}


def build(judged: list[Judged], settings: OnPolicySettings, judge: dict, policy: str, steps: dict | None = None):
    """(pairs, ledger rows, sample rows, stats) of one round; the counts are checked to add up, from the train
    rows on when `steps` (pairs.funnel: train rows -> distinct prompts -> prompts the judge can score) is given."""
    binary = judge.get("kind") == "task"
    pairs, ledger, samples = [], [], []
    dropped: collections.Counter = collections.Counter()
    for item in judged:
        choice = choose(item.answers, item.scores, settings.margin, binary)
        samples.append(sample_row(item, choice, settings))
        if choice.paired:
            pairs.append(pair_record(item, choice, settings, judge, policy))
        else:
            dropped[choice.reason] += 1
            ledger.append(ledger_row(item, choice, settings))
    counts = account(len(judged), len(pairs), dropped, len(ledger), f"round {settings.round}")
    if steps is not None:
        counts = account_funnel(steps, counts, f"round {settings.round}")
    all_scores = [s for item in judged for s in item.scores]
    stats = {
        "round": settings.round, "policy": policy, "judge": judge, "settings": settings.to_dict(),
        "prompts": counts, "samples": len(all_scores),
        "sample_score_mean": sum(all_scores) / len(all_scores) if all_scores else None,
        "pair_score_gap_mean": (sum(p["meta"]["chosen_score"] - p["meta"]["rejected_score"] for p in pairs)
                                / len(pairs)) if pairs else None,
    }
    return pairs, ledger, samples, stats


def mix(onpolicy: list[dict], offline: list[dict], offline_share: float, seed: int) -> tuple[list[dict], dict]:
    """All on-policy pairs plus a seeded draw of offline pairs making `offline_share` of the result.

    offline_share in [0, 1): 0 = on-policy only; 0.5 = as many offline pairs as on-policy ones.
    The draw is capped by the offline pairs there are; the result is shuffled (seeded).
    """
    if not 0 <= offline_share < 1:
        raise ValueError(f"offline_share: expected a number in [0, 1), got {offline_share!r}")
    rng = random.Random(seed)
    wanted = round(len(onpolicy) * offline_share / (1 - offline_share))
    drawn = rng.sample(offline, min(wanted, len(offline)))
    mixed = onpolicy + drawn
    rng.shuffle(mixed)
    return mixed, {"onpolicy": len(onpolicy), "offline": len(drawn), "offline_wanted": wanted,
                   "offline_available": len(offline), "total": len(mixed)}
