"""The training backends (TRL, Unsloth) and what the SFT and DPO trainers share up to training:
the settings common to both, backend and precision resolution, model loading for each backend,
and the TRL arguments they have in common. (Saving is prefalign.train.saving; the step around
them is prefalign.train.step.)

Backends: `trl` runs anywhere; `unsloth` needs a CUDA GPU and the gpu environment; `auto`
takes Unsloth when a CUDA device is present and Unsloth is installed, else TRL.
Precision: `auto` is fp32 on the CPU; on a GPU, fp8 where it can run (Unsloth, LoRA, compute
capability >= 9.0) and the run is long enough to repay its compile (prefalign.train.fp8_gate),
else bf16. `4bit` is QLoRA (bitsandbytes NF4) with either backend.
Impossible combinations are refused by `resolve` before any model is loaded.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from prefalign.runtime import Machine, gpu_determinism_environment, local_rank, world_size
from prefalign.settings import Settings, expect
from prefalign.train import checkpoints, unsloth_backend
from prefalign.train.fp8_gate import fp8_pays

BACKENDS = ("auto", "trl", "unsloth")
PRECISIONS = ("auto", "fp32", "bf16", "fp8", "4bit")
CHECKPOINTING = ("none", "standard", "unsloth")
FP8_MIN_CAPABILITY = (9, 0)


@dataclass
class TrainSettings(Settings):
    SECTION = "sft"
    backend: str = field(default="auto", metadata={"help": f"training backend: {', '.join(BACKENDS)}"})
    precision: str = field(default="auto", metadata={"help": f"weights/compute precision: {', '.join(PRECISIONS)}"})
    max_steps: int = field(default=1000, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=16, metadata={"help": "examples per device per micro-batch"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    learning_rate: float = field(default=2e-3, metadata={"help": "peak learning rate"})
    lr_scheduler: str = field(default="cosine", metadata={"help": "transformers scheduler name (cosine, linear, ...)"})
    warmup_ratio: float = field(default=0.05, metadata={"help": "share of max_steps spent warming up (0-1)"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    adam_beta1: float = field(default=0.9, metadata={"help": "AdamW beta1"})
    adam_beta2: float = field(default=0.999, metadata={"help": "AdamW beta2"})
    max_length: int = field(default=256, metadata={"help": "longest tokenized example (tokens); longer are truncated"})
    logging_steps: int = field(default=10, metadata={"help": "log training metrics every this many steps"})
    checkpoint_steps: int = field(
        default=100, metadata={"help": "save a resumable checkpoint every this many steps (a multiple of "
                                       "logging_steps; 0 = none); used with --checkpoint-dir"})
    gradient_checkpointing: str = field(
        default="none",
        metadata={"help": f"activation checkpointing: {', '.join(CHECKPOINTING)} (unsloth: Unsloth's offloaded variant)"},
    )
    use_lora: bool = field(default=False, metadata={"help": "train LoRA adapters instead of all weights"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator (alpha / r)"})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout probability"})
    seed: int = field(default=1234, metadata={
        "key": "seed", "help": "random seed (data order, initialization of adapters)"})
    threads: int = field(default=2, metadata={
        "key": "threads", "help": "torch intra-op threads (part of the result on CPU)"})

    def __post_init__(self):
        expect(self.backend in BACKENDS, "backend", f"one of {', '.join(BACKENDS)}", self.backend)
        expect(self.precision in PRECISIONS, "precision", f"one of {', '.join(PRECISIONS)}", self.precision)
        expect(self.gradient_checkpointing in CHECKPOINTING, "gradient_checkpointing",
              f"one of {', '.join(CHECKPOINTING)}", self.gradient_checkpointing)
        for key in ("max_steps", "batch_size", "gradient_accumulation_steps", "max_length", "logging_steps",
                    "lora_r", "lora_alpha", "threads"):
            expect(isinstance(getattr(self, key), int) and getattr(self, key) >= 1, key, "an integer >= 1",
                  getattr(self, key))
        expect(self.learning_rate > 0 and math.isfinite(self.learning_rate), "learning_rate", "a number > 0",
              self.learning_rate)
        expect(0.0 <= self.warmup_ratio < 1.0, "warmup_ratio", "a number in [0, 1)", self.warmup_ratio)
        expect(0.0 <= self.lora_dropout < 1.0, "lora_dropout", "a number in [0, 1)", self.lora_dropout)
        for key in ("adam_beta1", "adam_beta2"):
            expect(0.0 < getattr(self, key) < 1.0, key, "a number in (0, 1)", getattr(self, key))
        # A checkpoint on a logging step holds the exact running loss (prefalign.train.checkpoints).
        expect(isinstance(self.checkpoint_steps, int) and self.checkpoint_steps >= 0
              and self.checkpoint_steps % self.logging_steps == 0, "checkpoint_steps",
              f"0 or a multiple of logging_steps ({self.logging_steps})", self.checkpoint_steps)


@dataclass(frozen=True)
class Resolved:
    """What `auto` became on this machine, and why; written into the step's metrics."""

    backend: str
    precision: str
    device: str
    gpu_name: str | None = None
    compute_capability: str | None = None
    gpu_count: int = 0
    driver: str | None = None
    why: str = ""


def resolve(settings: TrainSettings, machine: Machine | None = None) -> Resolved:
    """Pick backend and precision for `machine`; raise ConfigError for what cannot run there.

    Precision auto takes fp8 only where it can run and the run is long enough to repay FP8's
    compile (prefalign.train.fp8_gate).
    """
    machine = machine or Machine.detect()
    cc = machine.compute_capability
    reasons = []

    if settings.backend == "unsloth":
        expect(machine.cuda, "backend", "trl or auto on a machine without a CUDA GPU (Unsloth needs one)", "unsloth")
        expect(machine.unsloth_installed, "backend",
              "trl or auto: unsloth is not installed here (the gpu environment, envs/gpu.lock.txt, has it)", "unsloth")
        backend = "unsloth"
    elif settings.backend == "auto":
        backend = "unsloth" if machine.cuda and machine.unsloth_installed else "trl"
        reasons.append("backend auto: " + ("CUDA GPU and Unsloth present" if backend == "unsloth" else
                                           "no CUDA GPU" if not machine.cuda else "Unsloth not installed"))
    else:
        backend = "trl"

    precision = settings.precision
    fp8_possible = machine.cuda and cc is not None and cc >= FP8_MIN_CAPABILITY
    if precision == "auto":
        if not machine.cuda:
            precision = "fp32"
            reasons.append("precision auto: fp32 on the CPU")
        elif fp8_possible and backend == "unsloth" and settings.use_lora:
            tokens_per_step = settings.batch_size * settings.gradient_accumulation_steps * 2 * settings.max_length
            pays, figures = fp8_pays(settings.max_steps, tokens_per_step)
            precision = "fp8" if pays else "bf16"
            reasons.append(f"precision auto: {precision} (compute capability {cc[0]}.{cc[1]} >= 9.0, Unsloth, LoRA; "
                           f"{figures})")
        else:
            precision = "bf16"
            why_not = ("compute capability below 9.0" if not fp8_possible else
                       "fp8 needs the unsloth backend" if backend != "unsloth" else "fp8 needs LoRA (use_lora)")
            reasons.append(f"precision auto: bf16 ({why_not})")
    elif precision in ("bf16", "4bit"):
        expect(machine.cuda, "precision", "fp32 or auto on a machine without a CUDA GPU", precision)
    elif precision == "fp8":
        expect(machine.cuda, "precision", "fp32 or auto on a machine without a CUDA GPU", precision)
        expect(fp8_possible, "precision",
              f"bf16, 4bit or auto on this GPU: fp8 needs compute capability >= 9.0, "
              f"{machine.gpu_name} has {cc[0]}.{cc[1]}" if cc else "bf16", precision)
        expect(backend == "unsloth", "precision", "bf16 or 4bit with the trl backend: fp8 training runs through Unsloth",
              precision)
    if precision in ("fp8", "4bit"):
        expect(settings.use_lora, "use_lora", f"true with precision {precision} (quantized weights stay frozen)",
              settings.use_lora)
    if settings.gradient_checkpointing == "unsloth":
        expect(backend == "unsloth", "gradient_checkpointing", "none or standard with the trl backend", "unsloth")

    if not machine.cuda:
        return Resolved(backend, precision, "cpu", why="; ".join(reasons))
    return Resolved(backend, precision, "cuda", machine.gpu_name, f"{cc[0]}.{cc[1]}", machine.gpu_count,
                    machine.driver, "; ".join(reasons))


def first_step_advice(section: str, settings: TrainSettings, resolved: Resolved) -> str | None:
    """What to set when a run fails before its first optimizer step, where `auto` chose what failed (pure).

    Only a choice `auto` made can be blamed on auto: Unsloth (backend auto on a CUDA GPU; TRL runs
    everywhere) and fp8 (precision auto). None when the user set both, or auto chose TRL and bf16/fp32.
    """
    changes = []
    if settings.backend == "auto" and resolved.backend == "unsloth":
        changes.append(f"{section}.backend: trl (--backend trl) to train with TRL instead of Unsloth")
    if settings.precision == "auto" and resolved.precision == "fp8":
        changes.append(f"{section}.precision: bf16 (--precision bf16) to train without FP8")
    if not changes:
        return None
    chosen = " and ".join(f"{key} {getattr(resolved, key)}" for key in ("backend", "precision")
                          if getattr(settings, key) == "auto")
    return (f"the first training step failed with what `auto` chose on this machine ({chosen}; {resolved.why}). "
            f"Set " + ", or ".join(changes) + "; and please report the error above.")


def pin_single_gpu() -> None:
    """A step started as one process trains on one GPU, even where several are visible.

    Trainer would wrap the model in nn.DataParallel, which TRL's DPOTrainer refuses; several
    GPUs are used through `accelerate launch` (gpu.count > 1) instead. Must run before torch
    initializes CUDA; a CUDA_VISIBLE_DEVICES set by the user or a scheduler is kept. Also sets
    cuBLAS's reproducible workspace before anything (Unsloth's import included) touches the GPU
    (prefalign.runtime.gpu_determinism_environment).
    """
    if "WORLD_SIZE" not in os.environ and "CUDA_VISIBLE_DEVICES" not in os.environ:
        os.environ["CUDA_VISIBLE_DEVICES"] = "0"
    gpu_determinism_environment()


def quiet_libraries() -> None:
    """bitsandbytes warns at import about an optional CPU kernel package it never needs here."""
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)


def torch_dtype(resolved: Resolved):
    import torch

    return torch.float32 if resolved.precision == "fp32" else torch.bfloat16


def load_policy(path: Path, settings: TrainSettings, resolved: Resolved):
    """(model, tokenizer, peft_config) to hand to a TRL trainer, for the resolved backend.

    Unsloth returns a model that already carries its LoRA adapters (peft_config is None);
    with TRL, the trainer wraps the model with `peft_config` itself.
    """
    if resolved.backend == "unsloth":
        model, tokenizer = unsloth_backend.load(path, settings, resolved)
        return model, tokenizer, None

    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    kwargs = {"dtype": torch_dtype(resolved)}
    if resolved.precision == "4bit":
        import torch
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16,
            bnb_4bit_use_double_quant=True)
        kwargs["device_map"] = {"": local_rank()}  # each DDP process holds its own copy
    model = AutoModelForCausalLM.from_pretrained(path, use_safetensors=True, **kwargs)  # explicit: tests/kernel/test_safety.py
    return model, tokenizer, lora_config(settings) if settings.use_lora else None


def load_reference(policy, resolved: Resolved):
    """The frozen reference of full-model DPO: the policy's own checkpoint, loaded again in the policy's dtype.

    TRL 1.15 would reload it itself in float32 (its `model_init_kwargs` default) next to a bf16
    policy; here it gets the policy's dtype on either backend (float32 on the CPU, as before).
    The checkpoint is the one the policy was loaded from (`config._name_or_path`, which TRL
    reads too). Raises ConfigError when that is not a local folder.
    """
    from transformers import AutoModelForCausalLM

    path = Path(getattr(policy.config, "_name_or_path", "") or "")
    expect(path.is_dir(), "dpo.precompute_ref_log_probs",
           "true (or dpo.use_lora): the reference is reloaded from the policy's checkpoint folder, which is not a "
           "local folder here", str(path))
    model = AutoModelForCausalLM.from_pretrained(path, use_safetensors=True, dtype=torch_dtype(resolved))
    model.requires_grad_(False)
    return model.eval()


def lora_config(settings: TrainSettings):
    from peft import LoraConfig

    return LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules="all-linear",  # every projection, whatever the architecture calls them
        task_type="CAUSAL_LM",
    )


def trainer_kwargs(settings: TrainSettings, resolved: Resolved, output_dir: Path, config_class=None,
                   report_to: list[str] = (), resumable: bool = False) -> dict:
    """TrainingArguments both TRL configs accept, named for the installed TRL.

    `report_to`: metric sinks (tensorboard, wandb; prefalign.train.watch.tracking sets them up). Progress
    bars are drawn when stderr is a terminal; in a log file the logged metrics are printed.
    With `resumable`, output_dir receives a checkpoint every checkpoint_steps (prefalign.train.checkpoints).

    TRL 1.16 (cpu environment) calls activation checkpointing `activation_checkpointing`,
    TRL 1.15 (gpu environment) `gradient_checkpointing`: the name the config class declares
    is used.
    """
    checkpointing = settings.gradient_checkpointing == "standard"
    kwargs = dict(
        output_dir=str(output_dir),
        max_steps=settings.max_steps,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        learning_rate=settings.learning_rate,
        lr_scheduler_type=settings.lr_scheduler,
        warmup_steps=int(settings.warmup_ratio * settings.max_steps),
        weight_decay=settings.weight_decay,
        adam_beta1=settings.adam_beta1,
        adam_beta2=settings.adam_beta2,
        max_length=settings.max_length,
        logging_steps=settings.logging_steps,
        logging_first_step=True,  # step 1 is the sanity check: DPO's sigmoid loss is ln 2 there
        logging_nan_inf_filter=False,  # the health monitor must see a NaN loss, not a stand-in average
        save_strategy="steps" if resumable else "no",
        save_steps=max(settings.checkpoint_steps, 1),
        save_total_limit=checkpoints.KEEP,
        report_to=list(report_to) or "none",
        seed=settings.seed,
        data_seed=settings.seed,
        use_cpu=resolved.device == "cpu",
        bf16=resolved.precision in ("bf16", "fp8", "4bit"),
        activation_checkpointing=checkpointing,
        dataloader_num_workers=0,
        disable_tqdm=not sys.stderr.isatty(),
    )
    if world_size() > 1:
        # LoRA leaves most weights frozen; DDP need not search for unused parameters (and
        # with activation checkpointing that search fails).
        kwargs["ddp_find_unused_parameters"] = False
    if config_class is not None:
        names = {f.name for f in dataclasses.fields(config_class)}
        if "activation_checkpointing" not in names and "gradient_checkpointing" in names:
            kwargs["gradient_checkpointing"] = kwargs.pop("activation_checkpointing")
    return kwargs
