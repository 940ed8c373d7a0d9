"""Step `sft`: supervised fine-tuning on the chosen replies of the train split.

Supports full fine-tuning (the default: the tiny model is trained from scratch) and LoRA,
whose adapters are merged before saving: the output is always a plain checkpoint, so DPO
can use it as its reference with `ref_model=None`. Loss is on the reply tokens only
(prompt-completion format, TRL's completion-only loss).

Assumes a base folder written by `build-base` (model, tokenizer with a chat template).
The step itself (set-up, checkpoints, saving, metrics) is prefalign.train.step; raises
ConfigError for settings this machine cannot run (bf16 without a GPU, say) before any model
is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

from prefalign.train.backends import TrainSettings
from prefalign.train.step import TrainingStep


@dataclass
class SFTSettings(TrainSettings):
    SECTION = "sft"


def sft_dataset(records: list[dict]):
    """Canonical records -> TRL's conversational prompt-completion format."""
    from datasets import Dataset

    return Dataset.from_list([{"prompt": r["prompt"], "completion": r["chosen"]} for r in records])


def sft_trainer(model, tokenizer, peft_config, dataset, settings: SFTSettings, shared_args, callbacks):
    from trl import SFTConfig, SFTTrainer

    return SFTTrainer(model=model, args=SFTConfig(**shared_args(SFTConfig), packing=False), train_dataset=dataset,
                      processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks)


SFT = TrainingStep(
    name="sft", settings_class=SFTSettings, start_flag="base", start_help="base model folder (from build-base)",
    dataset=sft_dataset, trainer=sft_trainer, logged=("loss", "mean_token_accuracy"))
add_arguments, main = SFT.add_arguments, SFT.main
