"""A tiny reward model trained offline with TRL's RewardTrainer, for the reward-model judge's tests.

Preference data made here: the chosen reply is the task's right answer, the rejected one is
the right answer run on into junk letters (a run-on answer, as a small model writes). A
sequence-classification Llama of ~30k parameters learns that in a few seconds on a CPU.
"""

from __future__ import annotations

import random
from pathlib import Path

from prefalign.data import tasks

JUNK = "xzqj"


def conversation(question: str, answer: str) -> list[dict]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def run_on(rng: random.Random, right: str) -> str:
    return right + " " + "".join(rng.choice(JUNK) for _ in range(rng.randint(4, 10)))


def preference_rows(count: int, seed: int) -> list[dict]:
    """TRL's explicit-prompt conversational preference rows: prompt, chosen, rejected."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        task = tasks.TASKS[rng.choice(list(tasks.TASKS))]
        question, args = task.make(rng)
        right = task.solve(*args)
        rows.append({"prompt": [{"role": "user", "content": question}],
                     "chosen": [{"role": "assistant", "content": right}],
                     "rejected": [{"role": "assistant", "content": run_on(rng, right)}]})
    return rows


def train_tiny_reward_model(out: Path, steps: int = 40, seed: int = 0) -> Path:
    """Train and save (safetensors, tokenizer, chat template) a one-label reward model in `out`."""
    import tempfile

    import torch
    from datasets import Dataset
    from transformers import LlamaConfig, LlamaForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    from prefalign.train.base_model import train_tokenizer

    torch.set_num_threads(1)
    rows = preference_rows(400, seed)
    records = [{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in rows]
    tokenizer = train_tokenizer(records, vocab_size=320)
    torch.manual_seed(seed)
    model = LlamaForSequenceClassification(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=128, num_labels=1, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=None, tie_word_embeddings=False))
    with tempfile.TemporaryDirectory(prefix="prefalign-rm-") as scratch:
        config = RewardConfig(output_dir=scratch, max_steps=steps, per_device_train_batch_size=16, learning_rate=3e-3,
                              logging_steps=10, save_strategy="no", report_to="none", seed=seed, use_cpu=True,
                              bf16=False, activation_checkpointing=False, disable_tqdm=True, dataloader_num_workers=0,
                              max_length=128)
        trainer = RewardTrainer(model=model, args=config, train_dataset=Dataset.from_list(rows),
                                processing_class=tokenizer)
        trainer.train()
    trainer.model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return Path(out)
