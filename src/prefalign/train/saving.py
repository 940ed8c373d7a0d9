"""Saving what a training step made: the merged checkpoint (and LoRA adapter), byte-stable,
and the trainer's log history without its clock-dependent entries."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from prefalign.train.backends import Resolved, TrainSettings

# What TRL logs that depends on the clock rather than on the computation: kept out of the
# saved training log so two runs of the same config give byte-identical artifacts.
TIMING_KEYS = ("train_runtime", "train_samples_per_second", "train_steps_per_second", "epoch_time")


def save_trained(trainer, tokenizer_dir: Path, base_dir: Path, out: Path, settings: TrainSettings,
                 resolved: Resolved, adapter_out: Path | None = None) -> None:
    """Save the trained policy as a plain, merged checkpoint in `out` (and the adapter).

    In-place merging is exact for unquantized TRL models. A quantized (fp8, 4bit) or
    Unsloth-patched policy is merged by loading the unquantized base checkpoint and applying
    the saved adapter to it, so the output never depends on the training precision's storage.
    """
    from transformers import AutoTokenizer

    if not trainer.is_world_process_zero():  # under DDP every process holds the same weights
        return
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    if not settings.use_lora:
        trainer.model.save_pretrained(out)
    elif resolved.backend == "trl" and resolved.precision in ("fp32", "bf16"):
        if adapter_out is not None:
            save_adapter(trainer.model, adapter_out)
        trainer.model.merge_and_unload().save_pretrained(out)
    else:
        with tempfile.TemporaryDirectory(prefix="prefalign-adapter-") as scratch:
            adapter = adapter_out or Path(scratch)
            save_adapter(trainer.model, adapter)
            merge_adapter(base_dir, adapter).save_pretrained(out)
    tokenizer.save_pretrained(out)


def save_adapter(model, folder: Path) -> None:
    """model.save_pretrained(folder) with adapter_config.json the same bytes on every run.

    PEFT keeps target_modules ("all-linear" expanded) as a set and writes it as list(set):
    in string-hash order, which differs between processes. Set-valued settings are written
    sorted (and restored afterwards, so the live model is untouched).
    """
    saved = {}
    for name, config in getattr(model, "peft_config", {}).items():
        for key, value in vars(config).items():
            if isinstance(value, set):
                saved[(name, key)] = value
                setattr(config, key, sorted(value))
    try:
        model.save_pretrained(folder)
    finally:
        for (name, key), value in saved.items():
            setattr(model.peft_config[name], key, value)


def merge_adapter(base_dir: Path, adapter_dir: Path):
    """The base checkpoint (in its own dtype) with a LoRA adapter merged into its weights."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype="auto", use_safetensors=True)
    return PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()


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
