"""Issue 23: the report's first lines answer "did DPO help?" weighing the judge, the length-controlled result
and the rerun noise, say which judge did what, and name broken models (empty, repeated, truncated answers,
below-chance ranking) instead of passing them. Toy evaluate/compare outputs, worked out by hand."""

from __future__ import annotations

from prefalign.evaluation.check import load_spread
from prefalign.evaluation.verdict import verdict
from prefalign.report import flags, outcome


def decoding(rate, low, high, lc=None, lengths=(18.0, 23.4), wins=(150, 20, 63)):
    lc_rate, lc_low, lc_high = lc or (rate, low, high)
    return {"win_rate": rate, "interval": {"low": low, "high": high}, "prompts": sum(wins), "wins": wins[0],
            "ties": wins[1], "losses": wins[2], "lengths": {"model": lengths[0], "baseline": lengths[1]},
            "lc": {"win_rate": lc_rate, "interval": {"low": lc_low, "high": lc_high}}}


def comparison(greedy, judge, judge_eval=None, sampled=None):
    sampled = sampled or greedy
    return {"model": "dpo", "baseline": "sft", "judge": judge, "greedy": greedy, "sampled": sampled,
            "verdict": verdict(greedy, sampled, judge, judge_eval)}


TRAINED = {"kind": "trained", "path": "results/reward_model/model"}


def judge_eval(accuracy, low, high, pairs=300):
    return {"judge": TRAINED, "metrics": {"accuracy": accuracy, "pairs": pairs, "ties": 0},
            "intervals": {"accuracy": {"low": low, "high": high}}}


def test_a_judge_not_shown_above_chance_makes_the_first_line_say_the_run_cannot_tell():
    c = comparison(decoding(0.790, 0.740, 0.839, lc=(0.541, 0.398, 0.683)), TRAINED, judge_eval(0.532, 0.464, 0.601))
    (line,) = outcome.verdict_lines([c])
    assert line.startswith("Did DPO help? Cannot tell: the trained reward-model judge is not shown to rank answers "
                           "better than chance (held-out pairwise accuracy 0.532 [0.464, 0.601] on 300 test pairs, an "
                           "interval that contains 0.5: not shown to beat chance)")
    assert "greedy win rate 0.790 [0.740, 0.839]" in line and "length-controlled 0.541 [0.398, 0.683]" in line


def test_raw_and_length_controlled_verdicts_that_disagree_are_said_first():
    c = comparison(decoding(0.790, 0.740, 0.839, lc=(0.541, 0.398, 0.683)), TRAINED, judge_eval(0.575, 0.515, 0.639))
    (line,) = outcome.verdict_lines([c])
    assert line.startswith("Did DPO help? Better on the raw win rate, but no measurable change once answer length is "
                           "controlled: DPO vs SFT on the trained reward-model judge (held-out pairwise accuracy 0.575 "
                           "[0.515, 0.639] on 300 test pairs)")
    assert "mean answer tokens DPO 18.0 vs SFT 23.4" in line and "follows answer length" in line
    agree = comparison(decoding(0.79, 0.74, 0.839, lc=(0.7, 0.6, 0.8)), TRAINED, judge_eval(0.575, 0.515, 0.639))
    assert outcome.verdict_lines([agree])[0].startswith("Did DPO help? Yes: DPO is better than SFT on the trained")
    assert "(better too)" in outcome.verdict_lines([agree])[0]


def test_an_interval_starting_at_one_half_is_no_measurable_change_in_the_first_line():
    c = comparison(decoding(0.516, 0.5, 0.533, wins=(20, 306, 9)), {"kind": "task"})
    line = outcome.verdict_lines([c])[0]
    assert line.startswith("Did DPO help? No measurable change from SFT to DPO on the task-verifier judge: greedy win "
                           "rate 0.516 [0.500, 0.533] over 335 held-out prompts (20 wins, 306 ties, 9 losses), an "
                           "interval that contains 0.5")


def test_a_gain_under_the_rerun_spread_of_a_toy_expected_file_is_within_rerun_noise(tmp_path):
    expected = tmp_path / "expected.yaml"
    expected.write_text("metrics:\n  dpo_vs_sft.win_rate: {min: 0.5}\n"
                        "spread:\n  dpo_vs_sft.win_rate: {sd: 0.015, min: 0.49, max: 0.55, runs: 5, source: toy}\n")
    spread = load_spread(expected)
    c = comparison(decoding(0.524, 0.509, 0.539, wins=(30, 290, 15)), {"kind": "task"})
    line = outcome.verdict_lines([c], spread)[0]
    assert line.startswith("Did DPO help? Within rerun noise: on the task-verifier judge, DPO's greedy win rate 0.524 "
                           "[0.509, 0.539]")
    assert ("its gain of +0.024 is smaller than 2 sd (0.030) of the win rate over 5 reruns with other seeds (sd "
            "0.015, range 0.490-0.550)") in line
    clear = comparison(decoding(0.6, 0.57, 0.63, wins=(60, 260, 15)), {"kind": "task"})
    line = outcome.verdict_lines([clear], spread)[0]
    assert line.startswith("Did DPO help? Yes: DPO is better than SFT")
    assert "Rerun spread of this win rate over 5 seeds: sd 0.015" in line
    assert outcome.verdict_lines([clear])[0].count("Rerun spread") == 0  # not measured: not claimed


def test_the_judges_line_says_which_judge_picked_the_pairs_and_which_graded_them():
    evaluations = {"dpo": {"judge": TRAINED, "judges": {
        "evaluation": {**TRAINED, "why": "w"}, "pairs": {"kind": "trained", "why": "p"},
        "independence": "two reward models judge: the pair judge trained on one part of the train prompts, the "
                        "evaluation judge on the other"}}}
    line = outcome.judges_line(evaluations, {"kind": "trained", "path": "results/pair_judge/model"})
    assert line == ("Judges: DPO's pairs were picked by a reward model trained in this run (results/pair_judge/model); "
                    "the answers are graded by a reward model trained in this run (results/reward_model/model): two "
                    "reward models judge: the pair judge trained on one part of the train prompts, the evaluation "
                    "judge on the other.")
    offline = {"dpo": {"judge": {"kind": "task"}, "judges": {"evaluation": {"kind": "task"}, "pairs": None,
                                                             "independence": "no judge picked its pairs"}}}
    assert "picked by no judge: DPO trained on the dataset's own chosen/rejected labels" in \
        outcome.judges_line(offline, None)


def test_trust_lines_give_the_judges_accuracy_and_its_agreement_with_the_verifier():
    c = comparison(decoding(0.79, 0.74, 0.839), TRAINED, judge_eval(0.575, 0.515, 0.639))
    c["judge_agreement"] = {"pairs": 40, "agree": 30, "disagree": 8, "judge_ties": 2, "rate": 0.775,
                            "interval": {"low": 0.65, "high": 0.88}}
    (line,) = outcome.trust_lines([c], judge_eval(0.575, 0.515, 0.639))
    assert line.startswith("How far to trust the judge: held-out pairwise accuracy 0.575 [0.515, 0.639] on 300 test "
                           "pairs, above chance")
    assert "where one answer is right and one wrong it prefers the right one 0.775 [0.650, 0.880]" in line
    del c["judge_agreement"]
    assert "cannot be checked" in outcome.trust_lines([c], judge_eval(0.575, 0.515, 0.639))[0]


def evaluated(answered=233, empty=0, top=10, text="I", cut=0, accuracy=(0.62, 0.55, 0.69), reference="sft",
              margin=0.4):
    return {"reference": reference, "settings": {"max_new_tokens": 24}, "top_answer": {"greedy": text},
            "metrics": {"answered_prompts": answered, "empty_answers": empty, "top_answer_prompts": top,
                        "truncated_answers": cut, "implicit_reward_accuracy": accuracy[0],
                        "reward_margin_mean": margin},
            "intervals": {"implicit_reward_accuracy": {"low": accuracy[1], "high": accuracy[2]}}}


def test_broken_models_are_named_in_warnings():
    assert flags.model_flags("dpo", evaluated()) == []
    (blank,) = flags.model_flags("dpo", evaluated(answered=40, empty=40, top=40, text=""))[:1]
    assert blank.startswith("Warning: DPO's greedy answers are empty on 40 of 40 answered prompts")
    (same,) = flags.model_flags("dpo", evaluated(top=167, text="I'm sorry, I can't help with that."))
    assert same.startswith("Warning: DPO gave the same answer to 167 of 233 prompts (\"I'm sorry, I can't help with "
                           "that.\")")
    (cut,) = flags.model_flags("dpo", evaluated(cut=200))
    assert cut.startswith("Warning: 200 of DPO's 233 greedy answers were cut at max_new_tokens (24)")
    (backwards,) = flags.model_flags("dpo", evaluated(accuracy=(0.41, 0.35, 0.47), margin=-0.2))
    assert backwards.startswith("Warning: DPO ranks the held-out pairs below chance: implicit-reward accuracy against "
                                "sft 0.410 [0.350, 0.470], an interval below 0.5, mean reward margin -0.200")
    assert flags.model_flags("dpo", evaluated(accuracy=(0.0, 0.0, 0.0), margin=0.0)) == []  # ties, not backwards
    # Thresholds: a share just under each one is not flagged (the demo's SFT: 16 of 335 is its most common answer).
    assert flags.model_flags("sft", evaluated(answered=335, top=16, empty=16, cut=33)) == []
    assert flags.model_flags("base", evaluated(accuracy=(0.0, 0.0, 0.0), reference="base")) == []  # own reference


def test_flags_cover_the_compared_models_only():
    evaluations = {"base": evaluated(empty=233, reference="base"), "sft": evaluated(), "dpo": evaluated(empty=100)}
    lines = flags.flag_lines(evaluations, [{"model": "dpo", "baseline": "sft"}])
    assert len(lines) == 1 and lines[0].startswith("Warning: DPO's greedy answers are empty")
