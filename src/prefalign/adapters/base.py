"""What every adapter shares: where a row came from, and the two ways a row can fail."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Where:
    """The position of a raw row: its dataset name, file, 1-based line (or row) and split."""

    dataset: str
    file: str
    line: int
    split: str = "train"

    @property
    def record_id(self) -> str:
        return f"{self.dataset}/{self.split}/{self.line:06d}"


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


def require(row: Any, key: str, kind: type | tuple[type, ...]) -> Any:
    """row[key], checked to be of `kind`; raise BadRecord naming the key otherwise."""
    if not isinstance(row, dict):
        raise BadRecord("<row>", f"expected a JSON object, got {type(row).__name__}")
    if key not in row:
        raise BadRecord(key, "missing")
    value = row[key]
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise BadRecord(key, f"expected {_kind_name(kind)}, got bool")
    if not isinstance(value, kind):
        raise BadRecord(key, f"expected {_kind_name(kind)}, got {type(value).__name__}")
    return value


def _kind_name(kind) -> str:
    names = {str: "a string", int: "an integer", float: "a number", list: "a list", dict: "an object"}
    if isinstance(kind, tuple):
        return " or ".join(names.get(k, k.__name__) for k in kind)
    return names.get(kind, kind.__name__)
