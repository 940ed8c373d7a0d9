
import pytest
from conftest import read_jsonl

from prefalign.data import tasks
from prefalign.data.adapters import ADAPTERS, Where
from prefalign.data.synthetic import SyntheticSettings, generate
from prefalign.errors import ConfigError


def test_same_seed_same_bytes(tmp_path):
    settings = SyntheticSettings(records=300, seed=7, name="a")
    generate(settings, tmp_path / "one.jsonl")
    generate(settings, tmp_path / "two.jsonl")
    assert (tmp_path / "one.jsonl").read_bytes() == (tmp_path / "two.jsonl").read_bytes()
    generate(SyntheticSettings(records=300, seed=8, name="a"), tmp_path / "three.jsonl")
    assert (tmp_path / "one.jsonl").read_bytes() != (tmp_path / "three.jsonl").read_bytes()


def test_hh_rlhf_rows_are_real_transcripts_with_multi_turn(tmp_path):
    path = tmp_path / "hh.jsonl"
    generate(SyntheticSettings(format="hh-rlhf", records=400, defect_fraction=0.0), path)
    rows = read_jsonl(path)
    assert len(rows) == 400
    assert all(set(r) == {"chosen", "rejected"} for r in rows)
    assert all(r["chosen"].startswith("\n\nHuman: ") for r in rows)
    multi = [r for r in rows if r["chosen"].count("\n\nHuman: ") > 1]
    assert 0.15 * 400 < len(multi) < 0.45 * 400
    # Without defects every pair is a right answer over a wrong one, by the verifier.
    for i, row in enumerate(rows):
        record = ADAPTERS["hh-rlhf"](row, Where("t", "f", i + 1))
        question = record["prompt"][-1]["content"]
        assert tasks.judge(question, record["chosen"][0]["content"]) is True
        assert tasks.judge(question, record["rejected"][0]["content"]) is False


def test_shp_rows_carry_labels_scores_and_ratios(tmp_path):
    path = tmp_path / "shp.jsonl"
    generate(SyntheticSettings(format="shp", records=300, defect_fraction=0.0, low_ratio_fraction=0.2), path)
    rows = read_jsonl(path)
    keys = {"post_id", "domain", "upvote_ratio", "history", "c_root_id_A", "c_root_id_B", "created_at_utc_A",
            "created_at_utc_B", "score_A", "score_B", "human_ref_A", "human_ref_B", "labels", "seconds_difference",
            "score_ratio"}
    assert all(set(r) == keys for r in rows)
    for row in rows:
        preferred = row["human_ref_A"] if row["labels"] == 1 else row["human_ref_B"]
        assert tasks.judge(row["history"], preferred) is True
        assert row["score_ratio"] == pytest.approx(max(row["score_A"], row["score_B"]) / min(row["score_A"], row["score_B"]))
    low = sum(r["score_ratio"] < 2 for r in rows)
    assert 0.1 * 300 < low < 0.3 * 300


def test_defects_are_injected_at_the_configured_rate(tmp_path):
    path = tmp_path / "hh.jsonl"
    generate(SyntheticSettings(format="hh-rlhf", records=2000, defect_fraction=0.1), path)
    rows = read_jsonl(path)
    ties = sum(r["chosen"] == r["rejected"] for r in rows)
    assert 20 < ties < 90  # ~ 2000 * 0.1 / 4


def test_settings_refuse_bad_values():
    with pytest.raises(ConfigError, match="garbled_fraction: expected a number between 0 and 1"):
        SyntheticSettings(garbled_fraction=1.5)
    with pytest.raises(ConfigError, match="tasks"):
        SyntheticSettings(tasks=["nope"])
    with pytest.raises(ConfigError, match="format"):
        SyntheticSettings(format="csv")
