"""stanfordnlp/SHP: a post (`history`) and two comments, `labels` = 1 when A is preferred.

    {"post_id": "...", "domain": "askscience_train", "history": "...", "human_ref_A": "...",
     "human_ref_B": "...", "score_A": 52, "score_B": 7, "labels": 1, "score_ratio": 7.43, ...}

The chosen answer follows the label. The score ratio (higher score / lower score; the row's
`score_ratio` when present, else computed) is kept in `meta.score_ratio` for the ratio
filter (`min_score_ratio`, 2 by default as in the SHP paper); a lower score of 0 makes the
ratio unbounded, stored as null, which passes the filter.
"""

from __future__ import annotations

import math

from prefalign.data.adapters.base import BadRecord, Where, optional, require
from prefalign.records import make_record, message


def _as_float(value, key: str) -> float:
    try:
        return float(value)
    except OverflowError:  # a JSON integer beyond float range (found by tests/data/test_fuzz.py)
        raise BadRecord(key, f"expected a number within float range, got {len(str(value))} digits") from None


def _finite(value, key: str):
    if not math.isfinite(_as_float(value, key)):
        raise BadRecord(key, f"expected a finite number, got {value!r}")
    return value


def adapt(row, where: Where) -> dict:
    history = require(row, "history", str)
    ref_a = require(row, "human_ref_A", str)
    ref_b = require(row, "human_ref_B", str)
    label = require(row, "labels", int)
    if label not in (0, 1):
        raise BadRecord("labels", f"expected 0 or 1, got {label!r}")
    score_a = _finite(require(row, "score_A", (int, float)), "score_A")
    score_b = _finite(require(row, "score_B", (int, float)), "score_B")
    ratio = optional(row, "score_ratio", (int, float))
    if ratio is None:
        low = min(score_a, score_b)
        ratio = max(score_a, score_b) / low if low > 0 else math.inf
    else:
        _as_float(ratio, "score_ratio")  # an integer beyond float range is a bad record
    chosen, rejected = (ref_a, ref_b) if label == 1 else (ref_b, ref_a)
    meta = {
        **where.provenance(),
        "post_id": row.get("post_id"),
        "domain": row.get("domain"),
        "score_chosen": score_a if label == 1 else score_b,
        "score_rejected": score_b if label == 1 else score_a,
        "score_ratio": float(ratio) if math.isfinite(ratio) else None,
    }
    return make_record(where.record_id, where.dataset, [message("user", history)], chosen, rejected, meta)
