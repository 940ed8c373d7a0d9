"""What every adapter shares: where a row came from, the two ways a row can fail, and checks.

Adapters only read values; they never trust a type. Every field they use goes through
`require` (or `messages`), so a wrong or missing field becomes BadRecord naming the key,
never a KeyError or TypeError deep inside the step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prefalign.records import ROLES, message


@dataclass(frozen=True)
class Where:
    """The position of a raw row: dataset name, file (or hub address), 1-based position, split.

    `unit` says what the position counts: "line" for JSON Lines files, "row" for JSON arrays,
    Parquet files and hub datasets. The ledger writes it under that key.
    """

    dataset: str
    file: str
    line: int
    split: str = "train"
    unit: str = "line"

    @property
    def record_id(self) -> str:
        return f"{self.dataset}/{self.split}/{self.line:06d}"

    def provenance(self) -> dict[str, Any]:
        """The `meta` keys that let a record be traced back to its raw row."""
        return {"file": self.file, self.unit: self.line}


class BadRecord(ValueError):
    """The row is not of the adapter's format; `key` names the offending field."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


class Rejected(ValueError):
    """The row is well-formed but yields no preference pair; `reason` is a ledger code."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


_KIND_NAMES = {str: "a string", int: "an integer", float: "a number", list: "a list", dict: "an object",
               bool: "true or false"}


def require(row: Any, key: str, kind: type | tuple[type, ...]) -> Any:
    """row[key], checked to be of `kind`; raise BadRecord naming the key otherwise.

    JSON booleans are Python ints: they are refused where a number is expected.
    """
    if not isinstance(row, dict):
        raise BadRecord("<row>", f"expected a JSON object, got {type_name(row)}")
    if key not in row:
        raise BadRecord(key, "missing")
    return check_type(row[key], key, kind)


def optional(row: dict, key: str, kind: type | tuple[type, ...]) -> Any:
    """row[key] checked like `require`, or None when the key is absent or null."""
    value = row.get(key)
    return None if value is None else check_type(value, key, kind)


def check_type(value: Any, key: str, kind: type | tuple[type, ...]) -> Any:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise BadRecord(key, f"expected {kind_name(kind)}, got bool")
    if not isinstance(value, kinds):
        raise BadRecord(key, f"expected {kind_name(kind)}, got {type_name(value)}")
    if isinstance(value, float) and value != value:
        raise BadRecord(key, "expected a number, got NaN")
    return value


def kind_name(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(_KIND_NAMES.get(k, k.__name__) for k in kinds)


def type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def messages(value: Any, key: str, *, allow_string: bool = True) -> list[dict[str, str]]:
    """A string (one user turn) or a non-empty list of {"role", "content"} messages.

    Roles must be system, user or assistant; content must be a string. Extra keys in a
    message are ignored (datasets carry ids and annotations there).
    """
    if isinstance(value, str) and allow_string:
        return [message("user", value)]
    if not isinstance(value, list) or not value:
        expected = "a string or a non-empty list of messages" if allow_string else "a non-empty list of messages"
        got = "an empty list" if isinstance(value, list) else type_name(value)
        raise BadRecord(key, f"expected {expected}, got {got}")
    turns = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise BadRecord(f"{key}[{i}]", f"expected a message object, got {type_name(item)}")
        role, content = item.get("role"), item.get("content")
        if role not in ROLES:
            raise BadRecord(f"{key}[{i}].role", f"expected one of {', '.join(ROLES)}, got {role!r}")
        if not isinstance(content, str):
            raise BadRecord(f"{key}[{i}].content", f"expected a string, got {type_name(content)}")
        turns.append(message(role, content))
    return turns


def split_conversation(turns: list[dict[str, str]], key: str) -> tuple[list[dict[str, str]], str]:
    """A conversation ending with the assistant's reply -> (prompt turns, reply text)."""
    if turns[-1]["role"] != "assistant":
        raise Rejected("no_final_assistant_turn", f"{key} ends with a {turns[-1]['role']} turn")
    return turns[:-1], turns[-1]["content"]
