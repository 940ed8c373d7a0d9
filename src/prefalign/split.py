"""Step `split`: merge normalized datasets, drop cross-dataset duplicates, split by prompt hash.

A record goes to test when the salted hash of its prompt falls below `test_fraction`, so
every record sharing a prompt lands in the same split (no prompt is in both) and the split
does not depend on record order or on which other datasets are mixed in.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from prefalign.filters import Deduplicator, FilterSettings
from prefalign.normalize import assert_accounted
from prefalign.records import prompt_key, read_jsonl, write_json, write_jsonl
from prefalign.settings import Settings, check


@dataclass
class SplitSettings(Settings):
    test_fraction: float = field(default=0.1, metadata={"help": "share of prompts held out for evaluation (0-1)"})
    split_seed: str = field(default="prefalign", metadata={"help": "salt of the prompt hash; change it for another split"})

    def __post_init__(self):
        check(0.0 < self.test_fraction < 1.0, "test_fraction", "a number strictly between 0 and 1", self.test_fraction)


def in_test(record: dict, settings: SplitSettings) -> bool:
    digest = hashlib.sha256(f"{settings.split_seed}:{prompt_key(record['prompt'])}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < settings.test_fraction


def split(inputs: list[Path], settings: SplitSettings, dedup: bool = True):
    """Return (train, test, ledger, stats) for the normalized files `inputs`."""
    deduplicate = Deduplicator()
    dedup_settings = FilterSettings(dedup=dedup)
    train, test, ledger = [], [], []
    per_source = collections.defaultdict(lambda: collections.Counter())
    seen = 0
    for path in inputs:
        for line, record in read_jsonl(path):
            seen += 1
            detail = deduplicate(record, dedup_settings)
            if detail:
                ledger.append({"id": record["id"], "source": record["source"], "file": str(path), "line": line,
                               "reason": "duplicate", "detail": detail})
                per_source[record["source"]]["duplicate"] += 1
                continue
            target = "test" if in_test(record, settings) else "train"
            (test if target == "test" else train).append(record)
            per_source[record["source"]][target] += 1
    stats = {
        "in": seen,
        "kept": len(train) + len(test),
        "dropped": len(ledger),
        "dropped_by_reason": {"duplicate": len(ledger)} if ledger else {},
        "train": len(train),
        "test": len(test),
        "prompts": {"train": len({prompt_key(r["prompt"]) for r in train}),
                    "test": len({prompt_key(r["prompt"]) for r in test})},
        "per_source": {source: dict(sorted(c.items())) for source, c in sorted(per_source.items())},
        "settings": {**settings.to_dict(), "dedup": dedup},
    }
    assert_accounted(stats)
    return train, test, ledger, stats


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--inputs", type=Path, nargs="+", required=True, help="normalized records (JSONL), one per dataset")
    parser.add_argument("--train", type=Path, required=True, help="output: training records (JSONL)")
    parser.add_argument("--test", type=Path, required=True, help="output: held-out records (JSONL)")
    parser.add_argument("--rejects", type=Path, required=True, help="output: cross-dataset duplicates ledger (JSONL)")
    parser.add_argument("--stats", type=Path, required=True, help="output: split counts (JSON)")
    parser.add_argument("--dedup", action=argparse.BooleanOptionalAction, default=True,
                        help="drop records whose content repeats one from an earlier dataset (default: on)")
    SplitSettings.add_arguments(parser)


def main(args: argparse.Namespace) -> None:
    settings = SplitSettings.from_args(args)
    train, test, ledger, stats = split(args.inputs, settings, args.dedup)
    write_jsonl(args.train, train)
    write_jsonl(args.test, test)
    write_jsonl(args.rejects, ledger)
    write_json(args.stats, stats)
    print(f"train={stats['train']} test={stats['test']} duplicates dropped={stats['dropped']}")
