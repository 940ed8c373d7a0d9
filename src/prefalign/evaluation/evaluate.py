"""Step `evaluate`: how one checkpoint ranks, answers and drifts on the held-out split.

Preference metrics, on every test pair (tokenized exactly as TRL's DPOTrainer does):
  implicit_reward_accuracy   share of pairs where beta*(log pi/pi_ref) is strictly higher for
                             chosen than rejected (pi_ref: the model's reference; a model that
                             is its own reference ties everywhere and scores 0)
  reward_margin_mean         mean of that reward difference; its spread as reward_margin_std,
                             _p05, _median, _p95, and per pair in the pairs output
  logp_accuracy              share where log pi(chosen) > log pi(rejected) (summed over tokens)
  logp_accuracy_normalized   the same per token (mean log-prob)
  sigmoid_loss               mean -log sigmoid(margin): DPO's sigmoid loss on the held-out pairs
  chosen_nll_per_token       -sum log pi(chosen) / chosen tokens: the NLL ("sft") loss term on them
Generation metrics. Greedy and sampled answers to the distinct held-out prompts (file order):
those the judge can score (at most `judge_prompts`) and those of the KL estimate (the first
`kl_prompts`, judged or not). The judge (prefalign.evaluation.judges) is `task` (the tasks'
verifier), `reward_model` (a given reward model) or `trained` (the run's own); `auto` is resolved
by the one rule of prefalign.evaluation.judges.choose_judge (the workflow passes its resolution;
given `auto` here, it is `task` when every held-out prompt is a task prompt, else the reward
model given). metrics.json's `judges` says which judge graded the answers, which judge picked
DPO's on-policy pairs (none for offline DPO), and why the two are independent.
  judge_score_mean           mean judge score of the greedy answers (task: = judge_accuracy)
  judge_accuracy             share of greedy answers the task verifier accepts (task prompts only,
                             whatever the judge: on the demo a reward-model judge is checked by it)
  generation_length_mean     mean greedy answer length (tokens)
  sampled_*                  the same for the first sampled answer of each prompt (seeded)
  answered_prompts, empty_answers, top_answer_prompts (its text: `top_answer`), truncated_answers
                             the answered prompts; of them, how many got an empty answer, the most
                             common answer, and an answer cut at max_new_tokens (no end token):
                             what a broken model shows (the report flags them); sampled_* too
  kl_mean, kl_se             KL(policy || reference), sequence level, on the first `kl_prompts`
                             distinct held-out prompts (judged or not), `kl_samples_per_prompt`
                             policy samples each: the mean over prompts of each prompt's mean
                             log pi(y|x) - log pi_ref(y|x), with its standard error over prompts
Every headline metric gets a 95% interval in `intervals`: a percentile bootstrap over pairs
or prompts (`bootstrap_samples`, seeded), and mean +- 1.96 SE for the KL. A metric that cannot
be computed is None in `metrics` and its reason is in `unavailable` (metric -> sentence).

Sampling is plain ancestral sampling (temperature 1, no top-k or top-p), the only setting
under which the policy's samples estimate KL(policy || reference) without bias. Answers are
cut at `max_new_tokens`, so the KL is that of the first `max_new_tokens` answer tokens (at
most the full sequences' KL). Assumes model and reference share the tokenizer in the model
folder. Raises ConfigError for bad settings, an empty test split, and judge `auto` on a split
with prompts the task verifier cannot check when no reward model is given.
"""

from __future__ import annotations

import argparse
import collections
import json
from dataclasses import dataclass, field
from pathlib import Path

from prefalign import runtime
from prefalign.data import tasks
from prefalign.evaluation import intervals
from prefalign.evaluation.generation import SAMPLING, distinct_prompts, eval_device, generate, judge_prompts, prompt_ids
from prefalign.evaluation.judges import JUDGE_SETTINGS, Judge, JudgeChoice, TaskJudge, choose_judge, make_judge
from prefalign.evaluation.preference import bootstrap, completion_logps, preference_metrics
from prefalign.jsonl import read_jsonl, write_json, write_jsonl
from prefalign.records import last_user_turn
from prefalign.settings import Settings, expect, seed_field, threads_field

# The workflow's checkpoints and the reference each one's implicit reward and KL are measured against.
REFERENCES = {"base": "base", "sft": "base", "dpo": "sft"}


@dataclass
class EvalSettings(Settings):
    SECTION = "eval"
    name: str = field(default="model", metadata={
        "job": True, "help": "label of the evaluated checkpoint (base, sft, dpo, ...)"})
    reference_name: str = field(default="reference", metadata={
        "job": True, "help": "label of its reference checkpoint"})
    beta: float = field(default=0.1, metadata={
        "key": "dpo.beta", "help": "beta of the implicit reward (use the DPO beta)"})
    max_pairs: int | None = field(default=None, metadata={"help": "score at most this many test pairs; none = all"})
    judge_prompts: int = field(default=500, metadata={"help": "distinct test prompts answered and judged (at most)"})
    max_new_tokens: int = field(default=24, metadata={"help": "longest generated answer (tokens)"})
    batch_size: int = field(default=64, metadata={"help": "sequences per forward pass"})
    judge: str = field(default="auto", metadata={
        "derived": "eval.judge", "help": f"judge of the answers: {', '.join(JUDGE_SETTINGS)} (auto: task when every "
                                         "held-out prompt is a task prompt, else the reward model given; "
                                         "prefalign.evaluation.judges.choose_judge)"})
    judge_reason: str | None = field(default=None, metadata={
        "derived": "eval.judge", "help": "why this judge (the workflow's resolution of eval.judge); recorded in the metrics"})
    pair_judge: str | None = field(default=None, metadata={
        "derived": "onpolicy.judge", "help": "the judge that picked DPO's on-policy pairs (task, reward_model, trained; "
                                             "none: DPO trained offline); recorded in the metrics"})
    pair_judge_reason: str | None = field(default=None, metadata={
        "derived": "onpolicy.judge", "help": "why that pair judge (the workflow's resolution of onpolicy.judge)"})
    judge_independence: str | None = field(default=None, metadata={
        "derived": "onpolicy.judge", "help": "why the evaluation judge is not the judge DPO was trained toward"})
    reward_model: str | None = field(default=None, metadata={
        "help": "reward_model / trained judge: folder of a sequence-classification reward model, or a hub id"})
    reward_model_revision: str | None = field(default=None, metadata={
        "help": "the 40-hex commit of a hub reward model (reward_model names a hub id)"})
    kl_prompts: int = field(default=500, metadata={
        "help": "distinct test prompts of the KL estimate (at most; judged or not)"})
    kl_samples_per_prompt: int = field(default=1, metadata={"help": "policy samples per prompt of the KL estimate"})
    bootstrap_samples: int = field(default=2000, metadata={"help": "resamples of each bootstrap interval"})
    seed: int = seed_field("sampled answers, bootstrap")
    threads: int = threads_field()

    def __post_init__(self):
        expect(self.beta > 0, "beta", "a number > 0", self.beta)
        for key in ("judge_prompts", "max_new_tokens", "batch_size", "threads", "bootstrap_samples", "kl_prompts",
                    "kl_samples_per_prompt"):
            expect(getattr(self, key) >= 1, key, "an integer >= 1", getattr(self, key))
        expect(self.judge in JUDGE_SETTINGS, "judge", f"one of {', '.join(JUDGE_SETTINGS)}", self.judge)
        expect(self.judge != "reward_model" or bool(self.reward_model), "reward_model",
               "a reward model folder when judge is reward_model", self.reward_model)


# ---------------------------------------------------------------- generation metrics

def sample_log_ratios(model, reference, tokenizer, prompts: list[list[dict]], samples: list[dict],
                      settings: EvalSettings) -> list[float]:
    """log pi(y|x) - log pi_ref(y|x) of each policy sample y (0 where the model is its own reference)."""
    if reference is model:
        return [0.0 for _ in samples]
    sequences = [(prompt_ids(tokenizer, p), s["ids"]) for p, s in zip(prompts, samples)]
    policy, _ = completion_logps(model, sequences, settings.batch_size, tokenizer.pad_token_id)
    ref, _ = completion_logps(reference, sequences, settings.batch_size, tokenizer.pad_token_id)
    return [p - r for p, r in zip(policy, ref)]


def kl_estimate(per_prompt: list[list[float]]) -> tuple[float | None, float | None]:
    """Mean over prompts of each prompt's mean log-ratio, and its standard error over prompts.

    Samples of one prompt are not independent evidence about the other prompts, so the
    standard error is that of the per-prompt means (with one sample per prompt, the usual one).
    """
    return intervals.mean_and_se([sum(r) / len(r) for r in per_prompt if r])


def no_judged_prompts_reason(judge: Judge, distinct: int) -> str:
    if isinstance(judge, TaskJudge):
        return (f"the task judge scores only prompts in the synthetic task templates, and none of the {distinct} "
                "distinct held-out prompts is one (set eval.judge: auto or trained, or reward_model with "
                "eval.reward_model)")
    return f"the {judge.name} judge scored none of the {distinct} distinct held-out prompts"


def most_common_answer(answers: list[dict]) -> tuple[str | None, int]:
    """The most common answer (stripped; the first seen among equals) and how many prompts got it."""
    texts = [a["answer"].strip() for a in answers]
    return collections.Counter(texts).most_common(1)[0] if texts else (None, 0)


def answer_health(answers: list[dict], decoding: str) -> dict:
    """What a broken model shows in its answers, counted over the answered prompts: empty answers, how many
    prompts got the most common answer (one answer to many prompts), answers cut at max_new_tokens."""
    prefix = "" if decoding == "greedy" else "sampled_"
    return {f"{prefix}answered_prompts": len(answers),
            f"{prefix}empty_answers": sum(not a["answer"].strip() for a in answers),
            f"{prefix}top_answer_prompts": most_common_answer(answers)[1],
            f"{prefix}truncated_answers": sum(bool(a.get("truncated")) for a in answers)}


def generation_metrics(model, reference, tokenizer, judge: Judge, records: list[dict], settings: EvalSettings):
    """(metrics, intervals, generation rows, unavailable): greedy and sampled answers, judged, and the KL.

    Answers are generated for the union of the judged prompts and the KL prompts; each row says
    whether its prompt was judged (`score` None when not) and carries its samples' log-ratios.
    """
    distinct = distinct_prompts(records)
    judged_ids = {r["id"] for r in judge_prompts(distinct, settings.judge_prompts, judge)}
    kl_ids = {r["id"] for r in distinct[: settings.kl_prompts]}
    pool = [r for r in distinct if r["id"] in judged_ids or r["id"] in kl_ids]
    prompts = [r["prompt"] for r in pool]
    k = settings.kl_samples_per_prompt
    greedy = generate(model, tokenizer, prompts, settings)
    # k samples of each prompt, consecutive; the first of them is the prompt's judged sample.
    samples = generate(model, tokenizer, [p for p in prompts for _ in range(k)], settings, sample=True)
    first = samples[::k]
    kl_rows = [i for i, r in enumerate(pool) if r["id"] in kl_ids]
    kl_samples = [samples[i * k + j] for i in kl_rows for j in range(k)]
    ratios = sample_log_ratios(model, reference, tokenizer, [pool[i]["prompt"] for i in kl_rows for _ in range(k)],
                               kl_samples, settings)
    log_ratios = {pool[i]["id"]: ratios[n * k : (n + 1) * k] for n, i in enumerate(kl_rows)}
    judged = [i for i, r in enumerate(pool) if r["id"] in judged_ids]
    greedy_scores = dict(zip(judged, judge.score([prompts[i] for i in judged], [greedy[i]["answer"] for i in judged])))
    sampled_scores = dict(zip(judged, judge.score([prompts[i] for i in judged], [first[i]["answer"] for i in judged])))

    rows = []
    for i, (record, g, s) in enumerate(zip(pool, greedy, first)):
        question = last_user_turn(record["prompt"])
        ratio = log_ratios.get(record["id"])
        row = {
            "id": record["id"], "prompt": question, "turns": len(record["prompt"]), "judged": i in greedy_scores,
            "answer": g["answer"], "tokens": g["tokens"], "truncated": not g["ended"],
            "expected": tasks.expected_answer(question),
            "correct": tasks.judge(question, g["answer"]), "score": greedy_scores.get(i),
            "sampled": {"answer": s["answer"], "tokens": s["tokens"], "truncated": not s["ended"],
                        "correct": tasks.judge(question, s["answer"]),
                        "score": sampled_scores.get(i), "log_ratio": ratio[0] if ratio else None},
        }
        if ratio and k > 1:
            row["log_ratios"] = ratio
        rows.append(row)

    def verified(values):
        return [1.0 if c else 0.0 for c in values if c is not None]

    correct = verified([r["correct"] for r in rows])
    sampled_correct = verified([r["sampled"]["correct"] for r in rows])
    scores = [r["score"] for r in rows if r["judged"]]
    sampled = [r["sampled"]["score"] for r in rows if r["judged"]]
    lengths = [float(r["tokens"]) for r in rows]
    sampled_lengths = [float(r["sampled"]["tokens"]) for r in rows]
    kl, kl_se = kl_estimate(list(log_ratios.values()))
    metrics = {
        "distinct_prompts": len(distinct),
        "task_prompts": sum(TaskJudge().can_score(r["prompt"]) for r in distinct),
        "judged_prompts": len(scores),
        "judge_accuracy": intervals.mean(correct),
        "judge_score_mean": intervals.mean(scores),
        "generation_length_mean": intervals.mean(lengths),
        "sampled_judge_accuracy": intervals.mean(sampled_correct),
        "sampled_judge_score_mean": intervals.mean(sampled),
        "sampled_length_mean": intervals.mean(sampled_lengths),
        "kl_mean": kl, "kl_se": kl_se, "kl_prompts": len(log_ratios), "kl_samples": len(ratios),
        **answer_health(rows, "greedy"), **answer_health([r["sampled"] for r in rows], "sampled"),
    }
    unavailable = {}
    if not scores:
        reason = no_judged_prompts_reason(judge, len(distinct))
        unavailable.update(dict.fromkeys(("judge_score_mean", "sampled_judge_score_mean"), reason))
    if not correct:
        reason = (no_judged_prompts_reason(judge, len(distinct)) if isinstance(judge, TaskJudge) else
                  f"no held-out prompt is a task prompt, so no answer can be checked right or wrong; the {judge.name} "
                  "judge gives scores instead (judge_score_mean, and win rates)")
        unavailable.update(dict.fromkeys(("judge_accuracy", "sampled_judge_accuracy"), reason))
    if kl is not None and kl_se is None:
        unavailable["kl_se"] = "the KL estimate has fewer than two prompts, so no standard error"
    kl_interval = intervals.normal_interval(kl, kl_se)
    bounds = {
        "judge_accuracy": bootstrap(correct, settings),
        "judge_score_mean": bootstrap(scores, settings),
        "generation_length_mean": bootstrap(lengths, settings),
        "sampled_judge_accuracy": bootstrap(sampled_correct, settings),
        "sampled_judge_score_mean": bootstrap(sampled, settings),
        "sampled_length_mean": bootstrap(sampled_lengths, settings),
        "kl_mean": {"low": kl_interval[0], "high": kl_interval[1], "method": "mean +- 1.96 SE over prompts"}
        if kl_interval else None,
    }
    return metrics, bounds, rows, unavailable


def resolve_judge(settings: EvalSettings, records: list[dict]) -> tuple[Judge, JudgeChoice]:
    """The judge of this evaluation and why: the workflow's resolution when it gave one, else `auto`
    resolved here by the same rule (judges.choose_judge) from the held-out prompts themselves."""
    choice = JudgeChoice(settings.judge, settings.judge, settings.judge_reason or f"--judge {settings.judge}")
    if settings.judge == "auto":
        distinct = distinct_prompts(records)
        open_prompts = sum(not TaskJudge().can_score(r["prompt"]) for r in distinct)
        unverifiable = [f"{open_prompts} of {len(distinct)} distinct held-out prompts are not task prompts"] \
            if open_prompts else []
        choice = choose_judge("auto", settings.reward_model, unverifiable, key="judge",
                              revision=settings.reward_model_revision, reward_key="--reward-model",
                              checked=f"all {len(distinct)} distinct held-out prompts are task prompts")
        expect(choice.kind != "trained", "reward_model",
               f"a reward model with judge auto: {unverifiable and unverifiable[0]}, which only a reward model can "
               "judge", settings.reward_model)
    judge = make_judge(choice.kind, settings.reward_model, settings.batch_size, settings.reward_model_revision)
    return judge, choice


def judges_record(settings: EvalSettings, judge: Judge, choice: JudgeChoice) -> dict:
    """metrics.json's `judges`: which judge graded these answers, which picked DPO's pairs, and why they differ."""
    pairs = None if settings.pair_judge is None else {"kind": settings.pair_judge, "why": settings.pair_judge_reason}
    return {"evaluation": {**judge.describe(), "why": choice.why}, "pairs": pairs,
            "independence": settings.judge_independence}


# ---------------------------------------------------------------- the step

def evaluate(model_dir: Path, reference_dir: Path, test_path: Path, settings: EvalSettings):
    """(result, generation rows, pair rows) of one checkpoint against its reference."""
    runtime.setup(settings.seed, settings.threads)
    records = read_jsonl(test_path)
    expect(bool(records), "test", "a non-empty test split", str(test_path))
    judge, choice = resolve_judge(settings, records)
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
    generated, generated_bounds, generations, unavailable = generation_metrics(
        model, reference, tokenizer, judge, records, settings)
    metrics.update(generated)
    bounds.update(generated_bounds)
    notes = []
    if same:
        notes.append(f"{settings.name} is its own reference: implicit rewards, margins and KL are 0 by construction")
    if choice.kind == "task" and metrics["task_prompts"] < metrics["distinct_prompts"]:
        notes.append(f"the task judge scored the {metrics['task_prompts']} task prompts of "
                     f"{metrics['distinct_prompts']} distinct held-out prompts; the others are not judged")
    result = {
        "model": settings.name, "reference": settings.reference_name, "judge": judge.describe(),
        "judge_choice": {"kind": choice.kind, "why": choice.why}, "judges": judges_record(settings, judge, choice),
        "sampling": {k: v for k, v in SAMPLING.items() if k != "do_sample"},
        "settings": settings.to_dict(), "metrics": metrics,
        "intervals": {k: v for k, v in bounds.items() if v is not None},
        "unavailable": unavailable, "notes": notes,
        # the text of the most common answer (metrics: how many prompts got it), for the report's warning
        "top_answer": {"greedy": most_common_answer(generations)[0],
                       "sampled": most_common_answer([g["sampled"] for g in generations])[0]},
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
