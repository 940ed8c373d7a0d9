"""What the SFT and DPO steps share: settings common to both trainers, backend and precision
resolution, the TRL arguments they have in common, and saving what the trainer logged.

Backends: `trl` runs anywhere. `auto` resolves to `trl` in this build; the Unsloth backend
plugs in behind the same `resolve_backend` (see the GPU-path issue). Precision `auto` is
fp32 on CPU and bf16 on a CUDA device.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

from prefalign import checkpoints
from prefalign.settings import Settings, check

BACKENDS = ("auto", "trl")
PRECISIONS = ("auto", "fp32", "bf16")
# What TRL logs that depends on the clock rather than on the computation: kept out of the
# saved training log so two runs of the same config give byte-identical artifacts.
TIMING_KEYS = ("train_runtime", "train_samples_per_second", "train_steps_per_second", "epoch_time")


@dataclass
class TrainSettings(Settings):
    backend: str = field(default="auto", metadata={"help": f"training backend: {', '.join(BACKENDS)}"})
    precision: str = field(default="auto", metadata={"help": f"weights/compute precision: {', '.join(PRECISIONS)}"})
    max_steps: int = field(default=1000, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=16, metadata={"help": "examples per device per micro-batch"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    learning_rate: float = field(default=2e-3, metadata={"help": "peak learning rate"})
    lr_scheduler: str = field(default="cosine", metadata={"help": "transformers scheduler name (cosine, linear, ...)"})
    warmup_ratio: float = field(default=0.05, metadata={"help": "share of max_steps spent warming up (0-1)"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    adam_beta2: float = field(default=0.999, metadata={"help": "AdamW beta2"})
    max_length: int = field(default=256, metadata={"help": "longest tokenized example (tokens); longer are truncated"})
    logging_steps: int = field(default=10, metadata={"help": "log training metrics every this many steps"})
    checkpoint_steps: int = field(
        default=100, metadata={"help": "save a resumable checkpoint every this many steps (a multiple of "
                                       "logging_steps; 0 = none); used with --checkpoint-dir"})
    use_lora: bool = field(default=False, metadata={"help": "train LoRA adapters instead of all weights"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator (alpha / r)"})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout probability"})
    seed: int = field(default=1234, metadata={"help": "random seed (data order, initialization of adapters)"})
    threads: int = field(default=2, metadata={"help": "torch intra-op threads (part of the result on CPU)"})

    def __post_init__(self):
        check(self.backend in BACKENDS, "backend", f"one of {', '.join(BACKENDS)}", self.backend)
        check(self.precision in PRECISIONS, "precision", f"one of {', '.join(PRECISIONS)}", self.precision)
        for key in ("max_steps", "batch_size", "gradient_accumulation_steps", "max_length", "logging_steps",
                    "lora_r", "lora_alpha", "threads"):
            check(isinstance(getattr(self, key), int) and getattr(self, key) >= 1, key, "an integer >= 1",
                  getattr(self, key))
        check(self.learning_rate > 0 and math.isfinite(self.learning_rate), "learning_rate", "a number > 0",
              self.learning_rate)
        check(0.0 <= self.warmup_ratio < 1.0, "warmup_ratio", "a number in [0, 1)", self.warmup_ratio)
        check(0.0 <= self.lora_dropout < 1.0, "lora_dropout", "a number in [0, 1)", self.lora_dropout)
        # A checkpoint on a logging step holds the exact running loss (prefalign.checkpoints).
        check(isinstance(self.checkpoint_steps, int) and self.checkpoint_steps >= 0
              and self.checkpoint_steps % self.logging_steps == 0, "checkpoint_steps",
              f"0 or a multiple of logging_steps ({self.logging_steps})", self.checkpoint_steps)


@dataclass(frozen=True)
class Resolved:
    """What `auto` became on this machine; written into the step's metrics."""

    backend: str
    precision: str
    device: str
    gpu_name: str | None = None
    compute_capability: str | None = None


def resolve(settings: TrainSettings) -> Resolved:
    """Pick backend and precision for this machine; refuse impossible combinations up front."""
    import torch

    cuda = torch.cuda.is_available()
    backend = "trl" if settings.backend == "auto" else settings.backend
    if not cuda:
        precision = "fp32" if settings.precision == "auto" else settings.precision
        check(precision == "fp32", "precision", "fp32 or auto on a machine without a CUDA device", settings.precision)
        return Resolved(backend, precision, "cpu")
    props = torch.cuda.get_device_properties(0)
    precision = "bf16" if settings.precision == "auto" else settings.precision
    return Resolved(backend, precision, "cuda", props.name, f"{props.major}.{props.minor}")


def quiet_libraries() -> None:
    """bitsandbytes warns at import about an optional CPU kernel package it never needs here."""
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)


def trainer_kwargs(settings: TrainSettings, resolved: Resolved, output_dir: Path, checkpointing: bool = False) -> dict:
    """TrainingArguments both TRL configs accept, in the names of transformers 5 / TRL >= 1.15.

    With `checkpointing`, output_dir receives a checkpoint every checkpoint_steps (prefalign.checkpoints).
    """
    return dict(
        output_dir=str(output_dir),
        max_steps=settings.max_steps,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        learning_rate=settings.learning_rate,
        lr_scheduler_type=settings.lr_scheduler,
        warmup_steps=int(settings.warmup_ratio * settings.max_steps),
        weight_decay=settings.weight_decay,
        adam_beta2=settings.adam_beta2,
        max_length=settings.max_length,
        logging_steps=settings.logging_steps,
        logging_first_step=True,  # step 1 is the sanity check: DPO's sigmoid loss is ln 2 there
        save_strategy="steps" if checkpointing else "no",
        save_steps=max(settings.checkpoint_steps, 1),
        save_total_limit=checkpoints.KEEP,
        report_to="none",
        seed=settings.seed,
        data_seed=settings.seed,
        use_cpu=resolved.device == "cpu",
        bf16=resolved.precision == "bf16",
        activation_checkpointing=False,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )


def lora_config(settings: TrainSettings):
    from peft import LoraConfig

    return LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )


def log_history(trainer) -> list[dict]:
    """TRL's logged metrics, one dict per logging step, without the clock-dependent keys."""
    return [{k: v for k, v in entry.items() if k not in TIMING_KEYS} for entry in trainer.state.log_history]


def write_log_history(path: Path, history: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for entry in history:
            handle.write(json.dumps(entry, sort_keys=True) + "\n")


def last_logged(history: list[dict], key: str):
    for entry in reversed(history):
        if key in entry:
            return entry[key]
    return None
