"""Where the training steps send their metrics besides log_history.jsonl, and their progress lines.

TensorBoard event files are written by default (the workflow gives each training rule its
folder, logs/tensorboard/<rule>/: event files carry wall-clock times, so they live with the
logs, not with the bit-reproducible results). Weights & Biases only when the config sets
`tracking.wandb: true`; wandb is then required and imported by transformers, never otherwise.
A missing package is refused at start-up, naming the key, before any model is loaded.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from prefalign.errors import ConfigError
from prefalign.progress import RateLimiter, announce
from prefalign.settings import Settings, expect
from prefalign.train.watch.events import Callback

WANDB_MODES = ("online", "offline")


@dataclass
class TrackingSettings(Settings):
    SECTION = "tracking"
    tensorboard: bool = field(default=True, metadata={"help": "write TensorBoard event files to --tensorboard-dir"})
    wandb: bool = field(default=False, metadata={"help": "also log to Weights & Biases (needs wandb installed)"})
    wandb_project: str = field(default="prefalign", metadata={"help": "W&B project"})
    wandb_entity: str | None = field(default=None, metadata={"help": "W&B entity (user or team); none: the default"})
    wandb_mode: str = field(default="online", metadata={"help": f"W&B mode: {', '.join(WANDB_MODES)}"})

    def __post_init__(self):
        expect(self.wandb_mode in WANDB_MODES, "wandb_mode", f"one of {', '.join(WANDB_MODES)}", self.wandb_mode)


def installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def report_to(settings: TrackingSettings, tensorboard_dir: Path | None, run_name: str) -> list[str]:
    """The `report_to` sinks of the trainer, with their environment set; raises ConfigError.

    TensorBoard needs `tensorboard_dir` (without one, no event files are written); the folder
    is created even with tensorboard off, so a workflow's declared log folder always exists,
    and event files of an earlier run in it are removed.
    """
    sinks = []
    if tensorboard_dir is not None:
        tensorboard_dir.mkdir(parents=True, exist_ok=True)
        for old in tensorboard_dir.glob("events.out.tfevents.*"):  # a rerun replaces the previous run's events
            old.unlink()
        if settings.tensorboard:
            if not installed("tensorboard"):
                raise ConfigError("tensorboard: expected the tensorboard package to be installed (it is in "
                                  "envs/cpu.lock.txt and envs/gpu.lock.txt), or tracking.tensorboard: false")
            # transformers 5 reads the folder from the environment (TrainingArguments.logging_dir is gone).
            os.environ["TENSORBOARD_LOGGING_DIR"] = str(tensorboard_dir)
            sinks.append("tensorboard")
    if settings.wandb:
        if not installed("wandb"):
            raise ConfigError("wandb: expected the wandb package to be installed (`pip install wandb`; it is in "
                              "neither lock file), or tracking.wandb: false", )
        os.environ["WANDB_PROJECT"] = settings.wandb_project
        os.environ["WANDB_MODE"] = settings.wandb_mode
        os.environ.setdefault("WANDB_NAME", run_name)
        os.environ.setdefault("WANDB_LOG_MODEL", "false")  # checkpoints stay local; the manifest tracks them
        if settings.wandb_entity:
            os.environ["WANDB_ENTITY"] = settings.wandb_entity
        sinks.append("wandb")
    return sinks


class ProgressLines(Callback):
    """Prints `sft: step 100/1000 (10%), 0:42 elapsed, ~6:18 left` at every tenth of the steps
    (or after a minute without a line), to the log and to the console a workflow rule opened
    (prefalign.progress.announce).

    For log files: in a terminal transformers draws its progress bar instead
    (training.trainer_kwargs), and these lines would break it (see `progress_callback`).
    """

    def __init__(self, step_name: str, every: float = 0.1):
        self.step_name, self.every = step_name, every
        self.limiter = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.limiter = RateLimiter(state.max_steps or 1, self.every)
        if state.is_local_process_zero:
            announce(f"{self.step_name}: training {state.max_steps} steps"
                     + (f", resuming at step {state.global_step}" if state.global_step else ""))

    def on_step_end(self, args, state, control, **kwargs):
        if self.limiter is None:
            self.limiter = RateLimiter(state.max_steps or 1, self.every)
        line = self.limiter.line(state.global_step, self.step_name, "step")
        if line and state.is_local_process_zero:
            announce(line)


def progress_callback(step_name: str) -> ProgressLines | None:
    """Progress lines where stderr is not a terminal (a rule's log file); None in a terminal."""
    return None if sys.stderr.isatty() else ProgressLines(step_name)
