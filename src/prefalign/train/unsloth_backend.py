"""The Unsloth backend: CUDA only, gpu environment only (unsloth pins TRL <= 1.15).

`import unsloth` patches transformers, TRL and PEFT, so it must run before any of them is
imported: the training steps call `activate()` first thing when the resolved backend is
`unsloth`, and nothing on the CPU path ever imports this module's dependencies (on a machine
without a GPU `import unsloth` raises NotImplementedError).

Full fine-tuning in bf16 (Unsloth 2026.10.9): Unsloth keeps the norm weights in float32 and
trains without the Trainer's autocast; instead it gives the model a subclass whose class-level
`forward` runs under `torch.autocast(bfloat16)` (unsloth_zoo.training_utils,
`_wrap_forward_in_bf16_autocast`), so a float32 norm output is cast down before the next bf16
Linear. TRL's DPO installs its fused LM head as an *instance* `forward`
(trl.trainer.utils.add_fused_lm_head), which shadows that class-level forward: the backbone then
runs without autocast and the first projection after a norm fails with "expected mat1 and mat2
to have the same dtype, but got: float != c10::BFloat16" (seen on an H200 and an H100). SFT
never calls the fused head, so it was unaffected. `autocast_dtype` / `with_autocast` give the
instance forward the autocast Unsloth meant the model to run under.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PATCHED_TOO_LATE = ("trl", "transformers", "peft")
# LoRA targets: every projection of a Llama-style block (attention and MLP), as Unsloth names them.
PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def activate(dpo: bool = False) -> None:
    """Import Unsloth ahead of TRL/transformers/PEFT; for DPO, apply its DPO patch.

    Before the import, the compile caches are pointed at one stable folder (compile_cache), so a
    second run loads what the first compiled and autotuned instead of starting cold.
    """
    late = [name for name in PATCHED_TOO_LATE if name in sys.modules and "unsloth" not in sys.modules]
    if late:
        raise RuntimeError(f"unsloth must be imported before {', '.join(late)}; this is a prefalign bug")
    from prefalign.train import compile_cache

    compile_cache.use()
    import unsloth  # noqa: F401  (the import is what installs Unsloth's patches)

    enable_torch_varlen()

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
    checkpointing = {"none": False, "standard": True, "unsloth": "unsloth"}[settings.gradient_checkpointing]
    if not settings.use_lora:
        kwargs["full_finetuning"] = True
        # from_pretrained's own default is "unsloth" (activations offloaded to the CPU): the setting decides.
        kwargs["use_gradient_checkpointing"] = checkpointing
    model, tokenizer = FastLanguageModel.from_pretrained(**kwargs)
    if settings.use_lora:
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


def autocast_dtype(module, backend: str, use_lora: bool, precision: str):
    """The dtype the model's forward must run under autocast in, or None (pure: no import of Unsloth).

    Unsloth marks a model it wrapped (`_unsloth_bf16_autocast_wrapped`, the dtype on its class);
    an Unsloth full fine-tune in bf16 runs under bf16 autocast even without the mark, since its
    float32 norms need it.
    """
    if getattr(module, "_unsloth_bf16_autocast_wrapped", False):
        dtype = getattr(type(module), "_unsloth_autocast_dtype", None)
        if dtype is not None:
            return dtype
    if backend == "unsloth" and not use_lora and precision == "bf16":
        import torch

        return torch.bfloat16
    return None


def with_autocast(forward, dtype):
    """`forward` run under torch.autocast(<device of its inputs>, dtype), unless autocast is already on.

    Marked `prefalign_autocast` (functools.wraps keeps the marks of what it wraps, so a packed
    forward stays marked packed).
    """
    import functools

    import torch

    if getattr(forward, "prefalign_autocast", False):
        return forward

    @functools.wraps(forward)
    def wrapped(*args, **kwargs):
        device = next((t.device.type for t in (*args, *kwargs.values()) if isinstance(t, torch.Tensor)), "cuda")
        if not torch.amp.is_autocast_available(device) or torch.is_autocast_enabled(device):
            return forward(*args, **kwargs)
        with torch.autocast(device_type=device, dtype=dtype):
            return forward(*args, **kwargs)

    wrapped.prefalign_autocast = True
    return wrapped


def enable_torch_varlen() -> bool:
    """Let Unsloth's packed attention use torch's varlen flash kernel on torch 2.11 (returns whether it does).

    Unsloth 2026.10.9 takes torch's `varlen_attn` only when it has both `window_size` (torch 2.11)
    and `enable_gqa` (torch 2.12); on torch 2.11 a packed row therefore runs one SDPA call per
    run of equal-length sequences per layer, which is launch-bound for DPO's short sequences.
    Given a kernel without `enable_gqa`, this hands Unsloth the same kernel with grouped-query
    key/value heads repeated to the query heads (prefalign.train.packing.varlen_causal does the
    same for the trl backend). PREFALIGN_UNSLOTH_VARLEN=0 leaves Unsloth as it is.
    """
    if os.environ.get("PREFALIGN_UNSLOTH_VARLEN", "1") == "0":
        return False
    import inspect

    from prefalign.train.packing import torch_varlen_attn

    try:
        from unsloth.utils import attention_dispatch
    except ImportError:
        return False
    kernel = torch_varlen_attn()
    if getattr(attention_dispatch, "_TORCH_VARLEN_ATTN", "absent") is not None or kernel is None:
        return False  # Unsloth already uses it, or has no such hook, or torch has no kernel
    params = inspect.signature(kernel).parameters
    if "window_size" not in params or "enable_gqa" in params:
        return False

    def varlen_attn(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, *, enable_gqa=False, **kwargs):
        if key.shape[1] != query.shape[1]:
            repeat = query.shape[1] // key.shape[1]
            key, value = key.repeat_interleave(repeat, dim=1), value.repeat_interleave(repeat, dim=1)
        return kernel(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, **kwargs)

    attention_dispatch._TORCH_VARLEN_ATTN = varlen_attn
    return True
