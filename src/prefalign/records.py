"""The canonical preference record (DESIGN.md, "Data contract") and JSONL input/output.

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

import gzip
import hashlib
import json
from pathlib import Path
from typing import Any, Iterator

ROLES = ("system", "user", "assistant")


class RecordError(ValueError):
    """An input record or file cannot be read; the message names file, line and key."""


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


def last_user_message(record: dict) -> str:
    for m in reversed(record["prompt"]):
        if m["role"] == "user":
            return m["content"]
    return ""


def open_binary(path: Path):
    """Open a raw file for reading bytes, gunzipping files whose name ends in .gz."""
    return gzip.open(path, "rb") if str(path).endswith(".gz") else open(path, "rb")


def iter_json_lines(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    """Yield (line number, parsed value, None) per non-blank line, or (line, None, problem).

    Lines are decoded one by one, so one line of bad UTF-8 or bad JSON is reported with its
    number and reading goes on; the caller decides whether that stops the run.
    """
    with open_binary(path) as handle:
        for line_no, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield line_no, None, f"not valid UTF-8 ({exc.reason} at byte {exc.start})"
                continue
            try:
                yield line_no, json.loads(text), None
            except json.JSONDecodeError as exc:
                yield line_no, None, f"invalid JSON ({exc.msg} at column {exc.colno})"


def read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """Yield (line number, value) per line of a file prefalign wrote; any bad line is an error."""
    for line_no, value, problem in iter_json_lines(path):
        if problem:
            raise RecordError(f"{path}:{line_no}: {problem}")
        yield line_no, value


def write_jsonl(path: Path, rows) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, sort_keys=False) + "\n")
            count += 1
    return count


def load_records(path: Path) -> list[dict]:
    return [row for _, row in read_jsonl(path)]


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
