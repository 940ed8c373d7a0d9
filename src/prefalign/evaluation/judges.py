"""Judges: score a model's answer to a prompt, behind one interface.

    judge = make_judge("task")                                   # the synthetic tasks' verifier
    judge = make_judge("reward_model", reward_model="path/rm")   # a local sequence-classification RM
    judge.can_score(prompt) -> bool
    judge.score(prompts, answers) -> list[float]                 # higher is better

`task` scores 1.0 when prefalign.data.tasks' verifier accepts the answer and 0.0 when not; it
can only score prompts written in one of the task templates. `reward_model` scores any
prompt: the reward model's scalar output for the conversation prompt + answer, rendered
with the reward model's own chat template (or the turns joined by newlines when it has
none). Win rates compare two models' scores prompt by prompt, so a judge's scores only
need to be comparable with each other, not calibrated.

Assumes the reward model folder is in the hub's layout (config.json, safetensors weights,
tokenizer) with one output label, as TRL's RewardTrainer saves it. Raises ConfigError for
an unknown judge, a missing folder, or a checkpoint that is not a one-label
sequence-classification model (loading a causal LM as a classifier would silently add a
random head).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

from prefalign.data import tasks
from prefalign.errors import RecordError
from prefalign.records import last_user_turn
from prefalign.settings import expect

JUDGES = ("task", "reward_model")


class Judge(Protocol):
    name: str

    def can_score(self, prompt: list[dict]) -> bool: ...

    def score(self, prompts: list[list[dict]], answers: list[str]) -> list[float]: ...

    def describe(self) -> dict: ...


class TaskJudge:
    """The synthetic tasks' verifier: 1.0 for a right answer, 0.0 for a wrong one."""

    name = "task"

    def can_score(self, prompt: list[dict]) -> bool:
        return tasks.parse(last_user_turn(prompt)) is not None

    def score(self, prompts: list[list[dict]], answers: list[str]) -> list[float]:
        scores = []
        for prompt, answer in zip(prompts, answers):
            verdict = tasks.judge(last_user_turn(prompt), answer)
            if verdict is None:
                raise RecordError(f"task judge: prompt is not one of the task templates: {last_user_turn(prompt)!r}")
            scores.append(1.0 if verdict else 0.0)
        return scores

    def describe(self) -> dict:
        return {"kind": "task"}


class RewardModelJudge:
    """A local sequence-classification reward model (one output label): its score for prompt + answer."""

    name = "reward_model"

    def __init__(self, path: Path, batch_size: int = 64):
        path = Path(path)
        config_file = path / "config.json"
        expect(config_file.is_file(), "reward_model", "a folder with a reward model (config.json, safetensors)", str(path))
        config = json.loads(config_file.read_text(encoding="utf-8"))
        architectures = config.get("architectures") or []
        expect(any(a.endswith("ForSequenceClassification") for a in architectures), "reward_model",
              "a sequence-classification checkpoint (config.json architectures *ForSequenceClassification)",
              f"{path} ({', '.join(architectures) or 'no architectures'})")
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.path = path
        self.batch_size = batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
        self.model = AutoModelForSequenceClassification.from_pretrained(
            path, trust_remote_code=False, use_safetensors=True).eval()
        expect(self.model.config.num_labels == 1, "reward_model", "a model with one output label (a scalar reward)",
              f"{path} (num_labels={self.model.config.num_labels})")
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        # The classifier reads the last non-pad token: it must know which id is padding.
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.max_length = getattr(self.model.config, "max_position_embeddings", None)

    def can_score(self, prompt: list[dict]) -> bool:
        return True

    def _ids(self, prompt: list[dict], answer: str) -> list[int]:
        conversation = list(prompt) + [{"role": "assistant", "content": answer}]
        if self.tokenizer.chat_template:
            ids = self.tokenizer.apply_chat_template(conversation, tokenize=True, return_dict=False)
        else:  # as TRL's RewardTrainer renders plain text: the turns, then the end token
            text = "\n".join(m["content"] for m in conversation) + (self.tokenizer.eos_token or "")
            ids = self.tokenizer(text)["input_ids"]
        # Keep the end: the answer is what is judged.
        return ids[-self.max_length :] if self.max_length else ids

    def score(self, prompts: list[list[dict]], answers: list[str]) -> list[float]:
        import torch

        sequences = [self._ids(p, a) for p, a in zip(prompts, answers)]
        scores: list[float] = []
        pad = self.tokenizer.pad_token_id
        for start in range(0, len(sequences), self.batch_size):
            batch = sequences[start : start + self.batch_size]
            width = max(len(s) for s in batch)
            input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
            attention = torch.zeros((len(batch), width), dtype=torch.long)
            for i, s in enumerate(batch):
                input_ids[i, : len(s)] = torch.tensor(s)
                attention[i, : len(s)] = 1
            with torch.no_grad():
                logits = self.model(input_ids=input_ids, attention_mask=attention).logits.float()
            scores.extend(logits[:, 0].tolist())
        return scores

    def describe(self) -> dict:
        return {"kind": "reward_model", "path": str(self.path), "architecture": type(self.model).__name__}


def make_judge(kind: str, reward_model: str | Path | None = None, batch_size: int = 64) -> Judge:
    """The judge named `kind` (task or reward_model; reward_model needs the model's folder)."""
    expect(kind in JUDGES, "judge", f"one of {', '.join(JUDGES)}", kind)
    if kind == "task":
        return TaskJudge()
    expect(reward_model is not None, "reward_model", "a reward model folder when judge is reward_model", reward_model)
    return RewardModelJudge(Path(reward_model), batch_size)
