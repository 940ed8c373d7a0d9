"""Answers to prompts, as both the evaluation and the on-policy stage generate them.

`generate` answers prompts greedily or by seeded sampling (SAMPLING: plain ancestral sampling,
temperature 1, no top-k or top-p, the evaluation's own decoding), in batches with left padding,
on the device `eval_device` picks. `judge_prompts` and `distinct_prompts` choose which prompts
are answered. One home, so on-policy samples are generated exactly as evaluated answers are.
"""

from __future__ import annotations

from prefalign.data import tasks
from prefalign.evaluation.batches import padded
from prefalign.evaluation.judges import Judge
from prefalign.progress import progress
from prefalign.records import last_user_turn, prompt_key
from prefalign.runtime import Machine

SAMPLING = {"do_sample": True, "temperature": 1.0, "top_k": 0, "top_p": 1.0}


def eval_device() -> tuple[str, dict]:
    """Where to evaluate: the first CUDA GPU in its checkpoint's own dtype, else the CPU in fp32."""
    machine = Machine.detect()
    return machine.device, {"dtype": "auto"} if machine.cuda else {}


def distinct_prompts(records: list[dict]) -> list[dict]:
    """The first record of each distinct prompt, in file order."""
    seen, out = set(), []
    for record in records:
        key = prompt_key(record["prompt"])
        if key not in seen:
            seen.add(key)
            out.append(record)
    return out


def judge_prompts(records: list[dict], limit: int, judge: Judge | None = None) -> list[dict]:
    """Distinct test prompts the judge can score (default: the task verifier), in file order, at most `limit`."""
    chosen, seen = [], set()
    for record in records:
        key = prompt_key(record["prompt"])
        scorable = judge.can_score(record["prompt"]) if judge else tasks.parse(last_user_turn(record["prompt"])) is not None
        if key in seen or not scorable:
            continue
        seen.add(key)
        chosen.append(record)
        if len(chosen) == limit:
            break
    return chosen


def prompt_ids(tokenizer, prompt: list[dict]) -> list[int]:
    return tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=False)


def generate(model, tokenizer, prompts: list[list[dict]], settings, sample: bool = False,
             decoding: dict | None = None) -> list[dict]:
    """Answers to each prompt, greedy or sampled, in batches with left padding.

    Each answer: text, token count (without the end token), `ids`, the generated ids through
    the end token when the model wrote one (what its probability is over), and `ended`, whether
    it did (False: cut at max_new_tokens).
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
        input_ids, attention = padded(batch, pad, left=True)
        width = input_ids.shape[1]
        input_ids, attention = input_ids.to(model.device), attention.to(model.device)
        with torch.no_grad():
            out = model.generate(input_ids=input_ids, attention_mask=attention, max_new_tokens=settings.max_new_tokens,
                                 eos_token_id=eos, pad_token_id=pad, **decoding)
        for row in out[:, width:].tolist():
            ended = eos in row
            ids = row[: row.index(eos) + 1] if ended else row
            text_ids = [t for t in (ids[:-1] if ended else ids) if t != pad]
            answers.append({"answer": tokenizer.decode(text_ids, skip_special_tokens=True), "tokens": len(text_ids),
                            "ids": ids, "ended": ended})
    return answers
