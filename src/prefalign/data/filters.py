"""Record filters of the normalize step. Each has its own ledger reason code and setting.

    reason                 setting                     drops a pair when
    consecutive_same_role  consecutive_turns           the prompt has two turns of one role in a row
                                                       (merge joins them, with a meta note; drop; keep:
                                                       prefalign.data.turns)
    empty             drop_empty                       chosen, rejected or every user turn is blank
    identical         drop_identical                   chosen == rejected after whitespace normalization
    language          languages (normalize)            meta.lang is set and not in the list
    too_long          max_chars                        prompt + longer reply > max_chars characters
    too_many_tokens   max_tokens, tokenizer            prompt + longer reply > max_tokens tokens
    low_score_ratio   min_score_ratio                  meta.score_ratio (SHP) < min_score_ratio
    duplicate         dedup                            same content as an earlier pair of the dataset

They run in this order and the first that fires names the record's reason: cheap structural
checks first, the stateful exact-duplicate check last, so that a record dropped for another
reason never counts as "seen". Duplicates across datasets, near duplicates, caps and
decontamination need the whole mix and run in the split step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import xxhash

from prefalign.data import turns
from prefalign.data.token_count import TokenCounter, make_counter
from prefalign.settings import Settings, expect


@dataclass
class FilterSettings(Settings):
    SECTION = "data"
    drop_empty: bool = field(default=True, metadata={"help": "drop pairs with a blank reply or no non-blank user turn"})
    drop_identical: bool = field(default=True, metadata={"help": "drop pairs whose chosen and rejected are the same text"})
    max_chars: int = field(
        default=8000, metadata={"help": "drop pairs whose prompt plus longer reply exceeds this many characters; "
                                        "0 = no limit"})
    max_tokens: int = field(
        default=0, metadata={"help": "drop pairs whose prompt plus longer reply, as the chat template renders "
                                     "them, exceeds this many tokens of `tokenizer`; 0 = no limit"})
    tokenizer: str = field(
        default="auto", metadata={"help": "what max_tokens counts: 'bytes' (UTF-8 bytes of the ChatML rendering: "
                                          "an upper bound for any byte-level BPE such as the tiny model's), a "
                                          "tokenizer folder / hub model id, or 'auto': in the workflow the pretrained "
                                          "model's tokenizer (model.name_or_path at model.revision), else bytes"})
    tokenizer_revision: str | None = field(
        default=None, metadata={"help": "hub tokenizer: the commit to load (40 hex digits)"})
    min_score_ratio: float = field(
        default=2.0, metadata={"help": "drop pairs whose meta.score_ratio (SHP) is below this; 0 turns it off"})
    dedup: bool = field(default=True, metadata={"help": "drop exact duplicates (same prompt and replies, "
                                                        "whitespace-normalized) within the dataset"})
    consecutive_turns: str = field(default="merge", metadata={
        "help": "a prompt with two turns of one role in a row: 'merge' them (meta.merged_turns notes it), "
                "'drop' the pair (reason consecutive_same_role) or 'keep' it; a prompt ending with an "
                "assistant turn is dropped unless 'keep'"})

    def __post_init__(self):
        expect(self.min_score_ratio >= 0, "min_score_ratio", "a number >= 0", self.min_score_ratio)
        expect(self.max_chars >= 0, "max_chars", "an integer >= 0 (0 = no limit)", self.max_chars)
        expect(self.max_tokens >= 0, "max_tokens", "an integer >= 0 (0 = no limit)", self.max_tokens)
        expect(bool(self.tokenizer), "tokenizer", "'bytes' or a tokenizer folder / hub id", self.tokenizer)
        expect(self.consecutive_turns in turns.POLICIES, "consecutive_turns", f"one of {', '.join(turns.POLICIES)}",
               self.consecutive_turns)


def text(messages) -> str:
    return "\n".join(m["content"] for m in messages)


def normalized(content: str) -> str:
    return " ".join(content.split())


def content_key(record) -> bytes:
    """Whitespace-normalized digest of roles and texts of prompt, chosen and rejected.

    The exact-duplicate key, 16 bytes (xxh3-128: collisions are out of reach at any dataset
    size; 5.8x faster than sha256 on 1.5 KB records, measured here). Parts are joined with NUL, which is not
    whitespace, so one split/join normalizes the whole record.
    """
    parts = [f"{key}\0{m['role']}\0 {m['content']} " for key in ("prompt", "chosen", "rejected")
             for m in record[key]]
    return xxhash.xxh3_128_digest(" ".join("\0".join(parts).split()).encode("utf-8", "surrogatepass"))


class RecordFilters:
    """The filters above, configured once; `drop_reason` returns (reason, detail) or None to keep."""

    def __init__(self, settings: FilterSettings, languages: list[str] | tuple[str, ...] = ()):
        self.settings = settings
        self.languages = set(languages)
        self.counter: TokenCounter | None = (
            make_counter(settings.tokenizer, settings.tokenizer_revision) if settings.max_tokens else None)
        self.first_seen: dict[bytes, str] = {}
        self.checks = [(reason, method) for reason, method, on in (
            ("empty", self._empty, settings.drop_empty),
            ("identical", self._identical, settings.drop_identical),
            ("language", self._language, bool(self.languages)),
            ("too_long", self._too_long, settings.max_chars > 0),
            ("too_many_tokens", self._too_many_tokens, settings.max_tokens > 0),
            ("low_score_ratio", self._low_score_ratio, settings.min_score_ratio > 0),
            ("duplicate", self._duplicate, settings.dedup),
        ) if on]

    def token_lengths(self, records: list[dict]) -> list[tuple[int, int, int] | None]:
        """(prompt, chosen, rejected) token counts per record, counted in one batch; None when off."""
        if self.counter is None:
            return [None] * len(records)
        return self.counter.lengths(records)

    def reorder(self, record: dict) -> tuple[str, str] | None:
        """Apply the consecutive-turns policy (in place, before token counting); a drop or None."""
        detail = turns.apply(record, self.settings.consecutive_turns)
        return (turns.REASON, detail) if detail else None

    def drop_reason(self, record: dict, tokens: tuple[int, int, int] | None = None) -> tuple[str, str] | None:
        for reason, method in self.checks:
            detail = method(record, tokens)
            if detail:
                return reason, detail
        return None

    def _empty(self, record, tokens):
        for key in ("chosen", "rejected"):
            if not text(record[key]).strip():
                return f"{key} is empty or whitespace"
        if not any(m["content"].strip() for m in record["prompt"] if m["role"] == "user"):
            return "prompt has no non-empty user turn"
        return None

    def _identical(self, record, tokens):
        if normalized(text(record["chosen"])) == normalized(text(record["rejected"])):
            return "chosen and rejected are the same text"
        return None

    def _language(self, record, tokens):
        lang = record["meta"].get("lang")
        if lang is not None and lang not in self.languages:
            return f"language {lang!r} not in {sorted(self.languages)}"
        return None

    def _too_long(self, record, tokens):
        size = len(text(record["prompt"])) + max(len(text(record["chosen"])), len(text(record["rejected"])))
        if size > self.settings.max_chars:
            return f"{size} characters > max_chars {self.settings.max_chars}"
        return None

    def _too_many_tokens(self, record, tokens):
        size = tokens[0] + max(tokens[1], tokens[2])
        if size > self.settings.max_tokens:
            return f"{size} tokens ({self.counter.name}) > max_tokens {self.settings.max_tokens}"
        return None

    def _low_score_ratio(self, record, tokens):
        ratio = record["meta"].get("score_ratio")
        if ratio is not None and ratio < self.settings.min_score_ratio:
            return f"score ratio {ratio:.3g} < min_score_ratio {self.settings.min_score_ratio}"
        return None

    def _duplicate(self, record, tokens):
        key = content_key(record)
        first = self.first_seen.setdefault(key, record["id"])
        return f"same content as {first}" if first != record["id"] else None
