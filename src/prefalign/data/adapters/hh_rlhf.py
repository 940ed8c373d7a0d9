"""Anthropic/hh-rlhf: each row holds two full transcripts, `chosen` and `rejected`.

    {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello!", "rejected": "\n\nHuman: Hi\n\nAssistant: Go away."}

The turns before the last assistant turn are the prompt; both transcripts must share it,
else the pair is rejected as `prompt_mismatch`. A transcript that does not end with an
assistant turn is rejected as `no_final_assistant_turn`.
"""

from __future__ import annotations

import re

from prefalign.data.adapters.base import BadRecord, Rejected, Where, require, split_conversation
from prefalign.records import make_record, message

_TURN = re.compile(r"\n\n(Human|Assistant):(?: |(?=\n)|$)")
_ROLES = {"Human": "user", "Assistant": "assistant"}


def split_transcript(text: str, key: str) -> list[dict[str, str]]:
    """'\\n\\nHuman: a\\n\\nAssistant: b' -> [user a, assistant b]."""
    parts = _TURN.split(text)  # [before, role, content, role, content, ...]: one pass in C
    if len(parts) == 1:
        raise BadRecord(key, "no '\\n\\nHuman:' or '\\n\\nAssistant:' turn markers")
    if parts[0].strip():
        raise BadRecord(key, "text before the first turn marker")
    return [message(_ROLES[parts[i]], parts[i + 1].strip()) for i in range(1, len(parts), 2)]


def adapt(row, where: Where) -> dict:
    chosen = split_transcript(require(row, "chosen", str), "chosen")
    rejected = split_transcript(require(row, "rejected", str), "rejected")
    prompt, chosen_reply = split_conversation(chosen, "chosen")
    rejected_prompt, rejected_reply = split_conversation(rejected, "rejected")
    if prompt != rejected_prompt:
        raise Rejected("prompt_mismatch", "chosen and rejected transcripts differ before the final assistant turn")
    if not any(m["role"] == "user" for m in prompt):
        raise Rejected("no_prompt", "no human turn before the final assistant turn")
    meta = {**where.provenance(), "turns": len(chosen)}
    return make_record(where.record_id, where.dataset, prompt, chosen_reply, rejected_reply, meta)
