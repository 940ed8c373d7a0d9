"""The training step both `prefalign sft` and `prefalign dpo` are: one skeleton, one main().

    set up      pin the GPU, resolve backend and precision (refusing what cannot run here),
                activate Unsloth before anything imports transformers, seed, threads
    load        the policy (and its tokenizer, LoRA config) from the starting checkpoint
    train       the step's TRL trainer on the train split, in a checkpoint workspace that
                resumes a killed run from its newest verified checkpoint
    save        the merged checkpoint (and adapter), the log history, metrics.json,
                environment.json; then the checkpoints are deleted

A step (prefalign.train.sft, prefalign.train.dpo) supplies only what differs: its settings
class, how records become its dataset, how its trainer is built, and which logged metrics
its summary keeps. Raises ConfigError for settings this machine cannot run, before any model
is loaded; TrainingError (prefalign.train.watch.health) when training diverges.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from prefalign import runtime
from prefalign.errors import ConfigError, PrefalignError, TrainingError
from prefalign.jsonl import read_jsonl, write_json
from prefalign.train import backends, checkpoints, saving, unsloth_backend, watch


@dataclass(frozen=True)
class TrainingStep:
    name: str  # sft or dpo: the CLI step, the checkpoint-folder prefix, the health monitor's label
    settings_class: type
    start_flag: str  # the starting checkpoint's flag: --base (SFT) or --sft (DPO)
    start_help: str
    dataset: Callable[[list[dict]], object]  # canonical records -> the trainer's dataset
    # (model, tokenizer, peft_config, dataset, settings, shared_args, callbacks) -> a TRL trainer, where
    # shared_args(ConfigClass) gives the TrainingArguments both trainers share (backends.trainer_kwargs)
    trainer: Callable
    logged: tuple[str, ...]  # metrics whose last logged value goes into metrics.json's `train`
    first_loss: bool = False  # also record the loss at step 1 (DPO: ln 2 there)
    # Further input files the step reads: (flag, help). Their paths reach `dataset` and `trainer`
    # as keyword arguments (flag with '_' for '-'), None when not given.
    extra_inputs: tuple[tuple[str, str], ...] = ()
    # (start, settings, resolved) -> (model, tokenizer, peft_config); None: the causal LM (backends.load_policy)
    load: Callable | None = None
    resolve: Callable | None = None  # settings -> backends.Resolved; None: backends.resolve
    summary: Callable | None = None  # trainer -> extra entries of metrics.json's `train`

    def train(self, start: Path, train_path: Path, out: Path | None, settings, callbacks=(), report_to=(),
              checkpoint_dir: Path | None = None, adapter_out: Path | None = None,
              inputs: dict[str, Path | None] | None = None) -> tuple[dict, list[dict]]:
        """Train from checkpoint `start` and save to `out` (None: train only, as the benchmarks do).

        Returns (metrics, log history)."""
        backends.pin_single_gpu()
        resolved = (self.resolve or backends.resolve)(settings)  # refuses impossible settings before loading anything
        print("resolved:", json.dumps(dataclasses.asdict(resolved), sort_keys=True), flush=True)
        if resolved.backend == "unsloth":
            unsloth_backend.activate(dpo=self.name == "dpo")
        runtime.setup(settings.seed, settings.threads)
        backends.quiet_libraries()

        model, tokenizer, peft_config = (self.load or backends.load_policy)(start, settings, resolved)
        inputs = {flag.replace("-", "_"): None for flag, _ in self.extra_inputs} | (inputs or {})
        dataset = self.dataset(read_jsonl(train_path), **inputs)
        fingerprinted = [start, train_path, *(path for path in inputs.values() if path is not None)]
        with checkpoints.workspace(checkpoint_dir, settings, fingerprinted, f"prefalign-{self.name}-") as ckpt:
            def shared_args(config_class) -> dict:
                return backends.trainer_kwargs(settings, resolved, ckpt.folder, config_class, report_to, ckpt.enabled)

            trainer = self.trainer(model, tokenizer, peft_config, dataset, settings, shared_args, list(callbacks),
                                   **inputs)
            result = train_or_advise(trainer, ckpt.attach(trainer), self.name, settings, resolved)
        if out is not None:
            saving.save_trained(trainer, start, start, out, settings, resolved, adapter_out)

        history = saving.log_history(trainer)
        summary = {"steps": result.global_step, "examples": len(dataset), "train_loss": result.training_loss,
                   **{key: saving.last_logged(history, key) for key in self.logged}}
        if hasattr(trainer, "prefalign_summary"):  # what the step's own trainer adds (DPO: batching, reference)
            summary.update(trainer.prefalign_summary())
        if self.summary is not None:
            summary.update(self.summary(trainer))
        if self.first_loss:
            summary["first_loss"] = next((e["loss"] for e in history if "loss" in e), None)
        metrics = {"settings": settings.to_dict(), "resolved": dataclasses.asdict(resolved), "train": summary}
        return metrics, history

    # ---------------------------------------------------------------- the CLI

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(f"--{self.start_flag}", type=Path, required=True, help=self.start_help)
        parser.add_argument("--train", type=Path, required=True, help="training records (JSONL)")
        parser.add_argument("--out", type=Path, required=True, help=f"output folder: the merged {self.name.upper()} "
                                                                    "checkpoint")
        parser.add_argument("--adapter-out", type=Path, help="output folder: the LoRA adapter (LoRA only)")
        parser.add_argument("--metrics", type=Path, required=True,
                            help="output: settings, resolved device, results (JSON)")
        parser.add_argument("--log-history", type=Path, required=True, help="output: TRL's logged metrics (JSONL)")
        parser.add_argument("--environment", type=Path, help="output: software and hardware it ran on (JSON)")
        parser.add_argument("--checkpoint-dir", type=Path, help=checkpoints.FLAG_HELP)
        for flag, help_text in self.extra_inputs:
            parser.add_argument(f"--{flag}", type=Path, help=help_text)
        self.settings_class.add_arguments(parser)
        watch.add_arguments(parser)  # health monitor, TensorBoard / W&B

    def main(self, args: argparse.Namespace) -> None:
        settings = self.settings_class.from_args(args)
        start = getattr(args, self.start_flag)
        if not Path(start).is_dir():  # else transformers takes the path for a hub id and fails with a traceback
            raise ConfigError(f"--{self.start_flag} {start}: not a model folder ({self.start_help})")
        print("settings:", json.dumps(settings.to_dict(), sort_keys=True), flush=True)  # the resolved config first
        watcher = watch.Watch.from_args(args, self.name, settings)
        metrics, history = self.train(getattr(args, self.start_flag), args.train, args.out, settings,
                                      watcher.callbacks(), watcher.report_to, args.checkpoint_dir, args.adapter_out,
                                      {flag.replace("-", "_"): getattr(args, flag.replace("-", "_"))
                                       for flag, _ in self.extra_inputs})
        metrics["health"] = watcher.monitor.summary()
        if not runtime.is_main_process():  # one process writes; all trained the same model
            return
        saving.write_log_history(args.log_history, history)
        write_json(args.metrics, metrics)
        if args.environment:
            write_json(args.environment, runtime.environment())
        checkpoints.clear(args.checkpoint_dir)
        print(f"{self.name}:", json.dumps(metrics["train"], sort_keys=True))


def train_or_advise(trainer, resume_from, section: str, settings, resolved):
    """trainer.train(); a failure before this run's first optimizer step, where `auto` chose the backend or
    precision, becomes a TrainingError naming the setting to change (the traceback is printed first).

    A failure after a step completed, a PrefalignError (health monitor, config) and settings the user
    chose are raised unchanged.
    """
    from transformers import TrainerCallback

    class StepsDone(TrainerCallback):
        count = 0

        def on_step_end(self, args, state, control, **kwargs):
            StepsDone.count += 1

    trainer.add_callback(StepsDone())
    try:
        return trainer.train(resume_from_checkpoint=resume_from)
    except PrefalignError:
        raise
    except Exception as exc:  # any library failure gets the advice; the original is chained
        advice = backends.first_step_advice(section, settings, resolved)
        if advice is None or StepsDone.count > 0:
            raise
        traceback.print_exc()
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        raise TrainingError(f"{type(exc).__name__}: {first_line}: {advice}") from exc
