"""The kernel every stage uses: errors and exit statuses, hashing, atomic JSON/JSONL, tables, YAML locations."""

from __future__ import annotations

import json
import sys

import pytest

from prefalign import hashing, jsonl, progress, tables, yamlio
from prefalign.errors import AccountingError, ConfigError, RecordError, TrainingError


def test_tree_digest_sees_names_and_contents(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a/x").write_text("1")
    first = hashing.tree_digest(tmp_path / "a")
    (tmp_path / "a/x").rename(tmp_path / "a/y")
    assert hashing.tree_digest(tmp_path / "a") != first


def test_is_commit_takes_only_40_lowercase_hex_digits():
    assert hashing.is_commit("0123456789abcdef0123456789abcdef01234567")
    for other in ("main", "v1.0", "0123456789ABCDEF0123456789ABCDEF01234567", "0123456", None, 12):
        assert not hashing.is_commit(other)


def test_atomic_json_leaves_no_temporary_file(tmp_path):
    jsonl.write_json(tmp_path / "r.json", {"a": 1})
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": 1}


def test_a_failed_jsonl_write_leaves_no_file(tmp_path):
    target = tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError):
        with jsonl.JsonlWriter(target) as writer:
            writer.write({"a": 1})
            raise RuntimeError("the step failed")
    assert list(tmp_path.iterdir()) == []
    assert jsonl.write_jsonl(target, [{"a": 1}, {"b": [2]}]) == 2
    assert jsonl.read_jsonl(target) == [{"a": 1}, {"b": [2]}]


def test_the_reader_names_the_bad_line(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"a": 1}\n\n{"a": NaN}\n')
    with pytest.raises(RecordError, match=r"x.jsonl:3: invalid JSON"):
        jsonl.read_jsonl(path)


def test_each_error_kind_has_its_own_exit_status():
    statuses = {cls.exit_status for cls in (ConfigError, RecordError, TrainingError, AccountingError)}
    assert len(statuses) == 4 and 0 not in statuses and 1 not in statuses


def test_tables_escape_and_align():
    assert tables.markdown(["a", "b"], [["x|y", "1\n2"]]) == "| a | b |\n|---|---|\n| x\\|y | 1 2 |\n"
    assert "<td class=num>1.5</td>" in tables.to_html(["k"], [["1.5"]])
    assert tables.text(["metric", "v"], [["a", "10"]]).splitlines()[2] == "| a      | 10 |"


def test_where_names_the_last_file_that_sets_the_key(tmp_path):
    base, overlay = tmp_path / "a.yaml", tmp_path / "b.yaml"
    base.write_text("dpo:\n  beta: 0.1\n  max_steps: 5\n")
    overlay.write_text("# overlay\ndpo:\n  beta: 0.2\n")
    assert yamlio.where([base, overlay], ["dpo", "beta"]) == f"{overlay}:3: "
    assert yamlio.where([base, overlay], ["dpo", "max_steps"]) == f"{base}:3: "
    assert yamlio.where([base, overlay], ["dpo", "loss_type"]) == f"{overlay}:2: "


def test_evaluation_progress_bars_only_on_a_terminal(monkeypatch, capsys):
    batches = range(0, 10, 5)
    assert list(progress.progress(batches, "generating")) == [0, 5]  # a log file: the same items, and lines
    assert "generating: batch 2/2 (100%)" in capsys.readouterr().out
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    bar = progress.progress(batches, "generating")
    assert bar is not batches and list(bar) == [0, 5]
