"""The baselines of bench/dpo_throughput.py: DPO as a user writes it with TRL or Unsloth alone.

Neither goes through prefalign: plain TRL (AutoModelForCausalLM + PEFT LoRA + DPOTrainer with
TRL's defaults: random order, padded batches, activation checkpointing unless switched off)
and plain Unsloth (FastLanguageModel + get_peft_model + TRL's DPOTrainer, Unsloth's offloaded
checkpointing). Same model, data, LoRA (r16, alpha 16, every projection), learning rate,
max_length and pairs per optimizer step as prefalign's setups; `ref_model=None` in both, so
the reference is the policy with its adapter disabled, as in prefalign.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def preference_dataset(records: list[dict]):
    from datasets import Dataset

    return Dataset.from_list([{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in records])


def dpo_config(output_dir: str, micro_batch: int, accumulation: int, steps: int, max_length: int,
               checkpointing: bool | None):
    """TRL's DPOConfig with TRL's defaults except what every setup shares; checkpointing None: TRL's default."""
    import torch
    from trl import DPOConfig

    gpu = torch.cuda.is_available()  # the CPU runs are smoke tests: fp32, no checkpointing
    if not gpu:
        checkpointing = False
    kwargs = dict(output_dir=output_dir, per_device_train_batch_size=micro_batch,
                  gradient_accumulation_steps=accumulation, max_steps=steps, learning_rate=5e-6,
                  lr_scheduler_type="constant", warmup_steps=0, bf16=gpu, use_cpu=not gpu, max_length=max_length, logging_steps=1,
                  logging_first_step=True, report_to="none", save_strategy="no", seed=0, beta=0.1)
    if checkpointing is not None:
        names = {f.name for f in dataclasses.fields(DPOConfig)}
        kwargs["activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"] = \
            checkpointing
    return DPOConfig(**kwargs)


def train_trl(model_dir: Path, records: list[dict], micro_batch: int, accumulation: int, steps: int, max_length: int,
              checkpointing: bool, callbacks) -> list[dict]:
    """TRL + PEFT; returns the log history."""
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16 if torch.cuda.is_available()
                                                 else torch.float32)
    lora = LoraConfig(r=16, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    with tempfile.TemporaryDirectory(prefix="dpo-standalone-") as scratch:
        trainer = DPOTrainer(model=model, ref_model=None,
                             args=dpo_config(scratch, micro_batch, accumulation, steps, max_length,
                                             None if checkpointing else False),
                             train_dataset=preference_dataset(records), processing_class=tokenizer, peft_config=lora,
                             callbacks=callbacks)
        trainer.train()
    return trainer.state.log_history


def train_unsloth(model_dir: Path, records: list[dict], micro_batch: int, accumulation: int, steps: int,
                  max_length: int, checkpointing: bool, callbacks) -> list[dict]:
    """Unsloth's FastLanguageModel + TRL's DPOTrainer (Unsloth imported first by the caller)."""
    import torch
    from trl import DPOTrainer
    from unsloth import FastLanguageModel

    model, tokenizer = FastLanguageModel.from_pretrained(model_name=str(model_dir), max_seq_length=max_length,
                                                         dtype=torch.bfloat16, load_in_4bit=False)
    model = FastLanguageModel.get_peft_model(model, r=16, lora_alpha=16, lora_dropout=0.0, target_modules=PROJECTIONS,
                                             bias="none", use_gradient_checkpointing="unsloth" if checkpointing else False,
                                             random_state=0)
    with tempfile.TemporaryDirectory(prefix="dpo-standalone-") as scratch:
        trainer = DPOTrainer(model=model, ref_model=None,
                             args=dpo_config(scratch, micro_batch, accumulation, steps, max_length, None),
                             train_dataset=preference_dataset(records), processing_class=tokenizer,
                             callbacks=callbacks)
        trainer.train()
    return trainer.state.log_history
