"""Step `dpo`: direct preference optimization of the SFT checkpoint on the train split.

Supports LoRA (default) and full-model DPO, TRL's loss types (`sigmoid`, `ipo`, `hinge`,
... as a list), beta, and `precompute_ref_log_probs`. The reference is the SFT checkpoint
itself: `ref_model=None`, so TRL uses the policy with its adapter disabled (LoRA) or reloads
the checkpoint (full model); SFT is merged, so either way the reference is exactly SFT.

Writes the merged DPO checkpoint (and the adapter when LoRA is on), TRL's logged metrics
(rewards/accuracies, rewards/margins, ...) and metrics.json with settings and what
`auto` resolved to. The step itself (set-up, checkpoints, saving, metrics) is
prefalign.train.step; raises ConfigError for settings this machine cannot run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prefalign.settings import expect
from prefalign.train.common import TrainSettings
from prefalign.train.step import TrainingStep

LOSS_TYPES = ("sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
              "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft")


@dataclass
class DPOSettings(TrainSettings):
    SECTION = "dpo"
    max_steps: int = field(default=150, metadata={"help": "optimizer steps"})
    learning_rate: float = field(default=3e-3, metadata={"help": "peak learning rate"})
    use_lora: bool = field(default=True, metadata={"help": "train LoRA adapters instead of all weights"})
    beta: float = field(default=0.1, metadata={"help": "DPO beta: strength of the pull towards the reference"})
    loss_type: list[str] = field(
        default_factory=lambda: ["sigmoid"],
        metadata={"help": "TRL loss type(s); several are summed ([sigmoid, sft] = DPO + NLL on chosen, as in RPO)"},
    )
    loss_weights: list[float] | None = field(
        default=None, metadata={"help": "weight of each loss_type, in the same order; none = all 1"}
    )
    precompute_ref_log_probs: bool = field(
        default=False, metadata={"help": "score the reference once before training and keep no reference model"}
    )

    def __post_init__(self):
        super().__post_init__()
        expect(self.beta > 0, "beta", "a number > 0", self.beta)
        bad = [t for t in self.loss_type if t not in LOSS_TYPES]
        expect(bool(self.loss_type) and not bad, "loss_type", f"a list from {', '.join(LOSS_TYPES)}", self.loss_type)
        expect(self.loss_weights is None or len(self.loss_weights) == len(self.loss_type), "loss_weights",
              f"one weight per loss_type ({len(self.loss_type)})", self.loss_weights)


def dpo_dataset(records: list[dict]):
    """Canonical records -> TRL's conversational preference format (identity and meta dropped)."""
    from datasets import Dataset

    return Dataset.from_list([{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in records])


def dpo_trainer(model, tokenizer, peft_config, dataset, settings: DPOSettings, shared_args, callbacks):
    from trl import DPOConfig, DPOTrainer

    config = DPOConfig(
        **shared_args(DPOConfig),
        beta=settings.beta,
        loss_type=list(settings.loss_type),
        loss_weights=list(settings.loss_weights) if settings.loss_weights else None,
        precompute_ref_log_probs=settings.precompute_ref_log_probs,
    )
    return DPOTrainer(model=model, ref_model=None, args=config, train_dataset=dataset, processing_class=tokenizer,
                      peft_config=peft_config, callbacks=callbacks)


DPO = TrainingStep(
    name="dpo", settings_class=DPOSettings, start_flag="sft",
    start_help="SFT checkpoint folder: the policy's start and reference", dataset=dpo_dataset, trainer=dpo_trainer,
    logged=("loss", "rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected", "logps/chosen",
            "logps/rejected", "grad_norm"),
    first_loss=True)
add_arguments, main = DPO.add_arguments, DPO.main
