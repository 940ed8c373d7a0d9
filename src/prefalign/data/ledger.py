"""The ledger: every dropped unit with its reason, and counts per stage that must add up.

A step declares its stages in order. Each stage counts what came in, what went out and what
it dropped by reason, and `check()` verifies, in code, before any output is declared done:

    for every stage      in = out + dropped            (tree formats: in = used rows + dropped)
    between stages       out of one = in of the next   (same unit)
    for the step         in = kept + dropped, and the ledger file has exactly `dropped` lines

Each drop is written to rejects.jsonl as it happens:

    {"id": ..., "source": ..., "file": ..., "line": 12 | "row": 12, "stage": ..., "reason": ..., "detail": ...}
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from pathlib import Path

from prefalign.errors import AccountingError
from prefalign.jsonl import JsonlWriter


@dataclass
class Stage:
    name: str
    unit: str = "pair"
    count_in: int = 0
    count_out: int = 0
    used: int | None = None  # tree formats: rows that went into at least one pair
    dropped: collections.Counter = field(default_factory=collections.Counter)

    def to_dict(self) -> dict:
        out = {"stage": self.name, "unit": self.unit, "in": self.count_in, "out": self.count_out,
               "dropped": sum(self.dropped.values()), "dropped_by_reason": dict(sorted(self.dropped.items()))}
        if self.used is not None:
            out["used"] = self.used
        return out


class Ledger:
    """Stages in order plus the rejects file; as a context manager it keeps the file only on success."""

    def __init__(self, path: Path, stages: list[tuple[str, str]]):
        self.stages = {name: Stage(name, unit) for name, unit in stages}
        self.writer = JsonlWriter(path)

    def __getitem__(self, name: str) -> Stage:
        return self.stages[name]

    def drop(self, stage: str, reason: str, *, id: str, source: str, file: str, position: tuple[str, int] | None,
             detail: str) -> None:
        self.stages[stage].dropped[reason] += 1
        entry = {"id": id, "source": source, "file": file}
        if position is not None:
            entry[position[0]] = position[1]
        entry.update(stage=stage, reason=reason, detail=detail)
        self.writer.write(entry)

    @property
    def dropped(self) -> int:
        return sum(sum(s.dropped.values()) for s in self.stages.values())

    def dropped_by_reason(self) -> dict[str, int]:
        total: collections.Counter = collections.Counter()
        for s in self.stages.values():
            total.update(s.dropped)
        return dict(sorted(total.items()))

    def assert_balanced(self, units_in: int, kept: int, kept_written: int, label: str) -> None:
        """Raise AccountingError unless every stage and the whole step add up."""
        problems = []
        previous = None
        for s in self.stages.values():
            passed = s.used if s.used is not None else s.count_out
            if s.count_in != passed + sum(s.dropped.values()):
                problems.append(f"stage {s.name}: in {s.count_in} != out {passed} + dropped {sum(s.dropped.values())}")
            if previous is not None and previous.unit == s.unit and previous.count_out != s.count_in:
                problems.append(f"stage {s.name}: in {s.count_in} != out of {previous.name} {previous.count_out}")
            previous = s
        if units_in != kept + self.dropped:
            problems.append(f"in {units_in} != kept {kept} + dropped {self.dropped}")
        if kept != kept_written:
            problems.append(f"kept {kept} != lines written {kept_written}")
        if self.writer.count != self.dropped:
            problems.append(f"ledger lines {self.writer.count} != dropped {self.dropped}")
        if problems:
            raise AccountingError(f"record accounting broken for {label}: " + "; ".join(problems))

    def close(self) -> None:
        self.writer.close()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc) -> None:
        self.writer.__exit__(*exc)  # the rejects file appears only when the step succeeded


def assert_accounted(stats: dict) -> None:
    """The step-level invariant on a stats dict: in = kept + dropped, dropped = sum by reason."""
    if stats["in"] != stats["kept"] + stats["dropped"] or stats["dropped"] != sum(stats["dropped_by_reason"].values()):
        raise AccountingError(
            f"record accounting broken for {stats.get('dataset', 'the split')}: in={stats['in']} kept={stats['kept']} "
            f"dropped={stats['dropped']} by reason={stats['dropped_by_reason']}"
        )
