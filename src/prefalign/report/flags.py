"""What a broken model or a thin run shows, named in the report's first lines instead of passed.

From each compared model's evaluate metrics (prefalign.evaluation.evaluate: answered_prompts,
empty_answers, top_answer_prompts with the text in `top_answer`, truncated_answers,
implicit_reward_accuracy and its interval),
one warning line per finding:

  empty answers      at least EMPTY_SHARE of the greedy answers are empty
  repeated answers   one answer given to at least REPEATED_SHARE of the prompts (and to at
                     least REPEATED_MIN of them)
  truncation         at least TRUNCATED_SHARE of the greedy answers were cut at max_new_tokens
                     (no end token): the judge scored answers it never saw end
  below chance       a model's implicit-reward accuracy interval against its reference lies
                     below 1/2 and its mean reward margin is negative: it ranks the held-out pairs
                     backwards (a model that ties its reference everywhere scores 0 too, with margin 0)

The thresholds sit far from what working models do on the embedded default (measured on its
default run, 2026-12-06: the SFT model's greedy answers to 335 held-out prompts had 0 empty,
0 cut at 24 tokens, and its most common answer on 16 of 335 prompts, 4.8%; the task answers
themselves repeat at most 20 of 335 times, 6%), and close to what broken runs did on real data
(issue 23: blank answers on every judged prompt, one answer to 167 of 233 prompts).
Reads only the dicts it is given.
"""

from __future__ import annotations

EMPTY_SHARE = 0.05
REPEATED_SHARE = 0.25
REPEATED_MIN = 5
TRUNCATED_SHARE = 0.10


def _shown(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def model_flags(name: str, result: dict) -> list[str]:
    """Warnings about one evaluated model's greedy answers and ranking."""
    m = result.get("metrics", {})
    model = name.upper()
    answered = m.get("answered_prompts") or 0
    out = []
    if answered:
        empty, top, cut = m.get("empty_answers", 0), m.get("top_answer_prompts", 0), m.get("truncated_answers", 0)
        if empty / answered >= EMPTY_SHARE:
            out.append(f"Warning: {model}'s greedy answers are empty on {empty} of {answered} answered prompts: the "
                       "model does not answer (too little training or data?), and a judge's scores of empty answers "
                       "mean little.")
        if top >= REPEATED_MIN and top / answered >= REPEATED_SHARE:
            text = (result.get("top_answer") or {}).get("greedy") or ""
            out.append(f"Warning: {model} gave the same answer to {top} of {answered} prompts "
                       f"(\"{_shown(text)}\"): a collapsed model, whatever its win rate says.")
        if cut / answered >= TRUNCATED_SHARE:
            limit = result.get("settings", {}).get("max_new_tokens")
            out.append(f"Warning: {cut} of {model}'s {answered} greedy answers were cut at max_new_tokens ({limit}) "
                       "before they ended: the judge scored unfinished answers (raise eval.max_new_tokens).")
    interval = result.get("intervals", {}).get("implicit_reward_accuracy")
    value, margin = m.get("implicit_reward_accuracy"), m.get("reward_margin_mean")
    # A model that ties its reference everywhere also scores 0 (the accuracy counts strict wins): only a
    # negative mean margin is ranking backwards.
    if (interval and value is not None and interval["high"] < 0.5 and margin is not None and margin < 0
            and result.get("reference") != name):
        out.append(f"Warning: {model} ranks the held-out pairs below chance: implicit-reward accuracy against "
                   f"{result.get('reference')} {value:.3f} [{interval['low']:.3f}, {interval['high']:.3f}], an "
                   f"interval below 0.5, mean reward margin {margin:.3f} (it prefers the rejected replies).")
    return out


def flag_lines(evaluations: dict[str, dict], comparisons: list[dict]) -> list[str]:
    """Warnings for every model a comparison names (else every evaluated model but the base), in that order."""
    names = list(dict.fromkeys(n for c in comparisons for n in (c["model"], c["baseline"])))
    names = [n for n in names if n in evaluations] or [n for n in evaluations if n != "base"]
    return [line for name in names for line in model_flags(name, evaluations[name])]
