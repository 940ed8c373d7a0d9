"""Step `normalize`: one raw dataset file -> canonical records, a rejects ledger and stats.

Supports the formats in prefalign.adapters (hh-rlhf, shp, pairs), JSONL files, optionally
gzip-compressed. Every raw line ends in exactly one of normalized.jsonl or rejects.jsonl,
and stats.json checks `in = kept + dropped` before the step succeeds.

Raises RecordError (file, line, key) on a malformed line unless `on_bad_record` is
`quarantine`, in which case the line goes to the ledger with reason `malformed`.
"""

from __future__ import annotations

import argparse
import collections
from dataclasses import dataclass, field
from pathlib import Path

from prefalign import adapters
from prefalign.filters import FilterSettings, first_reason, make_pipeline
from prefalign.records import RecordError, iter_json_lines, write_json
from prefalign.settings import Settings, check

LENGTH_BINS = [0, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]


@dataclass
class NormalizeSettings(Settings):
    format: str = field(default="hh-rlhf", metadata={"help": f"raw format: {', '.join(adapters.ADAPTERS)}"})
    name: str = field(default="dataset", metadata={"help": "dataset name: the records' `source` and id prefix"})
    split: str = field(default="train", metadata={"help": "split name used in record ids"})
    on_bad_record: str = field(
        default="error", metadata={"help": "malformed line: 'error' stops with file:line and key, 'quarantine' ledgers it"}
    )
    max_records: int | None = field(default=None, metadata={"help": "read at most this many raw lines; none = all"})

    def __post_init__(self):
        check(self.format in adapters.ADAPTERS, "format", f"one of {', '.join(adapters.ADAPTERS)}", self.format)
        check(self.on_bad_record in ("error", "quarantine"), "on_bad_record", "'error' or 'quarantine'", self.on_bad_record)
        check(self.max_records is None or self.max_records >= 0, "max_records", "an integer >= 0 or none", self.max_records)


def histogram(values: list[int]) -> dict:
    counts = [0] * len(LENGTH_BINS)
    for v in values:
        i = 0
        while i + 1 < len(LENGTH_BINS) and v >= LENGTH_BINS[i + 1]:
            i += 1
        counts[i] += 1
    return {"bins": LENGTH_BINS, "counts": counts}


def length_stats(records: list[dict]) -> dict:
    """Character-length histograms of prompt, chosen and rejected (for the report)."""

    def chars(messages):
        return sum(len(m["content"]) for m in messages)

    return {key: histogram([chars(r[key]) for r in records]) for key in ("prompt", "chosen", "rejected")}


def normalize(input_path: Path, settings: NormalizeSettings, filters: FilterSettings):
    """Return (kept records, ledger rows, stats) for one raw file."""
    adapt = adapters.ADAPTERS[settings.format]
    pipeline = make_pipeline()
    kept, ledger = [], []
    reasons: collections.Counter[str] = collections.Counter()
    stages = collections.Counter()
    seen = 0

    def drop(where, reason, detail, record_id=None):
        reasons[reason] += 1
        ledger.append(
            {"id": record_id or where.record_id, "source": settings.name, "file": str(input_path), "line": where.line,
             "reason": reason, "detail": detail}
        )

    for line_no, row, problem in iter_json_lines(input_path):
        if settings.max_records is not None and seen >= settings.max_records:
            break
        seen += 1
        where = adapters.Where(settings.name, str(input_path), line_no, settings.split)
        try:
            if problem:
                raise RecordError(f"{input_path}:{line_no}: {problem}")
            record = adapt(row, where)
        except adapters.BadRecord as exc:
            message = f"{input_path}:{line_no}: key '{exc.key}': {exc.problem}"
            if settings.on_bad_record == "error":
                raise RecordError(message + " (set on_bad_record: quarantine to ledger such lines)") from None
            drop(where, "malformed", message)
            continue
        except RecordError as exc:
            if settings.on_bad_record == "error":
                raise RecordError(f"{exc} (set on_bad_record: quarantine to ledger such lines)") from None
            drop(where, "malformed", str(exc))
            continue
        except adapters.Rejected as exc:
            drop(where, exc.reason, exc.detail)
            continue
        stages["adapted"] += 1
        verdict = first_reason(pipeline, record, filters)
        if verdict:
            drop(where, *verdict, record_id=record["id"])
            continue
        kept.append(record)

    if seen == 0 and settings.max_records != 0:
        raise RecordError(f"{input_path}: no records (the file is empty)")
    stats = {
        "dataset": settings.name,
        "file": str(input_path),
        "format": settings.format,
        "in": seen,
        "kept": len(kept),
        "dropped": len(ledger),
        "dropped_by_reason": dict(sorted(reasons.items())),
        "stages": {"read": seen, "adapted": stages["adapted"], "kept": len(kept)},
        "lengths": length_stats(kept),
        "settings": {**settings.to_dict(), **filters.to_dict()},
    }
    assert_accounted(stats)
    return kept, ledger, stats


def assert_accounted(stats: dict) -> None:
    """The ledger invariant: every record read is either kept or dropped with a reason."""
    if stats["in"] != stats["kept"] + stats["dropped"] or stats["dropped"] != sum(stats["dropped_by_reason"].values()):
        raise AssertionError(
            f"record accounting broken for {stats.get('dataset')}: in={stats['in']} kept={stats['kept']} "
            f"dropped={stats['dropped']} by reason={stats['dropped_by_reason']}"
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", type=Path, required=True, help="raw file (JSONL, optionally .gz)")
    parser.add_argument("--records", type=Path, required=True, help="output: canonical records (JSONL)")
    parser.add_argument("--rejects", type=Path, required=True, help="output: rejects ledger (JSONL)")
    parser.add_argument("--stats", type=Path, required=True, help="output: counts per stage and reason (JSON)")
    NormalizeSettings.add_arguments(parser)
    FilterSettings.add_arguments(parser)


def main(args: argparse.Namespace) -> None:
    from prefalign.records import write_jsonl

    settings, filters = NormalizeSettings.from_args(args), FilterSettings.from_args(args)
    kept, ledger, stats = normalize(args.input, settings, filters)
    write_jsonl(args.records, kept)
    write_jsonl(args.rejects, ledger)
    write_json(args.stats, stats)
    print(f"{settings.name}: in={stats['in']} kept={stats['kept']} dropped={stats['dropped']} {stats['dropped_by_reason']}")
