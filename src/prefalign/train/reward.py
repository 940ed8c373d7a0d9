"""Step `reward`: train the run's reward-model judge on the train split's preference pairs.

A sequence-classification model with one output label (a scalar reward), started from the
base or the SFT checkpoint (the workflow passes the one config reward.start names; its
language-model head is replaced by a freshly initialized, seeded score head), trained with
TRL's RewardTrainer (the Bradley-Terry loss -log sigmoid(r(chosen) - r(rejected))), full or
LoRA (merged before saving: the output is always a plain checkpoint that
prefalign.evaluation.judges.RewardModelJudge loads as the `trained` judge).

A run can train two such judges (prefalign.evaluation.judges.choose_judges): the evaluation
judge and the judge that picks DPO's on-policy pairs. They then learn from disjoint parts of
the train prompts (`part`: evaluation, the share `eval_share` of the prompts by a hash of the
prompt; pairs, the rest), so DPO is never graded by a judge that learned what the pair judge
learned. metrics.json's train.part says which part and how many pairs it held.

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
import hashlib
from dataclasses import dataclass, field

from prefalign.records import prompt_key
from prefalign.settings import expect
from prefalign.train import backends
from prefalign.train.backends import TrainSettings
from prefalign.train.step import TrainingStep

STARTS = ("sft", "base")
PARTS = ("all", "evaluation", "pairs")  # prefalign.evaluation.judges.PARTS: which judge a trained reward model is
REWARD_BACKENDS = ("auto", "trl")
REWARD_PRECISIONS = ("auto", "fp32", "bf16")


@dataclass
class RewardSettings(TrainSettings):
    SECTION = "reward"
    start: str = field(default="sft", metadata={"help": f"checkpoint the reward model starts from: {', '.join(STARTS)}"})
    part: str = field(default="all", metadata={
        "job": True, "help": f"the train prompts it learns from: {', '.join(PARTS)} (evaluation: the share eval_share "
                             "of the prompts, by prompt hash; pairs: the rest; the workflow sets it when both judges "
                             "are trained)"})
    eval_share: float = field(default=0.5, metadata={
        "help": "share of the train prompts in the evaluation part (the rest are the pair part), in (0, 1)"})
    max_steps: int = field(default=200, metadata={"help": "optimizer steps"})
    learning_rate: float = field(default=1e-3, metadata={"help": "peak learning rate"})

    def __post_init__(self):
        super().__post_init__()
        expect(self.start in STARTS, "start", f"one of {', '.join(STARTS)}", self.start)
        expect(self.part in PARTS, "part", f"one of {', '.join(PARTS)}", self.part)
        expect(0 < self.eval_share < 1, "eval_share", "a number strictly between 0 and 1", self.eval_share)
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


def in_part(prompt: list[dict], part: str, eval_share: float) -> bool:
    """Whether a prompt belongs to `part` of the train prompts: by a hash of the prompt alone, so every pair
    of one prompt lands in the same part whatever the file order, and the two parts never share a prompt."""
    if part == "all":
        return True
    digest = hashlib.sha256(prompt_key(prompt).encode("utf-8")).digest()
    evaluation = int.from_bytes(digest[:8], "big") / 2**64 < eval_share
    return evaluation == (part == "evaluation")


def reward_trainer(model, tokenizer, peft_config, dataset, settings: RewardSettings, shared_args, callbacks):
    from trl import RewardConfig, RewardTrainer

    total = len(dataset)
    if settings.part != "all":
        dataset = dataset.filter(lambda row: in_part(row["prompt"], settings.part, settings.eval_share))
    expect(len(dataset) > 0, "part", f"a part of the train prompts that holds pairs (none of {total} train pairs is in "
                                     f"the {settings.part} part at eval_share {settings.eval_share})", settings.part)
    trainer = RewardTrainer(model=model, args=RewardConfig(**shared_args(RewardConfig)), train_dataset=dataset,
                            processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks)
    expect(len(trainer.train_dataset) > 0, "max_length",
           f"a length that keeps some training pairs (all {len(dataset)} are longer than {settings.max_length} tokens)",
           settings.max_length)
    trainer.prefalign_part = {"part": settings.part, "eval_share": settings.eval_share, "pairs": len(dataset),
                              "of_pairs": total}
    return trainer


def kept_pairs(trainer) -> dict:
    return {"examples_within_max_length": len(trainer.train_dataset), "part": trainer.prefalign_part}


REWARD = TrainingStep(
    name="reward", settings_class=RewardSettings, start_flag="model",
    start_help="checkpoint folder the reward model starts from (the base or SFT model: the one --start names)", dataset=reward_dataset,
    trainer=reward_trainer, logged=("loss", "accuracy", "margin", "mean_reward", "grad_norm"),
    load=load_reward_model, resolve=resolve, summary=kept_pairs)
add_arguments, main = REWARD.add_arguments, REWARD.main
