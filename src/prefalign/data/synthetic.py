"""Seeded synthetic preference corpora, written in the raw formats of real datasets.

The records are small verifiable tasks (prefalign.data.tasks): the chosen answer is right, the
rejected one is wrong or garbled, so the preference is learnable and any answer a model
writes can be scored. A small share of records carries the defects that real dumps carry
(ties, repeated lines, chosen/rejected transcripts that disagree on the prompt, empty
replies) so that the data stage's ledger has something to account for.

Formats written:
  hh-rlhf  Anthropic/hh-rlhf lines: {"chosen": "\\n\\nHuman: ...\\n\\nAssistant: ...", "rejected": ...},
           multi-turn transcripts included.
  shp      stanfordnlp/SHP lines: post_id, domain, history, human_ref_A/B, score_A/B,
           labels (1 when A is preferred), score_ratio, ...
  pairs    generic pairs: {"prompt": str, "chosen": str, "rejected": str}.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from prefalign.data import tasks as task_lib
from prefalign.jsonl import JsonlWriter
from prefalign.settings import Settings, expect, seed_field

FORMATS = ("hh-rlhf", "shp", "pairs")
DEFECTS = ("tie", "duplicate", "prompt_mismatch", "empty_reply")


@dataclass
class SyntheticSettings(Settings):
    SECTION = "synthetic"
    format: str = field(default="hh-rlhf", metadata={
        "key": "datasets.*.format", "help": f"raw format to write: {', '.join(FORMATS)}"})
    records: int = field(default=1000, metadata={
        "key": "datasets.*.records", "help": "number of raw records (lines) to write"})
    seed: int = seed_field("the dataset name is mixed in")
    name: str = field(default="synthetic", metadata={
        "job": True, "help": "dataset name, mixed into the seed and the ids"})
    tasks: list[str] = field(
        default_factory=lambda: list(task_lib.TASKS),
        metadata={"help": f"tasks to draw from: {', '.join(task_lib.TASKS)}"},
    )
    garbled_fraction: float = field(
        default=0.4, metadata={"help": "share of rejected answers that are garbled rather than plausibly wrong (0-1)"}
    )
    multi_turn_fraction: float = field(
        default=0.3, metadata={"help": "share of hh-rlhf transcripts with earlier turns (0-1)"}
    )
    defect_fraction: float = field(
        default=0.02, metadata={"help": "share of records with a real-dump defect: tie, repeat, mismatch, empty (0-1)"}
    )
    low_ratio_fraction: float = field(
        default=0.15, metadata={"help": "shp only: share of pairs whose score ratio is below 2 (0-1)"}
    )

    def __post_init__(self):
        expect(self.format in FORMATS, "format", f"one of {', '.join(FORMATS)}", self.format)
        expect(self.records >= 1, "records", "an integer >= 1", self.records)
        unknown = [t for t in self.tasks if t not in task_lib.TASKS]
        expect(not unknown and self.tasks, "tasks", f"a non-empty list from {', '.join(task_lib.TASKS)}", self.tasks)
        for key in ("garbled_fraction", "multi_turn_fraction", "defect_fraction", "low_ratio_fraction"):
            expect(0.0 <= getattr(self, key) <= 1.0, key, "a number between 0 and 1", getattr(self, key))


@dataclass
class Pair:
    """One generated preference: earlier turns, the final question, a right and a wrong answer."""

    history: list[tuple[str, str]]
    question: str
    chosen: str
    rejected: str


def make_pair(rng: random.Random, settings: SyntheticSettings, turns: int = 0) -> Pair:
    history = []
    for _ in range(turns):
        task = task_lib.TASKS[rng.choice(settings.tasks)]
        prompt, args = task.make(rng)
        history.append((prompt, task.solve(*args)))
    task = task_lib.TASKS[rng.choice(settings.tasks)]
    question, args = task.make(rng)
    right = task.solve(*args)
    if rng.random() < settings.garbled_fraction:
        wrong = task_lib.garble(rng, right)
    else:
        wrong = task_lib.wrong_answer(rng, task, args)
    return Pair(history, question, right, wrong)


def hh_transcript(history: list[tuple[str, str]], question: str, answer: str) -> str:
    turns = [f"\n\nHuman: {q}\n\nAssistant: {a}" for q, a in history]
    turns.append(f"\n\nHuman: {question}\n\nAssistant:" + (f" {answer}" if answer else ""))
    return "".join(turns)


def hh_records(rng: random.Random, settings: SyntheticSettings):
    written: list[dict] = []
    for _ in range(settings.records):
        defect = rng.choice(DEFECTS) if rng.random() < settings.defect_fraction else None
        if defect == "duplicate" and written:
            record = dict(rng.choice(written))
        else:
            turns = rng.choice([1, 1, 2]) if rng.random() < settings.multi_turn_fraction else 0
            pair = make_pair(rng, settings, turns)
            chosen = hh_transcript(pair.history, pair.question, pair.chosen)
            rejected = hh_transcript(pair.history, pair.question, pair.rejected)
            if defect == "tie":
                rejected = chosen
            elif defect == "prompt_mismatch":
                other = make_pair(rng, settings)
                rejected = hh_transcript(pair.history, other.question, other.rejected)
            elif defect == "empty_reply":
                chosen = hh_transcript(pair.history, pair.question, "")
            record = {"chosen": chosen, "rejected": rejected}
        written.append(record)
        yield record


def shp_records(rng: random.Random, settings: SyntheticSettings):
    written: list[dict] = []
    for index in range(settings.records):
        if rng.random() < settings.defect_fraction and written:
            record = dict(rng.choice(written))  # SHP dumps repeat pairs too
            written.append(record)
            yield record
            continue
        pair = make_pair(rng, settings)
        low_ratio = rng.random() < settings.low_ratio_fraction
        score_wrong = rng.randint(2, 30)
        if low_ratio:  # still preferred, but by less than the literature's ratio of 2
            score_right = score_wrong + rng.randint(1, score_wrong - 1)
        else:
            score_right = score_wrong * rng.randint(2, 6) + rng.randint(0, 5)
        right_is_a = rng.random() < 0.5
        created = 1_600_000_000 + rng.randint(0, 10_000_000)
        delay = rng.randint(0, 86_400)
        answers = (pair.chosen, pair.rejected) if right_is_a else (pair.rejected, pair.chosen)
        scores = (score_right, score_wrong) if right_is_a else (score_wrong, score_right)
        record = {
            "post_id": f"p{index:06x}",
            "domain": f"{settings.name}_train",
            "upvote_ratio": round(rng.uniform(0.6, 1.0), 2),
            "history": pair.question,
            "c_root_id_A": f"a{index:06x}",
            "c_root_id_B": f"b{index:06x}",
            "created_at_utc_A": created,
            "created_at_utc_B": created + delay,
            "score_A": scores[0],
            "score_B": scores[1],
            "human_ref_A": answers[0],
            "human_ref_B": answers[1],
            "labels": 1 if scores[0] > scores[1] else 0,
            "seconds_difference": float(delay),
            "score_ratio": max(scores) / min(scores),
        }
        written.append(record)
        yield record


def pairs_records(rng: random.Random, settings: SyntheticSettings):
    for _ in range(settings.records):
        pair = make_pair(rng, settings)
        yield {"prompt": pair.question, "chosen": pair.chosen, "rejected": pair.rejected}


WRITERS = {"hh-rlhf": hh_records, "shp": shp_records, "pairs": pairs_records}


def generate(settings: SyntheticSettings, out: Path) -> int:
    """Write `settings.records` raw lines to `out`; returns the number written."""
    rng = random.Random(f"{settings.seed}:{settings.name}:{settings.format}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with JsonlWriter(out) as handle:  # atomic: a failed run leaves no partial file
        for record in WRITERS[settings.format](rng, settings):
            handle.write_raw((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
    return handle.count


def add_arguments(parser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="output: raw JSONL file")
    SyntheticSettings.add_arguments(parser)


def main(args) -> None:
    settings = SyntheticSettings.from_args(args)
    count = generate(settings, args.out)
    print(f"wrote {count} {settings.format} records to {args.out}")
