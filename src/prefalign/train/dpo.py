"""Step `dpo`: direct preference optimization of the SFT checkpoint on the train split.

Supports LoRA (default) and full-model DPO, TRL's loss types (`sigmoid`, `ipo`, `hinge`,
... as a list), beta, and `precompute_ref_log_probs`. The reference is the SFT checkpoint
itself: `ref_model=None`, so TRL uses the policy with its adapter disabled (LoRA) or reloads
the checkpoint (full model); SFT is merged, so either way the reference is exactly SFT.

Writes the merged DPO checkpoint (and the adapter when LoRA is on), TRL's logged metrics
(rewards/accuracies, rewards/margins, ...) and metrics.json with settings and what
`auto` resolved to. Raises ConfigError for settings this machine cannot run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from prefalign import runtime
from prefalign.train import checkpoints
from prefalign.train import common as training
from prefalign.train import watch
from prefalign.records import load_records, write_json
from prefalign.settings import check

LOSS_TYPES = ("sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
              "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft")


@dataclass
class DPOSettings(training.TrainSettings):
    max_steps: int = field(default=150, metadata={"help": "optimizer steps"})
    learning_rate: float = field(default=3e-3, metadata={"help": "peak learning rate"})
    use_lora: bool = field(default=True, metadata={"help": "train LoRA adapters instead of all weights"})
    beta: float = field(default=0.1, metadata={"help": "DPO beta: strength of the pull towards the reference"})
    loss_type: list[str] = field(
        default_factory=lambda: ["sigmoid"],
        metadata={"help": "TRL loss type(s); several are summed ([sigmoid, sft] = DPO + NLL on chosen, as in RPO)"},
    )
    loss_weights: list[float] | None = field(
        default=None, metadata={"help": "weight of each loss_type, in the same order; none = all 1"}
    )
    precompute_ref_log_probs: bool = field(
        default=False, metadata={"help": "score the reference once before training and keep no reference model"}
    )

    def __post_init__(self):
        super().__post_init__()
        check(self.beta > 0, "beta", "a number > 0", self.beta)
        bad = [t for t in self.loss_type if t not in LOSS_TYPES]
        check(bool(self.loss_type) and not bad, "loss_type", f"a list from {', '.join(LOSS_TYPES)}", self.loss_type)
        check(self.loss_weights is None or len(self.loss_weights) == len(self.loss_type), "loss_weights",
              f"one weight per loss_type ({len(self.loss_type)})", self.loss_weights)


def dpo_dataset(records: list[dict]):
    """Canonical records -> TRL's conversational preference format (identity and meta dropped)."""
    from datasets import Dataset

    return Dataset.from_list([{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in records])


def train(sft: Path, train_path: Path, out: Path | None, adapter_out: Path | None, settings: DPOSettings,
          callbacks=(), report_to=(), checkpoint_dir: Path | None = None):
    """Train and save the merged checkpoint (and adapter); return (metrics, log history).

    `out=None` trains without saving (bench/dpo_throughput.py times the training alone).
    """
    training.pin_single_gpu()
    resolved = training.resolve(settings)  # refuses impossible settings before loading anything
    print("resolved:", json.dumps(dataclasses.asdict(resolved), sort_keys=True), flush=True)
    if resolved.backend == "unsloth":
        from prefalign.train import unsloth as unsloth_backend

        unsloth_backend.activate(dpo=True)
    runtime.setup(settings.seed, settings.threads)
    training.quiet_libraries()
    from trl import DPOConfig, DPOTrainer

    model, tokenizer, peft_config = training.load_policy(sft, settings, resolved)
    dataset = dpo_dataset(load_records(train_path))

    with checkpoints.workspace(checkpoint_dir, settings, [sft, train_path], prefix="prefalign-dpo-") as ckpt:
        config = DPOConfig(
            **training.trainer_kwargs(settings, resolved, ckpt.folder, DPOConfig, report_to, ckpt.enabled),
            beta=settings.beta,
            loss_type=list(settings.loss_type),
            loss_weights=list(settings.loss_weights) if settings.loss_weights else None,
            precompute_ref_log_probs=settings.precompute_ref_log_probs,
        )
        trainer = DPOTrainer(
            model=model,
            ref_model=None,
            args=config,
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=list(callbacks),
        )
        result = trainer.train(resume_from_checkpoint=ckpt.attach(trainer))
    if out is not None:
        training.save_trained(trainer, sft, sft, out, settings, resolved, adapter_out)

    history = training.log_history(trainer)
    keys = ("loss", "rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected", "logps/chosen",
            "logps/rejected", "grad_norm")
    metrics = {
        "settings": settings.to_dict(),
        "resolved": dataclasses.asdict(resolved),
        "train": {"steps": result.global_step, "examples": len(dataset), "train_loss": result.training_loss,
                  "first_loss": next((e["loss"] for e in history if "loss" in e), None),
                  **{k: training.last_logged(history, k) for k in keys}},
    }
    return metrics, history


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sft", type=Path, required=True, help="SFT checkpoint folder: the policy's start and reference")
    parser.add_argument("--train", type=Path, required=True, help="training records (JSONL)")
    parser.add_argument("--out", type=Path, required=True, help="output folder: merged DPO checkpoint")
    parser.add_argument("--adapter-out", type=Path, help="output folder: the LoRA adapter (LoRA only)")
    parser.add_argument("--metrics", type=Path, required=True, help="output: settings, resolved device, results (JSON)")
    parser.add_argument("--log-history", type=Path, required=True, help="output: TRL's logged metrics (JSONL)")
    parser.add_argument("--environment", type=Path, help="output: software and hardware it ran on (JSON)")
    parser.add_argument("--checkpoint-dir", type=Path, help=checkpoints.FLAG_HELP)
    DPOSettings.add_arguments(parser)
    watch.add_arguments(parser)  # health monitor, TensorBoard / W&B


def main(args: argparse.Namespace) -> None:
    settings = DPOSettings.from_args(args)
    print("settings:", json.dumps(settings.to_dict(), sort_keys=True), flush=True)
    watcher = watch.Watch.from_args(args, "dpo", settings)
    metrics, history = train(args.sft, args.train, args.out, args.adapter_out, settings, watcher.callbacks(),
                             watcher.report_to, checkpoint_dir=args.checkpoint_dir)
    metrics["health"] = watcher.check.summary()
    if not training.is_main_process():  # one process writes; all trained the same model
        return
    training.write_log_history(args.log_history, history)
    write_json(args.metrics, metrics)
    if args.environment:
        write_json(args.environment, runtime.environment())
    checkpoints.clear(args.checkpoint_dir)
    print("dpo:", json.dumps(metrics["train"], sort_keys=True))
