"""Judges: score a model's answer to a prompt, behind one interface.

    judge = make_judge("task")                                    # the synthetic tasks' verifier
    judge = make_judge("reward_model", reward_model="path/rm")    # a reward model: local folder ...
    judge = make_judge("reward_model", "org/rm", revision=SHA)    # ... or a hub id at a pinned commit
    judge = make_judge("trained", reward_model="results/reward_model/model")  # the run's own (train_reward_model)
    judge.can_score(prompt) -> bool
    judge.score(prompts, answers) -> list[float]                  # higher is better
    judge.describe() -> dict                                      # what judged (kind, path, architecture)

`task` scores 1.0 when prefalign.data.tasks' verifier accepts the answer and 0.0 when not; it
can only score prompts written in one of the task templates. `reward_model` and `trained`
score any prompt: the reward model's scalar output for the conversation prompt + answer,
rendered with the reward model's own chat template (or the turns joined by newlines when it
has none), as TRL's RewardTrainer renders its training pairs. `trained` is a reward model
the workflow trained on the run's train split; it differs from `reward_model` only in its
name, so results say which kind judged. Win rates compare two models' scores prompt by
prompt, so a judge's scores only need to be comparable with each other, not calibrated.

A run has two judges (`choose_judges`): the evaluation judge (config `eval.judge`) grades the
answers; the pair judge (config `onpolicy.judge`, when DPO trains on on-policy pairs) scores the
policy's samples and so picks DPO's pairs. DPO is optimised toward the pair judge, so the two
are never the same model trained on the same data: the task verifier (never trained) may be
both; two trained reward models learn from disjoint parts of the train prompts
(reward.eval_share); one named reward model cannot be both (ConfigError). `auto` is resolved by
one rule, `choose_judge`, from what is known before any data exists (Snakemake builds the DAG,
whose inputs depend on it, before the test split is made): `task` when every dataset is
synthetic (the synthetic data are made of task prompts only), else the reward model the config
names, else `trained`. The evaluate CLI, given `auto` itself, applies the same rule to the
held-out prompts. The evaluate step records how many held-out prompts the judge could score.

Assumes a reward model in the hub's layout (config.json, safetensors weights, tokenizer)
with one output label, as TRL's RewardTrainer saves it. Raises ConfigError for an unknown
judge, a missing folder, an unpinned hub id, or a checkpoint that is not a one-label
sequence-classification model (loading a causal LM as a classifier would silently add a
random head).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from prefalign.data import tasks
from prefalign.errors import ConfigError, RecordError
from prefalign.evaluation.batches import padded
from prefalign.hashing import is_commit
from prefalign.records import last_user_turn
from prefalign.settings import expect

JUDGES = ("task", "reward_model", "trained")  # what scores answers
JUDGE_SETTINGS = ("auto", *JUDGES)  # what config eval.judge may say


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


def _reward_model_config(source: str, revision: str | None) -> tuple[dict, bool]:
    """(config.json of the reward model, whether it is a local folder); ConfigError when it cannot be used."""
    path = Path(source)
    if path.is_dir():
        config_file = path / "config.json"
        expect(config_file.is_file(), "reward_model", "a folder with a reward model (config.json, safetensors)",
               str(path))
        return json.loads(config_file.read_text(encoding="utf-8")), True
    looks_like_hub_id = source.count("/") == 1 and not source.startswith((".", "/")) and not path.exists()
    expect(looks_like_hub_id, "reward_model",
           "a folder with a reward model (config.json, safetensors) or a hub id owner/name", source)
    expect(is_commit(revision), "reward_model_revision",
           f"the 40-hex-digit commit of hub reward model {source!r} (a rerun must load the same weights)", revision)
    from huggingface_hub import hf_hub_download

    try:
        config_file = hf_hub_download(source, "config.json", revision=revision)
    except Exception as error:  # offline and not cached, unknown repo, ...: say which and how to fix it
        raise RecordError(f"reward_model: cannot load {source}@{revision}: {type(error).__name__}: {error} "
                          "(fetch it once with HF_HUB_OFFLINE=0)") from None
    return json.loads(Path(config_file).read_text(encoding="utf-8")), False


class RewardModelJudge:
    """A sequence-classification reward model (one output label): its score for prompt + answer."""

    def __init__(self, source: str | Path, batch_size: int = 64, revision: str | None = None,
                 name: str = "reward_model"):
        source = str(source)
        config, local = _reward_model_config(source, revision)
        architectures = config.get("architectures") or []
        expect(any(a.endswith("ForSequenceClassification") for a in architectures), "reward_model",
               "a sequence-classification checkpoint (config.json architectures *ForSequenceClassification)",
               f"{source} ({', '.join(architectures) or 'no architectures'})")
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from prefalign.runtime import Machine

        machine = Machine.detect()
        pinned = {} if local else {"revision": revision}
        self.name = name
        self.path = Path(source) if local else source
        self.revision = None if local else revision
        self.batch_size = batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False, **pinned)
        self.model = AutoModelForSequenceClassification.from_pretrained(
            source, trust_remote_code=False, use_safetensors=True, **pinned,
            **({"dtype": "auto"} if machine.cuda else {})).to(machine.device).eval()
        expect(self.model.config.num_labels == 1, "reward_model", "a model with one output label (a scalar reward)",
               f"{source} (num_labels={self.model.config.num_labels})")
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
            input_ids, attention = padded(batch, pad)
            with torch.no_grad():
                logits = self.model(input_ids=input_ids.to(self.model.device),
                                    attention_mask=attention.to(self.model.device)).logits.float()
            scores.extend(logits[:, 0].tolist())
        return scores

    def describe(self) -> dict:
        described = {"kind": self.name, "path": str(self.path), "architecture": type(self.model).__name__}
        if self.revision:
            described["revision"] = self.revision
        return described


def make_judge(kind: str, reward_model: str | Path | None = None, batch_size: int = 64,
               revision: str | None = None) -> Judge:
    """The judge named `kind` (task, reward_model or trained; the last two need `reward_model`:
    a folder, or a hub id with its pinned `revision`)."""
    expect(kind in JUDGES, "judge", f"one of {', '.join(JUDGES)}", kind)
    if kind == "task":
        return TaskJudge()
    expect(reward_model is not None, "reward_model", f"a reward model folder when judge is {kind}", reward_model)
    return RewardModelJudge(reward_model, batch_size, revision, name=kind)


# ---------------------------------------------------------------- which judge a run uses

ROLES = ("evaluation", "pairs")  # a run's two judges: the one that grades the answers, the one that picks DPO's pairs
PARTS = ("all", "evaluation", "pairs")  # the train prompts a trained judge learns from (prefalign.train.reward)
TRAINED_RULES = {"evaluation": "train_reward_model", "pairs": "train_pair_judge"}
TRAINED_FOLDERS = {"evaluation": "results/reward_model/model", "pairs": "results/pair_judge/model"}


@dataclass(frozen=True)
class JudgeChoice:
    setting: str  # what the config key says (auto, task, reward_model, trained)
    kind: str  # what judges (task, reward_model, trained)
    why: str  # one sentence, shown in metrics.json and the report
    role: str = "evaluation"  # evaluation (grades the answers) or pairs (picks on-policy pairs for DPO)
    part: str | None = None  # trained: the train prompts it learns from (PARTS)
    reward_model: str | None = None  # reward_model: the folder or hub id the config names
    revision: str | None = None  # reward_model: the hub commit

    def to_dict(self) -> dict:
        return {"role": self.role, "setting": self.setting, "kind": self.kind, "why": self.why,
                **({"part": self.part} if self.part else {}),
                **({"reward_model": self.reward_model} if self.reward_model else {}),
                **({"revision": self.revision} if self.revision else {})}


def choose_judge(setting: str, reward_model: str | None, unverifiable: list[str], role: str = "evaluation",
                 key: str = "eval.judge", revision: str | None = None, reward_key: str = "eval.reward_model",
                 checked: str = "every prompt is a task prompt") -> JudgeChoice:
    """Resolve a judge setting (`auto` included): the one rule, for the workflow and the evaluate CLI alike.

    `unverifiable` says, in clauses, which data hold prompts the task verifier cannot check (the
    workflow: the datasets that are not synthetic, known before any data exists; the evaluate
    CLI: how many held-out prompts are not task prompts); empty when the verifier checks them
    all, which `checked` then says in words. `auto` is `task` when it is empty, else the reward model `reward_model` names, else
    `trained` (a reward model the workflow trains on the train split; the evaluate CLI then
    needs its folder, --reward-model).
    """
    expect(setting in JUDGE_SETTINGS, key.rsplit(".", 1)[-1], f"one of {', '.join(JUDGE_SETTINGS)}", setting)
    named = {"reward_model": reward_model, "revision": revision}
    if setting != "auto":
        return JudgeChoice(setting, setting, f"{key}: {setting} (set in the config)", role,
                           **(named if setting == "reward_model" else {}))
    if not unverifiable:
        return JudgeChoice("auto", "task", f"{key} auto: {checked}, which the task verifier checks", role)
    open_prompts = "; ".join(unverifiable)
    if reward_model:
        return JudgeChoice("auto", "reward_model", f"{key} auto: {open_prompts}; {reward_key} names a reward model "
                                                   f"({reward_model})", role, **named)
    return JudgeChoice("auto", "trained", f"{key} auto: {open_prompts}, and {reward_key} names none: a reward "
                                          f"model is trained on the train split (rule {TRAINED_RULES[role]})", role)


@dataclass(frozen=True)
class Judges:
    """A run's judges: `evaluation` grades the answers; `pairs` picks DPO's on-policy pairs (None: offline DPO)."""

    evaluation: JudgeChoice
    pairs: JudgeChoice | None

    def independence(self) -> str:
        """Why the evaluation judge is not the judge DPO was trained toward, in one sentence."""
        e, p = self.evaluation, self.pairs
        if p is None:
            return ("DPO trained on the dataset's own chosen/rejected labels (dpo.pairs offline); no judge picked its "
                    "pairs, so it was not optimised toward the evaluation judge")
        if e.kind == "task" and p.kind == "task":
            return ("the task verifier checks each answer against its task's rule and was never trained, so DPO "
                    "cannot fit it except by answering right")
        if e.kind == "trained" and p.kind == "trained":
            return ("two reward models judge: the pair judge trained on one part of the train prompts, the evaluation "
                    "judge on the other (reward.eval_share), so DPO was not optimised toward the judge that grades it")
        return (f"different judges picked DPO's pairs ({judge_words(p)}) and grade its answers ({judge_words(e)}), so "
                "DPO was not optimised toward the judge that grades it")


def judge_words(choice: JudgeChoice) -> str:
    """A judge in a few words: the task verifier, a trained reward model (which part), or the named reward model."""
    if choice.kind == "task":
        return "the task verifier"
    if choice.kind == "trained":
        where = {"all": "the train split", "evaluation": "the evaluation part of the train prompts",
                 "pairs": "the pair part of the train prompts"}.get(choice.part or "all")
        return f"a reward model trained on {where} ({TRAINED_FOLDERS[choice.role]})"
    return f"the reward model {choice.reward_model}" + (f"@{choice.revision[:12]}" if choice.revision else "")


def unverifiable_datasets(datasets: dict[str, dict]) -> list[str]:
    """The datasets whose prompts the task verifier cannot check (every one but the synthetic ones), in words."""
    real = [f"{name} ({entry['source']})" for name, entry in datasets.items() if entry["source"] != "synthetic"]
    return [f"dataset(s) {', '.join(real)} are not synthetic, so held-out prompts include prompts the task "
            "verifier cannot check"] if real else []


def choose_judges(config: dict) -> Judges:
    """Both judges of a resolved config, from the config alone (Snakemake builds the DAG, whose inputs
    depend on them, before any data exists).

    The pair judge exists when DPO trains on on-policy pairs (dpo.pairs onpolicy or mixed). When
    both judges are trained reward models, they learn from disjoint parts of the train prompts
    (reward.eval_share of them for the evaluation judge, the rest for the pair judge), so DPO is
    never graded by the judge it was trained toward. Raises ConfigError when both are the same
    named reward model (onpolicy.judge must then name another, or be trained).
    """
    unverifiable = unverifiable_datasets(config["datasets"])
    checked = (f"every dataset ({', '.join(config['datasets'])}) is synthetic, so every prompt is a task prompt"
               if not unverifiable else "")
    evaluation = config["eval"]
    chosen = choose_judge(evaluation["judge"], evaluation.get("reward_model"), unverifiable, "evaluation",
                          "eval.judge", evaluation.get("reward_model_revision"), checked=checked)
    if config["dpo"].get("pairs", "offline") == "offline":
        return Judges(_with_part(chosen, "all"), None)
    onpolicy = config.get("onpolicy", {})
    pairs = choose_judge(onpolicy.get("judge", "auto"), onpolicy.get("reward_model"), unverifiable, "pairs",
                         "onpolicy.judge", onpolicy.get("reward_model_revision"), "onpolicy.reward_model", checked)
    if (chosen.kind == pairs.kind == "reward_model" and chosen.reward_model == pairs.reward_model
            and chosen.revision == pairs.revision):
        raise ConfigError(f"judge: expected a pair judge other than the evaluation judge, got the reward model "
                          f"{pairs.reward_model} for both (DPO would be graded by the judge that picked its pairs); "
                          "set onpolicy.judge: trained, or onpolicy.reward_model to another reward model")
    both = chosen.kind == pairs.kind == "trained"
    return Judges(_with_part(chosen, "evaluation" if both else "all"), _with_part(pairs, "pairs" if both else "all"))


def _with_part(choice: JudgeChoice, part: str) -> JudgeChoice:
    """A trained judge with the train prompts it learns from, said in its `why`."""
    if choice.kind != "trained":
        return choice
    why = choice.why
    if part != "all":
        why += (f", on the {part} part of the train prompts (reward.eval_share of them train the evaluation judge, "
                "the rest the pair judge)")
    return JudgeChoice(choice.setting, choice.kind, why, choice.role, part)
