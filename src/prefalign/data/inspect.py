"""What the data stage can tell about a raw file before a run: its format and how many pairs
it makes. `prefalign init` reads files through this (the data stage's contract for it), so it
sees a file exactly as `prefalign normalize` will.

    guess_format(path)         the dataset format from the first row, any file type the data
                               stage reads (JSON Lines, JSON array, Parquet, each optionally .gz),
                               with the field settings it needs (pairs: which fields)
    count_pairs(path, ...)     the pairs the normalize step keeps with the default filters (it runs
                               the step into a scratch folder), for scaling training steps
    HUB_FORMATS                the format and split of the public datasets this project reads, by hub id

Raises RecordError for a file the data stage cannot read (an LFS pointer, a broken gzip
stream, ...) and ConfigError when the first row is of no known format.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from prefalign.data.filters import FilterSettings
from prefalign.data.normalize import NormalizeSettings, normalize
from prefalign.data.sources import LocalFile
from prefalign.errors import ConfigError

# Public preference datasets by hub id: (format, split to read).
HUB_FORMATS = {
    "anthropic/hh-rlhf": ("hh-rlhf", "train"),
    "stanfordnlp/shp": ("shp", "train"),
    "stanfordnlp/shp-2": ("shp", "train"),
    "huggingfaceh4/ultrafeedback_binarized": ("ultrafeedback", "train_prefs"),
    "openassistant/oasst1": ("oasst1", "train"),
    "openassistant/oasst2": ("oasst1", "train"),
}
# Common field names of plain pair datasets: (prompt, chosen, rejected).
PAIR_FIELDS = [("prompt", "chosen", "rejected"), ("question", "chosen", "rejected"),
               ("question", "response_j", "response_k"), ("instruction", "chosen", "rejected"),
               ("prompt", "chosen_response", "rejected_response")]


def first_row(path: Path) -> dict:
    for _, row, problem in LocalFile(Path(path)).rows():
        if problem:
            raise ConfigError(f"{path}:1: the first row is not readable ({problem}); fix it or pass --format")
        if not isinstance(row, dict):
            raise ConfigError(f"{path}: expected rows that are JSON objects, got {type(row).__name__}")
        return row
    raise ConfigError(f"{path}: no rows (the file is empty)")


def is_messages(value) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(m, dict) and "role" in m for m in value)


def classify(row: dict) -> tuple[str, dict]:
    """(format, extra dataset settings) of a raw row; ConfigError when it is of no known shape."""
    keys = set(row)
    if {"history", "human_ref_A", "human_ref_B"} <= keys:
        return "shp", {}
    if "message_id" in keys and {"role", "text"} <= keys or "replies" in keys or \
            (isinstance(row.get("prompt"), dict) and "message_tree_id" in keys):
        return "oasst1", {}
    chosen, rejected = row.get("chosen"), row.get("rejected")
    if isinstance(chosen, str) and isinstance(rejected, str) and "\n\nHuman:" in chosen and "prompt" not in keys:
        return "hh-rlhf", {}
    if is_messages(chosen) and is_messages(rejected):
        if {"score_chosen", "score_rejected"} & keys:
            return "ultrafeedback", {}
        if "prompt" not in keys:
            return "pairs", {"implicit_prompt": True}
        return "pairs", {}
    for prompt, good, bad in PAIR_FIELDS:
        if {prompt, good, bad} <= keys:
            fields = {"prompt_field": prompt, "chosen_field": good, "rejected_field": bad}
            return "pairs", {k: v for k, v in fields.items() if v != k.removesuffix("_field")}
    raise ConfigError(f"cannot tell the format from the first row's keys ({', '.join(sorted(map(str, keys)))}); "
                      "pass --format (hh-rlhf, shp, ultrafeedback, oasst1, pairs) and, for pairs, the field names "
                      "in the config (prompt_field, chosen_field, rejected_field)")


def guess_format(path: Path) -> tuple[str, dict]:
    """(format, extra dataset settings) of a local raw file, from its first row."""
    try:
        return classify(first_row(path))
    except ConfigError as exc:
        raise ConfigError(f"dataset {path}: {exc}") from None


def count_pairs(path: Path, fmt: str, extra: dict | None = None, max_records: int | None = None) -> dict:
    """The normalize step's stats for the file with the default filters: `kept` is the pairs it makes."""
    settings = NormalizeSettings(name="count", format=fmt, max_records=max_records, on_bad_record="quarantine",
                                 **(extra or {}))
    with tempfile.TemporaryDirectory(prefix="prefalign-count-") as scratch:
        return normalize(Path(path), settings, FilterSettings(), Path(scratch) / "n.jsonl", Path(scratch) / "r.jsonl")
