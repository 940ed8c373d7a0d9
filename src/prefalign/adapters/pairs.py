"""Generic pairs: {"prompt": ..., "chosen": ..., "rejected": ...}.

Each field is a string or a list of {"role", "content"} messages (a prompt may hold several
turns; chosen and rejected are the assistant's reply). Field names are configurable.
"""

from __future__ import annotations

from prefalign.adapters.base import BadRecord, Where, require
from prefalign.records import ROLES, make_record, message


def _messages(value, key: str) -> list[dict[str, str]]:
    if isinstance(value, str):
        return [message("user", value)]
    if not isinstance(value, list) or not value:
        raise BadRecord(key, f"expected a string or a non-empty list of messages, got {type(value).__name__}")
    turns = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise BadRecord(f"{key}[{i}]", f"expected a message object, got {type(item).__name__}")
        role, content = item.get("role"), item.get("content")
        if role not in ROLES:
            raise BadRecord(f"{key}[{i}].role", f"expected one of {', '.join(ROLES)}, got {role!r}")
        if not isinstance(content, str):
            raise BadRecord(f"{key}[{i}].content", f"expected a string, got {type(content).__name__}")
        turns.append(message(role, content))
    return turns


def _reply(value, key: str) -> str:
    if isinstance(value, str):
        return value
    turns = _messages(value, key)
    if turns[-1]["role"] != "assistant":
        raise BadRecord(key, "the last message must be the assistant's reply")
    return turns[-1]["content"]


def adapt(row, where: Where, prompt_field="prompt", chosen_field="chosen", rejected_field="rejected") -> dict:
    prompt = _messages(require(row, prompt_field, (str, list)), prompt_field)
    chosen = _reply(require(row, chosen_field, (str, list)), chosen_field)
    rejected = _reply(require(row, rejected_field, (str, list)), rejected_field)
    return make_record(
        str(row.get("id", where.record_id)), where.dataset, prompt, chosen, rejected, {"file": where.file, "line": where.line}
    )
