"""Sample K answers per train prompt from a policy and judge them (the on-policy data of DPO).

Prompts: the distinct train prompts the judge can score, in file order, at most
`max_prompts` (none = all). Each is answered `samples_per_prompt` times by the policy with
temperature and top-p sampling, in batches, seeded (the same settings give the same
samples on the same machine), on the first CUDA GPU when there is one (in the checkpoint's
own dtype), else on the CPU in fp32. The judge is the run's judge
(prefalign.evaluation.judges: the task verifier on the demo, a reward model otherwise).

Uses prefalign.evaluation's generation helpers and judges (a declared contract): the
answers are generated exactly as the evaluation generates its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from prefalign import runtime
from prefalign.evaluation.generation import distinct_prompts, eval_device, generate
from prefalign.evaluation.judges import JUDGES, Judge, make_judge
from prefalign.jsonl import read_jsonl
from prefalign.onpolicy.pairs import funnel
from prefalign.records import last_user_turn
from prefalign.settings import Settings, expect, seed_field, threads_field


@dataclass
class OnPolicySettings(Settings):
    SECTION = "onpolicy"
    samples_per_prompt: int = field(default=4, metadata={"help": "answers sampled per prompt (K)"})
    greedy: bool = field(default=False, metadata={
        "help": "also answer each prompt greedily, as answer 0 before the K samples (DPO then sees the answer "
                "the policy would give)"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature (> 0)"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling: keep the smallest token set with this "
                                                        "much probability (0-1]; 1 = off"})
    max_prompts: int | None = field(default=None, metadata={
        "help": "sample at most this many distinct train prompts (file order); none = every one the judge can score"})
    max_new_tokens: int = field(default=24, metadata={"help": "longest sampled answer (tokens)"})
    batch_size: int = field(default=64, metadata={"help": "sequences per generation batch"})
    margin: float = field(default=0.0, metadata={
        "help": "least best - worst judge score that makes a pair (0: any difference; ties never pair)"})
    # The run's pair judge (onpolicy.judge as resolved: prefalign.evaluation.judges.choose_judges), never
    # the evaluation judge itself: DPO is optimised toward the judge that picks its pairs.
    judge: str = field(default="task", metadata={"derived": "onpolicy.judge",
                                                 "help": f"judge of the samples: {', '.join(JUDGES)}"})
    judge_reason: str | None = field(default=None, metadata={
        "derived": "onpolicy.judge", "help": "why this judge (the workflow's resolution of onpolicy.judge); recorded "
                                             "in the stats"})
    reward_model: str | None = field(default=None, metadata={
        "derived": "onpolicy.reward_model",
        "help": "reward_model / trained judge: folder of a sequence-classification reward model, or a hub id"})
    reward_model_revision: str | None = field(default=None, metadata={
        "derived": "onpolicy.reward_model_revision", "help": "the 40-hex commit of a hub reward model"})
    round: int = field(default=1, metadata={"job": True,
                                            "help": "iterative DPO round these samples feed (1 = from SFT)"})
    seed: int = seed_field("the sampling")
    threads: int = threads_field()

    def __post_init__(self):
        for key in ("samples_per_prompt", "max_new_tokens", "batch_size", "round", "threads"):
            expect(isinstance(getattr(self, key), int) and getattr(self, key) >= 1, key, "an integer >= 1",
                  getattr(self, key))
        expect(self.samples_per_prompt >= 2, "samples_per_prompt", "an integer >= 2 (a pair needs two answers)",
              self.samples_per_prompt)
        expect(self.max_prompts is None or self.max_prompts >= 1, "max_prompts", "an integer >= 1 or none",
              self.max_prompts)
        expect(self.temperature > 0, "temperature", "a number > 0", self.temperature)
        expect(0 < self.top_p <= 1, "top_p", "a number in (0, 1]", self.top_p)
        expect(self.margin >= 0, "margin", "a number >= 0", self.margin)
        expect(self.judge in JUDGES, "judge", f"one of {', '.join(JUDGES)}", self.judge)
        expect(self.judge != "reward_model" or bool(self.reward_model), "reward_model",
              "a reward model folder when judge is reward_model", self.reward_model)

    def decoding(self) -> dict:
        """generate() keywords: top_k off, so temperature and top_p alone shape the distribution."""
        return {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p, "top_k": 0}


@dataclass
class Judged:
    """One prompt's record and its K answers with their judge scores."""

    record: dict
    answers: list[str]
    tokens: list[int]
    scores: list[float]


def load_policy(policy_dir: Path):
    """(model, tokenizer) of a checkpoint, on the device the evaluation would use."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device, load = eval_device()
    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    model = AutoModelForCausalLM.from_pretrained(policy_dir, use_safetensors=True, **load).to(device).eval()
    return model, tokenizer


def sample_prompts(records: list[dict], settings: OnPolicySettings, judge: Judge) -> tuple[list[dict], dict]:
    """(the prompts to sample, pairs.funnel's counts): the distinct train prompts the judge can score, in file
    order, at most max_prompts."""
    distinct = distinct_prompts(records)
    scorable = [r for r in distinct if judge.can_score(r["prompt"])]
    chosen = scorable[: settings.max_prompts] if settings.max_prompts else scorable
    return chosen, funnel(len(records), len(distinct), len(scorable), len(chosen))


def sample_and_judge(model, tokenizer, prompts: list[dict], settings: OnPolicySettings, judge: Judge) -> list[Judged]:
    """Each prompt's answers (greedy first when settings.greedy, then K seeded samples), judged.

    The K samples of a prompt are consecutive in one batched, seeded stream.
    """
    k = settings.samples_per_prompt
    repeated = [record["prompt"] for record in prompts for _ in range(k)]
    sampled = generate(model, tokenizer, repeated, settings, decoding=settings.decoding())
    groups = [sampled[i * k : (i + 1) * k] for i in range(len(prompts))]
    if settings.greedy:
        greedy = generate(model, tokenizer, [record["prompt"] for record in prompts], settings)
        groups = [[g, *group] for g, group in zip(greedy, groups)]
    texts = [[a["answer"] for a in group] for group in groups]
    flat_prompts = [record["prompt"] for record, group in zip(prompts, texts) for _ in group]
    scores = judge.score(flat_prompts, [t for group in texts for t in group])
    out, at = [], 0
    for record, group, answers in zip(prompts, groups, texts):
        out.append(Judged(record, answers, [a["tokens"] for a in group], scores[at : at + len(group)]))
        at += len(group)
    return out


def run(policy_dir: Path, train_path: Path, settings: OnPolicySettings) -> tuple[list[Judged], Judge, dict]:
    """Load, sample and judge: the judged prompts, the judge that scored them, and how the train rows became
    those prompts (pairs.funnel)."""
    runtime.setup(settings.seed, settings.threads)
    records = read_jsonl(train_path)
    expect(bool(records), "train", "a non-empty train split", str(train_path))
    judge = make_judge(settings.judge, settings.reward_model, settings.batch_size, settings.reward_model_revision)
    prompts, steps = sample_prompts(records, settings, judge)
    expect(bool(prompts), "train", f"train prompts the {settings.judge} judge can score", str(train_path))
    model, tokenizer = load_policy(policy_dir)
    return sample_and_judge(model, tokenizer, prompts, settings, judge), judge, steps


def question(judged: Judged) -> str:
    return last_user_turn(judged.record["prompt"])
