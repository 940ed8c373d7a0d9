"""Anthropic/hh-rlhf: each row holds two full transcripts, `chosen` and `rejected`.

    {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello!", "rejected": "\n\nHuman: Hi\n\nAssistant: Go away."}

The turns before the last assistant turn are the prompt; both transcripts must share it.
Rejected, with a ledger reason:
  embedded_turn_marker     the transcripts share the prompt and both go on with an assistant
                           reply, but a reply holds turn markers of its own ('\n\nHuman:' or
                           '\n\nAssistant:' inside the generated text, e.g. an inline fake turn
                           followed by a real marker): where the reply ends cannot be known, so the
                           pair is dropped, not cut (real hh-rlhf has such replies)
  prompt_mismatch          the transcripts differ before the final assistant turn otherwise
  no_final_assistant_turn  a transcript does not end with an assistant turn
  no_prompt                no human turn before the final assistant turn

Each turn's text is stripped of surrounding whitespace (the format puts a space or a newline
after each marker, and the dumps carry stray trailing spaces); when that changes a turn,
`meta.whitespace_stripped` counts the turns changed, so no text changes without a note.
"""

from __future__ import annotations

import re

from prefalign.data.adapters.base import BadRecord, Rejected, Where, require, split_conversation
from prefalign.records import common_prefix_length, make_record, message

_TURN = re.compile(r"\n\n(Human|Assistant):(?: |(?=\n)|$)")
_ROLES = {"Human": "user", "Assistant": "assistant"}


def split_turns(text: str, key: str) -> tuple[list[dict[str, str]], int]:
    """'\\n\\nHuman: a\\n\\nAssistant: b' -> ([user a, assistant b], turns whose whitespace was stripped)."""
    parts = _TURN.split(text)  # [before, role, content, role, content, ...]: one pass in C
    if len(parts) == 1:
        raise BadRecord(key, "no '\\n\\nHuman:' or '\\n\\nAssistant:' turn markers")
    if parts[0].strip():
        raise BadRecord(key, "text before the first turn marker")
    turns, stripped = [], 0
    for i in range(1, len(parts), 2):
        content = parts[i + 1].strip()
        stripped += content != parts[i + 1]
        turns.append(message(_ROLES[parts[i]], content))
    return turns, stripped


def split_transcript(text: str, key: str) -> list[dict[str, str]]:
    return split_turns(text, key)[0]



def embedded_markers(chosen: list[dict], rejected: list[dict]) -> list[str]:
    """The transcripts whose reply holds turn markers of its own (see the module docstring), or []."""
    k = common_prefix_length(chosen, rejected)
    if k == 0 or chosen[k - 1]["role"] != "user" or k >= min(len(chosen), len(rejected)):
        return []
    if chosen[k]["role"] != "assistant" or rejected[k]["role"] != "assistant":
        return []
    return [f"{name} ({len(turns) - k - 1} turn(s) after the reply starts)"
            for name, turns in (("chosen", chosen), ("rejected", rejected)) if len(turns) > k + 1]


def adapt(row, where: Where) -> dict:
    chosen, stripped_chosen = split_turns(require(row, "chosen", str), "chosen")
    rejected, stripped_rejected = split_turns(require(row, "rejected", str), "rejected")
    embedded = embedded_markers(chosen, rejected)
    if embedded:
        raise Rejected("embedded_turn_marker", "the transcripts share the prompt, but the reply of "
                       f"{' and '.join(embedded)} holds turn markers of its own")
    prompt, chosen_reply = split_conversation(chosen, "chosen")
    rejected_prompt, rejected_reply = split_conversation(rejected, "rejected")
    if prompt != rejected_prompt:
        raise Rejected("prompt_mismatch", "chosen and rejected transcripts differ before the final assistant turn")
    if not any(m["role"] == "user" for m in prompt):
        raise Rejected("no_prompt", "no human turn before the final assistant turn")
    meta = {**where.provenance(), "turns": len(chosen)}
    if stripped_chosen or stripped_rejected:
        meta["whitespace_stripped"] = stripped_chosen + stripped_rejected
    return make_record(where.record_id, where.dataset, prompt, chosen_reply, rejected_reply, meta)
