import json

import pytest
from conftest import run_cli, write_lines

from prefalign.errors import ConfigError
from prefalign.evaluation.compare import CompareSettings, compare, outcomes


def rows(scores, sampled=None, ids=None):
    ids = ids or [f"r{i}" for i in range(len(scores))]
    sampled = sampled or scores
    return [{"id": i, "score": s, "sampled": {"score": t}} for i, s, t in zip(ids, scores, sampled)]


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
    assert out["metrics"] == {"win_rate": greedy["win_rate"], "win_rate_sampled": 0.0, "prompts": 8}
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


def test_cli_writes_the_comparison(tmp_path):
    for name, scores in (("dpo", [1, 1, 0]), ("sft", [0, 1, 0])):
        (tmp_path / f"{name}.json").write_text(json.dumps(result(name)))
        write_lines(tmp_path / f"{name}.jsonl", rows(scores))
    out = tmp_path / "cmp.json"
    done = run_cli("compare", "--model", tmp_path / "dpo.json", tmp_path / "dpo.jsonl",
                   "--baseline", tmp_path / "sft.json", tmp_path / "sft.jsonl", "--out", out, "--bootstrap-samples", "50")
    assert "dpo vs sft (greedy): win rate 0.667" in done.stdout
    assert json.loads(out.read_text())["greedy"]["wins"] == 1
