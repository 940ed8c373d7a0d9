"""Step `normalize`: one raw dataset -> canonical records, a rejects ledger and stats.

Supports the formats of prefalign.data.adapters (hh-rlhf, shp, ultrafeedback, pairs, oasst1), read
from a local file (JSON Lines, JSON array or Parquet, optionally gzip) or a hub dataset at a
pinned commit (prefalign.data.sources), and the per-dataset filters of prefalign.data.filters.

Streams: rows are read, adapted and filtered in chunks and written as they go, so memory
does not grow with the file (tree formats, oasst1, hold their rows until the trees are
built). Every raw row ends in exactly one of normalized.jsonl or rejects.jsonl (a tree
format's rows that take part in pairs are replaced by those pairs), and stats.json holds the
counts per stage and reason; prefalign.data.ledger checks that they add up before the step ends.

Raises RecordError naming file, line (or row) and key on a malformed row unless
`on_bad_record` is `quarantine`, in which case it goes to the ledger with reason
`malformed`; RecordError for an empty input or an unreadable file; ConfigError for settings
the step cannot use.
"""

from __future__ import annotations

import argparse
import bisect
from dataclasses import dataclass, field
from pathlib import Path

from prefalign.data import adapters
from prefalign.data.adapters import oasst1
from prefalign.data.filters import FilterSettings, RecordFilters
from prefalign.data.ledger import Ledger, assert_accounted
from prefalign.data.sources import FILE_FORMATS, HubDataset, LocalFile
from prefalign.errors import ConfigError, RecordError
from prefalign.hashing import is_commit
from prefalign.jsonl import JsonlWriter, write_json
from prefalign.settings import Settings, expect

LENGTH_BINS = [0, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]
CHUNK = 1024  # records filtered per batch (token counting is batched)


@dataclass
class NormalizeSettings(Settings):
    SECTION = "datasets.*"
    format: str = field(default="hh-rlhf", metadata={"help": f"raw format: {', '.join(adapters.FORMATS)}"})
    name: str = field(default="dataset", metadata={
        "job": True, "help": "dataset name: the records' `source` and id prefix"})
    split: str = field(default="train", metadata={"help": "the hub split to read; also the split name in record ids"})
    on_bad_record: str = field(
        default="error", metadata={"key": "data.on_bad_record", "help": "malformed row: 'error' stops with file:line and key, 'quarantine' ledgers it"}
    )
    max_records: int | None = field(default=None, metadata={"help": "read at most this many raw rows; none = all"})
    file_format: str = field(default="auto", metadata={
        "help": f"local file type: {', '.join(FILE_FORMATS)} (auto: by name; .gz is decompressed)"})
    hub_id: str | None = field(default=None, metadata={"help": "read this hub dataset (owner/name) instead of --input"})
    revision: str | None = field(default=None, metadata={"help": "hub dataset: the commit to read (40 hex digits)"})
    hub_config: str | None = field(default=None, metadata={"help": "hub dataset: the config (subset) name"})
    data_files: list[str] = field(default_factory=list, metadata={
        "help": "hub dataset: glob patterns of the files to fetch and read (default: what the dataset card says)"})
    prompt_field: str = field(default="prompt", metadata={"help": "pairs: the prompt's field"})
    chosen_field: str = field(default="chosen", metadata={"help": "pairs: the chosen reply's field"})
    rejected_field: str = field(default="rejected", metadata={"help": "pairs: the rejected reply's field"})
    id_field: str | None = field(default=None, metadata={"help": "pairs: a field kept as meta.source_id"})
    implicit_prompt: bool = field(default=False, metadata={
        "help": "pairs: no prompt field; chosen and rejected are whole conversations sharing the prompt turns"})
    languages: list[str] = field(default_factory=list, metadata={
        "help": "keep only pairs whose meta.lang is one of these (oasst1 sets it); empty = all"})
    pairing: str = field(default="best_vs_rest", metadata={
        "help": f"oasst1: {' or '.join(oasst1.PAIRINGS)} (best reply against each other ranked sibling, "
                "or every higher- against every lower-ranked one)"})

    def __post_init__(self):
        expect(self.format in adapters.FORMATS, "format", f"one of {', '.join(adapters.FORMATS)}", self.format)
        expect(self.on_bad_record in ("error", "quarantine"), "on_bad_record", "'error' or 'quarantine'", self.on_bad_record)
        expect(self.max_records is None or self.max_records >= 0, "max_records", "an integer >= 0 or none", self.max_records)
        expect(self.file_format in FILE_FORMATS, "file_format", f"one of {', '.join(FILE_FORMATS)}", self.file_format)
        if self.hub_id is not None:
            expect(is_commit(self.revision), "revision",
                  "a 40-hex-digit commit for a hub dataset (pinned, so reruns read the same data)", self.revision)
        expect(self.pairing in oasst1.PAIRINGS, "pairing", f"one of {', '.join(oasst1.PAIRINGS)}", self.pairing)

    def source(self, input_path: Path | None):
        if self.hub_id is not None:
            return HubDataset(self.hub_id, self.revision, self.hub_config, self.split, tuple(self.data_files))
        if input_path is None:
            raise ConfigError("input: expected a raw file (--input) or a hub dataset (--hub-id), got neither")
        return LocalFile(Path(input_path), self.file_format)

    def row_adapter(self):
        adapt = adapters.ADAPTERS[self.format]
        if self.format != "pairs":
            return adapt
        fields = adapters.PairFields(None if self.implicit_prompt else self.prompt_field, self.chosen_field,
                                     self.rejected_field, self.id_field)
        return lambda row, where: adapt(row, where, fields)


class Histogram:
    """Counts of values in LENGTH_BINS (the last bin is open-ended)."""

    def __init__(self):
        self.counts = [0] * len(LENGTH_BINS)

    def add(self, value: int) -> None:
        self.counts[bisect.bisect_right(LENGTH_BINS, value) - 1] += 1

    def to_dict(self) -> dict:
        return {"bins": LENGTH_BINS, "counts": self.counts}


class Lengths:
    """Character (and, when counted, token) histograms of prompt, chosen and rejected of kept pairs."""

    def __init__(self, token_unit: str | None):
        self.chars = {k: Histogram() for k in ("prompt", "chosen", "rejected")}
        self.tokens = {k: Histogram() for k in ("prompt", "chosen", "rejected")} if token_unit else None
        self.token_unit = token_unit

    def add(self, record: dict, tokens: tuple[int, int, int] | None) -> None:
        for key in ("prompt", "chosen", "rejected"):
            self.chars[key].add(sum(len(m["content"]) for m in record[key]))
        if self.tokens is not None and tokens is not None:
            for key, count in zip(("prompt", "chosen", "rejected"), tokens):
                self.tokens[key].add(count)

    def to_dict(self) -> dict:
        out = {"unit": "characters", **{k: h.to_dict() for k, h in self.chars.items()}}
        if self.tokens is not None:
            out["tokens"] = {"unit": self.token_unit, **{k: h.to_dict() for k, h in self.tokens.items()}}
        return out


class Normalizer:
    """One run of the step: reads the source, adapts, filters, writes records and the ledger."""

    def __init__(self, settings: NormalizeSettings, filters: FilterSettings, source, records_path: Path,
                 rejects_path: Path):
        self.settings, self.source = settings, source
        self.label, self.unit = source.label, source.unit  # once: a .json file's unit is found by reading it
        self.filters = RecordFilters(filters, settings.languages)
        self.filter_settings = filters
        self.records = JsonlWriter(records_path)
        tree = settings.format in adapters.TREE_FORMATS
        self.ledger = Ledger(rejects_path, [("read", "row"), ("adapt", "message" if tree else "row"),
                                            ("filter", "pair")])
        counter = self.filters.counter
        self.lengths = Lengths(counter.name if counter else None)
        self.chunk: list[tuple] = []  # (record, where, None) or (None, where, drop) in input order

    # ---------------------------------------------------------------- reading

    def rows(self):
        """(Where, row) for every parseable row; unparseable ones stop the run or go to the ledger."""
        read = self.ledger["read"]
        limit = self.settings.max_records
        label, unit = self.label, self.unit
        for position, row, problem in self.source.rows():
            if limit is not None and read.count_in >= limit:
                break
            read.count_in += 1
            where = adapters.Where(self.settings.name, label, position, self.settings.split, unit)
            if problem:
                self.bad(where, "read", problem)
                continue
            read.count_out += 1
            yield where, row

    def bad(self, where, stage: str, problem: str, key: str | None = None) -> None:
        message = f"{where.file}:{where.line}: {f'key {key!r}: ' if key else ''}{problem}"
        if self.settings.on_bad_record == "error":
            raise RecordError(f"{message} (set on_bad_record: quarantine to ledger such rows)")
        self.drop(where, stage, "malformed", message)

    def drop(self, where, stage: str, reason: str, detail: str, record_id: str | None = None) -> None:
        """Ledger a drop, in input order: it waits behind the records of the current chunk."""
        self.chunk.append((None, where, (stage, reason, detail, record_id)))
        if len(self.chunk) >= CHUNK:
            self.flush()

    def write_drop(self, where, stage: str, reason: str, detail: str, record_id: str | None = None) -> None:
        self.ledger.drop(stage, reason, id=record_id or where.record_id, source=self.settings.name, file=where.file,
                         position=(where.unit, where.line), detail=detail)

    # ---------------------------------------------------------------- adapting

    def run_rows(self) -> None:
        adapt, stage = self.settings.row_adapter(), self.ledger["adapt"]
        for where, row in self.rows():
            stage.count_in += 1
            try:
                record = adapt(row, where)
            except adapters.BadRecord as exc:
                self.bad(where, "adapt", exc.problem, exc.key)
                continue
            except adapters.Rejected as exc:
                self.drop(where, "adapt", exc.reason, exc.detail)
                continue
            stage.count_out += 1
            self.add(record, where)

    def run_tree(self) -> None:
        """Tree formats count messages, not rows: a nested export's row holds a whole tree."""
        stage, parsed = self.ledger["adapt"], []
        for where, row in self.rows():
            try:
                messages = oasst1.flatten(row, where)
            except adapters.BadRecord as exc:  # no message can be told apart: the row is one unit
                stage.count_in += 1
                self.bad(where, "adapt", exc.problem, exc.key)
                continue
            for message, path in messages:
                stage.count_in += 1
                try:
                    parsed.append(oasst1.parse(message, where))
                except adapters.BadRecord as exc:
                    self.bad(where, "adapt", exc.problem, f"{path}.{exc.key}" if path else exc.key)
        trees = oasst1.build_pairs(parsed, self.settings.pairing)
        stage.used = trees.used_rows
        for item in trees.in_order():
            if isinstance(item, oasst1.Drop):
                self.drop(item.where, "adapt", item.reason, item.detail, record_id=f"{item.where.record_id}:{item.id}")
            else:
                stage.count_out += 1
                self.add(item, adapters.Where(self.settings.name, self.label, item["meta"][self.unit],
                                              self.settings.split, self.unit))

    # ---------------------------------------------------------------- filtering

    def add(self, record: dict, where) -> None:
        self.chunk.append((record, where, None))
        if len(self.chunk) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        """Filter the chunk's records (token counts in one batch) and write everything in order."""
        stage = self.ledger["filter"]
        turned = [self.filters.reorder(record) if record is not None else None for record, _, _ in self.chunk]
        records = [record for (record, _, _), drop in zip(self.chunk, turned) if record is not None and drop is None]
        tokens = iter(self.filters.token_lengths(records))
        for (record, where, dropped), turn_drop in zip(self.chunk, turned):
            if record is None:
                self.write_drop(where, *dropped)
                continue
            stage.count_in += 1
            counts = next(tokens) if turn_drop is None else None
            reason = turn_drop or self.filters.drop_reason(record, counts)
            if reason:
                self.write_drop(where, "filter", *reason, record_id=record["id"])
                continue
            stage.count_out += 1
            self.records.write(record)
            self.lengths.add(record, counts)
        self.chunk = []

    # ---------------------------------------------------------------- the run

    def run(self) -> dict:
        """Read, adapt, filter and account; the output files appear only when all of it succeeded."""
        with self.records, self.ledger:  # a failure anywhere discards both files (prefalign.jsonl)
            if self.settings.format in adapters.TREE_FORMATS:
                self.run_tree()
            else:
                self.run_rows()
            self.flush()
            return self.stats()

    def stats(self) -> dict:
        read, adapt, filt = self.ledger["read"], self.ledger["adapt"], self.ledger["filter"]
        if read.count_in == 0 and self.settings.max_records != 0:
            raise RecordError(f"{self.label}: no records (the file is empty)")
        # Tree formats: the messages used by pairs are replaced by the pairs they make (a row of a
        # nested export holds many messages; for row formats adapt.count_in is the rows read).
        read_dropped = read.count_in - read.count_out
        units_in = read_dropped + adapt.count_in - (adapt.used if adapt.used is not None else adapt.count_out) \
            + adapt.count_out
        self.ledger.assert_balanced(units_in, filt.count_out, self.records.count, self.settings.name)
        stats = {
            "dataset": self.settings.name,
            "file": self.label,
            "format": self.settings.format,
            "rows": read.count_in,
            **({"messages": adapt.count_in} if self.settings.format in adapters.TREE_FORMATS else {}),
            "in": units_in,
            "kept": filt.count_out,
            "dropped": self.ledger.dropped,
            "dropped_by_reason": self.ledger.dropped_by_reason(),
            "stages": [s.to_dict() for s in self.ledger.stages.values()],
            "lengths": self.lengths.to_dict(),
            "settings": {**self.settings.to_dict(), **self.filter_settings.to_dict()},
        }
        assert_accounted(stats)
        return stats


def normalize(input_path: Path | None, settings: NormalizeSettings, filters: FilterSettings, records_path: Path,
              rejects_path: Path) -> dict:
    """Normalize one raw dataset into `records_path` and `rejects_path`; returns the stats."""
    source = settings.source(input_path)
    return Normalizer(settings, filters, source, records_path, rejects_path).run()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", type=Path, help="raw file (JSON Lines, JSON array or Parquet; optionally .gz); "
                                                   "not with --hub-id")
    parser.add_argument("--records", type=Path, required=True, help="output: canonical records (JSONL)")
    parser.add_argument("--rejects", type=Path, required=True, help="output: rejects ledger (JSONL)")
    parser.add_argument("--stats", type=Path, required=True, help="output: counts per stage and reason (JSON)")
    NormalizeSettings.add_arguments(parser)
    FilterSettings.add_arguments(parser)


def main(args: argparse.Namespace) -> None:
    settings, filters = NormalizeSettings.from_args(args), FilterSettings.from_args(args)
    if args.input is not None and settings.hub_id is not None:
        raise ConfigError("input: give a raw file (--input) or a hub dataset (--hub-id), not both")
    stats = normalize(args.input, settings, filters, args.records, args.rejects)
    write_json(args.stats, stats)
    print(f"{settings.name}: in={stats['in']} kept={stats['kept']} dropped={stats['dropped']} "
          f"{stats['dropped_by_reason']}")
