"""Preference metrics of one checkpoint against its reference on held-out pairs: each pair
tokenized exactly as TRL's DPOTrainer does, its completions' summed log-probs under both models,
and the implicit-reward and log-prob rankings with bootstrap intervals (the metrics are
listed in prefalign.evaluation.evaluate's docstring).
"""

from __future__ import annotations

import math

from prefalign.evaluation import intervals
from prefalign.evaluation.batches import padded
from prefalign.progress import progress
from prefalign.records import common_prefix_length


def tokenize_pair(tokenizer, record: dict) -> tuple[list[int], list[int], list[int]]:
    """(prompt, chosen, rejected) token ids, split where TRL's DPOTrainer splits them."""

    def ids(messages, **kwargs):
        return tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False, **kwargs)

    prompt = ids(record["prompt"], add_generation_prompt=True)
    chosen = ids(record["prompt"] + record["chosen"])
    rejected = ids(record["prompt"] + record["rejected"])
    cut = min(common_prefix_length(prompt, chosen), common_prefix_length(prompt, rejected))
    return prompt[:cut], chosen[cut:], rejected[cut:]


def completion_logps(model, sequences: list[tuple[list[int], list[int]]], batch_size: int, pad_id: int):
    """Sum of log-probs and token count of each completion given its prompt (in the order given)."""
    import torch

    # Batches of similar lengths waste little on padding; the results go back to the input order.
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i][0]) + len(sequences[i][1]))
    sums, counts = [0.0] * len(sequences), [0] * len(sequences)
    for start in progress(range(0, len(order), batch_size), "log-probs"):
        indices = order[start : start + batch_size]
        batch = [sequences[i] for i in indices]
        input_ids, attention = padded([p + c for p, c in batch], pad_id)
        mask = torch.zeros_like(attention, dtype=torch.bool)
        for i, (p, c) in enumerate(batch):
            mask[i, len(p) : len(p) + len(c)] = True
        input_ids, attention, mask = (t.to(model.device) for t in (input_ids, attention, mask))
        with torch.no_grad():
            logits = model(input_ids=input_ids, attention_mask=attention).logits.float()
        logprobs = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
        target = mask[:, 1:]
        for i, total, count in zip(indices, (logprobs * target).sum(-1).tolist(), target.sum(-1).tolist()):
            sums[i], counts[i] = total, count
    return sums, counts


def softplus(x: float) -> float:
    """log(1 + e^x) without overflow: -log sigmoid(m) = softplus(-m)."""
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def preference_metrics(model, reference, tokenizer, records: list[dict], settings) -> tuple[dict, dict, list]:
    """(metrics, intervals, per-pair rows) of the implicit reward and log-prob rankings."""
    triples = [tokenize_pair(tokenizer, r) for r in records]
    sequences = [(p, c) for p, c, _ in triples] + [(p, r) for p, _, r in triples]
    pad = tokenizer.pad_token_id
    policy, counts = completion_logps(model, sequences, settings.batch_size, pad)
    ref = policy if reference is model else completion_logps(reference, sequences, settings.batch_size, pad)[0]
    return pair_metrics(records, policy, ref, counts, settings)


def pair_metrics(records: list[dict], policy: list[float], ref: list[float], counts: list[int],
                 settings) -> tuple[dict, dict, list]:
    """(metrics, intervals, per-pair rows) from summed completion log-probs under policy and reference.

    Each list holds the chosen completions of `records` in order, then the rejected ones.
    """
    n = len(records)
    rows = []
    for i, record in enumerate(records):
        pc, pr, rc, rr = policy[i], policy[n + i], ref[i], ref[n + i]
        nc, nr = max(counts[i], 1), max(counts[n + i], 1)
        rows.append({
            "id": record["id"],
            "margin": settings.beta * ((pc - rc) - (pr - rr)),
            "logp_chosen": pc, "logp_rejected": pr, "ref_logp_chosen": rc, "ref_logp_rejected": rr,
            "tokens_chosen": counts[i], "tokens_rejected": counts[n + i],
            "logp_accuracy": pc > pr, "logp_accuracy_normalized": pc / nc > pr / nr,
        })
    margins = [r["margin"] for r in rows]
    won = [1.0 if m > 0 else 0.0 for m in margins]
    logp_won = [1.0 if r["logp_accuracy"] else 0.0 for r in rows]
    logp_norm_won = [1.0 if r["logp_accuracy_normalized"] else 0.0 for r in rows]
    p05, median, p95 = intervals.quantiles(margins, [0.05, 0.5, 0.95])
    metrics = {
        "pairs": n,
        "implicit_reward_accuracy": intervals.mean(won),
        "reward_margin_mean": intervals.mean(margins),
        "reward_margin_std": intervals.std(margins),
        "reward_margin_p05": p05, "reward_margin_median": median, "reward_margin_p95": p95,
        "logp_accuracy": intervals.mean(logp_won),
        "logp_accuracy_normalized": intervals.mean(logp_norm_won),
        "logp_chosen_mean": intervals.mean([r["logp_chosen"] for r in rows]),
        "logp_rejected_mean": intervals.mean([r["logp_rejected"] for r in rows]),
        # The two terms of DPO's loss on the held-out pairs (TRL's `sigmoid` and `sft` loss types), so
        # a combined training loss can be shown with its parts: -log sigmoid(margin) per pair, and the
        # chosen replies' NLL per token (TRL's `sft` term averages over every chosen token of a batch).
        "sigmoid_loss": intervals.mean([softplus(-m) for m in margins]),
        "chosen_nll_per_token": (-sum(r["logp_chosen"] for r in rows) / max(1, sum(r["tokens_chosen"] for r in rows))
                                 if rows else None),
    }
    boot = lambda values: bootstrap(values, settings)  # noqa: E731
    bounds = {"implicit_reward_accuracy": boot(won), "reward_margin_mean": boot(margins),
              "logp_accuracy": boot(logp_won), "logp_accuracy_normalized": boot(logp_norm_won)}
    return metrics, bounds, rows


def bootstrap(values: list[float], settings) -> dict | None:
    """The percentile bootstrap interval of the mean (settings: bootstrap_samples, seed), None for no values."""
    interval = intervals.bootstrap_interval(values, settings.bootstrap_samples, settings.seed)
    if interval is None:
        return None
    return {"low": interval[0], "high": interval[1], "method": f"bootstrap ({settings.bootstrap_samples} resamples)"}
