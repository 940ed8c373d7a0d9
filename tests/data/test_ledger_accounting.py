"""The data ledger's accounting check (prefalign.data.ledger) raises on a wrong count (issue 23, item 4):
each invariant of the module's doc broken by one, and a balanced ledger that passes and keeps its file."""

from __future__ import annotations

import re

import pytest

from prefalign.data.ledger import Ledger, assert_accounted
from prefalign.errors import AccountingError


def ledger(tmp_path, dropped_in_read=1, read_out=4, adapt_in=4, adapt_out=3):
    """5 rows read: `dropped_in_read` ledgered, `read_out` passed on; adapt drops one of what it got."""
    book = Ledger(tmp_path / "rejects.jsonl", [("read", "row"), ("adapt", "row")])
    book["read"].count_in, book["read"].count_out = 5, read_out
    for i in range(dropped_in_read):
        book.drop("read", "malformed", id=f"r{i}", source="s", file="f.jsonl", position=("line", i + 1), detail="x")
    book["adapt"].count_in, book["adapt"].count_out = adapt_in, adapt_out
    book.drop("adapt", "empty", id="a", source="s", file="f.jsonl", position=("line", 9), detail="y")
    return book


def test_a_balanced_ledger_passes_and_keeps_one_line_per_drop(tmp_path):
    with ledger(tmp_path) as book:
        book.assert_balanced(units_in=5, kept=3, kept_written=3, label="d")
    lines = (tmp_path / "rejects.jsonl").read_text().splitlines()
    assert len(lines) == 2 and '"stage":"read"' in lines[0] and '"line":1' in lines[0]


@pytest.mark.parametrize("change, message", [
    (dict(read_out=3), "stage read: in 5 != out 3 + dropped 1"),                # a row lost inside a stage
    (dict(adapt_in=3, adapt_out=2), "stage adapt: in 3 != out of read 4"),       # lost between stages
])
def test_a_stage_that_does_not_add_up_raises(tmp_path, change, message):
    book = ledger(tmp_path, **change)
    with pytest.raises(AccountingError, match=re.escape(message)):
        book.assert_balanced(units_in=5, kept=change.get("adapt_out", 3), kept_written=change.get("adapt_out", 3),
                             label="d")
    book.close()


def test_a_step_whose_totals_do_not_add_up_raises(tmp_path):
    with pytest.raises(AccountingError, match="in 6 != kept 3 \\+ dropped 2"):
        ledger(tmp_path).assert_balanced(units_in=6, kept=3, kept_written=3, label="d")
    with pytest.raises(AccountingError, match="kept 3 != lines written 2"):
        ledger(tmp_path).assert_balanced(units_in=5, kept=3, kept_written=2, label="d")
    book = Ledger(tmp_path / "r2.jsonl", [("read", "row")])
    book["read"].count_in, book["read"].count_out = 5, 3
    book.drop("read", "malformed", id="r", source="s", file="f", position=None, detail="x")
    book["read"].dropped["malformed"] += 1  # counted twice, written once
    with pytest.raises(AccountingError, match="ledger lines 1 != dropped 2"):
        book.assert_balanced(units_in=5, kept=3, kept_written=3, label="d")
    book.close()


def test_stats_that_do_not_add_up_raise():
    assert_accounted({"in": 5, "kept": 3, "dropped": 2, "dropped_by_reason": {"a": 1, "b": 1}})
    with pytest.raises(AccountingError, match="in=5 kept=3 dropped=1"):
        assert_accounted({"dataset": "d", "in": 5, "kept": 3, "dropped": 1, "dropped_by_reason": {"a": 1}})
    with pytest.raises(AccountingError, match="by reason"):
        assert_accounted({"in": 5, "kept": 3, "dropped": 2, "dropped_by_reason": {"a": 1}})
