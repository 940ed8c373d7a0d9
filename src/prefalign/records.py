"""The canonical preference record: the data contract every stage after the adapters reads.

A record is TRL's conversational preference format plus identity and provenance:

    {"id": "hh-rlhf/train/000123", "source": "hh-rlhf",
     "prompt":   [{"role": "user", "content": "..."}, ...],
     "chosen":   [{"role": "assistant", "content": "..."}],
     "rejected": [{"role": "assistant", "content": "..."}],
     "meta": {...}}

Training steps hand these to TRL unchanged; everything downstream of the adapters sees only
this shape.
"""

from __future__ import annotations

import hashlib
import json

ROLES = ("system", "user", "assistant")


def message(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


def make_record(id: str, source: str, prompt, chosen: str, rejected: str, meta: dict | None = None) -> dict:
    return {
        "id": id,
        "source": source,
        "prompt": prompt,
        "chosen": [message("assistant", chosen)],
        "rejected": [message("assistant", rejected)],
        "meta": meta or {},
    }


def prompt_key(prompt: list[dict[str, str]]) -> str:
    """A stable digest of a prompt's turns: the split and deduplication key."""
    canonical = json.dumps([[m["role"], m["content"]] for m in prompt], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def last_user_turn(prompt: list[dict[str, str]]) -> str:
    """What a prompt asks: the content of its last user turn ('' when it has none)."""
    for m in reversed(prompt):
        if m["role"] == "user":
            return m["content"]
    return ""


def common_prefix_length(a: list, b: list) -> int:
    """How many leading items two sequences share (token ids, turns)."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
