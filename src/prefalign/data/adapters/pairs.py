"""Generic pairs: {"prompt": ..., "chosen": ..., "rejected": ...}, field names configurable.

Each field is a string or a list of {"role", "content"} messages:
  prompt    a string (one user turn) or the conversation so far (system/user/assistant turns);
  chosen,   a string (the assistant's reply) or a message list ending with the assistant's
  rejected  reply; earlier turns in such a list must repeat the prompt or its last turns
            (else `prompt_mismatch`) or, with `implicit_prompt`, *are* the prompt (TRL's
            implicit-prompt format: both lists must then agree on every turn before the reply).

An optional id field is kept as `meta.source_id`; the record id stays positional
(<dataset>/<split>/<line>) so ids are unique even where the source's are not.
"""

from __future__ import annotations

from dataclasses import dataclass

from prefalign.data.adapters.base import BadRecord, Rejected, Where, messages, optional, require, split_conversation
from prefalign.records import make_record


@dataclass(frozen=True)
class PairFields:
    """Where the generic adapter finds each part of a pair; prompt None = implicit prompt."""

    prompt: str | None = "prompt"
    chosen: str = "chosen"
    rejected: str = "rejected"
    id: str | None = None


def _reply(value, key: str, prompt: list[dict] | None) -> tuple[list[dict] | None, str]:
    """(turns before the reply or None for a plain string, the reply)."""
    if isinstance(value, str):
        return None, value
    earlier, reply = split_conversation(messages(value, key, allow_string=False), key)
    if prompt is not None and earlier and earlier != prompt[-len(earlier):]:
        raise Rejected("prompt_mismatch", f"the turns before the reply in {key} differ from the prompt")
    return earlier, reply


def adapt(row, where: Where, fields: PairFields = PairFields()) -> dict:
    prompt = messages(require(row, fields.prompt, (str, list)), fields.prompt) if fields.prompt else None
    chosen_turns, chosen = _reply(require(row, fields.chosen, (str, list)), fields.chosen, prompt)
    rejected_turns, rejected = _reply(require(row, fields.rejected, (str, list)), fields.rejected, prompt)
    if prompt is None:
        if chosen_turns is None or rejected_turns is None:
            raise BadRecord(fields.chosen if chosen_turns is None else fields.rejected,
                            "with no prompt field, chosen and rejected must be message lists holding the prompt")
        if chosen_turns != rejected_turns:
            raise Rejected("prompt_mismatch", "chosen and rejected conversations differ before the final reply")
        prompt = chosen_turns
    if not prompt:
        raise Rejected("no_prompt", "no turn before the reply")
    meta = where.provenance()
    if fields.id:
        source_id = optional(row, fields.id, (str, int))
        if source_id is not None:
            meta["source_id"] = source_id
    return make_record(where.record_id, where.dataset, prompt, chosen, rejected, meta)
