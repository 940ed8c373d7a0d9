"""Step tests of `prefalign onpolicy` (sample, mix) through the CLI, on a tiny SFT model made here."""

from __future__ import annotations

import hashlib
import json

import pytest
from conftest import TINY_MODEL, read_jsonl, run_cli, write_lines

# trains an SFT model to sample from (the fast tier trains nothing longer than a few seconds)
pytestmark = pytest.mark.slow

SAMPLE = ["--samples-per-prompt", "4", "--max-prompts", "40", "--max-new-tokens", "6", "--threads", "1",
          "--batch-size", "32"]
OUTPUTS = ("pairs.jsonl", "ledger.jsonl", "samples.jsonl", "stats.json")


@pytest.fixture(scope="module")
def sft(tmp_path_factory):
    root = tmp_path_factory.mktemp("onpolicy")
    # The easiest tasks, so that a 30k-parameter model answers some prompts right after a few seconds.
    run_cli("synth", "--format", "hh-rlhf", "--name", "hh", "--records", "300", "--tasks", "next", "count", "larger",
            "--out", root / "raw/hh.jsonl")
    run_cli("normalize", "--format", "hh-rlhf", "--name", "hh", "--input", root / "raw/hh.jsonl",
            "--records", root / "data/hh.jsonl", "--rejects", root / "data/rejects_hh.jsonl",
            "--stats", root / "data/hh.json")
    run_cli("split", "--inputs", root / "data/hh.jsonl", "--train", root / "data/train.jsonl",
            "--test", root / "data/test.jsonl", "--rejects", root / "data/rejects.jsonl",
            "--stats", root / "data/stats.json", "--test-fraction", "0.2")
    run_cli("build-base", "--train", root / "data/train.jsonl", "--out", root / "base", *TINY_MODEL)
    run_cli("sft", "--base", root / "base", "--train", root / "data/train.jsonl", "--out", root / "sft",
            "--metrics", root / "sft.json", "--log-history", root / "sft_log.jsonl", "--max-steps", "150",
            "--batch-size", "8", "--learning-rate", "0.01", "--threads", "1")
    return root


def sample(sft, out, *extra, check=True):
    return run_cli("onpolicy", "sample", "--policy", sft / "sft", "--train", sft / "data/train.jsonl",
                   *[arg for name in OUTPUTS for arg in (f"--{name.split('.')[0]}", out / name)],
                   *SAMPLE, *extra, check=check)


def digest(folder) -> dict:
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in OUTPUTS}


def test_sample_writes_canonical_pairs_a_ledger_and_counts_that_add_up(sft, tmp_path):
    sample(sft, tmp_path, "--temperature", "1.5")
    stats = json.loads((tmp_path / "stats.json").read_text())
    prompts = stats["prompts"]
    assert prompts["in"] == 40 == prompts["paired"] + prompts["dropped"]
    assert prompts["paired"] > 0
    # Counted from the train rows on (issue 23): rows -> distinct prompts -> scorable -> sampled (max_prompts 40).
    rows = read_jsonl(sft / "data/train.jsonl")
    assert prompts["train_rows"] == len(rows) == prompts["distinct_prompts"] + prompts["repeated_prompt_rows"]
    assert prompts["distinct_prompts"] == len({json.dumps(r["prompt"]) for r in rows})
    assert prompts["judge_can_score"] == prompts["distinct_prompts"] - prompts["judge_cannot_score"]
    assert prompts["over_max_prompts"] == prompts["judge_can_score"] - 40 > 0
    pairs, ledger, samples = (read_jsonl(tmp_path / n) for n in ("pairs.jsonl", "ledger.jsonl", "samples.jsonl"))
    assert len(pairs) == prompts["paired"] and len(ledger) == prompts["dropped"] and len(samples) == 40
    assert {row["reason"] for row in ledger} <= {"all_correct", "all_wrong"}  # the task verifier scores 0 or 1
    for reason, count in prompts["dropped_by_reason"].items():
        assert sum(row["reason"] == reason for row in ledger) == count
    train_ids = {r["id"] for r in read_jsonl(sft / "data/train.jsonl")}
    for pair in pairs:
        assert set(pair) == {"id", "source", "prompt", "chosen", "rejected", "meta"} and pair["source"] == "onpolicy"
        meta = pair["meta"]
        assert meta["from_id"] in train_ids and meta["round"] == 1 and len(meta["scores"]) == 4
        assert meta["chosen_score"] == 1.0 and meta["rejected_score"] == 0.0 and meta["judge"] == {"kind": "task"}
        row = next(s for s in samples if s["id"] == meta["from_id"])
        assert pair["chosen"][0]["content"] == row["answers"][meta["chosen_sample"]]
        assert pair["rejected"][0]["content"] == row["answers"][meta["rejected_sample"]]
        assert pair["chosen"] != pair["rejected"]


def test_sampling_is_seeded_and_greedy_adds_answer_zero(sft, tmp_path):
    first, again, other, greedy = (tmp_path / n for n in ("a", "b", "c", "g"))
    for folder, extra in ((first, []), (again, []), (other, ["--seed", "7"]), (greedy, ["--greedy"])):
        folder.mkdir()
        sample(sft, folder, *extra)
    assert digest(first) == digest(again)
    assert read_jsonl(first / "samples.jsonl") != read_jsonl(other / "samples.jsonl")
    rows = read_jsonl(greedy / "samples.jsonl")
    assert all(len(row["answers"]) == 5 for row in rows)
    assert [row["answers"][1:] for row in rows] == [row["answers"] for row in read_jsonl(first / "samples.jsonl")]


def test_a_round_without_any_pair_fails_cleanly_and_writes_nothing(sft, tmp_path):
    result = sample(sft, tmp_path, "--margin", "2", check=False)  # a verifier's gap is at most 1
    assert result.returncode == 2 and "no prompt gave a pair" in result.stderr and "below_margin" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_train_prompts_the_judge_cannot_score_are_refused(sft, tmp_path):
    record = {"id": "x/train/1", "source": "x", "prompt": [{"role": "user", "content": "Tell me a story."}],
              "chosen": [{"role": "assistant", "content": "Once."}],
              "rejected": [{"role": "assistant", "content": "No."}], "meta": {}}
    train = write_lines(tmp_path / "train.jsonl", [record])
    result = run_cli("onpolicy", "sample", "--policy", sft / "sft", "--train", train,
                     *[arg for name in OUTPUTS for arg in (f"--{name.split('.')[0]}", tmp_path / name)], check=False)
    assert result.returncode == 2 and "train prompts the task judge can score" in result.stderr


def test_a_reward_model_judge_pairs_by_score_and_drops_gaps_below_the_margin(sft, tmp_path):
    from tiny_reward_model import train_tiny_reward_model

    rm = train_tiny_reward_model(tmp_path / "rm")
    judge = ["--judge", "reward_model", "--reward-model", rm]
    (tmp_path / "any").mkdir()
    sample(sft, tmp_path / "any", *judge)
    stats = json.loads((tmp_path / "any/stats.json").read_text())
    assert stats["judge"]["kind"] == "reward_model"
    reasons = stats["prompts"]["dropped_by_reason"]
    assert reasons["all_correct"] == reasons["all_wrong"] == reasons["below_margin"] == 0  # graded, no margin
    # With the median best - worst gap as the margin, the prompts with a smaller gap go to the ledger.
    gaps = sorted(max(r["scores"]) - min(r["scores"]) for r in read_jsonl(tmp_path / "any/samples.jsonl"))
    margin = gaps[len(gaps) // 2]
    (tmp_path / "margin").mkdir()
    sample(sft, tmp_path / "margin", *judge, "--margin", str(margin))
    stats = json.loads((tmp_path / "margin/stats.json").read_text())
    assert stats["prompts"]["dropped_by_reason"]["below_margin"] == sum(0 < g < margin for g in gaps) > 0
    assert stats["prompts"]["in"] == stats["prompts"]["paired"] + stats["prompts"]["dropped"]
    for pair in read_jsonl(tmp_path / "margin/pairs.jsonl"):
        assert pair["meta"]["chosen_score"] - pair["meta"]["rejected_score"] >= margin


def test_mix_and_dpo_train_on_the_pairs(sft, tmp_path):
    sample(sft, tmp_path, "--temperature", "1.5")
    run_cli("onpolicy", "mix", "--onpolicy", tmp_path / "pairs.jsonl", "--offline", sft / "data/train.jsonl",
            "--out", tmp_path / "mixed.jsonl", "--stats", tmp_path / "mixed.json", "--mix-ratio", "0.5")
    counts = json.loads((tmp_path / "mixed.json").read_text())
    mixed = read_jsonl(tmp_path / "mixed.jsonl")
    assert counts["onpolicy"] == counts["offline"] == len(read_jsonl(tmp_path / "pairs.jsonl"))
    assert len(mixed) == counts["total"] and sum(r["source"] == "onpolicy" for r in mixed) == counts["onpolicy"]
    run_cli("dpo", "--sft", sft / "sft", "--train", tmp_path / "mixed.jsonl", "--out", tmp_path / "dpo",
            "--metrics", tmp_path / "dpo.json", "--log-history", tmp_path / "dpo_log.jsonl", "--max-steps", "3",
            "--batch-size", "4", "--logging-steps", "1", "--threads", "1")
    assert json.loads((tmp_path / "dpo.json").read_text())["train"]["examples"] == counts["total"]
