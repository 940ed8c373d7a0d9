"""Adapters: one raw dataset format in, canonical records (prefalign.records) out.

Row formats map one raw row to one record with `adapt(row, where) -> record`:
  hh-rlhf        Anthropic/hh-rlhf transcripts
  shp            stanfordnlp/SHP comment pairs (score ratio in meta)
  ultrafeedback  UltraFeedback binarized message lists
  pairs          generic prompt/chosen/rejected, strings or message lists, field names configurable
Tree formats read every row first, then build pairs (prefalign.data.adapters.oasst1):
  oasst1         OpenAssistant message trees -> ranked sibling replies

An adapter raises
  BadRecord  when the row is not of its format (missing key, wrong type): the run stops with
             file, line and key, unless `on_bad_record: quarantine` sends it to the ledger;
  Rejected   when the row is of its format but cannot make a preference pair (the chosen and
             rejected transcripts disagree on the prompt, say): always a ledger entry.
"""

from __future__ import annotations

from prefalign.data.adapters import hh_rlhf, oasst1, pairs, shp, ultrafeedback
from prefalign.data.adapters.base import BadRecord, Rejected, Where
from prefalign.data.adapters.pairs import PairFields

ADAPTERS = {
    "hh-rlhf": hh_rlhf.adapt,
    "shp": shp.adapt,
    "ultrafeedback": ultrafeedback.adapt,
    "pairs": pairs.adapt,
}
TREE_FORMATS = {"oasst1": oasst1}
FORMATS = (*ADAPTERS, *TREE_FORMATS)

__all__ = ["ADAPTERS", "FORMATS", "TREE_FORMATS", "BadRecord", "PairFields", "Rejected", "Where"]
