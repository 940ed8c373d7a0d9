"""prefalign's DPO trainer: TRL's DPOTrainer (or Unsloth's patched copy of it) with padding-free batching.

TRL 1.15 and 1.16 switch `padding_free` off for DPO, and Unsloth 2026.10.9 packs only SFT, so
the cut of each optimizer step into micro-batches is done here (prefalign.train.batching):

- The Trainer is configured with one micro-batch per optimizer step of batch_size x
  gradient_accumulation_steps pairs: its sampler hands `training_step` exactly the pairs the
  padded run would put in that step.
- `training_step` cuts them (grouped or packed) and runs forward and backward per micro-batch,
  with DDP's gradient sync only on the last one. Each micro-batch's loss is scaled so that the
  sum over the step is the mean over the step's pairs (the NLL term of loss_type `sft`: the mean
  over the step's chosen tokens): the gradient of the step is the padded step's. Under DDP the
  step is every process's pairs together: N processes train as one holding N times the pairs.
- Packed micro-batches run through prefalign.train.packing (one row, varlen attention).
- Reference log-probs can come with the dataset (`ref_chosen_logps`, `ref_rejected_logps`
  columns, from the `reference_logps` step); then no reference forward runs in training.
- `reference_pass=True` (the `reference-logps` step): TRL keeps no reference model and runs no
  precompute of its own; `reference_logps()` scores the dataset with the policy, which is the
  reference there.
- `autocast_dtype`: the policy's (and a live reference's) forward runs under that autocast.
  Unsloth's bf16 full fine-tune needs it once TRL's fused LM head replaces the forward
  (prefalign.train.unsloth_backend.autocast_dtype says why).

The class is built when needed (`trainer_class()`), so that under Unsloth it derives from the
trainer Unsloth installed in TRL's place.
"""

from __future__ import annotations

import contextlib

from prefalign.train import packing, unsloth_backend
from prefalign.train.batching import Batching, plan_grouped, plan_packed

REF_COLUMNS = ("ref_chosen_logps", "ref_rejected_logps")


def trainer_class():
    from trl import DPOTrainer

    class PrefalignDPOTrainer(DPOTrainer):
        def __init__(self, *args, batching: Batching, backend: str, cached_reference: bool = False,
                     reference_pass: bool = False, autocast_dtype=None, **kwargs):
            self.prefalign_batching = batching
            self.prefalign_backend = backend
            self.prefalign_reference_pass = reference_pass
            self.prefalign_autocast = autocast_dtype
            super().__init__(*args, **kwargs)
            self._install_forwards()
            if cached_reference:
                # The dataset carries the reference's log-probs: TRL's own precompute switch makes
                # `_compute_loss` read them from the batch (and `_precompute_ref_logps` below keeps them).
                self.precompute_ref_logps = True
            self.prefalign_micro_batches: list[int] = []  # micro-batches of each optimizer step

        # ------------------------------------------------------------ set-up

        def _policy_module(self):
            """The module TRL gave its fused LM head (the PEFT model's base model, or the model)."""
            model = self.accelerator.unwrap_model(self.model)
            return model.get_base_model() if hasattr(model, "get_base_model") else model

        def _install_forwards(self):
            """Packing (packed mode), then autocast (autocast_dtype), on the policy and a live reference; idempotent."""
            if self.prefalign_batching.mode == "packed":
                self._install_packing()
            if self.prefalign_autocast is None:
                return
            modules = [self._policy_module()]
            if self.ref_model is not None:
                modules.append(self.accelerator.unwrap_model(self.ref_model))
            for module in modules:
                module.forward = unsloth_backend.with_autocast(module.forward, self.prefalign_autocast)

        def _install_packing(self):
            transformers_attention = self.prefalign_backend != "unsloth"
            if transformers_attention:
                packing.register_varlen_attention()
                self._policy_module().set_attn_implementation(packing.VARLEN_ATTENTION)
            packing.install_packing(self._policy_module(), boundaries_as_kwargs=transformers_attention)
            if self.ref_model is not None:
                ref = self.accelerator.unwrap_model(self.ref_model)
                if transformers_attention:
                    ref.set_attn_implementation(packing.VARLEN_ATTENTION)
                packing.install_packing(ref, boundaries_as_kwargs=transformers_attention)

        def _precompute_ref_logps(self, dataset, name, batch_size):
            if self.prefalign_reference_pass:
                return dataset  # the reference-logps step scores the dataset itself (reference_logps below)
            if all(column in dataset.column_names for column in REF_COLUMNS):
                return dataset  # the cached reference artifact is already there
            self._install_forwards()  # TRL precomputes inside __init__, before ours finishes
            return super()._precompute_ref_logps(dataset, name, batch_size)

        # ------------------------------------------------------------ training

        def training_step(self, model, inputs, num_items_in_batch=None):
            if self.prefalign_batching.mode == "padded":
                return super().training_step(model, inputs, num_items_in_batch)
            groups = self.micro_batches(inputs)
            pairs = inputs["input_ids"].shape[0] // 2
            chosen_tokens = inputs["completion_mask"][:pairs, 1:].sum().item()
            if self.accelerator.num_processes > 1:
                # TRL gathers its metrics across processes in every micro-batch: all must run as many.
                # DDP averages the processes' gradients, so the NLL term is taken per chosen token of all
                # processes' pairs (over the mean per process): the step of one process holding them all.
                import torch

                counts = torch.tensor([len(groups), chosen_tokens], device=self.accelerator.device)
                counts = self.accelerator.gather(counts).view(-1, 2)
                groups = split_to(groups, int(counts[:, 0].max()))
                chosen_tokens = counts[:, 1].sum().item() / self.accelerator.num_processes
            self.prefalign_micro_batches.append(len(groups))
            weights = list(self.loss_weights)
            total = None
            try:
                for i, group in enumerate(groups):
                    batch = micro_batch(inputs, group)
                    mb_chosen = batch["completion_mask"][: len(group), 1:].sum().item()
                    # Per pair of the step for pair losses, per chosen token of the step for `sft`.
                    self.loss_weights = [w * (mb_chosen / max(chosen_tokens, 1) if t == "sft" else len(group) / pairs)
                                         for t, w in zip(self.loss_types, weights)]
                    last = i == len(groups) - 1
                    sync = contextlib.nullcontext() if last else self.accelerator.no_sync(model)
                    with sync, uneven_gather(self.accelerator):
                        loss = super().training_step(model, batch, num_items_in_batch)
                    total = loss if total is None else total + loss
            finally:
                self.loss_weights = weights
            return total

        def micro_batches(self, inputs) -> list[list[int]]:
            """The step's pairs cut into micro-batches (lists of pair indices) for this run's mode."""
            lengths = inputs["attention_mask"].sum(dim=1).tolist()
            pairs = len(lengths) // 2
            chosen, rejected = lengths[:pairs], lengths[pairs:]
            budget = self.prefalign_batching.max_batch_tokens
            if self.prefalign_batching.mode == "grouped":
                return plan_grouped([max(c, r) for c, r in zip(chosen, rejected)], budget)
            return plan_packed([c + r for c, r in zip(chosen, rejected)], budget)

        # ------------------------------------------------------------ reference log-probs

        def reference_logps(self, dataset, pairs_per_batch: int):
            """(chosen, rejected) reference log-probs of every row of a tokenized dataset, in order.

            Runs TRL's own reference pass (`compute_ref_log_probs`: the policy with its adapter
            disabled, or the reference model) on the batches this run would train on, cut
            into micro-batches like training; no gradients.
            """
            import torch

            collate = self.data_collator
            self.model.eval()
            chosen, rejected = [], []
            for start in range(0, len(dataset), pairs_per_batch):
                rows = [dataset[i] for i in range(start, min(start + pairs_per_batch, len(dataset)))]
                inputs = collate(rows)
                groups = ([list(range(len(rows)))] if self.prefalign_batching.mode == "padded"
                          else self.micro_batches(inputs))
                batch_chosen = torch.empty(len(rows), dtype=torch.float64)
                batch_rejected = torch.empty(len(rows), dtype=torch.float64)
                for group in groups:
                    batch = self._prepare_inputs(micro_batch(inputs, group))
                    c, r = self.compute_ref_log_probs(self.model, batch)
                    batch_chosen[group] = c.detach().double().cpu()
                    batch_rejected[group] = r.detach().double().cpu()
                chosen.extend(batch_chosen.tolist())
                rejected.extend(batch_rejected.tolist())
            return chosen, rejected

    return PrefalignDPOTrainer


def micro_batch(inputs: dict, pairs: list[int]) -> dict:
    """The rows of `pairs` (chosen and rejected) of a collated step, trimmed to their longest row."""
    total = inputs["input_ids"].shape[0] // 2
    rows = list(pairs) + [total + i for i in pairs]
    width = int(inputs["attention_mask"][rows].sum(dim=1).max())
    batch = {}
    for key, value in inputs.items():
        if key in REF_COLUMNS:
            batch[key] = value[pairs]
        elif getattr(value, "dim", lambda: 0)() == 2 and value.shape[0] == 2 * total:
            batch[key] = value[rows, :width]
        else:
            batch[key] = value
    return batch


@contextlib.contextmanager
def uneven_gather(accelerator):
    """Within the block, `accelerator.gather` also takes tensors whose first dimension differs between processes.

    Under DDP, micro-batch i of one process may hold more pairs than micro-batch i of another
    (each packs or groups its own pairs by tokens), and TRL gathers per-pair metrics (rewards,
    margins, log-probs) with `accelerator.gather`, whose all_gather needs the same shape on every
    process: gloo aborts ("Received data size doesn't match expected size"), NCCL may hang or
    read past the smaller tensors. Here each tensor is padded to the longest, gathered, and the
    padding dropped: the result is every process's rows in rank order, as an equal-shape gather
    gives. Scalars and non-tensors go to the original gather unchanged; one process: no change.
    """
    import torch

    if accelerator.num_processes == 1:
        yield
        return
    original, own = accelerator.gather, vars(accelerator).get("gather")

    def gather(tensor):
        if not isinstance(tensor, torch.Tensor) or tensor.dim() == 0:
            return original(tensor)
        sizes = original(torch.tensor([tensor.shape[0]], device=tensor.device)).tolist()
        longest = max(sizes)
        padded = torch.cat([tensor, tensor.new_zeros((longest - tensor.shape[0], *tensor.shape[1:]))])
        gathered = original(padded)
        return torch.cat([gathered[rank * longest:rank * longest + size] for rank, size in enumerate(sizes)])

    accelerator.gather = gather  # an instance attribute: TRL's `self.accelerator.gather` finds it first
    try:
        yield
    finally:
        if own is None:
            del accelerator.gather
        else:
            accelerator.gather = own


def split_to(groups: list[list[int]], count: int) -> list[list[int]]:
    """`groups` split (the largest first, in halves) until there are `count` of them.

    Under DDP every process must run the same number of micro-batches; a process whose pairs
    fit in fewer runs some in smaller ones. Each process holds as many pairs as the others, so
    `count` never exceeds the pairs here.
    """
    groups = [list(g) for g in groups]
    while len(groups) < count:
        largest = max(range(len(groups)), key=lambda i: len(groups[i]))
        group = groups.pop(largest)
        half = len(group) // 2
        groups[largest:largest] = [group[:half], group[half:]]
    return groups
