"""DPO batching (padded, grouped, packed) and the cached reference log-probs, on the CPU in fp32.

The claims: packed and grouped micro-batches give the padded per-sequence log-probs and loss
(1e-5), training follows the padded run step for step, the optimizer sees the same pairs per
step in every mode, and the reference-logps artifact replaces the reference pass exactly.
(The same comparison in bf16 on an H200: bench/dpo_equivalence.py, results in bench/results/.)
"""

from __future__ import annotations

import itertools
import json
import math
import random
from pathlib import Path

import pytest
from conftest import run_cli

from prefalign.train.batching import MICRO_BATCH_OVERHEAD_TOKENS, plan_grouped, plan_packed, resolve_batching

VOCAB = 96


# ---------------------------------------------------------------- the cut (pure)

def grouped_cost(groups, lengths):
    return sum(2 * len(g) * max(lengths[i] for i in g) + MICRO_BATCH_OVERHEAD_TOKENS for g in groups)


@pytest.mark.parametrize("seed", range(6))
def test_grouped_cut_is_the_cheapest_cut_of_the_sorted_pairs(seed):
    rng = random.Random(seed)
    lengths = [rng.choice([rng.randint(5, 60), rng.randint(200, 900)]) for _ in range(7)]
    budget = 2 * 3 * max(lengths)
    groups = plan_grouped(lengths, budget)
    assert sorted(i for g in groups for i in g) == list(range(7))
    assert all(2 * len(g) * max(lengths[i] for i in g) <= budget for g in groups)
    order = sorted(range(7), key=lambda i: (-lengths[i], i))
    best = min(grouped_cost([order[a:b] for a, b in zip((0, *cuts), (*cuts, 7))], lengths)
               for k in range(7) for cuts in itertools.combinations(range(1, 7), k)
               if all(2 * (b - a) * lengths[order[a]] <= budget for a, b in zip((0, *cuts), (*cuts, 7))))
    assert grouped_cost(groups, lengths) == best


def test_grouped_cut_separates_the_long_tail_and_keeps_a_lone_long_pair():
    lengths = [1000] + [50] * 31
    groups = plan_grouped(lengths, 2 * 32 * 1024)
    assert groups[0] == [0] and sorted(groups[1]) == list(range(1, 32))  # not 64 rows padded to 1000
    assert plan_grouped([5000, 10], 1000) == [[0], [1]]  # over the budget alone: a micro-batch of its own


def test_packed_cut_fills_each_micro_batch_up_to_the_budget():
    rng = random.Random(0)
    tokens = [rng.randint(20, 400) for _ in range(40)]
    groups = plan_packed(tokens, 1500)
    assert sorted(i for g in groups for i in g) == list(range(40))
    assert all(sum(tokens[i] for i in g) <= 1500 for g in groups)
    assert len(groups) <= math.ceil(sum(tokens) / 1500) + 1
    assert plan_packed([3000, 10], 1000) == [[0], [1]]


def test_under_ddp_a_process_with_fewer_micro_batches_splits_its_largest():
    from prefalign.train.dpo_trainer import split_to

    groups = [[0, 1, 2, 3, 4], [5], [6, 7]]
    assert split_to(groups, 3) == groups
    four = split_to(groups, 4)
    assert four == [[0, 1], [2, 3, 4], [5], [6, 7]]
    assert sorted(i for g in split_to(groups, 8) for i in g) == list(range(8)) and len(split_to(groups, 8)) == 8


@pytest.mark.parametrize("batching, losses, device, backend, varlen, mode", [
    ("auto", ["sigmoid"], "cpu", "trl", True, "grouped"),
    ("auto", ["sigmoid"], "cuda", "unsloth", False, "packed"),
    ("auto", ["sigmoid"], "cuda", "trl", True, "packed"),
    ("auto", ["sigmoid"], "cuda", "trl", False, "grouped"),
    ("packed", ["sigmoid", "sft"], "cpu", "trl", False, "packed"),
    ("padded", ["sigmoid"], "cuda", "unsloth", True, "padded"),
    ("packed", ["sigmoid", "aot"], "cuda", "unsloth", True, "padded"),  # aot sorts across the batch
])
def test_batching_resolution(batching, losses, device, backend, varlen, mode):
    resolved = resolve_batching(batching, 0, 16, 512, losses, device, backend, varlen)
    assert resolved.mode == mode and resolved.why
    assert resolved.max_batch_tokens == 2 * 16 * 512
    assert resolve_batching(batching, 4096, 16, 512, losses, device, backend, varlen).max_batch_tokens == 4096


# ---------------------------------------------------------------- a tiny model and pairs of varied lengths

@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    root = tmp_path_factory.mktemp("tiny-dpo")
    specials = ["<|pad|>", "<|im_start|>", "<|im_end|>", "user", "assistant"]
    words = specials + [f"w{i}" for i in range(VOCAB - len(specials))]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|pad|>", eos_token="<|im_end|>",
                                   additional_special_tokens=["<|im_start|>"])
    fast.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }} {{ m['content'] }}<|im_end|> "
                          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant {% endif %}")
    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=VOCAB, max_position_embeddings=256,
                         tie_word_embeddings=False, eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id,
                         bos_token_id=None)
    LlamaForCausalLM(config).save_pretrained(root / "model")
    fast.save_pretrained(root / "model")
    rng = random.Random(0)

    def text(n):
        return " ".join(f"w{rng.randrange(1, VOCAB - len(specials))}" for _ in range(n))

    with open(root / "train.jsonl", "w", encoding="utf-8") as handle:
        for i in range(24):
            handle.write(json.dumps({
                "id": f"tiny/{i}", "source": "tiny", "prompt": [{"role": "user", "content": text(rng.randint(1, 30))}],
                "chosen": [{"role": "assistant", "content": text(rng.randint(1, 50))}],
                "rejected": [{"role": "assistant", "content": text(rng.randint(1, 50))}], "meta": {}}) + "\n")
    return root


def settings(**kw):
    from prefalign.train.dpo import DPOSettings

    values = dict(backend="trl", precision="fp32", batch_size=2, gradient_accumulation_steps=2, max_steps=3,
                  logging_steps=1, learning_rate=1e-2, warmup_ratio=0.0, lr_scheduler="constant", loss_type=["sigmoid"],
                  seed=0, threads=1, max_length=64, max_batch_tokens=160, checkpoint_steps=0)
    return DPOSettings(**{**values, **kw})


def trainer_for(tiny: Path, s):
    from prefalign.jsonl import read_jsonl
    from prefalign.train import backends
    from prefalign.train.batching import resolve_batching
    from prefalign.train.dpo import dpo_config, dpo_dataset
    from prefalign.train.dpo_trainer import trainer_class

    resolved = backends.resolve(s)
    model, tokenizer, peft_config = backends.load_policy(tiny / "model", s, resolved)
    batching = resolve_batching(s.batching, s.max_batch_tokens, s.batch_size, s.max_length, s.loss_type, "cpu", "trl",
                                False)

    def shared_args(config_class):
        return backends.trainer_kwargs(s, resolved, tiny / "out", config_class)

    return trainer_class()(model=model, ref_model=None, args=dpo_config(s, shared_args, batching, False),
                           train_dataset=dpo_dataset(read_jsonl(tiny / "train.jsonl")), processing_class=tokenizer,
                           peft_config=peft_config, batching=batching, backend="trl")


def sequence_logps(trainer, inputs, groups):
    """Per-sequence (chosen, rejected) log-probs of the policy for a collated step cut into `groups`."""
    import torch

    from prefalign.train.dpo_trainer import micro_batch

    pairs = inputs["input_ids"].shape[0] // 2
    chosen, rejected = torch.zeros(pairs, dtype=torch.float64), torch.zeros(pairs, dtype=torch.float64)
    for group in groups:
        batch = micro_batch(inputs, group)
        labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
        with torch.no_grad():
            out = trainer.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels,
                                fused_lm_head=True, use_cache=False)
        c, r = out.log_probs.sum(dim=1).double().chunk(2)
        chosen[group], rejected[group] = c, r
    return chosen, rejected


def test_packed_and_grouped_log_probs_and_loss_equal_the_padded_ones(tiny):
    import torch
    import torch.nn.functional as F

    trainer = trainer_for(tiny, settings(batching="grouped", batch_size=8, gradient_accumulation_steps=1))
    torch.manual_seed(1)
    for name, parameter in trainer.model.named_parameters():
        if "lora_B" in name:
            parameter.data.normal_(0.0, 0.05)  # policy != reference
    trainer.model.eval()
    inputs = trainer.data_collator([trainer.train_dataset[i] for i in range(8)])
    everything = [list(range(8))]
    padded = sequence_logps(trainer, inputs, everything)
    grouped_cut = trainer.micro_batches(inputs)
    assert len(grouped_cut) > 1  # the budget really cuts
    grouped = sequence_logps(trainer, inputs, grouped_cut)
    trainer.prefalign_batching = type(trainer.prefalign_batching)("packed", 160, "")
    packed_cut = trainer.micro_batches(inputs)
    trainer._install_packing()
    packed = sequence_logps(trainer, inputs, packed_cut)
    packed_whole = sequence_logps(trainer, inputs, everything)  # all 16 sequences in one row
    with torch.no_grad():
        trainer.model.disable_adapter_layers()
        reference = sequence_logps(trainer, inputs, everything)
        trainer.model.enable_adapter_layers()

    def loss(c, r):
        return F.softplus(-0.1 * ((c - reference[0]) - (r - reference[1]))).mean().item()

    assert padded[0].abs().min() > 1.0  # real sums, not zeros
    for other in (grouped, packed, packed_whole):
        for a, b in zip(padded, other):
            assert torch.allclose(a, b, rtol=1e-5, atol=1e-5), (a - b).abs().max()
        assert abs(loss(*padded) - loss(*other)) < 1e-5
    assert abs(loss(*padded) - math.log(2)) > 1e-3  # the comparison is not of two ln 2s


def train(tiny: Path, tmp: Path, **kw):
    from prefalign.train.dpo import DPO

    metrics, history = DPO.train(tiny / "model", tiny / "train.jsonl", tmp / "model", settings(**kw),
                                 adapter_out=tmp / "adapter")
    return metrics, [e for e in history if "loss" in e]


def adapter(tmp: Path):  # noqa: D401 (the trained LoRA weights)
    from safetensors.torch import load_file

    return load_file(tmp / "adapter/adapter_model.safetensors")


@pytest.mark.slow  # trains DPO
@pytest.mark.parametrize("losses, padded_batch", [(["sigmoid"], 2), (["sigmoid", "sft"], 4)])
def test_training_follows_the_padded_run_step_for_step(tiny, tmp_path, losses, padded_batch):
    """Same loss and gradient norm at every step of a real run (3 steps, AdamW).

    The NLL term of `sft` is a mean over the chosen tokens of a micro-batch in TRL's padded
    run; grouped and packed take it over the whole step, which is the padded run with one
    micro-batch per step (4 pairs): that is the run they are compared with.
    """
    kw = dict(loss_type=losses, loss_weights=[1.0, 3.0] if len(losses) == 2 else None)
    _, padded_log = train(tiny, tmp_path / "padded", batching="padded", batch_size=padded_batch,
                          gradient_accumulation_steps=4 // padded_batch, **kw)
    for mode in ("grouped", "packed"):
        metrics, log = train(tiny, tmp_path / mode, batching=mode, **kw)
        assert metrics["train"]["batching"]["mode"] == mode  # (that max_batch_tokens 160 cuts: the test below)
        assert len(log) == len(padded_log) == 3
        for ours, theirs in zip(log, padded_log):
            assert ours["loss"] == pytest.approx(theirs["loss"], abs=1e-5)
            assert ours["grad_norm"] == pytest.approx(theirs["grad_norm"], rel=1e-4)
        if losses == ["sigmoid"]:
            assert metrics["train"]["first_loss"] == pytest.approx(math.log(2), abs=1e-5)


@pytest.mark.parametrize("losses", [["sigmoid"], ["sigmoid", "sft"], ["ipo"]])
def test_a_cut_step_has_the_padded_step_gradient(tiny, losses):
    """Every LoRA gradient of one optimizer step (4 pairs), cut or not, policy != reference.

    (Weights after AdamW steps are no fair comparison: Adam's first update is lr x sign(g), so
    a gradient of 1e-12 either way moves a weight by the full learning rate.)
    """
    import torch

    def gradients(mode, batch_size):
        trainer = trainer_for(tiny, settings(batching=mode, batch_size=batch_size,
                                             gradient_accumulation_steps=4 // batch_size, loss_type=losses))
        torch.manual_seed(1)
        for name, parameter in trainer.model.named_parameters():
            if "lora_B" in name:
                parameter.data.normal_(0.0, 0.05)
        trainer.model.train()
        trainer.current_gradient_accumulation_steps = 1  # set by the Trainer's loop; one micro-batch of 4 here
        loss = trainer.training_step(trainer.model, next(iter(trainer.get_train_dataloader())))
        grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
        return loss.item(), grads, trainer.prefalign_micro_batches

    loss, padded, _ = gradients("padded", 4)
    assert len(padded) == 2 * 7 * 2 and all(g.abs().max() > 0 for g in padded.values())
    for mode in ("grouped", "packed"):
        cut_loss, grads, cuts = gradients(mode, 2)
        assert cuts == [len(cuts) and cuts[0]] and cuts[0] >= 2  # one step, cut in two or more
        assert cut_loss == pytest.approx(loss, abs=1e-5)
        for name, grad in padded.items():
            # fp32: within 1e-5 of the gradient's own scale (an element near zero carries rounding of the rest)
            assert (grads[name] - grad).abs().max() <= 1e-5 * grad.abs().max(), (mode, name)


def test_the_optimizer_sees_the_same_pairs_per_step_in_every_mode(tiny):
    """The Trainer's data order: every mode's step holds the pairs of the padded run's step."""
    def steps(mode):
        trainer = trainer_for(tiny, settings(batching=mode))
        batches = []
        for batch in itertools.islice(trainer.get_train_dataloader(), 8):
            pairs = batch["input_ids"].shape[0] // 2
            batches.append({tuple(row[mask.bool()].tolist()) for row, mask in
                            zip(batch["input_ids"][:pairs], batch["attention_mask"][:pairs])})
        per_step = 2 if mode == "padded" else 1  # padded: gradient_accumulation_steps micro-batches
        return [set().union(*batches[i:i + per_step]) for i in range(0, 8, per_step)][:4]

    padded = steps("padded")
    assert all(len(s) == 4 for s in padded) and len({frozenset(s) for s in padded}) == 4
    assert steps("grouped") == padded
    assert steps("packed") == padded


# ---------------------------------------------------------------- the reference log-probs artifact

@pytest.mark.slow  # trains DPO
def test_cached_reference_replaces_the_reference_pass(tiny, tmp_path):
    import torch

    run_cli("reference-logps", "--sft", tiny / "model", "--train", tiny / "train.jsonl", "--out",
            tmp_path / "ref.json", "--environment", tmp_path / "env.json", "--backend", "trl", "--precision", "fp32",
            "--max-length", "64", "--batch-size", "4", "--batching", "packed", "--max-batch-tokens", "160",
            "--threads", "1")
    data = json.loads((tmp_path / "ref.json").read_text())
    assert [p["id"] for p in data["pairs"]] == [f"tiny/{i}" for i in range(24)]
    assert data["resolved"]["precision"] == "fp32" and data["settings"]["max_length"] == 64
    assert all(p["chosen"] < 0 and p["rejected"] < 0 for p in data["pairs"])

    from prefalign.train.dpo import DPO

    cached, _ = DPO.train(tiny / "model", tiny / "train.jsonl", tmp_path / "cached", settings(batching="packed"),
                          adapter_out=tmp_path / "cached/adapter", inputs={"reference_logps": tmp_path / "ref.json"})
    assert cached["train"]["reference"].startswith("read from")
    assert cached["train"]["first_loss"] == pytest.approx(math.log(2), abs=1e-5)
    in_step, _ = train(tiny, tmp_path / "in_step", batching="packed")
    assert in_step["train"]["reference"].startswith("in training")
    assert cached["train"]["train_loss"] == pytest.approx(in_step["train"]["train_loss"], abs=1e-5)
    for key, value in adapter(tmp_path / "in_step").items():
        assert torch.allclose(adapter(tmp_path / "cached")[key], value, atol=2e-4), key

    # Computed for another max_length: not this run's reference; DPO scores the reference itself and says why.
    other, _ = DPO.train(tiny / "model", tiny / "train.jsonl", None, settings(batching="packed", max_length=48),
                         inputs={"reference_logps": tmp_path / "ref.json"})
    assert "does not fit this run (max_length 64 here, 48 in this run)" in other["train"]["reference"]


@pytest.mark.slow  # trains DPO
def test_a_reference_file_for_other_pairs_is_refused_naming_the_pair(tiny, tmp_path):
    data = {"format": "prefalign-reference-logps/1", "settings": {"max_length": 64}, "resolved": {},
            "pairs": [{"id": f"tiny/{i}", "chosen": -1.0, "rejected": -1.0} for i in range(24)]}
    data["pairs"][5]["id"] = "other/5"
    (tmp_path / "ref.json").write_text(json.dumps(data))
    result = run_cli("dpo", "--sft", tiny / "model", "--train", tiny / "train.jsonl", "--out", tmp_path / "out",
                     "--metrics", tmp_path / "m.json", "--log-history", tmp_path / "h.jsonl", "--reference-logps",
                     tmp_path / "ref.json", "--max-steps", "1", check=False)
    assert result.returncode == 3
    assert f"{tmp_path / 'ref.json'}: pair 5: key 'id': expected 'tiny/5' (line 6 of the train file)" in result.stderr
    assert not (tmp_path / "out").exists()
