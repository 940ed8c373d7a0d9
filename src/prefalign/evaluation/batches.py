"""Token-id rows to one padded batch: the only padding code of the evaluation stage (scoring,
generation and reward-model judging all go through it)."""

from __future__ import annotations


def padded(rows: list[list[int]], pad_id: int, left: bool = False):
    """(input_ids, attention_mask) long tensors of shape (rows, longest row).

    Right padding (the default) keeps each row's tokens at the same positions for scoring;
    left padding (`left=True`) puts every prompt's end at the last column for generation.
    """
    import torch

    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(width - len(row), width) if left else slice(0, len(row))
        input_ids[i, span] = torch.tensor(row, dtype=torch.long)
        attention[i, span] = 1
    return input_ids, attention
