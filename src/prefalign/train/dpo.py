"""Step `dpo`: direct preference optimization of the SFT checkpoint on the train split.

Supports LoRA (default) and full-model DPO with either backend (Unsloth on a CUDA GPU: `auto`
takes it for both), TRL's loss types (`sigmoid`, `ipo`, `hinge`, ... as a list), beta, and
`precompute_ref_log_probs`. The reference is the SFT checkpoint itself; SFT is merged, so it is
exactly SFT:
  - with `--reference-logps` (the `reference-logps` step's output for the same train file), its
    log-probs are read and no reference model is loaded, when they were computed with this
    run's backend, precision and max_length (else the reference runs in training, and
    metrics.json says why);
  - LoRA: the policy with its adapter disabled;
  - full model, live: the checkpoint loaded a second time, frozen, in the policy's dtype (TRL 1.15
    would load it in float32 next to a bf16 policy) and run under the policy's autocast.

Batching (`batching`, prefalign.train.batching): padded (TRL's), grouped (length-grouped
micro-batches of at most max_batch_tokens tokens) or packed (no padding: varlen attention);
every mode trains on the same pairs per optimizer step (prefalign.train.dpo_trainer).

Writes the merged DPO checkpoint (and the adapter when LoRA is on), TRL's logged metrics
(rewards/accuracies, rewards/margins, ...) and metrics.json with settings and what
`auto` resolved to. The step itself (set-up, checkpoints, saving, metrics) is
prefalign.train.step; raises ConfigError for settings this machine cannot run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from prefalign.settings import expect
from prefalign.train import backends, reference_file as reference, unsloth_backend
from prefalign.train.batching import BATCHINGS, resolve_batching
from prefalign.train.backends import TrainSettings
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
    batching: str = field(default="auto", metadata={"help": f"micro-batches: {', '.join(BATCHINGS)} "
                                                            "(prefalign.train.batching)"})
    max_batch_tokens: int = field(
        default=0, metadata={"help": "tokens per grouped or packed micro-batch (0 = 2 x batch_size x max_length)"})
    cache_reference: bool = field(
        default=True, metadata={"help": "the workflow scores the reference once (rule reference_logps) and "
                                        "DPO reads its log-probs (--reference-logps)"})

    def __post_init__(self):
        super().__post_init__()
        expect(self.beta > 0, "beta", "a number > 0", self.beta)
        bad = [t for t in self.loss_type if t not in LOSS_TYPES]
        expect(bool(self.loss_type) and not bad, "loss_type", f"a list from {', '.join(LOSS_TYPES)}", self.loss_type)
        expect(self.loss_weights is None or len(self.loss_weights) == len(self.loss_type), "loss_weights",
              f"one weight per loss_type ({len(self.loss_type)})", self.loss_weights)
        expect(self.batching in BATCHINGS, "batching", f"one of {', '.join(BATCHINGS)}", self.batching)
        expect(isinstance(self.max_batch_tokens, int) and self.max_batch_tokens >= 0, "max_batch_tokens",
              "an integer >= 0", self.max_batch_tokens)


def dpo_dataset(records: list[dict], reference_logps: Path | None = None):
    """Canonical records -> TRL's conversational preference format (identity and meta dropped).

    With `reference_logps`, the reference's log-probs of each pair become the columns
    ref_chosen_logps and ref_rejected_logps (NaN for pairs TRL drops: prompt fills max_length).
    """
    from datasets import Dataset

    rows = [{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in records]
    if reference_logps is not None:
        pairs = reference.read(reference_logps)["pairs"]
        reference.check_pairs(reference_logps, pairs, [r["id"] for r in records])
        for row, pair in zip(rows, pairs):
            row["ref_chosen_logps"] = math.nan if pair["chosen"] is None else pair["chosen"]
            row["ref_rejected_logps"] = math.nan if pair["rejected"] is None else pair["rejected"]
    return Dataset.from_list(rows)


def dpo_config(settings: DPOSettings, shared_args, batching, precompute: bool):
    """TRL's DPOConfig; grouped and packed runs see one micro-batch of all the step's pairs."""
    from trl import DPOConfig

    args = shared_args(DPOConfig)
    if batching.mode != "padded":
        args["per_device_train_batch_size"] = settings.batch_size * settings.gradient_accumulation_steps
        args["gradient_accumulation_steps"] = 1
    return DPOConfig(**args, beta=settings.beta, loss_type=list(settings.loss_type),
                     loss_weights=list(settings.loss_weights) if settings.loss_weights else None,
                     precompute_ref_log_probs=precompute)


def dpo_trainer(model, tokenizer, peft_config, dataset, settings: DPOSettings, shared_args, callbacks,
                reference_logps: Path | None = None):
    from prefalign.train.dpo_trainer import REF_COLUMNS, trainer_class
    from prefalign.train.packing import torch_varlen_attn

    resolved = backends.resolve(settings)
    batching = resolve_batching(settings.batching, settings.max_batch_tokens, settings.batch_size,
                                settings.max_length, settings.loss_type, resolved.device, resolved.backend,
                                torch_varlen_attn() is not None)
    cached, reference_why = False, "in training (no --reference-logps)"
    if reference_logps is not None:
        mismatch = reference.mismatch(reference.read(reference_logps), settings, resolved)
        cached = mismatch is None
        reference_why = (f"read from {reference_logps}" if cached else
                         f"in training: {reference_logps} does not fit this run ({mismatch})")
    if not cached and all(c in dataset.column_names for c in REF_COLUMNS):
        dataset = dataset.remove_columns(list(REF_COLUMNS))
    # TRL drops the reference model only when it precomputes; with LoRA there is none anyway
    # (the adapter is disabled), so the cached columns need no precompute switch and TRL does
    # not hash the whole model for its precompute cache.
    precompute = settings.precompute_ref_log_probs or (cached and not settings.use_lora)
    ref_model = None
    if not settings.use_lora and not precompute:
        ref_model = backends.load_reference(model, resolved)
        reference_why += f"; live reference model in {resolved.precision}"
    trainer = trainer_class()(
        model=model, ref_model=ref_model, args=dpo_config(settings, shared_args, batching, precompute),
        train_dataset=dataset, processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks,
        batching=batching, backend=resolved.backend, cached_reference=cached,
        autocast_dtype=unsloth_backend.autocast_dtype(model, resolved.backend, settings.use_lora, resolved.precision))
    # Only what does not depend on where a resumed run restarted (metrics.json must equal the uninterrupted
    # run's); the micro-batches of each step are in trainer.prefalign_micro_batches.
    trainer.prefalign_summary = lambda: {
        "batching": {"mode": batching.mode, "max_batch_tokens": batching.max_batch_tokens, "why": batching.why},
        "reference": reference_why}
    return trainer


DPO = TrainingStep(
    name="dpo", settings_class=DPOSettings, start_flag="sft",
    start_help="SFT checkpoint folder: the policy's start and reference", dataset=dpo_dataset, trainer=dpo_trainer,
    logged=("loss", "rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected", "logps/chosen",
            "logps/rejected", "grad_norm"),
    first_loss=True,
    extra_inputs=(("reference-logps", "the reference's log-probs of the train pairs (JSON, from `prefalign "
                                      "reference-logps`); used when backend, precision and max_length match"),))
add_arguments, main = DPO.add_arguments, DPO.main
