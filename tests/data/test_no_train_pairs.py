"""Issue 23, item 6: a mix with no train pair stops at the split, with its counts and where to look, instead of
reaching SFT (which failed with a traceback on an empty dataset)."""

from __future__ import annotations

import real_shapes
from conftest import run_cli
from data_fixtures import write_rows


def test_a_split_without_train_pairs_stops_with_the_counts(tmp_path):
    # Every row of a real-shaped hh-rlhf file read as the wrong format: the normalize step ledgers them all.
    raw = write_rows(tmp_path / "hh.jsonl", real_shapes.hh_rlhf(20))
    run_cli("normalize", "--format", "shp", "--name", "hh", "--input", raw, "--records", tmp_path / "hh.norm.jsonl",
            "--rejects", tmp_path / "hh.rejects.jsonl", "--stats", tmp_path / "hh.stats.json",
            "--on-bad-record", "quarantine")
    assert (tmp_path / "hh.norm.jsonl").read_text() == ""
    result = run_cli("split", "--inputs", tmp_path / "hh.norm.jsonl", "--train", tmp_path / "train.jsonl",
                     "--test", tmp_path / "test.jsonl", "--rejects", tmp_path / "rejects.jsonl",
                     "--stats", tmp_path / "stats.json", check=False)
    assert result.returncode == 3 and "Traceback" not in result.stderr
    assert "no train pairs: the split of 0 normalized pairs (none) kept 0 for training and 0 for test" in result.stderr
    assert "results/data/<name>/rejects.jsonl" in result.stderr and not (tmp_path / "stats.json").exists()
