"""Step `evaluate`: how one checkpoint ranks, answers and drifts on the held-out split.

Preference metrics, on every test pair (tokenized exactly as TRL's DPOTrainer does):
  implicit_reward_accuracy   share of pairs where beta*(log pi/pi_ref) is strictly higher for
                             chosen than rejected (pi_ref: the model's reference; a model that
                             is its own reference ties everywhere and scores 0)
  reward_margin_mean         mean of that reward difference; its spread as reward_margin_std,
                             _p05, _median, _p95, and per pair in the pairs output
  logp_accuracy              share where log pi(chosen) > log pi(rejected) (summed over tokens)
  logp_accuracy_normalized   the same per token (mean log-prob)
Generation metrics, on up to `judge_prompts` distinct test prompts the judge can score
(prefalign.evaluation.judges: `task`, the tasks' verifier, or `reward_model`, a local reward model):
  judge_accuracy             share of greedy answers the task verifier accepts
  judge_score_mean           mean judge score of the greedy answers (task: = judge_accuracy)
  generation_length_mean     mean greedy answer length (tokens)
  sampled_*                  the same for one sampled answer per prompt (seeded)
  kl_mean, kl_se             KL(policy || reference), sequence level, estimated on those policy
                             samples as the mean of log pi(y|x) - log pi_ref(y|x), with its
                             standard error (kl_samples answers)
Every headline metric gets a 95% interval in `intervals`: a percentile bootstrap over pairs
or prompts (`bootstrap_samples`, seeded), and mean +- 1.96 SE for the KL.

Sampling is plain ancestral sampling (temperature 1, no top-k or top-p), the only setting
under which the policy's samples estimate KL(policy || reference) without bias. Answers are
cut at `max_new_tokens`, so the KL is that of the first `max_new_tokens` answer tokens (at
most the full sequences' KL). Assumes model and reference share the tokenizer in the model
folder. Raises ConfigError for bad settings and for an empty test split.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

from prefalign import runtime
from prefalign.evaluation import intervals
from prefalign.data import tasks
from prefalign.train.watch.tracking import progress
from prefalign.evaluation.judges import JUDGES, Judge, make_judge
from prefalign.records import last_user_message, load_records, prompt_key, write_json, write_jsonl
from prefalign.settings import Settings, check


# The workflow's checkpoints and the reference each one's implicit reward and KL are measured against.
REFERENCES = {"base": "base", "sft": "base", "dpo": "sft"}
SAMPLING = {"do_sample": True, "temperature": 1.0, "top_k": 0, "top_p": 1.0}


@dataclass
class EvalSettings(Settings):
    name: str = field(default="model", metadata={"help": "label of the evaluated checkpoint (base, sft, dpo, ...)"})
    reference_name: str = field(default="reference", metadata={"help": "label of its reference checkpoint"})
    beta: float = field(default=0.1, metadata={"help": "beta of the implicit reward (use the DPO beta)"})
    max_pairs: int | None = field(default=None, metadata={"help": "score at most this many test pairs; none = all"})
    judge_prompts: int = field(default=500, metadata={"help": "distinct test prompts answered and judged (at most)"})
    max_new_tokens: int = field(default=24, metadata={"help": "longest generated answer (tokens)"})
    batch_size: int = field(default=64, metadata={"help": "sequences per forward pass"})
    judge: str = field(default="task", metadata={"help": f"judge of the answers: {', '.join(JUDGES)}"})
    reward_model: str | None = field(default=None, metadata={
        "help": "reward_model judge: folder of a local sequence-classification reward model"})
    bootstrap_samples: int = field(default=2000, metadata={"help": "resamples of each bootstrap interval"})
    seed: int = field(default=1234, metadata={"help": "random seed (sampled answers, bootstrap)"})
    threads: int = field(default=2, metadata={"help": "torch intra-op threads (part of the result on CPU)"})

    def __post_init__(self):
        check(self.beta > 0, "beta", "a number > 0", self.beta)
        for key in ("judge_prompts", "max_new_tokens", "batch_size", "threads", "bootstrap_samples"):
            check(getattr(self, key) >= 1, key, "an integer >= 1", getattr(self, key))
        check(self.judge in JUDGES, "judge", f"one of {', '.join(JUDGES)}", self.judge)
        check(self.judge != "reward_model" or bool(self.reward_model), "reward_model",
              "a reward model folder when judge is reward_model", self.reward_model)


# ---------------------------------------------------------------- scoring

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
    """Sum of log-probs and token count of each completion given its prompt (in the order given)."""
    import torch

    # Batches of similar lengths waste little on padding; the results go back to the input order.
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i][0]) + len(sequences[i][1]))
    sums, counts = [0.0] * len(sequences), [0] * len(sequences)
    for start in progress(range(0, len(order), batch_size), "log-probs"):
        indices = order[start : start + batch_size]
        batch = [sequences[i] for i in indices]
        width = max(len(p) + len(c) for p, c in batch)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.bool)
        for i, (p, c) in enumerate(batch):
            input_ids[i, : len(p) + len(c)] = torch.tensor(p + c)
            attention[i, : len(p) + len(c)] = 1
            mask[i, len(p) : len(p) + len(c)] = True
        input_ids, attention, mask = (t.to(model.device) for t in (input_ids, attention, mask))
        with torch.no_grad():
            logits = model(input_ids=input_ids, attention_mask=attention).logits.float()
        logprobs = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
        target = mask[:, 1:]
        for i, total, count in zip(indices, (logprobs * target).sum(-1).tolist(), target.sum(-1).tolist()):
            sums[i], counts[i] = total, count
    return sums, counts


def share(flags: list[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def preference_metrics(model, reference, tokenizer, records: list[dict], settings: EvalSettings) -> tuple[dict, dict, list]:
    """(metrics, intervals, per-pair rows) of the implicit reward and log-prob rankings."""
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
    }
    boot = lambda values: bootstrap(values, settings)  # noqa: E731
    bounds = {"implicit_reward_accuracy": boot(won), "reward_margin_mean": boot(margins),
              "logp_accuracy": boot(logp_won), "logp_accuracy_normalized": boot(logp_norm_won)}
    return metrics, bounds, rows


def bootstrap(values: list[float], settings: EvalSettings) -> dict | None:
    interval = intervals.bootstrap_interval(values, settings.bootstrap_samples, settings.seed)
    if interval is None:
        return None
    return {"low": interval[0], "high": interval[1], "method": f"bootstrap ({settings.bootstrap_samples} resamples)"}


# ---------------------------------------------------------------- generation

def judge_prompts(records: list[dict], limit: int, judge: Judge | None = None) -> list[dict]:
    """Distinct test prompts the judge can score (default: the task verifier), in file order, at most `limit`."""
    chosen, seen = [], set()
    for record in records:
        key = prompt_key(record["prompt"])
        scorable = judge.can_score(record["prompt"]) if judge else tasks.parse(last_user_message(record)) is not None
        if key in seen or not scorable:
            continue
        seen.add(key)
        chosen.append(record)
        if len(chosen) == limit:
            break
    return chosen


def prompt_ids(tokenizer, prompt: list[dict]) -> list[int]:
    return tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=False)


def generate(model, tokenizer, prompts: list[list[dict]], settings: EvalSettings, sample: bool = False,
             decoding: dict | None = None) -> list[dict]:
    """Answers to each prompt, greedy or sampled, in batches with left padding.

    Each answer: text, token count (without the end token), and `ids`, the generated ids
    through the end token when the model wrote one (what its probability is over).
    `decoding` (generate() keywords, e.g. temperature, top_p) replaces the evaluation's own
    decoding (SAMPLING, or greedy); sampling is seeded with settings.seed either way.
    `settings` needs seed, batch_size and max_new_tokens (prefalign.onpolicy reuses this).
    """
    import torch

    answers = []
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    if decoding is None:
        decoding = dict(SAMPLING) if sample else {"do_sample": False}
    sample = bool(decoding.get("do_sample"))
    if sample:
        torch.manual_seed(settings.seed)  # the same seed gives the same samples, whatever ran before
    for start in progress(range(0, len(prompts), settings.batch_size), "sampling" if sample else "generating"):
        batch = [prompt_ids(tokenizer, p) for p in prompts[start : start + settings.batch_size]]
        width = max(len(ids) for ids in batch)
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for i, ids in enumerate(batch):
            input_ids[i, width - len(ids) :] = torch.tensor(ids)
            attention[i, width - len(ids) :] = 1
        input_ids, attention = input_ids.to(model.device), attention.to(model.device)
        with torch.no_grad():
            out = model.generate(input_ids=input_ids, attention_mask=attention, max_new_tokens=settings.max_new_tokens,
                                 eos_token_id=eos, pad_token_id=pad, **decoding)
        for row in out[:, width:].tolist():
            ended = eos in row
            ids = row[: row.index(eos) + 1] if ended else row
            text_ids = [t for t in (ids[:-1] if ended else ids) if t != pad]
            answers.append({"answer": tokenizer.decode(text_ids, skip_special_tokens=True), "tokens": len(text_ids),
                            "ids": ids})
    return answers


def sample_log_ratios(model, reference, tokenizer, prompts: list[list[dict]], samples: list[dict],
                      settings: EvalSettings) -> list[float]:
    """log pi(y|x) - log pi_ref(y|x) of each policy sample y (0 where the model is its own reference)."""
    if reference is model:
        return [0.0 for _ in samples]
    sequences = [(prompt_ids(tokenizer, p), s["ids"]) for p, s in zip(prompts, samples)]
    policy, _ = completion_logps(model, sequences, settings.batch_size, tokenizer.pad_token_id)
    ref, _ = completion_logps(reference, sequences, settings.batch_size, tokenizer.pad_token_id)
    return [p - r for p, r in zip(policy, ref)]


def generation_metrics(model, reference, tokenizer, judge: Judge, judged: list[dict], settings: EvalSettings):
    """(metrics, intervals, generation rows): greedy and sampled answers, judged, and the KL estimate."""
    prompts = [r["prompt"] for r in judged]
    greedy = generate(model, tokenizer, prompts, settings)
    sampled = generate(model, tokenizer, prompts, settings, sample=True)
    greedy_scores = judge.score(prompts, [g["answer"] for g in greedy])
    sampled_scores = judge.score(prompts, [s["answer"] for s in sampled])
    log_ratios = sample_log_ratios(model, reference, tokenizer, prompts, sampled, settings)

    rows = []
    for record, g, s, gs, ss, lr in zip(judged, greedy, sampled, greedy_scores, sampled_scores, log_ratios):
        question = last_user_message(record)
        rows.append({
            "id": record["id"], "prompt": question, "answer": g["answer"], "tokens": g["tokens"],
            "expected": tasks.expected_answer(question), "correct": tasks.judge(question, g["answer"]), "score": gs,
            "sampled": {"answer": s["answer"], "tokens": s["tokens"], "correct": tasks.judge(question, s["answer"]),
                        "score": ss, "log_ratio": lr},
        })

    def verified(key_rows):
        return [1.0 if c else 0.0 for c in key_rows if c is not None]

    correct = verified([r["correct"] for r in rows])
    sampled_correct = verified([r["sampled"]["correct"] for r in rows])
    lengths = [float(r["tokens"]) for r in rows]
    sampled_lengths = [float(r["sampled"]["tokens"]) for r in rows]
    kl, kl_se = intervals.mean_and_se(log_ratios)
    metrics = {
        "judged_prompts": len(rows),
        "judge_accuracy": intervals.mean(correct),
        "judge_score_mean": intervals.mean(greedy_scores),
        "generation_length_mean": intervals.mean(lengths),
        "sampled_judge_accuracy": intervals.mean(sampled_correct),
        "sampled_judge_score_mean": intervals.mean(sampled_scores),
        "sampled_length_mean": intervals.mean(sampled_lengths),
        "kl_mean": kl, "kl_se": kl_se, "kl_samples": len(log_ratios),
    }
    kl_interval = intervals.normal_interval(kl, kl_se)
    bounds = {
        "judge_accuracy": bootstrap(correct, settings),
        "judge_score_mean": bootstrap(greedy_scores, settings),
        "generation_length_mean": bootstrap(lengths, settings),
        "sampled_judge_accuracy": bootstrap(sampled_correct, settings),
        "sampled_judge_score_mean": bootstrap(sampled_scores, settings),
        "sampled_length_mean": bootstrap(sampled_lengths, settings),
        "kl_mean": {"low": kl_interval[0], "high": kl_interval[1], "method": "mean +- 1.96 SE"} if kl_interval else None,
    }
    return metrics, bounds, rows


# ---------------------------------------------------------------- the step

def eval_device() -> tuple[str, dict]:
    """Where to evaluate: the first CUDA GPU in its checkpoint's own dtype, else the CPU in fp32."""
    import torch

    if torch.cuda.is_available():
        return "cuda", {"dtype": "auto"}
    return "cpu", {}


def evaluate(model_dir: Path, reference_dir: Path, test_path: Path, settings: EvalSettings):
    """(result, generation rows, pair rows) of one checkpoint against its reference."""
    runtime.setup(settings.seed, settings.threads)
    records = load_records(test_path)
    check(bool(records), "test", "a non-empty test split", str(test_path))
    judge = make_judge(settings.judge, settings.reward_model, settings.batch_size)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    device, load = eval_device()
    model = AutoModelForCausalLM.from_pretrained(model_dir, use_safetensors=True, **load).to(device).eval()
    same = Path(model_dir).resolve() == Path(reference_dir).resolve()
    reference = model if same else (
        AutoModelForCausalLM.from_pretrained(reference_dir, use_safetensors=True, **load).to(device).eval())

    if settings.max_pairs is not None:
        records = records[: settings.max_pairs]
    metrics, bounds, pair_rows = preference_metrics(model, reference, tokenizer, records, settings)
    judged = judge_prompts(records, settings.judge_prompts, judge)
    generated, generated_bounds, generations = generation_metrics(model, reference, tokenizer, judge, judged, settings)
    metrics.update(generated)
    bounds.update(generated_bounds)
    result = {
        "model": settings.name, "reference": settings.reference_name, "judge": judge.describe(),
        "sampling": {k: v for k, v in SAMPLING.items() if k != "do_sample"},
        "settings": settings.to_dict(), "metrics": metrics,
        "intervals": {k: v for k, v in bounds.items() if v is not None},
    }
    return result, generations, pair_rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True, help="checkpoint folder to evaluate")
    parser.add_argument("--reference", type=Path, required=True, help="its reference checkpoint (itself for the base)")
    parser.add_argument("--test", type=Path, required=True, help="held-out records (JSONL)")
    parser.add_argument("--metrics", type=Path, required=True, help="output: metrics and intervals (JSON)")
    parser.add_argument("--generations", type=Path, required=True,
                        help="output: greedy and sampled answers, judged (JSONL)")
    parser.add_argument("--pairs", type=Path, help="output: per-pair log-probs and reward margins (JSONL)")
    EvalSettings.add_arguments(parser)


def main(args: argparse.Namespace) -> None:
    settings = EvalSettings.from_args(args)
    print("settings:", json.dumps(settings.to_dict(), sort_keys=True), flush=True)
    result, generations, pairs = evaluate(args.model, args.reference, args.test, settings)
    write_json(args.metrics, result)
    write_jsonl(args.generations, generations)
    if args.pairs:
        write_jsonl(args.pairs, pairs)
    print(f"{settings.name}:", json.dumps(result["metrics"], sort_keys=True))
