"""Evaluation metrics against numbers worked out by hand, so a wrong sign or a wrong average fails.

The fixture: four test pairs with hand-chosen summed log-probs under the policy and the
reference, beta 0.5. Per pair, margin = beta * ((pc - rc) - (pr - rr)):

    pair  policy c / r   ref c / r      tokens c / r   margin                             logp acc  per token
    p1    -2   / -5      -3   / -4      2 / 5          0.5 * (( 1.00) - (-1.00)) =  1.0   yes       -1.0 vs -1.0: no
    p2    -5.5 / -4.5    -5   / -5      11 / 3         0.5 * ((-0.50) - ( 0.50)) = -0.5   no        -0.5 vs -1.5: yes
    p3    -3   / -3      -3   / -3      1 / 1          0.5 * (( 0.00) - ( 0.00)) =  0.0   no        -3 vs -3: no
    p4    -1   / -2      -1.25 / -1.75  4 / 1          0.5 * (( 0.25) - (-0.25)) =  0.25  yes       -0.25 vs -2: yes

implicit-reward accuracy (margin > 0): p1, p4 = 2/4 = 0.5 (with the sign flipped it would be 1/4)
margin mean: (1 - 0.5 + 0 + 0.25) / 4 = 0.1875
sigmoid loss, mean softplus(-margin): (ln(1+e^-1) + ln(1+e^0.5) + ln 2 + ln(1+e^-0.25)) / 4
    = (0.3132617 + 0.9740770 + 0.6931472 + 0.5759394) / 4 = 0.6391063
chosen NLL per token: (2 + 5.5 + 3 + 1) / (2 + 11 + 1 + 4) = 11.5 / 18 = 0.6388889
"""

from __future__ import annotations

import pytest

from prefalign.evaluation.compare import CompareSettings, compare
from prefalign.evaluation.evaluate import EvalSettings, kl_estimate
from prefalign.evaluation.preference import pair_metrics

RECORDS = [{"id": f"p{i}"} for i in range(1, 5)]
POLICY = [-2.0, -5.5, -3.0, -1.0, -5.0, -4.5, -3.0, -2.0]  # chosen p1..p4, then rejected p1..p4
REFERENCE = [-3.0, -5.0, -3.0, -1.25, -4.0, -5.0, -3.0, -1.75]
TOKENS = [2, 11, 1, 4, 5, 3, 1, 1]


def test_preference_metrics_worked_out_by_hand():
    metrics, bounds, rows = pair_metrics(RECORDS, POLICY, REFERENCE, TOKENS, EvalSettings(beta=0.5,
                                                                                           bootstrap_samples=200))
    assert [r["margin"] for r in rows] == [1.0, -0.5, 0.0, 0.25]
    assert metrics["implicit_reward_accuracy"] == 0.5
    assert metrics["reward_margin_mean"] == 0.1875
    assert metrics["logp_accuracy"] == 0.5
    assert [r["logp_accuracy_normalized"] for r in rows] == [False, True, False, True]
    assert metrics["sigmoid_loss"] == pytest.approx(0.6391063, abs=1e-7)
    assert metrics["chosen_nll_per_token"] == pytest.approx(0.6388889, abs=1e-7)
    assert metrics["pairs"] == 4 and metrics["reward_margin_median"] == 0.125
    assert bounds["implicit_reward_accuracy"]["low"] <= 0.5 <= bounds["implicit_reward_accuracy"]["high"]


def test_a_model_that_is_its_own_reference_has_no_preference():
    metrics, _, rows = pair_metrics(RECORDS, POLICY, POLICY, TOKENS, EvalSettings(beta=0.5, bootstrap_samples=10))
    assert metrics["implicit_reward_accuracy"] == 0.0 and metrics["reward_margin_mean"] == 0.0
    assert metrics["sigmoid_loss"] == pytest.approx(0.6931472, abs=1e-7)  # ln 2: DPO's loss at step 1


def test_kl_worked_out_by_hand():
    """Two samples per prompt; per-prompt means 0.2, 0.2, 0.6: KL = 1/3; SE = sd([.2, .2, .6]) / sqrt(3)
    = sqrt(0.0533333) / 1.7320508 = 0.1333333 (over prompts: the two samples of a prompt are not independent)."""
    kl, se = kl_estimate([[0.3, 0.1], [-0.1, 0.5], [0.8, 0.4]])
    assert kl == pytest.approx(1 / 3, abs=1e-12)
    assert se == pytest.approx(0.1333333, abs=1e-7)


def test_win_rate_worked_out_by_hand():
    """Scores 1 vs 0 (win), 0.2 vs 0.5 (loss), 0.7 vs 0.7 (tie), 0.7 vs 0.1 (win): (2 + 1/2) / 4 = 0.625."""
    def rows(scores):
        return [{"id": f"q{i}", "score": s, "tokens": 5, "sampled": {"score": s, "tokens": 5}}
                for i, s in enumerate(scores)]

    out = compare(({"model": "dpo", "judge": {"kind": "trained"}}, rows([1.0, 0.2, 0.7, 0.7])),
                  ({"model": "sft", "judge": {"kind": "trained"}}, rows([0.0, 0.5, 0.7, 0.1])),
                  CompareSettings(bootstrap_samples=200))
    greedy = out["greedy"]
    assert (greedy["wins"], greedy["ties"], greedy["losses"], greedy["win_rate"]) == (2, 1, 1, 0.625)


def test_answer_health_counts_empty_repeated_and_cut_answers():
    """What the report's warnings read (issue 23, item 6): counted over the answered prompts."""
    from prefalign.evaluation.evaluate import answer_health, most_common_answer

    answers = [{"answer": " yes", "truncated": False}, {"answer": "yes ", "truncated": True},
               {"answer": "", "truncated": False}, {"answer": "no", "truncated": True}, {"answer": "  ", "truncated": False}]
    assert most_common_answer(answers) == ("yes", 2)  # ties: the first seen
    assert answer_health(answers, "greedy") == {"answered_prompts": 5, "empty_answers": 2, "top_answer_prompts": 2,
                                                "truncated_answers": 2}
    assert answer_health(answers[:1], "sampled") == {"sampled_answered_prompts": 1, "sampled_empty_answers": 0,
                                                     "sampled_top_answer_prompts": 1, "sampled_truncated_answers": 0}
    assert most_common_answer([]) == (None, 0)
