"""Named presets: the hardware and hyperparameter practice of DPO fine-tuning, as config values.

`preset: <name>` in the config fills every key of the preset that the config does not set
itself; keys neither sets take the schema's default. So a user's value always wins, and
switching the preset changes only what the user left open. `apply` runs in the config's one
resolution (prefalign.config.resolve) before the schema defaults are filled and before the
steps' typed settings are built, so validation, Snakemake's params (rerun detection) and
metrics.json all see the same resolved values; every step's --help shows the default
preset's value next to the schema default (prefalign.settings). Kernel data: every stage
may read it.

The practice the GPU presets encode (from the documents this project started from):

- 12-16 GB of GPU memory: 4-bit QLoRA, batch 2, gradient accumulation 4, LoRA r 16, sequences
  up to 1024 tokens. 16 GB and more: no quantization, batch 4, accumulation 2, LoRA r 64,
  2048 tokens. DPO accumulates more (8 at batch 2): small DPO batches want 8-16 micro-batches
  per step.
- DPO learning rates far below SFT's: 5e-7 to 5e-6 (5e-6 here, LoRA) against 2e-4 for SFT;
  beta 0.1 (0.01-0.5 is the useful range).
- AdamW with betas (0.9, 0.95), a cosine schedule that decays to zero, no weight decay.

The reward section (the `trained` judge of eval.judge) follows reward-model practice: LoRA at
1e-5 on a GPU.

`cpu-demo` is the embedded default (config.yaml): a tiny model trained from scratch on the
CPU, which needs far larger learning rates than a pretrained one and keeps AdamW's usual beta2
(0.999), and full-model DPO with an NLL term on the chosen replies, on on-policy pairs (the
SFT model's own best and worst answers, judged by the task verifier; docs/onpolicy.md).
"""

from __future__ import annotations

import copy
from typing import Any, Iterable

from prefalign import tables

# Keys shared by every GPU preset: the optimizer and schedule practice.
_OPTIMIZER = {"lr_scheduler": "cosine", "weight_decay": 0.0, "adam_beta1": 0.9, "adam_beta2": 0.95}


def _gpu(precision, lora_r, sft_batch, sft_accumulation, dpo_batch, dpo_accumulation, max_length, checkpointing,
         eval_batch) -> dict:
    common = {**_OPTIMIZER, "precision": precision, "use_lora": True, "lora_r": lora_r, "lora_alpha": 2 * lora_r,
              "max_length": max_length, "gradient_checkpointing": checkpointing, "logging_steps": 10}
    return {
        "gpu": {"count": 1},
        "sft": {**common, "max_steps": 1000, "batch_size": sft_batch, "gradient_accumulation_steps": sft_accumulation,
                "learning_rate": 2e-4},
        "dpo": {**common, "max_steps": 500, "batch_size": dpo_batch, "gradient_accumulation_steps": dpo_accumulation,
                "learning_rate": 5e-6, "beta": 0.1, "loss_type": ["sigmoid"], "loss_weights": None},
        # The reward-model judge (eval.judge trained): LoRA at a reward model's usual 1e-5, bf16 (the
        # reward step takes no 4-bit: its LoRA merge reloads the checkpoint).
        "reward": {**common, "precision": "auto", "max_steps": 500, "batch_size": dpo_batch,
                   "gradient_accumulation_steps": dpo_accumulation, "learning_rate": 1e-5},
        "eval": {"batch_size": eval_batch},
    }


PRESETS: dict[str, dict[str, Any]] = {
    "cpu-demo": {
        "gpu": {"count": 0},
        "sft": {"precision": "auto", "use_lora": False, "max_steps": 1000, "batch_size": 16,
                "gradient_accumulation_steps": 1, "learning_rate": 0.002, "lr_scheduler": "cosine",
                "weight_decay": 0.0, "adam_beta1": 0.9, "adam_beta2": 0.999, "max_length": 256,
                "gradient_checkpointing": "none", "logging_steps": 10},
        # On-policy pairs and full-model DPO: what moved the demo's answers (docs/onpolicy.md).
        "dpo": {"precision": "auto", "use_lora": False, "lora_r": 16, "lora_alpha": 32, "max_steps": 300,
                "batch_size": 16, "gradient_accumulation_steps": 1, "learning_rate": 0.001, "lr_scheduler": "cosine",
                "weight_decay": 0.0, "adam_beta1": 0.9, "adam_beta2": 0.999, "max_length": 256,
                "gradient_checkpointing": "none", "beta": 0.3, "loss_type": ["sigmoid", "sft"],
                "loss_weights": [1.0, 3.0], "logging_steps": 10, "pairs": "onpolicy"},
        "reward": {"precision": "auto", "use_lora": False, "max_steps": 200, "batch_size": 16,
                   "gradient_accumulation_steps": 1, "learning_rate": 0.001, "lr_scheduler": "cosine",
                   "weight_decay": 0.0, "adam_beta1": 0.9, "adam_beta2": 0.999, "max_length": 256,
                   "gradient_checkpointing": "none", "logging_steps": 10},
        "eval": {"batch_size": 64},
    },
    "gpu-12gb": _gpu("4bit", 16, 2, 4, 2, 8, 1024, "standard", 8),
    "gpu-16gb": _gpu("auto", 64, 4, 2, 4, 4, 2048, "standard", 16),
    "gpu-80gb": _gpu("auto", 64, 16, 1, 8, 2, 2048, "none", 64),
}

# One line per preset (`prefalign config presets`, the header init writes, docs/usage.md). Its claims
# are checked against the resolved config (tests/config/test_config_comments.py): every
# `section.key value` equals the resolved value, the GPU memory range is the one `pick` uses, and
# no other number appears outside the parenthesized example cards.
DESCRIPTIONS = {
    "cpu-demo": "the embedded default, for the CPU (gpu.count 0): SFT and DPO on all weights (sft.use_lora false, "
                "dpo.use_lora false), DPO on on-policy pairs (dpo.pairs onpolicy) at dpo.beta 0.3 with an NLL term "
                "on the chosen replies (dpo.loss_type [sigmoid, sft]), learning rates for a tiny model trained from "
                "scratch (sft.learning_rate 0.002, dpo.learning_rate 0.001)",
    "gpu-12gb": "one GPU with under 15 GiB (RTX 3060 12 GB, T4): 4-bit QLoRA (sft.precision 4bit, dpo.precision 4bit, "
                "dpo.lora_r 16), small batches (dpo.batch_size 2, dpo.gradient_accumulation_steps 8)",
    "gpu-16gb": "one GPU with 15 to 40 GiB (RTX 4080/4090, A10, L4, A100 40 GB): LoRA (dpo.lora_r 64) in bf16, FP8 only "
                "where it runs and repays its compile (dpo.precision auto)",
    "gpu-80gb": "one GPU with 40 GiB or more (A100 80 GB, H100, H200): LoRA (dpo.lora_r 64) in bf16, FP8 only where it "
                "runs and repays its compile (dpo.precision auto), large batches (dpo.batch_size 8, sft.batch_size 16)",
}
NAMES = tuple(PRESETS)

# Memory thresholds of `pick` (GiB): below 15 the 12 GB preset, below 40 the 16 GB one.
_SMALL_GIB, _LARGE_GIB = 15.0, 40.0


def pick(gpu_memory_gib: float | None) -> str:
    """The preset for a machine: cpu-demo without a GPU, else by the GPU's memory."""
    if gpu_memory_gib is None:
        return "cpu-demo"
    if gpu_memory_gib < _SMALL_GIB:
        return "gpu-12gb"
    if gpu_memory_gib < _LARGE_GIB:
        return "gpu-16gb"
    return "gpu-80gb"


DEFAULT = "cpu-demo"  # the schema default of `preset`


def value_of(name: str, section: str, key: str, default=None):
    """What preset `name` sets for `section.key` (`default` when it sets nothing there)."""
    keys = PRESETS.get(name, {}).get(section, {})
    return copy.deepcopy(keys[key]) if key in keys else default


def values(name: str) -> dict[str, Any]:
    """A copy of the preset's values ({section: {key: value}})."""
    return copy.deepcopy(PRESETS[name])


def apply(config: dict, name: str) -> list[str]:
    """Fill, in place, every key of preset `name` that `config` does not set; return their paths.

    A section the config sets to a non-mapping is left alone (the schema reports it).
    """
    filled = []
    for section, keys in PRESETS[name].items():
        target = config.setdefault(section, {})
        if not isinstance(target, dict):
            continue
        for key, value in keys.items():
            if key not in target:
                target[key] = copy.deepcopy(value)
                filled.append(f"{section}.{key}")
    return filled


def governed_keys() -> set[str]:
    """Every `section.key` some preset sets."""
    return {f"{section}.{key}" for preset in PRESETS.values() for section, keys in preset.items() for key in keys}


def table_rows(keys: Iterable[str] | None = None) -> tuple[list[str], list[list[str]]]:
    """The presets side by side: (header, rows of `section.key` and each preset's value)."""
    keys = sorted(governed_keys()) if keys is None else list(keys)
    header = ["key"] + list(NAMES)
    rows = []
    for path in keys:
        section, key = path.split(".", 1)
        cells = []
        for name in NAMES:
            value = PRESETS[name].get(section, {}).get(key, "-")
            cells.append(_shown(value))
        rows.append([f"`{path}`"] + cells)
    return header, rows


def _shown(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    return str(value)


def markdown_table() -> str:
    """The presets table of docs/usage.md (tests/config/test_presets.py checks it carries this text)."""
    return tables.markdown(*table_rows())
