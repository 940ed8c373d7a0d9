"""From judged samples to preference pairs: the pairing rule and its accounting.

Each prompt carries K sampled answers and the judge's score of each. The rule is best vs
worst: the highest-scoring answer is `chosen`, the lowest-scoring one `rejected` (the lowest
sample index wins among equal scores, so the choice is reproducible). A prompt gives no pair
when its answers cannot be told apart, for one of these reasons:

  all_correct    every answer scored the judge's top score (a verifier judge: all right)
  all_wrong      every answer scored the bottom score (a verifier judge: all wrong)
  tie            best and worst score equal, or the two answers are the same text (other judges)
  below_margin   best - worst is positive but below `margin`

Every prompt that comes in ends either as a pair or in the ledger with its reason, and
`account` checks in code that `in = paired + dropped` before anything is written. Before that,
`funnel` counts how the train split's rows became the prompts that came in, each step adding up:

    train_rows       = distinct_prompts + repeated_prompt_rows   (rows whose prompt an earlier row has)
    distinct_prompts = judge_can_score + judge_cannot_score      (the pair judge scores only some prompts)
    judge_can_score  = in + over_max_prompts                     (onpolicy.max_prompts)
    in               = paired + dropped
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

REASONS = ("all_correct", "all_wrong", "tie", "below_margin")


class AccountingError(AssertionError):
    """The counts do not add up: a prompt was lost or counted twice (a bug, never bad input)."""


@dataclass(frozen=True)
class Choice:
    """The outcome for one prompt: a pair (chosen, rejected sample indices) or a reason for none."""

    chosen: int | None = None
    rejected: int | None = None
    reason: str | None = None

    @property
    def paired(self) -> bool:
        return self.reason is None


def choose(answers: list[str], scores: list[float], margin: float = 0.0, binary: bool = False) -> Choice:
    """Best vs worst among one prompt's judged answers.

    `binary`: the judge is a verifier with scores 0 (wrong) and 1 (right), so equal scores
    are reported as all_correct or all_wrong rather than tie. `margin` >= 0: the least
    best - worst score difference that makes a pair (0: any difference).
    """
    if len(answers) != len(scores) or not scores:
        raise ValueError(f"expected one score per answer and at least one answer, got {len(answers)} answers "
                         f"and {len(scores)} scores")
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))
    worst = min(range(len(scores)), key=lambda i: (scores[i], i))
    gap = scores[best] - scores[worst]
    if gap <= 0:
        if binary:
            return Choice(reason="all_correct" if scores[best] >= 1.0 else "all_wrong")
        return Choice(reason="tie")
    if answers[best] == answers[worst]:  # one text, two scores: a judge's noise, not a preference
        return Choice(reason="tie")
    if gap < margin:
        return Choice(reason="below_margin")
    return Choice(best, worst)


def account(prompts_in: int, pairs: int, dropped: collections.Counter, ledger_lines: int, label: str) -> dict:
    """The step's counts, after checking in = paired + dropped and one ledger line per dropped prompt."""
    total_dropped = sum(dropped.values())
    problems = []
    if prompts_in != pairs + total_dropped:
        problems.append(f"in {prompts_in} != paired {pairs} + dropped {total_dropped}")
    if ledger_lines != total_dropped:
        problems.append(f"ledger lines {ledger_lines} != dropped {total_dropped}")
    unknown = set(dropped) - set(REASONS)
    if unknown:
        problems.append(f"unknown reasons {sorted(unknown)}")
    if problems:
        raise AccountingError(f"prompt accounting broken for {label}: " + "; ".join(problems))
    return {"in": prompts_in, "paired": pairs, "dropped": total_dropped,
            "dropped_by_reason": {reason: dropped.get(reason, 0) for reason in REASONS}}


def funnel(train_rows: int, distinct: int, scorable: int, sampled: int) -> dict:
    """How train rows became the sampled prompts, each step's remainder named (see the module doc)."""
    return {"train_rows": train_rows, "repeated_prompt_rows": train_rows - distinct, "distinct_prompts": distinct,
            "judge_cannot_score": distinct - scorable, "judge_can_score": scorable,
            "over_max_prompts": scorable - sampled, "in": sampled}


def account_funnel(steps: dict, counts: dict, label: str) -> dict:
    """`steps` (funnel) then `counts` (account), after checking that every step adds up to the next."""
    problems = []
    for whole, parts in (("train_rows", ("distinct_prompts", "repeated_prompt_rows")),
                         ("distinct_prompts", ("judge_can_score", "judge_cannot_score")),
                         ("judge_can_score", ("in", "over_max_prompts"))):
        if steps[whole] != sum(steps[p] for p in parts) or any(steps[p] < 0 for p in parts):
            problems.append(f"{whole} {steps[whole]} != " + " + ".join(f"{p} {steps[p]}" for p in parts))
    if steps["in"] != counts["in"]:
        problems.append(f"sampled prompts {steps['in']} != prompts in {counts['in']}")
    if problems:
        raise AccountingError(f"prompt accounting broken for {label}: " + "; ".join(problems))
    return {**steps, **counts}
