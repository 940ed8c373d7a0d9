"""Two claims of DPO's grouped and packed batching that no other test pins (issue 23, item 4), through the
public functions of prefalign.train.packing and prefalign.train.dpo_trainer:

- a packed row gives every sequence position ids that restart at 0 (RoPE attention is relative, so the
  log-probs alone cannot tell: a wrong offset shifts a whole sequence's positions and changes nothing
  there, but absolute-position models and the varlen kernels' sequence inference depend on it);
- each micro-batch's loss weighs its pairs as a share of the step's pairs, so an unequal cut ([3, 1]
  pairs) sums to the padded step's gradient (1 / number of micro-batches would agree only for equal cuts,
  which is all the other tests' token budgets make).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from train.test_dpo_batching import settings, tiny, trainer_for  # noqa: F401  (tiny: the module's fixture)

from prefalign.train.batching import Batching, plan_grouped
from prefalign.train.packing import pack_forward


def test_packed_position_ids_restart_at_every_sequence():
    import torch

    seen = {}

    def inner(input_ids=None, attention_mask=None, position_ids=None, shift_labels=None, fused_lm_head=False,
              **kwargs):
        seen.update(input_ids=input_ids, position_ids=position_ids, shift_labels=shift_labels, **kwargs)
        return SimpleNamespace(log_probs=input_ids.float() / 10)  # a per-token output to scatter back

    lengths = [4, 2, 5]
    ids = torch.tensor([[11, 12, 13, 14, 0], [21, 22, 0, 0, 0], [31, 32, 33, 34, 35]])
    mask = (torch.arange(5)[None, :] < torch.tensor(lengths)[:, None]).long()
    labels = ids.masked_fill(mask == 0, -100)
    out = pack_forward(inner, boundaries_as_kwargs=True)(input_ids=ids, attention_mask=mask, labels=labels,
                                                        fused_lm_head=True)
    assert seen["input_ids"].tolist() == [[11, 12, 13, 14, 21, 22, 31, 32, 33, 34, 35]]
    assert seen["position_ids"].tolist() == [[0, 1, 2, 3, 0, 1, 0, 1, 2, 3, 4]]
    assert seen["cu_seq_lens_q"].tolist() == [0, 4, 6, 11] and seen["max_length_q"] == 5
    # Each sequence predicts only its own next tokens: its last position has no label across the boundary.
    assert seen["shift_labels"].tolist() == [[12, 13, 14, -100, 22, -100, 32, 33, 34, 35, -100]]
    # Outputs go back to the padded layout, shifted as TRL reads them (position t scores token t + 1).
    expected = torch.tensor([[1.1, 1.2, 1.3, 1.4], [2.1, 2.2, 0, 0], [3.1, 3.2, 3.3, 3.4]])
    assert torch.allclose(out.log_probs, expected)


def budget_for(row_lengths: list[int], sizes: list[int]) -> int:
    """A token budget at which the grouped cut of these pairs has micro-batches of these sizes."""
    for budget in range(2, 4 * 2 * max(row_lengths) + 1):
        if sorted(len(g) for g in plan_grouped(row_lengths, budget)) == sorted(sizes):
            return budget
    raise AssertionError(f"no budget cuts {row_lengths} into {sizes}")


def test_an_unequal_cut_has_the_padded_step_gradient(tiny):  # noqa: F811
    """One optimizer step of 4 pairs (policy != reference), padded in one micro-batch vs grouped as [3, 1]."""
    import torch

    def step(mode, inputs=None):
        trainer = trainer_for(tiny, settings(batching=mode, batch_size=4, gradient_accumulation_steps=1))
        torch.manual_seed(1)
        for name, parameter in trainer.model.named_parameters():
            if "lora_B" in name:
                parameter.data.normal_(0.0, 0.05)
        trainer.model.train()
        trainer.current_gradient_accumulation_steps = 1
        inputs = inputs if inputs is not None else next(iter(trainer.get_train_dataloader()))
        if mode == "grouped":
            lengths = inputs["attention_mask"].sum(dim=1).tolist()
            rows = [max(c, r) for c, r in zip(lengths[:4], lengths[4:])]
            trainer.prefalign_batching = Batching("grouped", budget_for(rows, [3, 1]), "test: a [3, 1] cut")
            assert sorted(len(g) for g in trainer.micro_batches(inputs)) == [1, 3]
        loss = trainer.training_step(trainer.model, inputs)
        grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
        return loss.item(), grads, inputs, trainer.prefalign_micro_batches

    padded_loss, padded, inputs, _ = step("padded")
    cut_loss, cut, _, micro_batches = step("grouped", inputs)
    assert micro_batches == [2]
    assert cut_loss == pytest.approx(padded_loss, abs=1e-5)
    assert padded and all(g.abs().max() > 0 for g in padded.values())
    for name, grad in padded.items():
        assert (cut[name] - grad).abs().max() <= 1e-5 * grad.abs().max(), name
