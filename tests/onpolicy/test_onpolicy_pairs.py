"""On-policy pair construction (prefalign.onpolicy.pairs, .build): the pairing rule, the ledger's
reasons and the accounting that every prompt ends as a pair or a ledger line."""

from __future__ import annotations

import collections

import pytest

from prefalign.onpolicy import build
from prefalign.onpolicy.pairs import AccountingError, Choice, account, choose
from prefalign.onpolicy.plan import PairsSettings
from prefalign.onpolicy.sample import Judged, OnPolicySettings
from prefalign.settings import ConfigError


def test_best_vs_worst_takes_the_lowest_index_among_equal_scores():
    assert choose(["a", "b", "c", "d"], [0.0, 1.0, 1.0, 0.0], binary=True) == Choice(1, 0)
    assert choose(["a", "b", "c"], [0.2, 0.9, -0.5]) == Choice(1, 2)


@pytest.mark.parametrize("scores, reason", [([1.0, 1.0, 1.0], "all_correct"), ([0.0, 0.0], "all_wrong")])
def test_a_verifier_reports_all_correct_and_all_wrong_prompts(scores, reason):
    assert choose(["x"] * len(scores), scores, binary=True) == Choice(reason=reason)


def test_equal_scores_of_a_graded_judge_are_a_tie():
    assert choose(["a", "b"], [0.3, 0.3]) == Choice(reason="tie")
    assert choose(["a", "b"], [1.0, 1.0]) == Choice(reason="tie")  # 1.0 means nothing special without binary


def test_one_text_with_two_scores_is_a_tie_not_a_pair():
    assert choose(["same", "same"], [0.5, 0.49]) == Choice(reason="tie")


def test_margin_drops_close_pairs_and_keeps_the_others():
    assert choose(["a", "b"], [0.5, 0.3], margin=0.25) == Choice(reason="below_margin")
    assert choose(["a", "b"], [0.5, 0.25], margin=0.25) == Choice(0, 1)
    assert choose(["a", "b"], [0.5, 0.49], margin=0.0) == Choice(0, 1)


def test_choose_refuses_mismatched_inputs():
    with pytest.raises(ValueError):
        choose(["a"], [1.0, 0.0])
    with pytest.raises(ValueError):
        choose([], [])


def test_account_checks_that_counts_add_up():
    counts = account(5, 2, collections.Counter(all_wrong=2, all_correct=1), 3, "t")
    assert counts["in"] == counts["paired"] + counts["dropped"] == 5
    assert counts["dropped_by_reason"] == {"all_correct": 1, "all_wrong": 2, "tie": 0, "below_margin": 0}
    with pytest.raises(AccountingError, match="in 6 != paired 2"):
        account(6, 2, collections.Counter(all_wrong=3), 3, "t")
    with pytest.raises(AccountingError, match="ledger lines 2"):
        account(5, 2, collections.Counter(all_wrong=3), 2, "t")
    with pytest.raises(AccountingError, match="unknown reasons"):
        account(3, 2, collections.Counter(lost=1), 1, "t")


def judged(i: int, answers: list[str], scores: list[float]) -> Judged:
    record = {"id": f"d/train/{i}", "source": "d", "prompt": [{"role": "user", "content": f"What is {i} + 1?"}],
              "chosen": [{"role": "assistant", "content": str(i + 1)}],
              "rejected": [{"role": "assistant", "content": "x"}], "meta": {}}
    return Judged(record, answers, [len(a) for a in answers], scores)


def test_build_writes_canonical_pairs_a_ledger_and_stats_that_add_up():
    items = [judged(1, ["2", "3", "2"], [1.0, 0.0, 1.0]),   # pair: sample 0 vs 1
             judged(2, ["3", "3"], [1.0, 1.0]),             # all correct
             judged(3, ["5", "6"], [0.0, 0.0]),             # all wrong
             judged(4, ["9", "5"], [0.0, 1.0])]             # pair: sample 1 vs 0
    settings = OnPolicySettings(round=2, samples_per_prompt=2)
    pairs, ledger, samples, stats = build.build(items, settings, {"kind": "task"}, "results/dpo/round-1/model")
    assert [p["id"] for p in pairs] == ["onpolicy/round-2/d/train/1", "onpolicy/round-2/d/train/4"]
    first = pairs[0]
    assert set(first) == {"id", "source", "prompt", "chosen", "rejected", "meta"}
    assert first["chosen"] == [{"role": "assistant", "content": "2"}]
    assert first["rejected"] == [{"role": "assistant", "content": "3"}]
    assert first["prompt"] == items[0].record["prompt"]
    meta = first["meta"]
    assert (meta["round"], meta["chosen_sample"], meta["rejected_sample"]) == (2, 0, 1)
    assert (meta["chosen_score"], meta["rejected_score"], meta["scores"]) == (1.0, 0.0, [1.0, 0.0, 1.0])
    assert meta["judge"] == {"kind": "task"} and meta["from_id"] == "d/train/1"
    assert meta["policy"] == "results/dpo/round-1/model"
    assert [(row["id"], row["reason"]) for row in ledger] == [("d/train/2", "all_correct"), ("d/train/3", "all_wrong")]
    assert [row["outcome"] for row in samples] == ["paired", "all_correct", "all_wrong", "paired"]
    assert stats["prompts"] == {"in": 4, "paired": 2, "dropped": 2, "dropped_by_reason": {
        "all_correct": 1, "all_wrong": 1, "tie": 0, "below_margin": 0}}
    assert stats["sample_score_mean"] == pytest.approx(5 / 9)


def test_build_with_a_graded_judge_reports_ties_and_margins():
    items = [judged(1, ["a", "b"], [0.7, 0.7]), judged(2, ["a", "b"], [0.7, 0.6]), judged(3, ["a", "b"], [2.0, 0.0])]
    settings = OnPolicySettings(samples_per_prompt=2, margin=0.5, judge="task")
    pairs, ledger, _, stats = build.build(items, settings, {"kind": "reward_model"}, "sft")
    assert [p["meta"]["from_id"] for p in pairs] == ["d/train/3"]
    assert [row["reason"] for row in ledger] == ["tie", "below_margin"]
    assert stats["prompts"]["in"] == stats["prompts"]["paired"] + stats["prompts"]["dropped"]


def test_mix_keeps_every_onpolicy_pair_and_draws_the_offline_share():
    onpolicy = [{"id": f"on{i}"} for i in range(10)]
    offline = [{"id": f"off{i}"} for i in range(100)]
    mixed, counts = build.mix(onpolicy, offline, 0.5, seed=1)
    assert counts == {"onpolicy": 10, "offline": 10, "offline_wanted": 10, "offline_available": 100, "total": 20}
    assert {r["id"] for r in onpolicy} <= {r["id"] for r in mixed}
    assert build.mix(onpolicy, offline, 0.5, seed=1)[0] == mixed  # seeded
    few, counts = build.mix(onpolicy, offline[:3], 0.75, seed=1)
    assert (counts["offline_wanted"], counts["offline"], len(few)) == (30, 3, 13)
    assert build.mix(onpolicy, offline, 0.0, seed=1)[1]["offline"] == 0
    with pytest.raises(ValueError):
        build.mix(onpolicy, offline, 1.0, seed=1)


def test_settings_refuse_what_cannot_run():
    with pytest.raises(ConfigError, match="samples_per_prompt"):
        OnPolicySettings(samples_per_prompt=1)
    with pytest.raises(ConfigError, match="top_p"):
        OnPolicySettings(top_p=0.0)
    with pytest.raises(ConfigError, match="reward_model"):
        OnPolicySettings(judge="reward_model")
    with pytest.raises(ConfigError, match="rounds"):
        PairsSettings(pairs="offline", rounds=2)
    assert PairsSettings(pairs="mixed", rounds=3).samples


def test_a_failed_commit_leaves_no_output_and_no_scratch_file(tmp_path):
    from prefalign.onpolicy.command import commit

    with pytest.raises(TypeError):
        commit({tmp_path / "pairs.jsonl": [{"id": "a"}], tmp_path / "stats.json": {"bad": object()}})
    assert list(tmp_path.iterdir()) == []
    commit({tmp_path / "pairs.jsonl": [{"id": "a"}], tmp_path / "stats.json": {"in": 1}})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs.jsonl", "stats.json"]


# ---------------------------------------------------------------- accounting from the train rows (issue 23, item 5)

def test_the_counts_add_up_from_the_train_rows_to_paired_and_dropped():
    """7 train rows: two repeat an earlier prompt, one prompt is not a task prompt, max_prompts leaves one out."""
    from prefalign.evaluation.judges import TaskJudge
    from prefalign.onpolicy.sample import sample_prompts

    def row(i, question):
        return {"id": f"d/train/{i}", "source": "d", "prompt": [{"role": "user", "content": question}]}

    records = [row(0, "What is 1 + 1?"), row(1, "What is 1 + 1?"), row(2, "Tell me a joke."),
               row(3, "What is 2 + 1?"), row(4, "What is 3 + 1?"), row(5, "What is 3 + 1?"), row(6, "What is 4 + 1?")]
    prompts, steps = sample_prompts(records, OnPolicySettings(max_prompts=3), TaskJudge())
    assert [r["id"] for r in prompts] == ["d/train/0", "d/train/3", "d/train/4"]
    assert steps == {"train_rows": 7, "repeated_prompt_rows": 2, "distinct_prompts": 5, "judge_cannot_score": 1,
                     "judge_can_score": 4, "over_max_prompts": 1, "in": 3}
    items = [judged(1, ["2", "3"], [1.0, 0.0]), judged(2, ["3", "3"], [1.0, 1.0]), judged(3, ["5", "4"], [0.0, 1.0])]
    _, _, _, stats = build.build(items, OnPolicySettings(samples_per_prompt=2), {"kind": "task"}, "sft", steps)
    counts = stats["prompts"]
    assert counts["train_rows"] == counts["distinct_prompts"] + counts["repeated_prompt_rows"]
    assert counts["distinct_prompts"] == counts["judge_can_score"] + counts["judge_cannot_score"]
    assert counts["judge_can_score"] == counts["in"] + counts["over_max_prompts"]
    assert counts["in"] == counts["paired"] + counts["dropped"] == 3 and counts["paired"] == 2


def test_a_funnel_that_does_not_add_up_is_an_accounting_error():
    from prefalign.onpolicy.pairs import account_funnel, funnel

    counts = account(3, 2, collections.Counter(all_correct=1), 1, "t")
    assert account_funnel(funnel(5, 4, 3, 3), counts, "t")["train_rows"] == 5
    with pytest.raises(AccountingError, match="sampled prompts 2 != prompts in 3"):
        account_funnel(funnel(5, 4, 3, 2), counts, "t")
    broken = {**funnel(5, 4, 3, 3), "repeated_prompt_rows": 0}
    with pytest.raises(AccountingError, match="train_rows 5 != distinct_prompts 4 \\+ repeated_prompt_rows 0"):
        account_funnel(broken, counts, "t")
    with pytest.raises(AccountingError, match="distinct_prompts 4 != judge_can_score 5"):
        account_funnel(funnel(5, 4, 5, 3), counts, "t")
