"""Step `evaluate`: how one checkpoint ranks and answers the held-out split.

Preference metrics, on every test pair (tokenized exactly as TRL's DPOTrainer does):
  implicit_reward_accuracy   share of pairs where beta*(log pi/pi_ref) is strictly higher for
                             chosen than rejected (pi_ref: the model's reference; a model that
                             is its own reference ties everywhere and scores 0)
  reward_margin_mean         mean of that reward difference
  logp_accuracy              share where log pi(chosen) > log pi(rejected) (summed over tokens)
  logp_accuracy_normalized   the same per token (mean log-prob)
Generation metrics, on up to `judge_prompts` distinct test prompts that a task verifier
can score (prefalign.tasks), with greedy decoding:
  judge_accuracy             share of answers the verifier accepts
  generation_length_mean     mean answer length (tokens)

Assumes model and reference share the tokenizer in the model folder.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

from prefalign import runtime, tasks
from prefalign.records import last_user_message, load_records, prompt_key, write_json, write_jsonl
from prefalign.settings import Settings, check


# The workflow's checkpoints and the reference each one's implicit reward is measured against.
REFERENCES = {"base": "base", "sft": "base", "dpo": "sft"}


@dataclass
class EvalSettings(Settings):
    name: str = field(default="model", metadata={"help": "label of the evaluated checkpoint (base, sft, dpo, ...)"})
    reference_name: str = field(default="reference", metadata={"help": "label of its reference checkpoint"})
    beta: float = field(default=0.1, metadata={"help": "beta of the implicit reward (use the DPO beta)"})
    max_pairs: int | None = field(default=None, metadata={"help": "score at most this many test pairs; none = all"})
    judge_prompts: int = field(default=500, metadata={"help": "distinct test prompts answered and judged (at most)"})
    max_new_tokens: int = field(default=24, metadata={"help": "longest generated answer (tokens)"})
    batch_size: int = field(default=64, metadata={"help": "sequences per forward pass"})
    seed: int = field(default=1234, metadata={"help": "random seed"})
    threads: int = field(default=2, metadata={"help": "torch intra-op threads (part of the result on CPU)"})

    def __post_init__(self):
        check(self.beta > 0, "beta", "a number > 0", self.beta)
        for key in ("judge_prompts", "max_new_tokens", "batch_size", "threads"):
            check(getattr(self, key) >= 1, key, "an integer >= 1", getattr(self, key))


def common_prefix_length(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


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
    """Sum of log-probs and token count of each completion given its prompt."""
    import torch

    sums, counts = [], []
    for start in range(0, len(sequences), batch_size):
        batch = sequences[start : start + batch_size]
        width = max(len(p) + len(c) for p, c in batch)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.bool)
        for i, (p, c) in enumerate(batch):
            input_ids[i, : len(p) + len(c)] = torch.tensor(p + c)
            attention[i, : len(p) + len(c)] = 1
            mask[i, len(p) : len(p) + len(c)] = True
        with torch.no_grad():
            logits = model(input_ids=input_ids, attention_mask=attention).logits.float()
        logprobs = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
        target = mask[:, 1:]
        sums.extend((logprobs * target).sum(-1).tolist())
        counts.extend(target.sum(-1).tolist())
    return sums, counts


def preference_metrics(model, reference, tokenizer, records: list[dict], settings: EvalSettings) -> tuple[dict, list]:
    triples = [tokenize_pair(tokenizer, r) for r in records]
    sequences = [(p, c) for p, c, _ in triples] + [(p, r) for p, _, r in triples]
    pad = tokenizer.pad_token_id
    policy, counts = completion_logps(model, sequences, settings.batch_size, pad)
    ref = policy if reference is model else completion_logps(reference, sequences, settings.batch_size, pad)[0]
    n = len(records)
    rows = []
    for i, record in enumerate(records):
        pc, pr, rc, rr = policy[i], policy[n + i], ref[i], ref[n + i]
        nc, nr = max(counts[i], 1), max(counts[n + i], 1)
        rows.append({
            "id": record["id"],
            "margin": settings.beta * ((pc - rc) - (pr - rr)),
            "logp_chosen": pc, "logp_rejected": pr,
            "logp_accuracy": pc > pr, "logp_accuracy_normalized": pc / nc > pr / nr,
        })
    margins = [r["margin"] for r in rows]
    metrics = {
        "pairs": n,
        "implicit_reward_accuracy": sum(m > 0 for m in margins) / n,
        "reward_margin_mean": sum(margins) / n,
        "logp_accuracy": sum(r["logp_accuracy"] for r in rows) / n,
        "logp_accuracy_normalized": sum(r["logp_accuracy_normalized"] for r in rows) / n,
        "logp_chosen_mean": sum(r["logp_chosen"] for r in rows) / n,
        "logp_rejected_mean": sum(r["logp_rejected"] for r in rows) / n,
    }
    return metrics, rows


def judge_prompts(records: list[dict], limit: int) -> list[dict]:
    """Distinct test prompts the task verifier can score, in file order, at most `limit`."""
    chosen, seen = [], set()
    for record in records:
        key = prompt_key(record["prompt"])
        if key in seen or tasks.parse(last_user_message(record)) is None:
            continue
        seen.add(key)
        chosen.append(record)
        if len(chosen) == limit:
            break
    return chosen


def generate(model, tokenizer, prompts: list[list[dict]], settings: EvalSettings) -> list[tuple[str, int]]:
    """Greedy answers (text, token count) to each prompt, in batches with left padding."""
    import torch

    answers = []
    eos = tokenizer.eos_token_id
    for start in range(0, len(prompts), settings.batch_size):
        batch = [tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=True, return_dict=False)
                 for p in prompts[start : start + settings.batch_size]]
        width = max(len(ids) for ids in batch)
        input_ids = torch.full((len(batch), width), tokenizer.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for i, ids in enumerate(batch):
            input_ids[i, width - len(ids) :] = torch.tensor(ids)
            attention[i, width - len(ids) :] = 1
        with torch.no_grad():
            out = model.generate(input_ids=input_ids, attention_mask=attention, max_new_tokens=settings.max_new_tokens,
                                 do_sample=False, eos_token_id=eos, pad_token_id=tokenizer.pad_token_id)
        for row in out[:, width:].tolist():
            if eos in row:
                row = row[: row.index(eos)]
            row = [t for t in row if t != tokenizer.pad_token_id]
            answers.append((tokenizer.decode(row, skip_special_tokens=True), len(row)))
    return answers


def evaluate(model_dir: Path, reference_dir: Path, test_path: Path, settings: EvalSettings):
    runtime.setup(settings.seed, settings.threads)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, use_safetensors=True).eval()
    same = model_dir.resolve() == reference_dir.resolve()
    reference = model if same else AutoModelForCausalLM.from_pretrained(reference_dir, use_safetensors=True).eval()

    records = load_records(test_path)
    check(bool(records), "test", "a non-empty test split", str(test_path))
    if settings.max_pairs is not None:
        records = records[: settings.max_pairs]
    metrics, rows = preference_metrics(model, reference, tokenizer, records, settings)

    judged = judge_prompts(records, settings.judge_prompts)
    answers = generate(model, tokenizer, [r["prompt"] for r in judged], settings)
    generations = []
    for record, (answer, length) in zip(judged, answers):
        question = last_user_message(record)
        generations.append({"id": record["id"], "prompt": question, "answer": answer, "tokens": length,
                            "expected": tasks.expected_answer(question), "correct": tasks.judge(question, answer)})
    metrics.update({
        "judged_prompts": len(generations),
        "judge_accuracy": sum(g["correct"] for g in generations) / len(generations) if generations else None,
        "generation_length_mean": sum(g["tokens"] for g in generations) / len(generations) if generations else None,
    })
    return {"model": settings.name, "reference": settings.reference_name, "settings": settings.to_dict(), "metrics": metrics}, generations


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True, help="checkpoint folder to evaluate")
    parser.add_argument("--reference", type=Path, required=True, help="its reference checkpoint (itself for the base)")
    parser.add_argument("--test", type=Path, required=True, help="held-out records (JSONL)")
    parser.add_argument("--metrics", type=Path, required=True, help="output: metrics (JSON)")
    parser.add_argument("--generations", type=Path, required=True, help="output: judged greedy answers (JSONL)")
    EvalSettings.add_arguments(parser)


def main(args: argparse.Namespace) -> None:
    settings = EvalSettings.from_args(args)
    print("settings:", json.dumps(settings.to_dict(), sort_keys=True), flush=True)
    result, generations = evaluate(args.model, args.reference, args.test, settings)
    write_json(args.metrics, result)
    write_jsonl(args.generations, generations)
    print(f"{settings.name}:", json.dumps(result["metrics"], sort_keys=True))
