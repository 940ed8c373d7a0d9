"""Step `reward`: train the run's reward-model judge on the train split's preference pairs.

A sequence-classification model with one output label (a scalar reward), started from the
base or the SFT checkpoint (the workflow passes the one config reward.start names; its
language-model head is replaced by a freshly initialized, seeded score head), trained with
TRL's RewardTrainer (the Bradley-Terry loss -log sigmoid(r(chosen) - r(rejected))), full or
LoRA (merged before saving: the output is always a plain checkpoint that
prefalign.evaluation.judges.RewardModelJudge loads as the `trained` judge).

Backend: TRL in every environment. Unsloth can load a sequence-classification model, but its
reward-model path is not validated in this workflow, so `auto` resolves to TRL here and says
so in metrics.json; precision fp32 (CPU) or bf16 (GPU), no fp8 or 4-bit (their merge path
reloads the checkpoint as a causal LM). Pairs longer than max_length are left out by TRL; the
count kept is in metrics.json (`examples_within_max_length`), and a split with none left is
refused. The step itself (set-up, checkpoints, saving, metrics) is prefalign.train.step;
raises ConfigError for settings this machine cannot run, before any model is loaded.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from prefalign.settings import expect
from prefalign.train import backends
from prefalign.train.backends import TrainSettings
from prefalign.train.step import TrainingStep

STARTS = ("sft", "base")
REWARD_BACKENDS = ("auto", "trl")
REWARD_PRECISIONS = ("auto", "fp32", "bf16")


@dataclass
class RewardSettings(TrainSettings):
    SECTION = "reward"
    start: str = field(default="sft", metadata={"help": f"checkpoint the reward model starts from: {', '.join(STARTS)}"})
    max_steps: int = field(default=200, metadata={"help": "optimizer steps"})
    learning_rate: float = field(default=1e-3, metadata={"help": "peak learning rate"})

    def __post_init__(self):
        super().__post_init__()
        expect(self.start in STARTS, "start", f"one of {', '.join(STARTS)}", self.start)
        expect(self.backend in REWARD_BACKENDS, "backend",
               f"one of {', '.join(REWARD_BACKENDS)} (the reward model trains with TRL's RewardTrainer)", self.backend)
        expect(self.precision in REWARD_PRECISIONS, "precision",
               f"one of {', '.join(REWARD_PRECISIONS)} for the reward model (fp8 and 4bit are not supported)",
               self.precision)
        expect(self.gradient_checkpointing != "unsloth", "gradient_checkpointing", "none or standard (TRL backend)",
               self.gradient_checkpointing)


def resolve(settings: RewardSettings, machine=None) -> backends.Resolved:
    """backends.resolve with the TRL backend, and why."""
    resolved = backends.resolve(dataclasses.replace(settings, backend="trl"), machine)
    why = "backend trl: the reward model trains with TRL's RewardTrainer (Unsloth's reward-model path is not validated"
    why += " in this workflow)"
    return dataclasses.replace(resolved, why="; ".join(filter(None, [why, resolved.why])))


def load_reward_model(path, settings: RewardSettings, resolved: backends.Resolved):
    """(one-label sequence-classification model, tokenizer, LoRA config or None) from a causal LM checkpoint."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=1, dtype=backends.torch_dtype(resolved), use_safetensors=True)
    model.config.pad_token_id = tokenizer.pad_token_id  # the score is read at the last non-pad token
    peft_config = None
    if settings.use_lora:
        from peft import LoraConfig

        # SEQ_CLS: PEFT trains and saves the new score head in full beside the adapters.
        peft_config = LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
                                 target_modules="all-linear", task_type="SEQ_CLS")
    return model, tokenizer, peft_config


def reward_dataset(records: list[dict]):
    """Canonical records -> TRL's conversational preference format (explicit prompt)."""
    from datasets import Dataset

    return Dataset.from_list([{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in records])


def reward_trainer(model, tokenizer, peft_config, dataset, settings: RewardSettings, shared_args, callbacks):
    from trl import RewardConfig, RewardTrainer

    trainer = RewardTrainer(model=model, args=RewardConfig(**shared_args(RewardConfig)), train_dataset=dataset,
                            processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks)
    expect(len(trainer.train_dataset) > 0, "max_length",
           f"a length that keeps some training pairs (all {len(dataset)} are longer than {settings.max_length} tokens)",
           settings.max_length)
    return trainer


def kept_pairs(trainer) -> dict:
    return {"examples_within_max_length": len(trainer.train_dataset)}


REWARD = TrainingStep(
    name="reward", settings_class=RewardSettings, start_flag="model",
    start_help="checkpoint folder the reward model starts from (the base or SFT model: the one --start names)", dataset=reward_dataset,
    trainer=reward_trainer, logged=("loss", "accuracy", "margin", "mean_reward", "grad_norm"),
    load=load_reward_model, resolve=resolve, summary=kept_pairs)
add_arguments, main = REWARD.add_arguments, REWARD.main
