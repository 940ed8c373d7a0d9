"""Issue 23: the model card says which judge graded the model, which picked DPO's pairs, why the two are
independent, and the verdict weighed by the judge (from compare.json)."""

from __future__ import annotations

from prefalign.publish.card import judge_statements


def test_the_card_names_both_judges_and_the_weighed_verdict():
    comparison = {
        "judge": {"kind": "trained", "path": "results/reward_model/model"},
        "judges": {"evaluation": {"kind": "trained", "path": "results/reward_model/model", "why": "w"},
                   "pairs": {"kind": "trained", "why": "onpolicy.judge auto: ... (rule train_pair_judge)"},
                   "independence": "two reward models judge"},
        "verdict": {"result": "cannot tell", "raw": "better", "length_controlled": "no measurable change",
                    "judge": {"why": "held-out pairwise accuracy 0.532 [0.464, 0.601] on 300 test pairs, an interval "
                                     "that contains 0.5: not shown to beat chance"}}}
    lines = judge_statements(comparison)
    assert lines == [
        "",
        "- Graded by: the trained judge (`results/reward_model/model`).",
        "- DPO's pairs picked by: the trained pair judge (onpolicy.judge auto: ... (rule train_pair_judge)).",
        "- Independence: two reward models judge.",
        "- Verdict: cannot tell (raw better, length-controlled no measurable change; judge: held-out pairwise accuracy "
        "0.532 [0.464, 0.601] on 300 test pairs, an interval that contains 0.5: not shown to beat chance)."]
    offline = judge_statements({"judge": {"kind": "task"}, "judges": {"evaluation": {"kind": "task"}, "pairs": None}})
    assert "- DPO's pairs picked by: no judge (the dataset's own chosen/rejected labels)." in offline
    assert judge_statements({}) == []
