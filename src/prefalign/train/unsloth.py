"""The Unsloth backend: CUDA only, gpu environment only (unsloth pins TRL <= 1.15).

`import unsloth` patches transformers, TRL and PEFT, so it must run before any of them is
imported: the training steps call `activate()` first thing when the resolved backend is
`unsloth`, and nothing on the CPU path ever imports this module's dependencies (on a machine
without a GPU `import unsloth` raises NotImplementedError).
"""

from __future__ import annotations

import sys
from pathlib import Path

PATCHED_TOO_LATE = ("trl", "transformers", "peft")
# LoRA targets: every projection of a Llama-style block (attention and MLP), as Unsloth names them.
PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def activate(dpo: bool = False) -> None:
    """Import Unsloth ahead of TRL/transformers/PEFT; for DPO, apply its DPO patch."""
    late = [name for name in PATCHED_TOO_LATE if name in sys.modules and "unsloth" not in sys.modules]
    if late:
        raise RuntimeError(f"unsloth must be imported before {', '.join(late)}; this is a prefalign bug")
    import unsloth  # noqa: F401  (the import is what installs Unsloth's patches)

    if dpo:
        # Unsloth's documentation prescribes this call before building a DPOTrainer; in
        # 2026.10.9 it is a no-op (the import already swapped the trainer in; seen on an H100).
        from unsloth import PatchDPOTrainer

        PatchDPOTrainer()


def load(path: Path, settings, resolved):
    """(model, tokenizer) from Unsloth: quantized as resolved, LoRA attached when asked."""
    import torch
    from unsloth import FastLanguageModel

    kwargs = dict(
        model_name=str(path),
        max_seq_length=settings.max_length,
        dtype=torch.float32 if resolved.precision == "fp32" else torch.bfloat16,
        load_in_4bit=resolved.precision == "4bit",
    )
    if resolved.precision == "fp8":
        kwargs["load_in_fp8"] = True  # row-wise FP8 weights (torchao); LoRA weights stay bf16
    if not settings.use_lora:
        kwargs["full_finetuning"] = True
    model, tokenizer = FastLanguageModel.from_pretrained(**kwargs)
    if settings.use_lora:
        checkpointing = {"none": False, "standard": True, "unsloth": "unsloth"}[settings.gradient_checkpointing]
        model = FastLanguageModel.get_peft_model(
            model,
            r=settings.lora_r,
            lora_alpha=settings.lora_alpha,
            lora_dropout=settings.lora_dropout,
            target_modules=list(PROJECTIONS),
            bias="none",
            use_gradient_checkpointing=checkpointing,
            random_state=settings.seed,
        )
    return model, tokenizer
