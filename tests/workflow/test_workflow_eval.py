"""The workflow's evaluation on real-looking data (issue 14): a config whose only dataset is a
local file in Anthropic/hh-rlhf shape, so the task verifier can judge nothing and `eval.judge:
auto` trains a reward model. The real Snakemake, a tiny model, small step counts."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import REPO, snakemake
from data_fixtures import hh_conversations, write_rows

pytestmark = pytest.mark.workflow


def hh_config(tmp_path):
    write_rows(tmp_path / "raw/hh-train.jsonl.gz", hh_conversations(500, seed=7))
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["datasets"] = {"hh": {"format": "hh-rlhf", "source": "local", "path": "raw/hh-train.jsonl.gz"}}
    config["data"]["test_fraction"] = 0.15
    config["model"].update(vocab_size=400, hidden_size=64, intermediate_size=128, max_position_embeddings=512)
    config["sft"] = {"max_steps": 150, "max_length": 512, "checkpoint_steps": 0}
    config["dpo"] = {"max_steps": 40, "max_length": 512, "checkpoint_steps": 0}
    config["reward"] = {"max_steps": 120, "max_length": 512, "checkpoint_steps": 0}
    config["eval"].update(judge="auto", judge_prompts=40, kl_prompts=40, max_new_tokens=32, bootstrap_samples=500)
    config.setdefault("report", {})["sample_generations"] = 5
    path = tmp_path / "hh.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def hh_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("hh-run")
    result = snakemake(workdir, "--cores", "2", configfile=hh_config(workdir))
    assert result.returncode == 0, result.stderr[-5000:]
    return workdir


def read(run, path):
    return json.loads((run / path).read_text())


def test_auto_trains_a_reward_model_and_says_why(hh_run):
    dpo = read(hh_run, "results/eval/dpo/metrics.json")
    assert dpo["judge"]["kind"] == "trained" and dpo["judge"]["path"] == "results/reward_model/model"
    assert "hh (local) are not synthetic" in dpo["judge_choice"]["why"]
    assert dpo["metrics"]["task_prompts"] == 0 and dpo["metrics"]["judged_prompts"] > 10
    reward = read(hh_run, "results/reward_model/metrics.json")
    assert reward["train"]["steps"] == 120 and reward["resolved"]["backend"] == "trl"
    judge = read(hh_run, "results/eval/judge.json")
    accuracy, interval = judge["metrics"]["accuracy"], judge["intervals"]["accuracy"]
    assert accuracy > 0.75 and interval["low"] <= accuracy <= interval["high"]  # helpful vs curt replies: easy
    assert judge["unavailable"]["verifier_agreement"].startswith("no test pair has a task prompt")


def test_kl_is_measured_on_every_held_out_prompt_without_the_verifier(hh_run):
    for model, reference in (("sft", "base"), ("dpo", "sft")):
        metrics = read(hh_run, f"results/eval/{model}/metrics.json")
        m = metrics["metrics"]
        assert m["kl_prompts"] == min(40, m["distinct_prompts"]) and m["kl_se"] > 0, model
        assert metrics["reference"] == reference
        # No task prompt: no right/wrong verdict, and the report is told why.
        assert m["judge_accuracy"] is None
        assert "no held-out prompt is a task prompt" in metrics["unavailable"]["judge_accuracy"]


def test_raw_and_length_controlled_win_rates_with_intervals(hh_run):
    comparison = read(hh_run, "results/eval/compare/dpo_vs_sft.json")
    for decoding in ("greedy", "sampled"):
        r = comparison[decoding]
        assert r["prompts"] == r["wins"] + r["ties"] + r["losses"] > 10
        assert r["interval"]["low"] <= r["win_rate"] <= r["interval"]["high"]
        assert r["lc"]["interval"]["low"] <= r["lc"]["win_rate"] <= r["lc"]["interval"]["high"]
        assert r["lengths"]["model"] > 0 and r["lengths"]["baseline"] > 0
    assert comparison["verdict"]["result"] in ("better", "no measurable change", "worse")
    assert comparison["unavailable"]["judge_agreement"].startswith("no held-out answer pair")


def test_the_report_answers_did_dpo_help_first_and_explains_every_gap(hh_run):
    report = (hh_run / "results/report/report.md").read_text()
    summary = report.split("## Summary", 1)[1].split("\n## ", 1)[0]
    first = summary.strip().splitlines()[0]
    assert first.startswith("- Did DPO help? ") and "trained reward-model judge" in first
    assert "length-controlled" in first and "ties" in first
    assert "held-out pairwise accuracy" in summary and "train_reward_model" in summary
    assert "KL from its reference" in summary
    assert ("base.judge_accuracy, base.sampled_judge_accuracy, sft.judge_accuracy, sft.sampled_judge_accuracy, "
            "dpo.judge_accuracy, dpo.sampled_judge_accuracy: no held-out prompt is a task prompt") in summary
    assert "n/a" not in report
    answers = report.split("## Sample answers", 1)[1].split("\n## ", 1)[0]
    assert "| prompt (last user turn) | sft answer | sft score | dpo answer | dpo score |" in answers
    assert answers.count("earlier messages)") >= 1
    html = (hh_run / "results/report/report.html").read_text()
    assert "id=\"win-rates\"" in html and "id=\"sample-answers\"" in html
