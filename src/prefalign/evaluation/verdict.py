"""The verdict of a comparison: did the model's answers get better, on a judge that can tell?

    interval_verdict(interval)     better when the 95% interval's lower end is above 1/2, worse when its
                                   upper end is below 1/2, else no measurable change (an end at exactly
                                   1/2 is no evidence either way)
    judge_trust(judge, judge_eval) whether the judge can tell better from worse: the task verifier
                                   always (it checks answers against their task's rule); a reward model
                                   only when its held-out pairwise accuracy interval lies above 1/2
    verdict(greedy, sampled, ...)  the comparison's verdict (compare.json's `verdict`)
    rerun_noise(win_rate, spread)  whether a gain is smaller than the win rate's spread over seeds

The result is `better` only when the win rate's interval lies above 1/2 *and* the judge's
held-out accuracy interval lies above 1/2; with a judge that cannot be shown to beat chance it
is `cannot tell`, whatever the win rate (a judge at chance makes any win rate noise). The
length-controlled win rate (prefalign.evaluation.length_control) gets its own interval verdict,
beside the raw one: where they differ, part of the raw preference follows answer length, and the
report's first line says so. Reads only the dicts it is given.
"""

from __future__ import annotations

RESULTS = ("better", "no measurable change", "worse", "cannot tell")
WITHIN_NOISE = "within rerun noise"
# A gain is "within rerun noise" when it is smaller than NOISE_SDS standard deviations of the win rate
# over reruns with other seeds: about 95% of reruns land within 2 sd of their mean (normal approximation),
# so a smaller gain could vanish, or flip, on a rerun.
NOISE_SDS = 2.0
RULE = ("better when the win rate's 95% interval lies above 1/2 and the judge's held-out pairwise accuracy "
        "interval lies above 1/2 (the task verifier needs none); worse when the win rate's interval lies below "
        "1/2 on such a judge; cannot tell with a judge not shown to beat chance; else no measurable change")


def interval_verdict(interval: dict | None) -> str | None:
    """better / worse / no measurable change from where a 95% interval lies against 1/2; None without one."""
    if not interval:
        return None
    if interval["low"] > 0.5:
        return "better"
    if interval["high"] < 0.5:
        return "worse"
    return "no measurable change"


def judge_trust(judge: dict, judge_eval: dict | None) -> dict:
    """{"trusted": bool, "why": sentence, and for a reward model its accuracy, interval and pairs}."""
    if judge.get("kind") == "task":
        return {"trusted": True, "why": "the task verifier checks each answer against its task's rule"}
    if judge_eval is None:
        return {"trusted": False, "why": "its held-out pairwise accuracy was not measured (prefalign evaluate-judge)"}
    metrics, interval = judge_eval["metrics"], judge_eval.get("intervals", {}).get("accuracy")
    out = {"accuracy": metrics.get("accuracy"), "interval": interval, "pairs": metrics.get("pairs")}
    if interval is None:
        return {**out, "trusted": False, "why": "its held-out pairwise accuracy has no interval (no test pairs)"}
    said = (f"held-out pairwise accuracy {metrics['accuracy']:.3f} [{interval['low']:.3f}, {interval['high']:.3f}] "
            f"on {metrics['pairs']} test pairs")
    where = interval_verdict(interval)
    if where == "better":
        return {**out, "trusted": True, "why": f"{said}, above chance"}
    if where == "worse":
        return {**out, "trusted": False, "why": f"{said}, below chance: it ranks held-out pairs backwards"}
    return {**out, "trusted": False, "why": f"{said}, an interval that contains 0.5: not shown to beat chance"}


def verdict(greedy: dict, sampled: dict, judge: dict, judge_eval: dict | None = None) -> dict:
    """The comparison's verdict from its greedy and sampled win rates (compare's decoding results)."""
    trust = judge_trust(judge, judge_eval)
    raw, sampled_raw = interval_verdict(greedy.get("interval")), interval_verdict(sampled.get("interval"))
    lc = interval_verdict((greedy.get("lc") or {}).get("interval"))
    return {
        "result": raw if trust["trusted"] else "cannot tell", "decoding": "greedy",
        "sampled": sampled_raw if trust["trusted"] else "cannot tell",
        "raw": raw, "length_controlled": lc, "sampled_raw": sampled_raw,
        "length_agrees": lc is None or lc == raw,
        "judge": trust, "rule": RULE,
    }


def rerun_noise(win_rate: float | None, spread: dict | None) -> dict | None:
    """The win rate's spread over seeds (an expected file's `spread` entry) and whether the gain over 1/2 is
    smaller than NOISE_SDS of its standard deviations; None when no spread was measured."""
    if spread is None or win_rate is None:
        return None
    floor = NOISE_SDS * spread["sd"]
    gain = win_rate - 0.5
    return {**spread, "gain": gain, "floor": floor, "within": abs(gain) < floor,
            "rule": f"a gain over 1/2 smaller than {NOISE_SDS:g} sd of the win rate over reruns is within rerun noise"}


def headline(result: str, noise: dict | None) -> str:
    """The verdict's word, with a better/worse gain smaller than the rerun spread called within rerun noise."""
    if noise is not None and noise["within"] and result in ("better", "worse"):
        return WITHIN_NOISE
    return result
