"""Resumable training: checkpoints that outlive a killed job and are checked before use.

A training step given a checkpoint folder (the rules pass `results/checkpoints/<rule>`)
has the trainer save its full state every `checkpoint_steps` optimizer steps into
`<folder>/checkpoint-<step>/` (weights or adapter, optimizer, scheduler, RNG states,
trainer state; the two newest are kept). When a checkpoint is complete, `RECORD` is
written into it last (atomically): the sha256 and size of every file, the run's
fingerprint, and the trainer's loss and token counters. So:

- a checkpoint without the record was cut off while saving: *incomplete*;
- one whose files disagree with the record (truncated, bit-flipped, missing, extra):
  *corrupt*;
- one whose fingerprint differs (other settings, inputs or library versions): *stale*.

`Checkpoints.resume_point()` reports each such checkpoint on stderr (the job's log),
deletes it, and resumes from the newest good one, or from step 0. transformers'
`resume_from_checkpoint` restores weights, optimizer, scheduler, RNG and data order;
the counters in the record restore what TRL and the Trainer keep outside the checkpoint
(the running loss behind `train_loss`, TRL's `num_tokens`), so a resumed run writes the
same bytes as an uninterrupted one (tests/workflow/test_fault_tolerance.py checks it).

Why the folder is not a declared Snakemake output: Snakemake deletes the outputs of a
failed job, and of an interrupted one before `--rerun-incomplete` reruns it; checkpoints
must survive both. The folder is fixed by the rule (not configurable), lies under
results/, and the step deletes it once its outputs are written (`clear`).

Raises ConfigError when checkpoint_steps is not a multiple of logging_steps: the
running loss is exact only at a logging step, where the trainer has just drained it.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from prefalign.hashing import canonical_sha256, sha256_file, tree_digest
from prefalign.jsonl import write_json
from prefalign.runtime import is_main_process, package_versions

RECORD = "prefalign_checkpoint.json"
KEEP = 2  # the newest and the one before: a corrupt newest checkpoint falls back to the previous
_NAME = re.compile(r"checkpoint-(\d+)")
FLAG_HELP = ("folder for resumable checkpoints (kept across a killed run, resumed after a sha256 check, "
             "deleted when the step succeeds); none = no checkpoints")
# Library versions that change the numbers: a checkpoint written under others is stale.
_VERSIONED = ("torch", "transformers", "trl", "peft", "accelerate")


def fingerprint(settings: dict, inputs: Iterable[Path]) -> str:
    """What a checkpoint must match to be resumed: settings, input contents, library versions."""
    versions = package_versions()
    material = {
        # checkpoint_steps only decides where the run can be cut; it does not change the numbers.
        "settings": {k: v for k, v in settings.items() if k != "checkpoint_steps"},
        "inputs": [tree_digest(Path(p)) for p in inputs],
        "versions": {name: versions.get(name) for name in _VERSIONED},
    }
    return canonical_sha256(material)


def file_table(folder: Path) -> dict[str, dict]:
    """{relative name: {sha256, size}} of every file in a checkpoint folder but the record."""
    return {
        p.relative_to(folder).as_posix(): {"sha256": sha256_file(p), "size": p.stat().st_size}
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != RECORD
    }


def write_record(folder: Path, step: int, run_fingerprint: str, counters: dict) -> None:
    write_json(folder / RECORD, {"step": step, "fingerprint": run_fingerprint, "counters": counters,
                                        "files": file_table(folder)})


def step_of(folder: Path) -> int | None:
    match = _NAME.fullmatch(folder.name)
    return int(match.group(1)) if match else None


def unusable_reason(folder: Path, run_fingerprint: str) -> str | None:
    """Why `folder` must not be resumed from (incomplete, corrupt, stale), or None if it is good."""
    record_path = folder / RECORD
    if not record_path.is_file():
        return f"incomplete: no {RECORD} (the job stopped while saving it)"
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        recorded = record["files"]
        step = record["step"]
    except (ValueError, KeyError, TypeError) as exc:
        return f"corrupt: {RECORD} is unreadable ({exc})"
    if step != step_of(folder):
        return f"corrupt: {RECORD} is for step {step}"
    if record.get("fingerprint") != run_fingerprint:
        return "stale: written by a run with other settings, inputs or library versions"
    try:
        actual = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != RECORD}
        for name in sorted(set(recorded) - actual):
            return f"corrupt: {name} is missing"
        for name in sorted(actual - set(recorded)):
            return f"corrupt: unexpected file {name}"
        for name, want in sorted(recorded.items()):
            path = folder / name
            size = path.stat().st_size
            if size != want["size"]:
                return f"corrupt: {name} has {size} bytes, the record says {want['size']} (truncated or overwritten)"
            got = sha256_file(path)
            if got != want["sha256"]:
                return f"corrupt: {name} sha256 {got[:16]}... differs from the record's {want['sha256'][:16]}..."
    except OSError as exc:  # unreadable, or deleted meanwhile by the main process of a DDP run
        return f"corrupt: unreadable ({exc})"
    return None


def candidates(root: Path) -> list[Path]:
    """checkpoint-<step> folders under root, newest first."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and step_of(p) is not None]
    return sorted(found, key=step_of, reverse=True)


def say(message: str) -> None:
    print(f"checkpoints: {message}", file=sys.stderr, flush=True)


@dataclass
class Checkpoints:
    """Checkpointing of one training run (see the module docstring).

    `folder` is the trainer's output_dir: the checkpoint folder, or a scratch folder when
    checkpointing is off (no folder given, or checkpoint_steps 0).
    """

    folder: Path
    enabled: bool
    run_fingerprint: str | None = None
    resumed_counters: dict | None = None

    def resume_point(self) -> str | None:
        """The newest good checkpoint (as a path for resume_from_checkpoint); bad ones are reported and deleted."""
        if not self.enabled:
            return None
        for folder in candidates(self.folder):
            why = unusable_reason(folder, self.run_fingerprint)
            if why is None:
                record = json.loads((folder / RECORD).read_text(encoding="utf-8"))
                self.resumed_counters = record.get("counters") or {}
                say(f"resuming from {folder.name} (step {record['step']}), verified by sha256")
                return str(folder)
            say(f"{folder.name}: {why}; discarded")
            if is_main_process():  # other DDP ranks leave deleting to rank 0
                shutil.rmtree(folder, ignore_errors=True)
        say(f"no usable checkpoint in {self.folder}: training from step 0")
        return None

    def attach(self, trainer) -> str | None:
        """Add the record-writing callback to `trainer`; return the checkpoint to resume from (or None)."""
        resume = self.resume_point()
        if self.enabled:
            trainer.add_callback(_record_callback(self, trainer))
        return resume


def _counters(trainer) -> dict:
    """What the Trainer and TRL accumulate outside the checkpoint (private attributes, where present)."""
    counters = {}
    if hasattr(trainer, "_total_loss_scalar") and hasattr(trainer, "_tr_loss"):
        # At a logging step _tr_loss has just been drained into _total_loss_scalar (so it adds 0.0).
        counters["total_loss"] = trainer._total_loss_scalar + float(trainer._tr_loss.item())
    if hasattr(trainer, "_total_train_tokens"):
        counters["train_tokens"] = trainer._total_train_tokens
    return counters


def _restore(trainer, counters: dict) -> None:
    if "total_loss" in counters and hasattr(trainer, "_initial_global_step"):
        trainer._total_loss_scalar = counters["total_loss"]
        trainer._initial_global_step = 0  # train_loss then averages over the whole run, as without a resume
    if "train_tokens" in counters:
        trainer._total_train_tokens = counters["train_tokens"]


def _record_callback(checkpoints: Checkpoints, trainer):
    """A TrainerCallback that writes RECORD once the trainer has saved a checkpoint and
    restores the counters on resume (built here so importing this module needs no transformers)."""
    from transformers import TrainerCallback

    class RecordCallback(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            if checkpoints.resumed_counters:
                _restore(trainer, checkpoints.resumed_counters)

        def on_save(self, args, state, control, **kwargs):
            if not state.is_world_process_zero:  # under DDP the main process saved the files; it alone records them
                return
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            write_record(folder, state.global_step, checkpoints.run_fingerprint, _counters(trainer))
            say(f"saved {folder.name} (step {state.global_step} of {state.max_steps})")

    return RecordCallback()


@contextlib.contextmanager
def workspace(folder: Path | None, settings, inputs: Iterable[Path], prefix: str) -> Iterator[Checkpoints]:
    """The trainer's output_dir: `folder` when checkpointing is on, else a scratch folder removed on exit."""
    steps = getattr(settings, "checkpoint_steps", 0)
    if folder is None or steps == 0:
        with tempfile.TemporaryDirectory(prefix=prefix) as scratch:
            yield Checkpoints(Path(scratch), enabled=False)
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    yield Checkpoints(folder, enabled=True, run_fingerprint=fingerprint(settings.to_dict(), inputs))


def clear(folder: Path | None) -> None:
    """Delete a run's checkpoints once its outputs are written (they would only go stale), and
    their parent folder (results/checkpoints/) when that is left empty."""
    if folder is not None and Path(folder).is_dir():
        shutil.rmtree(folder)
        with contextlib.suppress(OSError):
            Path(folder).parent.rmdir()
