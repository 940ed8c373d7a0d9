"""Packed and grouped DPO batches against padded ones, on the real model, in the run's precision.

tests/train/test_dpo_batching.py proves the equivalence in fp32 on the CPU (1e-5). In bf16 on a GPU
the cuts change the order of sums and the kernels (varlen flash vs padded SDPA), so the numbers
differ by rounding; this measures by how much, on the 1.1 B model of bench/dpo_throughput.py
and hh-rlhf-shaped pairs, for one backend per process:

- per-sequence log-probs of the policy (LoRA adapters set to random values, so policy and
  reference differ) and of the reference (adapter disabled), chosen and rejected, for batches of
  `--pairs` pairs scored padded, grouped and packed;
- the sigmoid DPO loss (beta 0.1) of those log-probs, per batch.

    python bench/dpo_equivalence.py --backend unsloth --out equivalence_unsloth.json   # on a GPU
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))


def sequence_logps(trainer, batch, adapter: bool):
    """(chosen, rejected) summed completion log-probs: TRL's reference pass, or the same with the adapter on."""
    import torch

    if not adapter:
        return trainer.compute_ref_log_probs(trainer.model, batch)
    kwargs = {k: v for k, v in batch.items() if k not in ("completion_mask", "ref_chosen_logps", "ref_rejected_logps")}
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    with torch.no_grad():
        out = trainer.model(**kwargs, use_cache=False, labels=labels, fused_lm_head=True)
    width = batch["completion_mask"].shape[1] - 1
    return out.log_probs[:, -width:].sum(dim=1).chunk(2, dim=0)


def score(trainer, dataset, pairs: int, mode: str, batching_cls) -> dict:
    import torch

    from prefalign.train.dpo_trainer import micro_batch

    trainer.prefalign_batching = batching_cls(mode, trainer.prefalign_batching.max_batch_tokens, "")
    if mode == "packed":
        trainer._install_packing()
    out = {"policy_chosen": [], "policy_rejected": [], "ref_chosen": [], "ref_rejected": []}
    for start in range(0, len(dataset) - pairs + 1, pairs):
        inputs = trainer.data_collator([dataset[i] for i in range(start, start + pairs)])
        groups = [list(range(pairs))] if mode == "padded" else trainer.micro_batches(inputs)
        values = {k: torch.empty(pairs, dtype=torch.float64) for k in out}
        for group in groups:
            batch = trainer._prepare_inputs(micro_batch(inputs, group))
            for name, adapter in (("policy", True), ("ref", False)):
                chosen, rejected = sequence_logps(trainer, batch, adapter)
                values[f"{name}_chosen"][group] = chosen.double().cpu()
                values[f"{name}_rejected"][group] = rejected.double().cpu()
        for k in out:
            out[k].extend(values[k].tolist())
    return out


def unsloth_backend_dtype(model, resolved, settings):
    from prefalign.train.unsloth_backend import autocast_dtype

    return autocast_dtype(model, resolved.backend, settings.use_lora, resolved.precision)


def dpo_losses(s: dict, pairs: int, beta: float = 0.1) -> list[float]:
    margins = [(pc - rc) - (pr - rr) for pc, pr, rc, rr in
               zip(s["policy_chosen"], s["policy_rejected"], s["ref_chosen"], s["ref_rejected"])]
    per_pair = [math.log1p(math.exp(-beta * m)) for m in margins]
    return [statistics.mean(per_pair[i:i + pairs]) for i in range(0, len(per_pair), pairs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["trl", "unsloth"], required=True)
    parser.add_argument("--shape", default="1.1b")
    parser.add_argument("--pairs", type=int, default=32, help="pairs per batch (default 32)")
    parser.add_argument("--batches", type=int, default=4, help="batches scored (default 4)")
    parser.add_argument("--lengths-file", type=Path)
    parser.add_argument("--model", type=Path, help="reuse this model folder (bench/dpo_throughput.py --model)")
    parser.add_argument("--full", action="store_true", help="full model (policy = reference; no adapter) instead of "
                        "LoRA: on Unsloth the bf16 full fine-tune's packed path against its padded one")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    from prefalign.train.backends import pin_single_gpu

    pin_single_gpu()
    if args.backend == "unsloth":
        from prefalign.train import unsloth_backend

        unsloth_backend.activate(dpo=True)
    import torch

    import dpo_throughput as bench
    from prefalign.jsonl import read_jsonl
    from prefalign.train import backends
    from prefalign.train.batching import Batching, resolve_batching
    from prefalign.train.dpo import DPOSettings, dpo_config, dpo_dataset
    from prefalign.train.dpo_trainer import trainer_class

    with tempfile.TemporaryDirectory(prefix="prefalign-equivalence-") as scratch:
        work = Path(scratch)
        ns = argparse.Namespace(lengths="hh-rlhf", lengths_file=args.lengths_file or bench.DEFAULT_LENGTHS,
                                warmup=0, steps=args.batches, effective_batch=args.pairs, max_length=1024, seq=512)
        lengths, info = bench.pair_lengths(ns)
        if args.model and (args.model / "config.json").exists():
            (work / "model").symlink_to(args.model.resolve())
        else:
            bench.build_model(work / "model", args.shape, 1024)
        bench.build_data(work / "train.jsonl", lengths, bench.SHAPES[args.shape]["vocab_size"])
        gpu = torch.cuda.is_available()
        settings = DPOSettings(backend=args.backend, precision="bf16" if gpu else "fp32", use_lora=not args.full,
                               lora_r=16,
                               lora_alpha=16, max_length=1024, batch_size=args.pairs, batching="padded",
                               gradient_checkpointing="unsloth" if args.backend == "unsloth" else "none",
                               threads=8 if gpu else 2, seed=0)
        resolved = backends.resolve(settings)
        model, tokenizer, peft_config = backends.load_policy(work / "model", settings, resolved)
        batching = resolve_batching("grouped", 0, args.pairs, 1024, ["sigmoid"], resolved.device, resolved.backend,
                                    True)

        def shared_args(config_class):
            return backends.trainer_kwargs(settings, resolved, work / "out", config_class)

        # Full model: the policy is the reference (the reference step's set-up: no second model).
        trainer = trainer_class()(model=model, ref_model=None,
                                  args=dpo_config(settings, shared_args, batching, args.full),
                                  train_dataset=dpo_dataset(read_jsonl(work / "train.jsonl")),
                                  processing_class=tokenizer, peft_config=peft_config, batching=batching,
                                  backend=resolved.backend, reference_pass=args.full,
                                  autocast_dtype=unsloth_backend_dtype(model, resolved, settings))
        torch.manual_seed(0)
        for name, parameter in trainer.model.named_parameters():
            if "lora_B" in name:
                parameter.data.normal_(0.0, 0.02)  # policy != reference
        trainer.model.eval()
        scores = {mode: score(trainer, trainer.train_dataset, args.pairs, mode, Batching)
                  for mode in ("padded", "grouped", "packed")}  # packed last: it wraps the forward for good
    report = {"backend": args.backend, "full_model": args.full, "resolved": resolved.__dict__, "pairs_per_batch": args.pairs,
              "batches": args.batches, "data": info, "losses": {m: dpo_losses(s, args.pairs) for m, s in scores.items()}}
    for mode in ("grouped", "packed"):
        diffs = {}
        for key in scores["padded"]:
            a, b = scores["padded"][key], scores[mode][key]
            abs_diff = [abs(x - y) for x, y in zip(a, b)]
            diffs[key] = {"max_abs": max(abs_diff), "mean_abs": statistics.mean(abs_diff),
                          "max_rel": max(d / max(abs(x), 1e-9) for d, x in zip(abs_diff, a))}
        diffs["loss_max_abs"] = max(abs(x - y) for x, y in zip(report["losses"]["padded"], report["losses"][mode]))
        report[f"{mode}_vs_padded"] = diffs
        print(f"{args.backend} {mode} vs padded: " + json.dumps(
            {k: (v if isinstance(v, float) else {kk: f"{vv:.3g}" for kk, vv in v.items()}) for k, v in diffs.items()}),
            flush=True)
    report["logp_scale"] = statistics.mean(abs(x) for x in scores["padded"]["policy_chosen"])
    args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
