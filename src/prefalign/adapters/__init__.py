"""Adapters: one raw dataset format in, canonical records (prefalign.records) out.

An adapter is a function `adapt(row, where) -> record`. It raises
  BadRecord  when the row is not of its format (missing key, wrong type): the run stops with
             file, line and key, unless `on_bad_record: quarantine` sends it to the ledger;
  Rejected   when the row is of its format but cannot make a preference pair (the chosen and
             rejected transcripts disagree on the prompt, say): always a ledger entry.
"""

from __future__ import annotations

from prefalign.adapters.base import BadRecord, Rejected, Where
from prefalign.adapters import hh_rlhf, pairs, shp

ADAPTERS = {
    "hh-rlhf": hh_rlhf.adapt,
    "shp": shp.adapt,
    "pairs": pairs.adapt,
}

__all__ = ["ADAPTERS", "BadRecord", "Rejected", "Where"]
