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
import json
from dataclasses import dataclass
from pathlib import Path

from prefalign import checkpoints, runtime, training
from prefalign.records import load_records, write_json


@dataclass
class SFTSettings(training.TrainSettings):
    pass


def sft_dataset(records: list[dict]):
    """Canonical records -> TRL's conversational prompt-completion format."""
    from datasets import Dataset

    return Dataset.from_list([{"prompt": r["prompt"], "completion": r["chosen"]} for r in records])


def train(base: Path, train_path: Path, out: Path, settings: SFTSettings, checkpoint_dir: Path | None = None):
    """Train and save the merged checkpoint to `out`; return (metrics, log history)."""
    resolved = training.resolve(settings)  # refuses impossible settings before loading anything
    runtime.setup(settings.seed, settings.threads)
    training.quiet_libraries()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(base)
    dtype = torch.bfloat16 if resolved.precision == "bf16" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype, use_safetensors=True)
    dataset = sft_dataset(load_records(train_path))

    with checkpoints.workspace(checkpoint_dir, settings, [base, train_path], prefix="prefalign-sft-") as ckpt:
        config = SFTConfig(**training.trainer_kwargs(settings, resolved, ckpt.folder, ckpt.enabled), packing=False)
        trainer = SFTTrainer(
            model=model,
            args=config,
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=training.lora_config(settings) if settings.use_lora else None,
        )
        result = trainer.train(resume_from_checkpoint=ckpt.attach(trainer))
    trained = trainer.model.merge_and_unload() if settings.use_lora else trainer.model
    out.mkdir(parents=True, exist_ok=True)
    trained.save_pretrained(out)
    tokenizer.save_pretrained(out)

    history = training.log_history(trainer)
    metrics = {
        "settings": settings.to_dict(),
        "resolved": resolved.__dict__,
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


def main(args: argparse.Namespace) -> None:
    settings = SFTSettings.from_args(args)
    print("settings:", json.dumps(settings.to_dict(), sort_keys=True), flush=True)
    metrics, history = train(args.base, args.train, args.out, settings, args.checkpoint_dir)
    training.write_log_history(args.log_history, history)
    write_json(args.metrics, metrics)
    if args.environment:
        write_json(args.environment, runtime.environment())
    checkpoints.clear(args.checkpoint_dir)
    print("sft:", json.dumps(metrics["train"], sort_keys=True))
