"""How DPO's optimizer step is cut into micro-batches: padded, grouped or packed (pure; no torch).

Every mode trains on exactly the same pairs per optimizer step (batch_size x
gradient_accumulation_steps per device, in the order of TRL's sampler); only the cut differs:

    padded   TRL's own: micro-batches of batch_size pairs, each padded to its longest row.
    grouped  the step's pairs sorted by length and cut into micro-batches of at most
             max_batch_tokens tokens *with* padding (rows x longest row), where the cut is chosen
             to waste the fewest padded tokens. Works with every backend and device.
    packed   the step's pairs laid end to end in one row per micro-batch (at most
             max_batch_tokens real tokens), with position ids restarting at every sequence and
             attention kept inside each sequence (varlen attention): no padding at all.
    auto     packed where the attention implementation can run it (a CUDA GPU: Unsloth's
             varlen path, or torch's varlen kernel for the trl backend), else grouped.

The loss of grouped and packed micro-batches is normalised per pair of the whole step (and
the NLL term of loss_type `sft` per chosen token of the whole step), so their gradients sum to
the padded step's with one micro-batch per step (prefalign.train.dpo_trainer).
"""

from __future__ import annotations

from dataclasses import dataclass

BATCHINGS = ("auto", "padded", "grouped", "packed")
# Loss types whose value for a pair depends on the other pairs of its micro-batch (they sort
# log-ratios across the batch): a different cut would change the loss, so they train padded.
BATCH_COUPLED_LOSSES = ("aot", "aot_unpaired")
# A micro-batch costs a fixed amount beyond its tokens (kernel launches, optimizer-independent
# work of every layer); counted as this many tokens when the grouped cut weighs fewer padded
# tokens against more micro-batches.
MICRO_BATCH_OVERHEAD_TOKENS = 1024


@dataclass(frozen=True)
class Batching:
    """What `batching` resolved to for this run, and why (written into the DPO metrics)."""

    mode: str
    max_batch_tokens: int
    why: str


def resolve_batching(batching: str, max_batch_tokens: int, batch_size: int, max_length: int, loss_types,
                     device: str, backend: str, torch_varlen: bool) -> Batching:
    """Pick the mode for this run. `torch_varlen`: torch's varlen attention kernel can run here.

    Pure: the caller detects the machine. Refusals are ConfigErrors raised by the settings
    class (prefalign.train.dpo); here only `auto` is decided.
    """
    budget = max_batch_tokens or 2 * batch_size * max_length
    budget_why = (f"max_batch_tokens {budget}" if max_batch_tokens else
                  f"max_batch_tokens {budget} (= 2 x batch_size {batch_size} x max_length {max_length}, "
                  "the most a padded micro-batch can hold)")
    coupled = [t for t in loss_types if t in BATCH_COUPLED_LOSSES]
    if batching == "padded":
        return Batching("padded", budget, "batching padded (TRL's collator)")
    if coupled:
        return Batching("padded", budget, f"batching {batching} -> padded: loss_type {', '.join(coupled)} "
                                          "couples the pairs of a micro-batch")
    if batching != "auto":
        return Batching(batching, budget, f"batching {batching}; {budget_why}")
    if device == "cuda" and (backend == "unsloth" or torch_varlen):
        kernel = "Unsloth's varlen attention" if backend == "unsloth" else "torch's varlen attention kernel"
        return Batching("packed", budget, f"batching auto: packed ({kernel} on the GPU); {budget_why}")
    why = "no CUDA GPU" if device != "cuda" else "torch has no varlen attention kernel here"
    return Batching("grouped", budget, f"batching auto: grouped ({why}); {budget_why}")


def plan_grouped(row_lengths: list[int], budget: int) -> list[list[int]]:
    """Cut pairs into padded micro-batches: `row_lengths[i]` is pair i's longer row (chosen or rejected).

    A micro-batch of k pairs whose longest row is L computes 2 k L tokens; each must fit in
    `budget` (a pair longer than the budget on its own still gets a micro-batch). Among the cuts of
    the pairs sorted longest first into consecutive runs, the one with the fewest computed tokens
    plus MICRO_BATCH_OVERHEAD_TOKENS per micro-batch is exact (dynamic programming). Returns lists
    of pair indices, longest micro-batch first; deterministic (ties keep the input order).
    """
    order = sorted(range(len(row_lengths)), key=lambda i: (-row_lengths[i], i))
    n = len(order)
    best = [0.0] + [float("inf")] * n  # best[j]: cost of the first j sorted pairs
    cut = [0] * (n + 1)
    for start in range(n):
        if best[start] == float("inf"):
            continue
        longest = row_lengths[order[start]]
        for end in range(start + 1, n + 1):
            tokens = 2 * (end - start) * longest
            if tokens > budget and end > start + 1:
                break
            cost = best[start] + tokens + MICRO_BATCH_OVERHEAD_TOKENS
            if cost < best[end]:
                best[end], cut[end] = cost, start
    groups, end = [], n
    while end > 0:
        groups.append(order[cut[end]:end])
        end = cut[end]
    return groups[::-1]


def plan_packed(pair_tokens: list[int], budget: int) -> list[list[int]]:
    """Cut pairs into packed micro-batches of at most `budget` real tokens (chosen + rejected rows).

    First-fit decreasing: the fewest micro-batches in practice; a pair over the budget gets one
    of its own. Pair indices in each micro-batch keep the input order; deterministic.
    """
    order = sorted(range(len(pair_tokens)), key=lambda i: (-pair_tokens[i], i))
    bins: list[list[int]] = []
    room: list[int] = []
    for i in order:
        for b, free in enumerate(room):
            if pair_tokens[i] <= free:
                bins[b].append(i)
                room[b] -= pair_tokens[i]
                break
        else:
            bins.append([i])
            room.append(budget - pair_tokens[i])
    return [sorted(b) for b in bins]
