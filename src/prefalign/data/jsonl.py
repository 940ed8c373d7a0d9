"""Fast, strict JSON Lines for the data stage (orjson).

orjson parses raw lines 3.1x faster than the standard library and writes them 1.6x faster
(CPU time on 20,000 hh-rlhf-shaped lines: bench/data_libs.py), and it is strict where
`json` is lenient: NaN, Infinity, lone surrogate escapes and invalid UTF-8 are errors, so a
record the data stage accepts is one any JSON reader accepts.

Only data-stage modules use this one; records.py keeps the standard library, because the
training steps also run in the gpu environment, which has no orjson. There the data steps'
settings must still import (the Snakefile builds every step's settings), so a missing
orjson is an error when data is read or written, not at import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

try:
    import orjson
except ImportError:  # the gpu environment (envs/gpu.lock.txt): no data step runs there
    orjson = None


def _orjson():
    if orjson is None:
        raise ImportError("the data stage needs orjson (pinned in envs/cpu.lock.txt); run the data steps in the cpu "
                          "environment or image")
    return orjson


def loads(data: bytes) -> Any:
    return _orjson().loads(data)


def dumps_line(value: Any) -> bytes:
    """One JSON line; keys keep their insertion order (records are built in a fixed order)."""
    return _orjson().dumps(value) + b"\n"


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
