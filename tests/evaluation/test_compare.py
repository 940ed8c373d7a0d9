import json

import pytest
from conftest import run_cli, write_lines

from prefalign.errors import ConfigError
from prefalign.evaluation.compare import CompareSettings, compare, outcomes


def rows(scores, sampled=None, ids=None, tokens=None):
    ids = ids or [f"r{i}" for i in range(len(scores))]
    sampled = sampled or scores
    tokens = tokens or [3] * len(scores)
    return [{"id": i, "score": s, "tokens": n, "sampled": {"score": t, "tokens": n}}
            for i, s, t, n in zip(ids, scores, sampled, tokens)]


def result(name, judge=None):
    return {"model": name, "judge": judge or {"kind": "task"}}


def test_outcomes_count_wins_ties_and_losses():
    assert outcomes([1, 0, 1, 0.5], [0, 0, 1, 0.7]) == [1.0, 0.5, 0.5, 0.0]


def test_win_rate_counts_ties_half_and_has_an_interval():
    model = (result("dpo"), rows([1, 1, 1, 0, 1, 1, 0, 1], sampled=[0, 0, 0, 0, 0, 0, 0, 0]))
    baseline = (result("sft"), rows([0, 1, 0, 0, 1, 0, 1, 1], sampled=[1, 1, 1, 1, 1, 1, 1, 1]))
    out = compare(model, baseline, CompareSettings(bootstrap_samples=500, seed=1))
    greedy = out["greedy"]
    assert (greedy["wins"], greedy["ties"], greedy["losses"]) == (3, 4, 1)
    assert greedy["win_rate"] == pytest.approx((3 + 2) / 8)
    assert greedy["interval"]["low"] <= greedy["win_rate"] <= greedy["interval"]["high"]
    assert out["sampled"]["win_rate"] == 0.0 and out["sampled"]["interval"]["high"] == 0.0
    assert out["metrics"]["win_rate"] == greedy["win_rate"] and out["metrics"]["win_rate_sampled"] == 0.0
    assert out["metrics"]["prompts"] == 8 and out["metrics"]["ties"] == 4
    # Equal lengths everywhere: no length term, so the length-controlled rate is the raw one.
    assert greedy["lc"]["win_rate"] == pytest.approx(greedy["win_rate"], abs=1e-3)
    assert greedy["lengths"] == {"model": 3.0, "baseline": 3.0, "unit": "tokens"}
    assert out["verdict"]["result"] == "no measurable change" and out["verdict"]["sampled"] == "worse"
    assert (out["model"], out["baseline"], out["unmatched"]) == ("dpo", "sft", 0)


def test_prompts_answered_by_one_side_only_are_counted_not_dropped():
    model = (result("dpo"), rows([1, 1, 1], ids=["a", "b", "c"]))
    baseline = (result("sft"), rows([0, 0], ids=["b", "d"]))
    out = compare(model, baseline, CompareSettings(bootstrap_samples=100))
    assert out["greedy"]["prompts"] == 1 and out["unmatched"] == 3


def test_different_judges_are_refused():
    model = (result("dpo", {"kind": "task"}), rows([1]))
    baseline = (result("sft", {"kind": "reward_model", "path": "rm"}), rows([1]))
    with pytest.raises(ConfigError, match="same judge"):
        compare(model, baseline, CompareSettings())


def test_nothing_in_common_names_the_judge_setting_to_change():
    unjudged = [{"id": "a", "score": None, "judged": False, "tokens": 4, "sampled": {"score": None, "tokens": 4}}]
    model = ({**result("dpo"), "unavailable": {"judge_score_mean": "the task judge scores only task prompts"}}, unjudged)
    baseline = (result("sft"), unjudged)
    with pytest.raises(ConfigError, match=r"eval.judge: no held-out prompt was judged for both dpo \(0 judged\) and "
                                          r"sft \(0 judged\) by the task judge \(the task judge scores only task "
                                          r"prompts\)\. Set eval.judge to auto or trained"):
        compare(model, baseline, CompareSettings())


def test_a_reward_model_judge_is_checked_against_the_verifier_where_it_can_be():
    """Prompt a: the verifier says the model is right, the baseline wrong, and the judge agrees (greedy);
    prompt b: the verifier separates them the other way and the judge disagrees (greedy); sampled: ties."""
    def row(id, score, correct):
        return {"id": id, "score": score, "tokens": 2, "correct": correct,
                "sampled": {"score": 0.0, "tokens": 2, "correct": True}}

    judge = {"kind": "trained", "path": "rm"}
    model = (result("dpo", judge), [row("a", 2.0, True), row("b", 5.0, False)])
    baseline = (result("sft", judge), [row("a", 1.0, False), row("b", 1.0, True)])
    out = compare(model, baseline, CompareSettings(bootstrap_samples=200))
    agreement = out["judge_agreement"]
    assert (agreement["pairs"], agreement["agree"], agreement["disagree"], agreement["rate"]) == (2, 1, 1, 0.5)
    assert out["metrics"]["judge_agreement"] == 0.5
    task = compare((result("dpo"), model[1]), (result("sft"), baseline[1]), CompareSettings(bootstrap_samples=50))
    assert task["judge_agreement"] is None and task["unavailable"]["judge_agreement"] == "the judge is the task verifier itself"


def test_cli_writes_the_comparison(tmp_path):
    for name, scores in (("dpo", [1, 1, 0]), ("sft", [0, 1, 0])):
        (tmp_path / f"{name}.json").write_text(json.dumps(result(name)))
        write_lines(tmp_path / f"{name}.jsonl", rows(scores))
    out = tmp_path / "cmp.json"
    done = run_cli("compare", "--model", tmp_path / "dpo.json", tmp_path / "dpo.jsonl",
                   "--baseline", tmp_path / "sft.json", tmp_path / "sft.jsonl", "--out", out, "--bootstrap-samples", "50")
    assert "dpo vs sft (greedy): win rate 0.667" in done.stdout
    assert json.loads(out.read_text())["greedy"]["wins"] == 1
