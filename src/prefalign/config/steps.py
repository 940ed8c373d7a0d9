"""Each step's typed settings, built from a resolved config by the fields' own declarations.

A Settings class says where each field comes from (prefalign.settings): its section's key of
the same name, another key (`key`), the job (`job`), or other keys (`derived`). `build`
follows those declarations and nothing else, so every config key reaches its step through the
step's settings class, and a test (tests/kernel/test_settings.py) holds every field's default equal
to its key's schema default. What the workflow passes per job (`job`) and what it derives
(`derived`) is written here, in `step_settings`, and only here.

Building a step's settings runs its own checks, so a value the schema allows but a step
cannot use (hidden_size not divisible by num_heads, say) is refused before any rule runs,
with the file and line that set it. Raises ConfigError.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterable, Iterator

from prefalign.data.filters import FilterSettings
from prefalign.data.normalize import NormalizeSettings
from prefalign.data.split import SplitSettings
from prefalign.data.synthetic import SyntheticSettings
from prefalign.errors import ConfigError
from prefalign.evaluation.ab import ABSettings
from prefalign.evaluation.compare import CompareSettings
from prefalign.evaluation.evaluate import REFERENCES, EvalSettings
from prefalign.evaluation.judge_accuracy import JudgeEvalSettings
from prefalign.evaluation.judges import JudgeChoice, Judges, choose_judges
from prefalign.hashing import is_commit
from prefalign.onpolicy.command import MixSettings
from prefalign.onpolicy.plan import PairsSettings
from prefalign.onpolicy.sample import OnPolicySettings
from prefalign.publish.card import CardSettings
from prefalign.report.render import ReportSettings
from prefalign.settings import Settings
from prefalign.train.base_model import BaseModelSettings
from prefalign.train.dpo import DPOSettings
from prefalign.train.reference import ReferenceSettings
from prefalign.train.reward import RewardSettings
from prefalign.train.sft import SFTSettings
from prefalign.train.watch.health import HealthSettings
from prefalign.train.watch.tracking import TrackingSettings
from prefalign.yamlio import where

# Every settings class a step reads (tests/kernel/test_settings.py checks each against the schema).
SETTINGS_CLASSES = (SyntheticSettings, NormalizeSettings, FilterSettings, SplitSettings, BaseModelSettings,
                    SFTSettings, DPOSettings, ReferenceSettings, RewardSettings, EvalSettings, JudgeEvalSettings,
                    CompareSettings, ReportSettings, HealthSettings, TrackingSettings, ABSettings, CardSettings,
                    PairsSettings, OnPolicySettings, MixSettings)
# Keys the workflow itself reads (rule inputs, targets, resources, images), not a step.
WORKFLOW_KEYS = ("preset", "sample", "datasets.*.source", "datasets.*.path", "eval.models", "eval.comparisons",
                 "ab.ratings", "gpu.count", "gpu.model", "containers.cpu", "containers.gpu", "check.expected",
                 "check.digests")
_MISSING = object()


def lookup(config: dict, key: str, dataset: str | None = None):
    """The value of key `a.b.c` in `config` (`*` stands for `dataset`), or _MISSING."""
    node: Any = config
    for part in key.split("."):
        part = dataset if part == "*" else part
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def build(cls: type[Settings], config: dict, sources: list[Path], dataset: str | None = None,
          job: dict | None = None) -> Settings:
    """cls with every field read from its config key, `job` giving the job and derived fields.

    A ConfigError from the class's own checks is re-raised under the key that caused it,
    with the file and line that set it.
    """
    values = dict(job or {})
    keys = {}
    for f in dataclasses.fields(cls):
        key = cls.config_key(f)
        if f.name in values or key is None:
            continue
        value = lookup(config, key, dataset)
        if value is not _MISSING:
            values[f.name] = value
            keys[f.name] = key.replace("*", dataset or "*")
    try:
        return cls(**values)
    except ConfigError as exc:
        field = str(exc).split(":", 1)[0]
        key = keys.get(field) or f"{(cls.SECTION or '').replace('*', dataset or '*')}.{field}"
        message = str(exc).split(":", 1)[1] if ":" in str(exc) else str(exc)
        raise ConfigError(f"invalid config:\n  {where(sources, key.split('.'))}{key}:{message}") from None


def hub_artifacts(config: dict) -> Iterator[tuple[list, str, Any]]:
    """(key path of the revision, hub id, revision) of every hub model and dataset the config names.

    A pretrained model is a hub artifact unless name_or_path is an existing local folder;
    a dataset is one when its source is `hub`.
    """
    model = config.get("model", {})
    if model.get("source") == "pretrained" and model.get("name_or_path") and not Path(model["name_or_path"]).is_dir():
        yield ["model", "revision"], model["name_or_path"], model.get("revision")
    for section in ("eval", "onpolicy"):  # the evaluation judge and the on-policy pair judge
        judge_model = config.get(section, {}).get("reward_model")
        if judge_model and config[section].get("judge") in ("auto", "reward_model") and not Path(judge_model).is_dir():
            yield [section, "reward_model_revision"], judge_model, config[section].get("reward_model_revision")
    for name, dataset in config.get("datasets", {}).items():
        # Without a hub_id there is nothing to pin; check_datasets names that error.
        if isinstance(dataset, dict) and dataset.get("source") == "hub" and dataset.get("hub_id"):
            yield ["datasets", name, "revision"], dataset["hub_id"], dataset.get("revision")


def check_safety(config: dict, sources: Iterable[Path] = ()) -> None:
    """Refuse what the schema cannot see: unpinned hub artifacts under strict, unsafe path names.

    strict (default true): every hub model and dataset must name a 40-hex commit revision,
    so a rerun loads the same bytes. Names that become path components (dataset names)
    must stay one component, so no config value can make a step write outside
    results/, logs/, benchmarks/ (rules/manifest.smk also checks every job's paths).
    """
    sources = [Path(s) for s in sources]
    problems = []
    if config.get("strict", True):
        for keys, hub_id, revision in hub_artifacts(config):
            if not is_commit(revision):
                problems.append(
                    f"{where(sources, keys)}{'.'.join(keys)}: expected a 40-hex-digit "
                    f"commit for hub artifact {hub_id!r}, got {revision!r} (strict: true pins every hub model and "
                    "dataset so reruns load the same bytes; set strict: false to allow unpinned ones)")
    for name, dataset in config.get("datasets", {}).items():
        text = str(name)
        if text in ("", ".", "..") or any(c in text for c in "/\\\0") or text.startswith("."):
            problems.append(f"{where(sources, ['datasets', name])}datasets.{name}: expected a name that is one "
                            f"path component (it names results/data/<name>/), got {text!r}")
        elif dataset["source"] == "local" and not dataset.get("path"):
            problems.append(f"{where(sources, ['datasets', name])}datasets.{name}.path: expected a file path when "
                            "source is local")
        elif dataset["source"] == "hub" and not dataset.get("hub_id"):
            problems.append(f"{where(sources, ['datasets', name])}datasets.{name}.hub_id: expected owner/name when "
                            "source is hub")
    for i, pair in enumerate(config["eval"]["comparisons"]):
        model, baseline = pair
        if model == baseline or not {model, baseline} <= set(config["eval"]["models"]):
            problems.append(f"{where(sources, ['eval', 'comparisons', i])}eval.comparisons: expected two different "
                            f"models of eval.models ({', '.join(config['eval']['models'])}), got [{model}, {baseline}]")
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))


def tokenizer_of(config: dict) -> dict:
    """data.tokenizer `auto`: the pretrained model's tokenizer at its revision, else ChatML bytes.

    The tiny model's tokenizer is trained on the train split, so it cannot exist when the data
    steps run; bytes bound any byte-level BPE's count from above (prefalign.data.token_count).
    """
    data, model = config["data"], config["model"]
    if data["tokenizer"] != "auto":
        return {}
    if model["source"] == "pretrained":
        return {"tokenizer": model["name_or_path"], "tokenizer_revision": model["revision"]}
    return {"tokenizer": "bytes"}


def judged_by(choice: JudgeChoice) -> dict:
    """The judge fields of a step's settings: its kind and, for a named reward model, which one."""
    return {"judge": choice.kind, "reward_model": choice.reward_model, "reward_model_revision": choice.revision}


def step_settings(config: dict, sources: Iterable[Path] = ()) -> dict[str, Settings | JudgeChoice | Judges]:
    """The typed settings of every step of a resolved (validated, defaults-filled) config.

    Keys: synth:<dataset>, normalize:<dataset>, filters, split, model, sft, dpo, dpo_pairs (what DPO trains on,
    round by round), onpolicy (`prefalign onpolicy sample`), mix (`... mix`), reference, reward (the
    evaluation judge's training when it is trained), pair_reward (the pair judge's, when it is trained),
    judges (both judges resolved: a Judges, not a step's settings), judge (the evaluation judge's
    JudgeChoice), judge_eval (a reward-model evaluation judge only), eval:<model>, compare, report,
    health, tracking, ab, card.
    """
    sources = [Path(s) for s in sources]
    check_safety(config, sources)
    out: dict[str, Settings] = {}
    for name, dataset in config["datasets"].items():
        if dataset["source"] == "synthetic":
            out[f"synth:{name}"] = build(SyntheticSettings, config, sources, name, job={"name": name})
        out[f"normalize:{name}"] = build(NormalizeSettings, config, sources, name, job={"name": name})
    out["filters"] = build(FilterSettings, config, sources, job=tokenizer_of(config))
    caps = [f"{name}={d['cap']}" for name, d in config["datasets"].items() if d["cap"] is not None]
    out["split"] = build(SplitSettings, config, sources, job={"caps": caps})
    for key, cls in (("model", BaseModelSettings), ("sft", SFTSettings), ("dpo", DPOSettings),
                     ("compare", CompareSettings), ("report", ReportSettings),
                     ("health", HealthSettings), ("tracking", TrackingSettings), ("ab", ABSettings),
                     ("card", CardSettings), ("dpo_pairs", PairsSettings), ("mix", MixSettings)):
        out[key] = build(cls, config, sources)
    # The reference pass (rule reference_logps) gets only what changes its numbers or batches:
    # a new beta, loss or step count never reruns it.
    dpo = config["dpo"]
    out["reference"] = build(ReferenceSettings, config, sources,
                             job={"batch_size": dpo["batch_size"] * dpo["gradient_accumulation_steps"]})
    # The judges (eval.judge, onpolicy.judge; auto included) are resolved here, from the config alone: the
    # DAG's inputs depend on them. A trained judge learns from its part of the train prompts (reward.eval_share).
    evaluation = config["eval"]
    try:
        judges = out["judges"] = choose_judges(config)
    except ConfigError as exc:
        key = ["onpolicy", "judge"] if str(exc).startswith("judge: expected a pair") else ["eval", "judge"]
        raise ConfigError(f"invalid config:\n  {where(sources, key)}{key[0]}.{exc}") from None
    judge = out["judge"] = judges.evaluation
    for key, choice in (("reward", judges.evaluation), ("pair_reward", judges.pairs)):
        if choice is not None and choice.kind == "trained":
            out[key] = build(RewardSettings, config, sources, job={"part": choice.part})
    out.setdefault("reward", build(RewardSettings, config, sources))
    if judge.kind != "task":
        out["judge_eval"] = build(JudgeEvalSettings, config, sources, job=judged_by(judge))
    pairs = judges.pairs
    described = {"pair_judge": pairs.kind if pairs else None, "pair_judge_reason": pairs.why if pairs else None,
                 "judge_independence": judges.independence()}
    for model in evaluation["models"]:
        out[f"eval:{model}"] = build(EvalSettings, config, sources, job={
            "name": model, "reference_name": REFERENCES[model], "judge": judge.kind, "judge_reason": judge.why,
            **described})
    # Without on-policy pairs nothing samples; the settings are still built (and checked).
    out["onpolicy"] = build(OnPolicySettings, config, sources,
                            job={**judged_by(pairs or judge), "judge_reason": (pairs or judge).why})
    return out
