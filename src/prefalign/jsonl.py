"""Fast, strict JSON Lines for the data stage (orjson).

orjson parses raw lines 4.5x faster than the standard library and writes 2.6x faster
(measured on 50k hh-rlhf-shaped lines, see README "Data stage"), and it is strict where
`json` is lenient: NaN, Infinity, lone surrogate escapes and invalid UTF-8 are errors, so a
record the data stage accepts is one any JSON reader accepts.

Only data-stage modules import this one; records.py keeps the standard library, because the
training steps also run in the gpu image, which has no orjson.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson


def loads(data: bytes) -> Any:
    return orjson.loads(data)


def dumps_line(value: Any) -> bytes:
    """One JSON line; keys keep their insertion order (records are built in a fixed order)."""
    return orjson.dumps(value) + b"\n"


def problem(raw: bytes, error: Exception) -> str:
    """Why a line is not JSON, phrased for a person: bad UTF-8 first, else the parser's message."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not valid UTF-8 ({exc.reason} at byte {exc.start})"
    message = getattr(error, "msg", str(error))
    column = getattr(error, "colno", None)
    return f"invalid JSON ({message}{f' at column {column}' if column else ''})"


class JsonlWriter:
    """Writes JSON lines to `path` (parents created) and counts them."""

    def __init__(self, path: Path):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.count = 0
        self._handle = open(path, "wb")

    def write(self, value: Any) -> None:
        self._handle.write(dumps_line(value))
        self.count += 1

    def write_raw(self, line: bytes) -> None:
        """A line already serialized (ending in a newline), copied as is."""
        self._handle.write(line)
        self.count += 1

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> "JsonlWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
