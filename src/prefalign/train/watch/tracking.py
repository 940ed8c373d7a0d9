"""Where the training steps send their metrics besides log_history.jsonl, and their progress lines.

TensorBoard event files are written by default (the workflow gives each training rule its
folder, logs/tensorboard/<rule>/: event files carry wall-clock times, so they live with the
logs, not with the bit-reproducible results). Weights & Biases only when the config sets
`tracking.wandb: true` (`wandb_mode: offline` writes the run under logs/wandb/ for a later
`wandb sync`), MLflow only with `tracking.mlflow: true` (a local file store,
`file:logs/mlflow`, by default: no server). Both packages are optional (envs/trackers.lock.txt)
and imported by transformers only when asked for; a missing one is refused at start-up,
naming the key, before any model is loaded.

Each tracker run also gets prefalign's record (RunRecord): the step's resolved settings and
the sha256 of its inputs (the values the manifest's jobs table records for the job), and the
run ids go to a JSON file (`--tracker-record`), so that `prefalign track` can add the run's
manifest sha256 to the same runs once the manifest exists.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from prefalign.errors import ConfigError
from prefalign.jsonl import write_json
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
    mlflow: bool = field(default=False, metadata={"help": "also log to MLflow (needs mlflow or mlflow-skinny)"})
    mlflow_tracking_uri: str = field(default="file:logs/mlflow", metadata={
        "help": "MLflow tracking URI: a local file store (file:<folder>, relative to the working directory) "
                "or a server (http://...)"})
    mlflow_experiment: str = field(default="prefalign", metadata={"help": "MLflow experiment of the runs"})

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
        os.environ.setdefault("WANDB_DIR", "logs")  # runs under logs/wandb/, never in results/
        Path(os.environ["WANDB_DIR"]).mkdir(parents=True, exist_ok=True)
        sinks.append("wandb")
    if settings.mlflow:
        if not installed("mlflow"):
            raise ConfigError("mlflow: expected the mlflow (or mlflow-skinny) package to be installed "
                              "(envs/trackers.lock.txt: `make trackers`), or tracking.mlflow: false")
        os.environ["MLFLOW_TRACKING_URI"] = settings.mlflow_tracking_uri
        os.environ["MLFLOW_EXPERIMENT_NAME"] = settings.mlflow_experiment
        if settings.mlflow_tracking_uri.startswith("file:"):
            # MLflow 3 keeps its file store only on request; a local store needs no server or database.
            os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
        os.environ.setdefault("HF_MLFLOW_LOG_ARTIFACTS", "false")  # checkpoints stay local
        sinks.append("mlflow")
    return sinks


class RunRecord(Callback):
    """Adds prefalign's record to the W&B and MLflow runs the trainer opened, and notes their ids.

    On the first process only, after the trackers' own callbacks have started their runs
    (transformers runs the report_to callbacks before these): the step's settings, what
    `auto` resolved to and the sha256 of every input go to the run's config (W&B) or as a
    JSON artifact and tags (MLflow); the run ids go to `record` (JSON) for `prefalign track`.
    """

    def __init__(self, step: str, sinks: list[str], payload: dict, record: Path | None):
        self.step, self.sinks, self.payload, self.record = step, sinks, payload, record

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        ids: dict = {"step": self.step}
        if "wandb" in self.sinks:
            import wandb

            run = wandb.run
            if run is not None:
                run.config.update({"prefalign": self.payload}, allow_val_change=True)
                ids["wandb"] = {"id": run.id, "project": run.project, "entity": run.entity or None,
                                "dir": os.environ.get("WANDB_DIR"), "mode": os.environ.get("WANDB_MODE")}
        if "mlflow" in self.sinks:
            import mlflow

            run = mlflow.active_run()
            if run is not None:
                mlflow.log_dict(self.payload, "prefalign/record.json")
                mlflow.set_tags({"prefalign.step": self.step,
                                 "prefalign.settings_sha256": self.payload["settings_sha256"],
                                 **{f"prefalign.input.{name}": digest
                                    for name, digest in self.payload["inputs"].items()}})
                ids["mlflow"] = {"run_id": run.info.run_id, "experiment_id": run.info.experiment_id,
                                 "tracking_uri": mlflow.get_tracking_uri()}
        if self.record is not None:
            write_json(self.record, ids)


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
