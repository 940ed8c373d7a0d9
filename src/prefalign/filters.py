"""Record filters. Each has a ledger reason code and returns a detail string when it drops.

Filters run in the order of FILTERS; the first that fires names the record's reason. The
order puts cheap structural checks before content checks, and the stateful exact-duplicate
check last, so a record dropped for another reason never counts as "seen".
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Callable

from prefalign.settings import Settings, check


@dataclass
class FilterSettings(Settings):
    min_score_ratio: float = field(
        default=2.0, metadata={"help": "drop pairs whose meta.score_ratio (SHP) is below this; 0 turns it off"}
    )
    max_chars: int = field(
        default=4000, metadata={"help": "drop pairs whose prompt plus longer reply exceeds this many characters"}
    )
    dedup: bool = field(default=True, metadata={"help": "drop exact duplicates (same prompt and replies, whitespace-normalized)"})

    def __post_init__(self):
        check(self.min_score_ratio >= 0, "min_score_ratio", "a number >= 0", self.min_score_ratio)
        check(self.max_chars >= 1, "max_chars", "an integer >= 1", self.max_chars)


def _text(messages) -> str:
    return "\n".join(m["content"] for m in messages)


def empty(record, settings) -> str | None:
    for key in ("chosen", "rejected"):
        if not _text(record[key]).strip():
            return f"{key} is empty or whitespace"
    if not any(m["content"].strip() for m in record["prompt"] if m["role"] == "user"):
        return "prompt has no non-empty user turn"
    return None


def identical(record, settings) -> str | None:
    if " ".join(_text(record["chosen"]).split()) == " ".join(_text(record["rejected"]).split()):
        return "chosen and rejected are the same text"
    return None


def too_long(record, settings) -> str | None:
    size = len(_text(record["prompt"])) + max(len(_text(record["chosen"])), len(_text(record["rejected"])))
    if size > settings.max_chars:
        return f"{size} characters > max_chars {settings.max_chars}"
    return None


def low_score_ratio(record, settings) -> str | None:
    ratio = record["meta"].get("score_ratio")
    if ratio is not None and settings.min_score_ratio and ratio < settings.min_score_ratio:
        return f"score ratio {ratio:.3g} < min_score_ratio {settings.min_score_ratio}"
    return None


def content_key(record) -> str:
    """Whitespace-normalized digest of prompt, chosen and rejected: the exact-duplicate key."""
    parts = [[m["role"], " ".join(m["content"].split())] for k in ("prompt", "chosen", "rejected") for m in record[k]]
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode("utf-8")).hexdigest()


class Deduplicator:
    """Remembers content keys; reports the id of the first record with the same content."""

    def __init__(self):
        self.first_seen: dict[str, str] = {}

    def __call__(self, record, settings) -> str | None:
        if not settings.dedup:
            return None
        key = content_key(record)
        if key in self.first_seen:
            return f"same content as {self.first_seen[key]}"
        self.first_seen[key] = record["id"]
        return None


FILTERS: list[tuple[str, Callable]] = [
    ("empty", empty),
    ("identical", identical),
    ("too_long", too_long),
    ("low_score_ratio", low_score_ratio),
]


def make_pipeline() -> list[tuple[str, Callable]]:
    """The filters in order, with a fresh duplicate memory."""
    return FILTERS + [("duplicate", Deduplicator())]


def first_reason(pipeline, record, settings) -> tuple[str, str] | None:
    for reason, check_record in pipeline:
        detail = check_record(record, settings)
        if detail:
            return reason, detail
    return None
