"""Packed (padding-free) forwards for DPO: one row of sequences end to end, attention kept inside each.

TRL's DPO trainer calls the policy (and the reference) as
`model(input_ids, attention_mask, labels=..., fused_lm_head=True)` on right-padded rows and
reads per-token log-probs in that padded layout. `pack_forward` wraps the forward TRL's fused
LM head installed: it moves the real tokens of all rows into one row, gives each sequence
position ids from 0 and next-token labels of its own (`shift_labels`, so nothing is predicted
across a boundary), runs the model once, and scatters the per-token outputs back into the
padded layout. Everything TRL computes from them (sums per sequence, the losses, the metrics)
is unchanged, and no padding is computed.

Attention inside each sequence:
  - Unsloth infers the sequences from position ids that restart at 0 (a batch of one row
    without an attention mask) and runs its varlen path; `varlen_for_unsloth` lets that path
    use torch's varlen flash kernel on torch builds whose kernel lacks `enable_gqa`.
  - transformers models (the trl backend) get the attention implementation "prefalign_varlen"
    (registered here): torch's varlen flash kernel on a GPU in bf16/fp16, else one SDPA call per
    sequence (exact; the CPU path and the tests). The sequence boundaries travel as the
    `cu_seq_lens_*` keyword arguments transformers hands to attention, so recomputation under
    activation checkpointing sees them too.
"""

from __future__ import annotations

import functools
import inspect

VARLEN_ATTENTION = "prefalign_varlen"
# Per-token fields of TRL's FusedCausalLMOutput, laid out like the labels.
PER_TOKEN_FIELDS = ("log_probs", "entropy", "log_sum_sq_probs", "mean_logits", "is_top1", "label_mask")


def torch_varlen_attn():
    """torch's varlen attention function, or None where this torch build has none."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    return varlen_attn


@functools.lru_cache(maxsize=1)
def _varlen_parameters() -> frozenset:
    fn = torch_varlen_attn()
    return frozenset(inspect.signature(fn).parameters) if fn is not None else frozenset()


def varlen_causal(query, key, value, cu_seqlens, max_seqlen: int, scale: float | None = None):
    """Causal attention over packed sequences with torch's varlen flash kernel.

    query (T, H, D), key/value (T, Hkv, D) -> (T, H, D). Grouped-query heads are passed as they
    are where the kernel takes `enable_gqa`, else repeated to H heads (torch 2.11's kernel has
    no `enable_gqa`). Causality is `window_size=(-1, 0)` (torch >= 2.11) or `is_causal=True`.
    """
    params = _varlen_parameters()
    kwargs = {"scale": scale}
    if key.shape[1] != query.shape[1]:
        if "enable_gqa" in params:
            kwargs["enable_gqa"] = True
        else:
            repeat = query.shape[1] // key.shape[1]
            key, value = key.repeat_interleave(repeat, dim=1), value.repeat_interleave(repeat, dim=1)
    if "window_size" in params:
        kwargs["window_size"] = (-1, 0)
    else:
        kwargs["is_causal"] = True
    return torch_varlen_attn()(query, key, value, cu_seqlens, cu_seqlens, max_seqlen, max_seqlen, **kwargs)


def varlen_kernel_usable(query) -> bool:
    return (query.is_cuda and query.dtype.itemsize == 2 and torch_varlen_attn() is not None
            and ("window_size" in _varlen_parameters() or "is_causal" in _varlen_parameters()))


def varlen_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """transformers attention function (query (B, H, T, D)) -> ((B, T, H, D), None).

    With `cu_seq_lens_q` (a packed row, B = 1): attention within each sequence. Without: plain
    causal SDPA, which is exact for right-padded rows (a real token never sees the padding
    after it), so the same model also scores padded batches.
    """
    import torch
    import torch.nn.functional as F

    cu_seqlens = kwargs.get("cu_seq_lens_q")
    groups = query.shape[1] // key.shape[1]
    if cu_seqlens is None:
        if attention_mask is not None:
            raise RuntimeError(f"{VARLEN_ATTENTION} attention is only for packed or right-padded causal batches "
                               "without a 4D mask; this is a prefalign bug")
        out = F.scaled_dot_product_attention(query, key, value, is_causal=True, scale=scaling,
                                             enable_gqa=groups > 1)
        return out.transpose(1, 2).contiguous(), None
    if query.shape[0] != 1:
        raise RuntimeError(f"{VARLEN_ATTENTION}: a packed batch is one row, got {query.shape[0]}")
    q, k, v = (x[0].transpose(0, 1) for x in (query, key, value))  # (T, heads, D)
    if varlen_kernel_usable(q):
        out = varlen_causal(q.contiguous(), k.contiguous(), v.contiguous(), cu_seqlens.to(torch.int32),
                            int(kwargs["max_length_q"]), scaling)
        return out.unsqueeze(0), None
    bounds = cu_seqlens.tolist()
    pieces = []
    for start, end in zip(bounds[:-1], bounds[1:]):
        if end > start:
            piece = F.scaled_dot_product_attention(query[:, :, start:end], key[:, :, start:end],
                                                   value[:, :, start:end], is_causal=True, scale=scaling,
                                                   enable_gqa=groups > 1)
            pieces.append(piece)
    out = torch.cat(pieces, dim=2)
    return out.transpose(1, 2).contiguous(), None


def register_varlen_attention() -> None:
    """Make "prefalign_varlen" an attention implementation transformers models can use."""
    from transformers import AttentionInterface

    AttentionInterface.register(VARLEN_ATTENTION, varlen_attention)


def pack_forward(inner, boundaries_as_kwargs: bool):
    """Wrap a forward that takes `fused_lm_head=True` so padded batches run packed (see the module doc).

    `boundaries_as_kwargs`: pass the sequence boundaries as `cu_seq_lens_*` / `max_length_*`
    (transformers attention; prefalign_varlen reads them). Unsloth finds them from the position
    ids itself and is given none.
    """

    @functools.wraps(inner)
    def forward(*args, input_ids=None, attention_mask=None, labels=None, fused_lm_head=False, **kwargs):
        if args or not fused_lm_head or attention_mask is None or labels is None or input_ids is None:
            if labels is not None:
                kwargs["labels"] = labels
            return inner(*args, input_ids=input_ids, attention_mask=attention_mask, fused_lm_head=fused_lm_head,
                         **kwargs)
        import torch

        mask = attention_mask.bool()
        rows, width = input_ids.shape
        lengths = mask.sum(dim=1)
        if not torch.equal(mask, torch.arange(width, device=mask.device) < lengths[:, None]):
            raise RuntimeError("packed batching needs right-padded rows; this is a prefalign bug")
        shift_labels = torch.full_like(labels, -100)
        shift_labels[:, :-1] = labels[:, 1:]
        positions = (torch.cumsum(mask, dim=1) - 1)[mask].unsqueeze(0)
        kwargs.pop("position_ids", None)
        if boundaries_as_kwargs:
            cu_seqlens = torch.zeros(rows + 1, dtype=torch.int32, device=mask.device)
            cu_seqlens[1:] = torch.cumsum(lengths, dim=0)
            longest = int(lengths.max())
            kwargs.update(cu_seq_lens_q=cu_seqlens, cu_seq_lens_k=cu_seqlens, max_length_q=longest,
                          max_length_k=longest)
        out = inner(input_ids=input_ids[mask].unsqueeze(0), attention_mask=None, position_ids=positions,
                    shift_labels=shift_labels[mask].unsqueeze(0), fused_lm_head=True, **kwargs)
        for name in PER_TOKEN_FIELDS:
            value = getattr(out, name, None)
            if value is not None:
                padded = value.new_zeros((rows, width)).masked_scatter(mask, value[0])
                setattr(out, name, padded[:, :-1])  # TRL's layout: position t scores token t + 1
        return out

    forward.prefalign_packed = True
    return forward


def install_packing(model, boundaries_as_kwargs: bool) -> None:
    """Wrap the forward of `model` (the module TRL gave its fused LM head) with pack_forward, once."""
    if not getattr(model.forward, "prefalign_packed", False):
        model.forward = pack_forward(model.forward, boundaries_as_kwargs)
