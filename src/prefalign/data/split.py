"""Step `split`: merge normalized datasets into a mix, clean it, split it by prompt hash.

Stages, in order (each ledgered with its reason code):
  exact_dedup     duplicate        same content as an earlier pair of any dataset
  near_dedup      near_duplicate   prompt, chosen and rejected each near-identical to an earlier
                                   kept pair (prefalign.data.dedup: MinHash LSH)
  contradiction   contradictory    the same prompt with chosen and rejected swapped in another pair
                                   (A > B in one source, B > A in another); `contradictions`:
                                   drop_both, keep_majority (the order more pairs vote for, exact
                                   duplicates counted as votes; a tie drops both), keep
  cap             over_cap         beyond the dataset's cap; which pairs stay is decided by a
                                   salted hash of their ids, so it is stable and order-free
  split           -                a pair goes to test when the salted hash of its prompt falls
                                   below test_fraction: every pair sharing a prompt lands in the
                                   same split, whatever else is in the mix
  decontaminate   contaminated     a training prompt whose word n-grams overlap the test prompts
                                   (prefalign.data.decontaminate); test is never changed

Two passes over the inputs keep memory small: the first reads every record once and keeps
only keys per pair (the MinHash sketches live in rensa's index), the second copies each input
line unchanged to train.jsonl, test.jsonl or the ledger, in input order. The counts
are checked to add up (prefalign.data.ledger) before the step ends. A split with no train pair
is refused (RecordError, with the counts), so a run stops here rather than in SFT.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import xxhash

from prefalign.data.decontaminate import overlap, prompt_ngrams, question_ngrams
from prefalign.data.dedup import NearDuplicates
from prefalign.data.filters import content_key, normalized, text
from prefalign.data.ledger import Ledger, assert_accounted
from prefalign.errors import ConfigError, RecordError
from prefalign.jsonl import JsonlWriter, iter_lines, loads, write_json
from prefalign.records import prompt_key
from prefalign.settings import Settings, expect, threads_field

CHUNK = 1024  # records sketched per rensa call
STAGES = ["read", "exact_dedup", "near_dedup", "contradiction", "cap", "split", "decontaminate"]
CONTRADICTIONS = ("drop_both", "keep_majority", "keep")
_LOW = (1 << 64) - 1


@dataclass
class SplitSettings(Settings):
    SECTION = "data"
    test_fraction: float = field(default=0.1, metadata={"help": "share of prompts held out for evaluation (0-1)"})
    split_seed: str = field(default="prefalign", metadata={"help": "salt of the prompt hash; change it for another split"})
    dedup: bool = field(default=True, metadata={
        "help": "drop pairs whose content repeats an earlier pair of any dataset (whitespace-normalized)"})
    near_dedup: bool = field(default=True, metadata={
        "help": "drop near duplicates: prompt, chosen and rejected each near-identical to an earlier pair"})
    near_dup_threshold: float = field(default=0.8, metadata={
        "help": "near duplicates: least estimated Jaccard similarity of every field's word n-grams (0-1)"})
    near_dup_ngram: int = field(default=3, metadata={"help": "near duplicates: words per shingle"})
    minhash_perms: int = field(default=128, metadata={
        "help": "near duplicates: MinHash slots per field (more: finer similarity estimates, more memory)"})
    decontaminate: bool = field(default=True, metadata={
        "help": "drop training pairs whose prompt overlaps test prompts by word n-grams"})
    decontam_ngram: int = field(default=8, metadata={"help": "decontamination: words per n-gram"})
    decontam_min_words: int = field(default=4, metadata={
        "help": "decontamination: turns of fewer words are left out on both sides (\"Yes\", \"Go on.\")"})
    decontam_overlap: float = field(default=0.5, metadata={
        "help": "decontamination: share of a training prompt's n-grams found in test prompts that makes it "
                "contaminated (0-1]"})
    contradictions: str = field(default="keep_majority", metadata={
        "help": f"pairs with the same prompt and chosen/rejected swapped: {', '.join(CONTRADICTIONS)}"})
    caps: list[str] = field(default_factory=list, metadata={"derived": "datasets.*.cap", 
        "help": "per-dataset caps as NAME=N: keep at most N pairs of dataset NAME in the mix"})
    threads: int = threads_field("threads of the MinHash library (rensa)")

    def __post_init__(self):
        expect(0.0 < self.test_fraction < 1.0, "test_fraction", "a number strictly between 0 and 1", self.test_fraction)
        expect(0.0 < self.near_dup_threshold <= 1.0, "near_dup_threshold", "a number in (0, 1]",
              self.near_dup_threshold)
        expect(self.near_dup_ngram >= 1, "near_dup_ngram", "an integer >= 1", self.near_dup_ngram)
        expect(self.minhash_perms >= 8 and self.minhash_perms % 8 == 0, "minhash_perms",
              "a multiple of 8, at least 8", self.minhash_perms)
        expect(self.decontam_ngram >= 1, "decontam_ngram", "an integer >= 1", self.decontam_ngram)
        expect(self.decontam_min_words >= 1, "decontam_min_words", "an integer >= 1", self.decontam_min_words)
        expect(self.contradictions in CONTRADICTIONS, "contradictions", f"one of {', '.join(CONTRADICTIONS)}",
               self.contradictions)
        expect(0.0 < self.decontam_overlap <= 1.0, "decontam_overlap", "a number in (0, 1]", self.decontam_overlap)
        expect(self.threads >= 1, "threads", "an integer >= 1", self.threads)
        self.cap_by_source()  # refuses malformed caps now, not after the first pass

    def cap_by_source(self) -> dict[str, int]:
        caps = {}
        for item in self.caps:
            name, _, number = item.partition("=")
            expect(bool(name) and number.isdigit(), "caps", "NAME=N entries with N an integer >= 0", item)
            caps[name] = int(number)
        return caps


def salted_fraction(salt: str, key: str) -> float:
    digest = hashlib.sha256(f"{salt}:{key}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def in_test(record: dict, settings: SplitSettings) -> bool:
    return salted_fraction(settings.split_seed, prompt_key(record["prompt"])) < settings.test_fraction


@dataclass
class FirstPass:
    """What the first pass keeps per record (index = position in the concatenated inputs)."""

    sources: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    prompt_keys: list[str] = field(default_factory=list)
    test: list[bool] = field(default_factory=list)
    verdicts: dict[int, tuple[str, str, str]] = field(default_factory=dict)  # index -> (stage, reason, detail)
    test_grams: dict[int, frozenset] = field(default_factory=dict)
    orders: list[int] = field(default_factory=list)  # per record: (prompt+chosen hash) << 64 | (prompt+rejected hash)
    offsets: list[tuple[int, int]] = field(default_factory=list)  # (input number, byte offset) per record


def first_pass(inputs: list[Path], settings: SplitSettings) -> FirstPass:
    state = FirstPass()
    first_seen: dict[bytes, int] = {}
    chunk: list[dict] = []
    with RecordLoader(inputs, state.offsets) as load:
        near = NearDuplicates(load, lambda i: i not in state.verdicts, settings.near_dup_threshold,
                              settings.near_dup_ngram, settings.minhash_perms) if settings.near_dedup else None

        def near_duplicates(records: list[dict]) -> None:
            for match in near.add(records):
                sims = ", ".join(f"{k} {s:.2f}" for k, s in zip(("prompt", "chosen", "rejected"), match.similarity))
                state.verdicts[match.index] = ("near_dedup", "near_duplicate",
                                               f"near-identical to {state.ids[match.of]} (Jaccard of word "
                                               f"{settings.near_dup_ngram}-grams: {sims})")

        for number, path in enumerate(inputs):
            for line, offset, raw in iter_lines(path):
                record = parse_record(path, line, raw)
                index = len(state.ids)
                state.offsets.append((number, offset))
                state.sources.append(record["source"])
                state.ids.append(record["id"])
                key = prompt_key(record["prompt"])
                state.prompt_keys.append(key)
                test = salted_fraction(settings.split_seed, key) < settings.test_fraction
                state.test.append(test)
                if settings.contradictions != "keep":
                    state.orders.append(preference_order(key, record))
                if settings.dedup:
                    first = first_seen.setdefault(content_key(record), index)
                    if first != index:
                        state.verdicts[index] = ("exact_dedup", "duplicate", f"same content as {state.ids[first]}")
                if test and settings.decontaminate:
                    state.test_grams[index] = question_ngrams(record["prompt"], settings.decontam_ngram,
                                                              settings.decontam_min_words)
                if near is not None:
                    chunk.append(record)
                    if len(chunk) >= CHUNK:
                        near_duplicates(chunk)
                        chunk = []
        if near is not None:
            near_duplicates(chunk)
    if settings.contradictions != "keep":
        apply_contradictions(state, settings.contradictions)
    apply_caps(state, settings)
    return state


def preference_order(prompt: str, record: dict) -> int:
    """What a pair says: hash(prompt, chosen) << 64 | hash(prompt, rejected), replies whitespace-normalized."""
    def half(key: str) -> int:
        return xxhash.xxh3_64_intdigest(f"{prompt}\0{normalized(text(record[key]))}".encode("utf-8", "surrogatepass"))

    return half("chosen") << 64 | half("rejected")


def swapped(order: int) -> int:
    return (order & _LOW) << 64 | order >> 64


def apply_contradictions(state: FirstPass, policy: str) -> None:
    """Drop pairs whose swap (same prompt, chosen and rejected exchanged) another pair states.

    Every pair votes, exact duplicates included (two sources agreeing is two votes); the pairs
    still live are judged: drop_both drops every contradicted one, keep_majority the side with
    fewer votes (both on a tie).
    """
    votes = collections.Counter(state.orders)
    contested = {order for order in votes if swapped(order) in votes}
    if not contested:
        return
    first: dict[int, int] = {}
    for index, order in enumerate(state.orders):
        if order in contested:
            first.setdefault(order, index)
    for index, order in enumerate(state.orders):
        if order not in contested or index in state.verdicts:
            continue
        mine, theirs = votes[order], votes[swapped(order)]
        if policy == "keep_majority" and mine > theirs:
            continue
        outcome = ("a tie drops both sides" if mine == theirs else "the other order has more votes") \
            if policy == "keep_majority" else "drop_both"
        state.verdicts[index] = ("contradiction", "contradictory",
                                 f"{state.ids[first[swapped(order)]]} states the opposite preference for the same "
                                 f"prompt and replies ({mine} pair(s) for this order, {theirs} against; {outcome})")


def apply_caps(state: FirstPass, settings: SplitSettings) -> None:
    """Keep at most the cap of each dataset: the live pairs whose salted id hash is smallest."""
    for source, cap in settings.cap_by_source().items():
        live = [i for i, s in enumerate(state.sources) if s == source and i not in state.verdicts]
        if len(live) <= cap:
            continue
        ranked = sorted(live, key=lambda i: (salted_fraction(settings.split_seed, state.ids[i]), i))
        for i in ranked[cap:]:
            state.verdicts[i] = ("cap", "over_cap", f"dataset {source} is capped at {cap} pairs "
                                                    f"({len(live)} after deduplication)")


def parse_record(path: Path, line: int, raw: bytes) -> dict:
    """A line of a file prefalign wrote; a bad line is an error naming it."""
    try:
        record = loads(raw)
        for key in ("id", "source", "prompt", "chosen", "rejected"):
            record[key]
    except (ValueError, KeyError, TypeError) as exc:
        raise RecordError(f"{path}:{line}: not a normalized record ({type(exc).__name__}: {exc})") from None
    return record


class RecordLoader:
    """Random access to the records of the inputs by index, through the first pass's offsets."""

    def __init__(self, inputs: list[Path], offsets: list[tuple[int, int]]):
        self.handles = [open(p, "rb") for p in inputs]
        self.offsets = offsets

    def __call__(self, index: int) -> dict:
        number, offset = self.offsets[index]
        handle = self.handles[number]
        handle.seek(offset)
        return loads(handle.readline())

    def __enter__(self) -> "RecordLoader":
        return self

    def __exit__(self, *exc) -> None:
        for handle in self.handles:
            handle.close()


def split(inputs: list[Path], settings: SplitSettings, train_path: Path, test_path: Path, rejects_path: Path) -> dict:
    """Merge `inputs` and write train, test and the ledger; returns the stats."""
    state = first_pass(inputs, settings)
    unknown = sorted(set(settings.cap_by_source()) - set(state.sources))
    if unknown:
        raise ConfigError(f"caps: no input dataset named {', '.join(unknown)} (datasets: "
                          f"{', '.join(sorted(set(state.sources)))})")
    test_grams: set[int] = set()
    for index, grams in state.test_grams.items():
        if index not in state.verdicts:
            test_grams.update(grams)

    per_source: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    prompts = {"train": set(), "test": set()}
    with JsonlWriter(train_path) as train, JsonlWriter(test_path) as test, \
            Ledger(rejects_path, [(name, "pair") for name in STAGES]) as ledger:
        index = 0
        for path in inputs:
            for line, _, raw in iter_lines(path):
                if index >= len(state.ids):
                    raise RecordError(f"{path}:{line}: the inputs grew while the split step read them")
                verdict = state.verdicts.get(index)
                if verdict is None and not state.test[index] and test_grams:
                    share = overlap(prompt_ngrams(loads(raw)["prompt"], settings.decontam_ngram,
                                                  settings.decontam_min_words), test_grams)
                    if share >= settings.decontam_overlap:
                        verdict = ("decontaminate", "contaminated", f"{share:.0%} of the prompt's "
                                   f"{settings.decontam_ngram}-grams occur in test questions")
                # Every stage up to the one that drops the pair saw it; the ones before passed it on.
                reached = STAGES.index(verdict[0]) if verdict else len(STAGES) - 1
                for k, stage in enumerate(STAGES[:reached + 1]):
                    ledger[stage].count_in += 1
                    if k < reached or verdict is None:
                        ledger[stage].count_out += 1
                source = state.sources[index]
                if verdict is not None:
                    stage, reason, detail = verdict
                    ledger.drop(stage, reason, id=state.ids[index], source=source, file=str(path),
                                position=("line", line), detail=detail)
                    per_source[source][reason] += 1
                else:
                    target = "test" if state.test[index] else "train"
                    (test if target == "test" else train).write_raw(raw)
                    per_source[source][target] += 1
                    prompts[target].add(state.prompt_keys[index])
                index += 1
        if index != len(state.ids):
            raise RecordError(f"the inputs shrank while the split step read them ({len(state.ids)} then {index} "
                              "records)")
        kept = train.count + test.count
        ledger.assert_balanced(index, kept, kept, "the split")
        stats = {
            "in": index,
            "kept": kept,
            "dropped": ledger.dropped,
            "dropped_by_reason": ledger.dropped_by_reason(),
            "train": train.count,
            "test": test.count,
            "prompts": {k: len(v) for k, v in prompts.items()},
            "per_source": {s: dict(sorted(c.items())) for s, c in sorted(per_source.items())},
            "stages": [s.to_dict() for s in ledger.stages.values()],
            "settings": settings.to_dict(),
        }
    assert_accounted(stats)
    return stats


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--inputs", type=Path, nargs="+", required=True, help="normalized records (JSONL), one per dataset")
    parser.add_argument("--train", type=Path, required=True, help="output: training records (JSONL)")
    parser.add_argument("--test", type=Path, required=True, help="output: held-out records (JSONL)")
    parser.add_argument("--rejects", type=Path, required=True, help="output: ledger of the pairs the mix drops (JSONL)")
    parser.add_argument("--stats", type=Path, required=True, help="output: counts per stage, reason and source (JSON)")
    SplitSettings.add_arguments(parser)


def main(args: argparse.Namespace) -> None:
    settings = SplitSettings.from_args(args)
    os.environ.setdefault("RAYON_NUM_THREADS", str(settings.threads))  # before rensa starts its thread pool
    stats = split(args.inputs, settings, args.train, args.test, args.rejects)
    if stats["train"] == 0:  # stop here, with the counts, rather than in SFT with a traceback
        per_source = ", ".join(f"{name} {sum(counts.values())}" for name, counts in
                               sorted(stats.get("per_source", {}).items()))
        raise RecordError(f"no train pairs: the split of {stats['in']} normalized pairs ({per_source or 'none'}) kept "
                          f"{stats['train']} for training and {stats['test']} for test, dropped "
                          f"{stats['dropped']} {stats['dropped_by_reason']}; every dataset's rejects ledger "
                          "(results/data/<name>/rejects.jsonl) says why its rows made no pair, and `prefalign config "
                          "check` counts the pairs before a run")
    write_json(args.stats, stats)
    print(f"train={stats['train']} test={stats['test']} dropped={stats['dropped']} {stats['dropped_by_reason']}")
