"""Issue 23, item 2: a verdict that weighs the judge, the length-controlled result and the rerun noise.

Each case is worked out by hand from where an interval lies against 1/2, including the boundary:
an interval that starts at exactly 0.5000 is no evidence that the model is better."""

from __future__ import annotations

import pytest

from prefalign.evaluation.compare import CompareSettings, compare
from prefalign.evaluation.verdict import headline, interval_verdict, judge_trust, rerun_noise, verdict


def interval(low, high):
    return {"low": low, "high": high, "method": "test"}


def decoding(low, high, lc=None):
    return {"win_rate": (low + high) / 2, "interval": interval(low, high),
            "lc": {"win_rate": None, "interval": interval(*lc) if lc else None}}


def judge_eval(low, high, path="rm"):
    return {"judge": {"kind": "trained", "path": path}, "metrics": {"accuracy": (low + high) / 2, "pairs": 200},
            "intervals": {"accuracy": interval(low, high)}}


TASK = {"kind": "task"}
TRAINED = {"kind": "trained", "path": "rm"}


def test_an_interval_starting_at_exactly_one_half_is_no_measurable_change():
    assert interval_verdict(interval(0.5, 0.6)) == "no measurable change"
    assert interval_verdict(interval(0.5000001, 0.6)) == "better"
    assert interval_verdict(interval(0.4, 0.5)) == "no measurable change"
    assert interval_verdict(interval(0.4, 0.4999999)) == "worse"
    assert interval_verdict(None) is None


def test_better_needs_a_win_rate_and_a_judge_both_above_chance():
    win = decoding(0.74, 0.84, lc=(0.6, 0.7))
    assert verdict(win, win, TASK)["result"] == "better"  # the verifier needs no accuracy
    strong = verdict(win, win, TRAINED, judge_eval(0.515, 0.639))
    assert strong["result"] == "better" and strong["judge"]["trusted"]
    weak = verdict(win, win, TRAINED, judge_eval(0.5, 0.6))  # the judge's interval starts at exactly 0.5
    assert weak["result"] == weak["sampled"] == "cannot tell" and weak["raw"] == "better"
    assert "contains 0.5" in weak["judge"]["why"]
    backwards = verdict(decoding(0.1, 0.2), decoding(0.1, 0.2), TRAINED, judge_eval(0.3, 0.45))
    assert backwards["result"] == "cannot tell" and "below chance" in backwards["judge"]["why"]
    unmeasured = verdict(win, win, TRAINED, None)
    assert unmeasured["result"] == "cannot tell" and "not measured" in unmeasured["judge"]["why"]


def test_raw_and_length_controlled_verdicts_are_both_kept_and_compared():
    longer = verdict(decoding(0.74, 0.84, lc=(0.398, 0.683)), decoding(0.5, 0.6), TASK)
    assert (longer["raw"], longer["length_controlled"], longer["length_agrees"]) == (
        "better", "no measurable change", False)
    assert longer["result"] == "better" and longer["sampled"] == "no measurable change"
    both = verdict(decoding(0.74, 0.84, lc=(0.6, 0.7)), decoding(0.5, 0.6), TASK)
    assert both["length_agrees"] and both["length_controlled"] == "better"


def test_a_gain_smaller_than_two_rerun_sds_is_within_rerun_noise():
    spread = {"sd": 0.012, "min": 0.49, "max": 0.53, "runs": 7, "source": "toy"}
    small = rerun_noise(0.52, spread)  # gain 0.02 < 2 x 0.012
    assert small["within"] and small["floor"] == pytest.approx(0.024) and small["gain"] == pytest.approx(0.02)
    assert headline("better", small) == "within rerun noise"
    large = rerun_noise(0.53, spread)  # gain 0.03 > 0.024
    assert not large["within"] and headline("better", large) == "better"
    assert headline("no measurable change", small) == "no measurable change"
    assert headline("cannot tell", small) == "cannot tell"
    assert rerun_noise(0.52, None) is None and headline("better", None) == "better"


def test_judge_trust_of_the_task_verifier_and_of_a_reward_model():
    assert judge_trust(TASK, None)["trusted"] is True
    trust = judge_trust(TRAINED, judge_eval(0.515, 0.639))
    assert trust["trusted"] and trust["why"] == "held-out pairwise accuracy 0.577 [0.515, 0.639] on 200 test pairs, " \
                                                "above chance"


def rows(scores):
    return [{"id": f"r{i}", "score": s, "tokens": 3, "sampled": {"score": s, "tokens": 3}} for i, s in enumerate(scores)]


def test_compare_weighs_the_judge_it_is_given_and_refuses_another_judges_accuracy():
    model = ({"model": "dpo", "judge": TRAINED}, rows([1.0] * 30))
    baseline = ({"model": "sft", "judge": TRAINED}, rows([0.0] * 30))
    settings = CompareSettings(bootstrap_samples=200)
    assert compare(model, baseline, settings, judge_eval(0.6, 0.7))["verdict"]["result"] == "better"
    weak = compare(model, baseline, settings, judge_eval(0.45, 0.6))
    assert weak["verdict"]["result"] == "cannot tell" and weak["greedy"]["interval"]["low"] == 1.0
    with pytest.raises(Exception, match="judge_eval: expected the held-out accuracy of the judge that scored"):
        compare(model, baseline, settings, judge_eval(0.6, 0.7, path="another"))
