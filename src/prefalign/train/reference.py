"""Step `reference-logps`: the reference's log-probs of every DPO train pair, computed once.

DPO with `ref_model=None` scores every pair with the reference in every step, every epoch and
every rerun with another beta or loss. The reference (the SFT checkpoint) and the train pairs
fix these numbers, so the workflow computes them once (rule `reference_logps`) and `prefalign
dpo --reference-logps` reads them. The pass is TRL's own (`compute_ref_log_probs`: the policy
loaded as DPO loads it, adapter disabled), cut into micro-batches like DPO's training
(prefalign.train.batching), without gradients.

Output, one JSON file: `settings` and `resolved` (backend, precision: the numbers are only
valid for a DPO run that computes its policy the same way; DPO checks), the train file's
sha256 and one entry per train record, in file order: {"id", "chosen", "rejected"} (summed
log-probs of the completion tokens, truncated at max_length as DPO truncates), null for a pair
TRL drops because its prompt alone fills max_length.

Settings are the DPO settings that change these numbers (backend, precision, max_length) and
the ones that only change speed (batching, max_batch_tokens, batch_size); precision `auto`
never resolves to fp8 here (one forward pass cannot repay FP8's compile; prefalign.train.backends).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from prefalign import runtime
from prefalign.errors import PrefalignError, TrainingError
from prefalign.hashing import sha256_file
from prefalign.jsonl import read_jsonl, write_json
from prefalign.settings import Settings, expect
from prefalign.train import backends, unsloth_backend
from prefalign.train.batching import BATCHINGS, resolve_batching
from prefalign.train.dpo import DPOSettings, dpo_config, dpo_dataset
from prefalign.train.reference_file import FORMAT



@dataclass
class ReferenceSettings(Settings):
    SECTION = "dpo"  # every key is DPO's: the pass is the reference of that DPO run
    backend: str = field(default="auto", metadata={"help": "as dpo.backend"})
    precision: str = field(default="auto", metadata={"help": "as dpo.precision (auto: never fp8 here)"})
    use_lora: bool = field(default=True, metadata={"help": "as dpo.use_lora (the policy is loaded as DPO loads it)"})
    max_length: int = field(default=256, metadata={"help": "as dpo.max_length: longer pairs are truncated (tokens)"})
    batching: str = field(default="auto", metadata={"help": f"as dpo.batching: {', '.join(BATCHINGS)}"})
    max_batch_tokens: int = field(default=0, metadata={"help": "as dpo.max_batch_tokens (0 = 2 x batch_size x "
                                                               "max_length)"})
    batch_size: int = field(default=16, metadata={
        "derived": "dpo.batch_size x dpo.gradient_accumulation_steps",
        "help": "pairs per batch of the pass: the pairs of one DPO optimizer step"})
    seed: int = field(default=1234, metadata={
        "key": "seed", "help": "random seed (Unsloth's adapter init; no effect on the numbers)"})
    threads: int = field(default=2, metadata={"key": "threads", "help": "torch intra-op threads (part of the result "
                                                                        "on CPU)"})

    def __post_init__(self):
        expect(self.batching in BATCHINGS, "batching", f"one of {', '.join(BATCHINGS)}", self.batching)
        self.training()  # the shared checks (backend, precision, lengths)

    def training(self):
        """These settings as the TrainSettings resolve() and load_policy() take; max_steps 1: no fp8 on auto."""
        return DPOSettings(backend=self.backend, precision=self.precision, use_lora=self.use_lora,
                           max_length=self.max_length, batch_size=self.batch_size, batching=self.batching,
                           max_batch_tokens=self.max_batch_tokens, max_steps=1, seed=self.seed, threads=self.threads,
                           warmup_ratio=0.0)


# ---------------------------------------------------------------- the step

def compute(sft: Path, train_path: Path, settings: ReferenceSettings) -> tuple[dict, dict]:
    """(the file's content: reference log-probs of every record of `train_path`, timing of the pass).

    The timing (seconds and tokens/s of the pass itself, model loading excluded) stays out of
    the file: two runs of the same inputs write the same bytes."""
    training = settings.training()
    backends.pin_single_gpu()
    resolved = backends.resolve(training)
    print("resolved:", json.dumps(dataclasses.asdict(resolved), sort_keys=True), flush=True)
    if resolved.backend == "unsloth":
        unsloth_backend.activate(dpo=True)
    runtime.setup(settings.seed, settings.threads)
    backends.quiet_libraries()

    from prefalign.train.dpo_trainer import trainer_class  # imports TRL: after Unsloth's activation
    from prefalign.train.packing import torch_varlen_attn

    records = read_jsonl(train_path)
    model, tokenizer, peft_config = backends.load_policy(sft, training, resolved)
    dataset = dpo_dataset(records).add_column("prefalign_row", list(range(len(records))))
    batching = resolve_batching(settings.batching, settings.max_batch_tokens, settings.batch_size,
                                settings.max_length, ["sigmoid"], resolved.device, resolved.backend,
                                torch_varlen_attn() is not None)
    with tempfile.TemporaryDirectory(prefix="prefalign-reference-") as scratch:
        def shared_args(config_class):
            return backends.trainer_kwargs(training, resolved, Path(scratch), config_class)

        # The policy loaded here *is* the reference: precompute on (full model) keeps TRL from loading
        # a second copy, and reference_pass keeps it from scoring the dataset its own way.
        trainer = trainer_class()(
            model=model, ref_model=None, args=dpo_config(training, shared_args, batching, not training.use_lora),
            train_dataset=dataset, processing_class=tokenizer, peft_config=peft_config, batching=batching,
            backend=resolved.backend, reference_pass=True,
            autocast_dtype=unsloth_backend.autocast_dtype(model, resolved.backend, training.use_lora,
                                                          resolved.precision))
        kept = trainer.train_dataset  # tokenized; pairs whose prompt fills max_length dropped
        start = time.perf_counter()
        try:
            chosen, rejected = trainer.reference_logps(kept, settings.batch_size)
        except PrefalignError:
            raise
        except Exception as exc:  # what `auto` chose failed on its first batch: name the setting (as training does)
            advice = backends.first_step_advice("dpo", training, resolved)
            if advice is None:
                raise
            traceback.print_exc()
            first_line = str(exc).splitlines()[0] if str(exc) else ""
            raise TrainingError(f"{type(exc).__name__}: {first_line}: "
                                + advice.replace("the first training step", "the reference pass")) from exc
        seconds = time.perf_counter() - start
    values = {row: (c, r) for row, c, r in zip(kept["prefalign_row"], chosen, rejected)}
    pairs = [{"id": record["id"], "chosen": values.get(i, (None, None))[0], "rejected": values.get(i, (None, None))[1]}
             for i, record in enumerate(records)]
    tokens = sum(min(len(p) + len(c), settings.max_length) + min(len(p) + len(r), settings.max_length)
                 for p, c, r in zip(kept["prompt_ids"], kept["chosen_ids"], kept["rejected_ids"]))
    print(f"reference-logps: {len(kept)} of {len(records)} pairs scored ({tokens} tokens) in {seconds:.1f} s "
          f"({tokens / max(seconds, 1e-9):,.0f} tokens/s), batching {batching.mode}", flush=True)
    data = {"format": FORMAT, "settings": settings.to_dict(), "resolved": dataclasses.asdict(resolved),
            "batching": {"mode": batching.mode, "why": batching.why},
            "train": {"path": str(train_path), "sha256": sha256_file(train_path), "records": len(records),
                      "scored": len(kept), "tokens": tokens},
            "pairs": pairs}
    return data, {"seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / max(seconds, 1e-9)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sft", type=Path, required=True, help="SFT checkpoint folder: DPO's reference")
    parser.add_argument("--train", type=Path, required=True, help="DPO's training records (JSONL)")
    parser.add_argument("--out", type=Path, required=True, help="output: the log-probs (JSON)")
    parser.add_argument("--environment", type=Path, help="output: software and hardware it ran on (JSON)")
    ReferenceSettings.add_arguments(parser)


def main(args: argparse.Namespace) -> None:
    settings = ReferenceSettings.from_args(args)
    print("settings:", json.dumps(settings.to_dict(), sort_keys=True), flush=True)
    data, _ = compute(args.sft, args.train, settings)
    write_json(args.out, data)
    if args.environment:
        write_json(args.environment, runtime.environment())
