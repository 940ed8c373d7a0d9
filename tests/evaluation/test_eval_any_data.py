"""Evaluation on data the task verifier cannot judge: the length-controlled win rate on planted
data, the KL on every held-out prompt with no judge at all, and what `auto` picks at the step."""

from __future__ import annotations

import random

import pytest

from prefalign.errors import ConfigError
from prefalign.evaluation.evaluate import EvalSettings, generation_metrics, resolve_judge
from prefalign.evaluation.generation import generate, prompt_ids
from prefalign.evaluation.judges import TaskJudge, choose_judge
from prefalign.evaluation.length_control import lc_win_rate


def planted(prefer_model: float | None, seed: int = 3, n: int = 400):
    """Outcomes and lengths of n prompts where the model answers longer on 80% of them.

    prefer_model None: a judge that prefers the longer answer 90% of the time, whoever wrote it.
    Else: a judge that prefers the model with that probability, whatever the lengths."""
    rng = random.Random(seed)
    outcomes, model_lengths, baseline_lengths = [], [], []
    for _ in range(n):
        baseline = rng.randint(10, 40)
        gap = rng.randint(5, 15) * (1 if rng.random() < 0.8 else -1)
        longer_is_model = gap > 0
        p = (0.9 if longer_is_model else 0.1) if prefer_model is None else prefer_model
        outcomes.append(1.0 if rng.random() < p else 0.0)
        model_lengths.append(baseline + gap)
        baseline_lengths.append(baseline)
    return outcomes, model_lengths, baseline_lengths


def test_a_judge_that_prefers_longer_answers_has_a_biased_raw_and_a_fair_lc_win_rate():
    outcomes, model_lengths, baseline_lengths = planted(prefer_model=None)
    raw = sum(outcomes) / len(outcomes)
    lc = lc_win_rate(outcomes, model_lengths, baseline_lengths, resamples=500, seed=1)
    assert raw > 0.68  # about 0.8 * 0.9 + 0.2 * 0.1 = 0.74
    assert abs(lc["win_rate"] - 0.5) < 0.06
    assert lc["interval"]["low"] < 0.5 < lc["interval"]["high"]
    assert lc["length_coefficient"] > 1.0  # the judge's preference follows length


def test_a_judge_that_ignores_length_keeps_its_win_rate_after_length_control():
    outcomes, model_lengths, baseline_lengths = planted(prefer_model=0.75)
    raw = sum(outcomes) / len(outcomes)
    lc = lc_win_rate(outcomes, model_lengths, baseline_lengths, resamples=500, seed=1)
    assert lc["win_rate"] == pytest.approx(raw, abs=0.05)
    assert lc["interval"]["low"] > 0.5


# ---------------------------------------------------------------- KL with no judge

CHATS = ["Tell me about the weather in spring.", "How do I cook rice?", "What is a good name for a cat?",
         "Why is the sky blue?", "Can you suggest a book about history?", "How do plants grow?"]


@pytest.fixture(scope="module")
def tiny_pair():
    """Two random tiny Llamas sharing one tokenizer: a policy and a reference that differ."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    from prefalign.train.base_model import train_tokenizer

    records = [{"prompt": [{"role": "user", "content": q}], "chosen": [{"role": "assistant", "content": "Sure."}],
                "rejected": [{"role": "assistant", "content": "No."}]} for q in CHATS * 5]
    tokenizer = train_tokenizer(records, vocab_size=300)
    models = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
            num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True, bos_token_id=None,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)).eval()
        model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id,
                                                   pad_token_id=tokenizer.pad_token_id, bos_token_id=None)
        models.append(model)
    return models[0], models[1], tokenizer


def direct_log_ratio(policy, reference, tokenizer, prompt, answer_ids) -> float:
    """log pi(y|x) - log pi_ref(y|x), computed here without the evaluate step's batching code."""
    import torch

    context = prompt_ids(tokenizer, prompt)
    ids = torch.tensor([context + answer_ids])

    def logp(model):
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, :-1].float()
        picked = torch.log_softmax(logits, -1).gather(-1, ids[0, 1:, None]).squeeze(-1)
        return picked[len(context) - 1 :].sum().item()

    return logp(policy) - logp(reference)


def test_kl_is_estimated_on_every_prompt_even_when_no_prompt_can_be_judged(tiny_pair):
    policy, reference, tokenizer = tiny_pair
    records = [{"id": f"c{i}", "prompt": [{"role": "user", "content": q}]} for i, q in enumerate(CHATS)]
    settings = EvalSettings(max_new_tokens=6, batch_size=4, kl_prompts=5, kl_samples_per_prompt=2,
                            bootstrap_samples=50, threads=1)
    metrics, bounds, rows, unavailable = generation_metrics(policy, reference, tokenizer, TaskJudge(), records,
                                                            settings)
    assert metrics["judged_prompts"] == 0 and metrics["task_prompts"] == 0
    assert metrics["kl_prompts"] == 5 and metrics["kl_samples"] == 10
    assert "none of the 6 distinct held-out prompts" in unavailable["judge_score_mean"]
    assert "eval.judge: auto or trained" in unavailable["judge_score_mean"]
    assert "judge_accuracy" in unavailable and "kl_mean" not in unavailable
    assert [r["score"] for r in rows] == [None] * 5 and all(not r["judged"] for r in rows)
    # The same seeded samples, scored here directly: the step's KL is their mean of per-prompt means.
    prompts = [r["prompt"] for r in records[:5]]
    samples = generate(policy, tokenizer, [p for p in prompts for _ in range(2)], settings, sample=True)
    ratios = [direct_log_ratio(policy, reference, tokenizer, prompts[i // 2], s["ids"]) for i, s in enumerate(samples)]
    per_prompt = [(ratios[2 * i] + ratios[2 * i + 1]) / 2 for i in range(5)]
    assert metrics["kl_mean"] == pytest.approx(sum(per_prompt) / 5, abs=1e-4)
    assert [r["log_ratios"] for r in rows] == [pytest.approx(ratios[2 * i : 2 * i + 2], abs=1e-4) for i in range(5)]
    assert metrics["kl_se"] > 0 and bounds["kl_mean"]["low"] < metrics["kl_mean"] < bounds["kl_mean"]["high"]


def test_auto_at_the_step_needs_a_reward_model_for_prompts_the_verifier_cannot_check():
    records = [{"id": "a", "prompt": [{"role": "user", "content": "Tell me a joke."}]},
               {"id": "b", "prompt": [{"role": "user", "content": "What is 2 + 3?"}]}]
    with pytest.raises(ConfigError, match=r"reward_model: expected a reward model with judge auto: 1 of 2 distinct "
                                          r"held-out prompts are not task prompts"):
        resolve_judge(EvalSettings(judge="auto"), records)
    judge, choice = resolve_judge(EvalSettings(judge="auto"), records[1:])
    assert isinstance(judge, TaskJudge)
    assert choice.why == "judge auto: all 1 distinct held-out prompts are task prompts, which the task verifier checks"
    # One rule (issue 20): the step's `auto` is judges.choose_judge, the workflow's resolution, on the split's prompts.
    assert choose_judge("auto", None, [], checked="x").kind == choice.kind == "task"
