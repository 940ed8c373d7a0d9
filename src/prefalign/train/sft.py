"""Step `sft`: supervised fine-tuning on the chosen replies of the train split.

Supports full fine-tuning (the default: the tiny model is trained from scratch) and LoRA,
whose adapters are merged before saving: the output is always a plain checkpoint, so DPO
can use it as its reference with `ref_model=None`. Loss is on the reply tokens only
(prompt-completion format, TRL's completion-only loss).

Assumes a base folder written by `build-base` (model, tokenizer with a chat template).
Raises ConfigError for settings this machine cannot run (bf16 without a GPU, say) before
any model is loaded.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from prefalign import runtime
from prefalign.train import checkpoints
from prefalign.train import common as training
from prefalign.train import watch
from prefalign.records import load_records, write_json


@dataclass
class SFTSettings(training.TrainSettings):
    pass


def sft_dataset(records: list[dict]):
    """Canonical records -> TRL's conversational prompt-completion format."""
    from datasets import Dataset

    return Dataset.from_list([{"prompt": r["prompt"], "completion": r["chosen"]} for r in records])


def train(base: Path, train_path: Path, out: Path, settings: SFTSettings, callbacks=(), report_to=(),
          checkpoint_dir: Path | None = None):
    """Train and save the merged checkpoint to `out`; return (metrics, log history)."""
    training.pin_single_gpu()
    resolved = training.resolve(settings)  # refuses impossible settings before loading anything
    print("resolved:", json.dumps(dataclasses.asdict(resolved), sort_keys=True), flush=True)
    if resolved.backend == "unsloth":
        from prefalign.train import unsloth as unsloth_backend

        unsloth_backend.activate()
    runtime.setup(settings.seed, settings.threads)
    training.quiet_libraries()
    from trl import SFTConfig, SFTTrainer

    model, tokenizer, peft_config = training.load_policy(base, settings, resolved)
    dataset = sft_dataset(load_records(train_path))

    with checkpoints.workspace(checkpoint_dir, settings, [base, train_path], prefix="prefalign-sft-") as ckpt:
        config = SFTConfig(**training.trainer_kwargs(settings, resolved, ckpt.folder, SFTConfig, report_to,
                                                     ckpt.enabled),
                           packing=False)
        trainer = SFTTrainer(
            model=model,
            args=config,
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=list(callbacks),
        )
        result = trainer.train(resume_from_checkpoint=ckpt.attach(trainer))
    training.save_trained(trainer, base, base, out, settings, resolved)

    history = training.log_history(trainer)
    metrics = {
        "settings": settings.to_dict(),
        "resolved": dataclasses.asdict(resolved),
        "train": {
            "steps": result.global_step,
            "examples": len(dataset),
            "loss": training.last_logged(history, "loss"),
            "mean_token_accuracy": training.last_logged(history, "mean_token_accuracy"),
            "train_loss": result.training_loss,
        },
    }
    return metrics, history


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", type=Path, required=True, help="base model folder (from build-base)")
    parser.add_argument("--train", type=Path, required=True, help="training records (JSONL)")
    parser.add_argument("--out", type=Path, required=True, help="output folder: merged SFT checkpoint")
    parser.add_argument("--metrics", type=Path, required=True, help="output: settings, resolved device, results (JSON)")
    parser.add_argument("--log-history", type=Path, required=True, help="output: TRL's logged metrics (JSONL)")
    parser.add_argument("--environment", type=Path, help="output: software and hardware it ran on (JSON)")
    parser.add_argument("--checkpoint-dir", type=Path, help=checkpoints.FLAG_HELP)
    SFTSettings.add_arguments(parser)
    watch.add_arguments(parser)  # health monitor, TensorBoard / W&B


def main(args: argparse.Namespace) -> None:
    settings = SFTSettings.from_args(args)
    print("settings:", json.dumps(settings.to_dict(), sort_keys=True), flush=True)
    watcher = watch.Watch.from_args(args, "sft", settings)
    metrics, history = train(args.base, args.train, args.out, settings, watcher.callbacks(), watcher.report_to,
                             checkpoint_dir=args.checkpoint_dir)
    metrics["health"] = watcher.check.summary()
    if not training.is_main_process():  # one process writes; all trained the same model
        return
    training.write_log_history(args.log_history, history)
    write_json(args.metrics, metrics)
    if args.environment:
        write_json(args.environment, runtime.environment())
    checkpoints.clear(args.checkpoint_dir)
    print("sft:", json.dumps(metrics["train"], sort_keys=True))
