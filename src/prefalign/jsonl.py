"""JSON and JSON Lines in and out: one strict reader, one atomic writer.

Reading is strict: NaN, Infinity, lone surrogate escapes and invalid UTF-8 are errors, so
what prefalign accepts any JSON reader accepts. orjson parses lines 3.1x faster than the
standard library and writes them 1.6x faster (CPU time on 20,000 hh-rlhf-shaped lines:
bench/data_libs.py); it is in the cpu environment. The gpu environment (envs/gpu.lock.txt)
has no orjson: there the standard library does the same job, as strictly for NaN and
Infinity (lone surrogates pass there; the data steps, which see raw data, run in the cpu
environment).

Writing is atomic: every file goes to a temporary name in its folder and is renamed into
place only when complete, so a step that fails or is killed never leaves half an output
(JsonlWriter discards its file when the `with` block raises).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from prefalign.errors import RecordError

try:
    import orjson
except ImportError:  # the gpu environment
    orjson = None


def _no_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def loads(data: bytes | str) -> Any:
    if orjson is not None:
        return orjson.loads(data)
    return json.loads(data, parse_constant=_no_constant)


def dumps_line(value: Any) -> bytes:
    """One compact JSON line; keys keep their insertion order (records are built in a fixed order)."""
    if orjson is not None:
        return orjson.dumps(value) + b"\n"
    return (json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8", "surrogatepass")


def why_not_json(raw: bytes, error: Exception) -> str:
    """Why a line is not JSON, phrased for a person: bad UTF-8 first, else the parser's message."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not valid UTF-8 ({exc.reason} at byte {exc.start})"
    message = getattr(error, "msg", str(error))
    column = getattr(error, "colno", None)
    return f"invalid JSON ({message}{f' at column {column}' if column else ''})"


# ---------------------------------------------------------------- reading

def open_binary(path: Path):
    """Open a file for reading bytes, gunzipping one whose name ends in .gz."""
    return gzip.open(path, "rb") if str(path).lower().endswith(".gz") else open(path, "rb")


def iter_lines(path: Path) -> Iterator[tuple[int, int, bytes]]:
    """(line number, byte offset, raw line) of every non-blank line (offsets of the decompressed text)."""
    offset = 0
    with open_binary(path) as handle:
        for line, raw in enumerate(handle, 1):
            if raw.strip():
                yield line, offset, raw
            offset += len(raw)


def iter_json_lines(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    """(line, value, None) per non-blank line, or (line, None, problem) for one that is not JSON.

    Each line is decoded by itself, so a bad line is reported with its number and reading goes
    on; the caller decides whether that stops the run or goes to a ledger.
    """
    for line, _, raw in iter_lines(path):
        try:
            yield line, loads(raw), None
        except ValueError as exc:
            yield line, None, why_not_json(raw, exc)


def read_jsonl(path: Path) -> list:
    """Every value of a file prefalign wrote; a bad line is a RecordError naming file and line."""
    rows = []
    for line, value, problem in iter_json_lines(path):
        if problem:
            raise RecordError(f"{path}:{line}: {problem}")
        rows.append(value)
    return rows


# ---------------------------------------------------------------- writing

@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside `path`, renamed to it when the block ends without an exception."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())  # durable before the rename: a checkpoint record must survive a crash


def write_json(path: Path, data: Any) -> None:
    """Indented, key-sorted JSON (metrics, stats, records of a run), written atomically."""
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n")


class JsonlWriter:
    """Writes JSON lines to a temporary file and counts them; `close()` moves it to `path`.

    As a context manager it moves the file into place when the block succeeds and deletes
    it when the block raises, so `path` is either complete or absent.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        self._handle = os.fdopen(fd, "wb")
        self.count = 0

    def write(self, value: Any) -> None:
        self._handle.write(dumps_line(value))
        self.count += 1

    def write_raw(self, line: bytes) -> None:
        """A line already serialized, copied as is (a newline added when it has none)."""
        self._handle.write(line if line.endswith(b"\n") else line + b"\n")
        self.count += 1

    def close(self) -> None:
        """Finish the file and move it into place."""
        if not self._handle.closed:
            self._handle.close()
            os.replace(self._tmp, self.path)

    def discard(self) -> None:
        """Drop the partial file: `path` is left as it was."""
        if not self._handle.closed:
            self._handle.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp)

    def __enter__(self) -> "JsonlWriter":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        self.discard() if kind is not None else self.close()


def write_jsonl(path: Path, rows) -> int:
    """Write every row as a JSON line (atomically); return how many."""
    with JsonlWriter(path) as writer:
        for row in rows:
            writer.write(row)
    return writer.count
