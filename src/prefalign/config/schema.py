"""Workflow config validation with messages a person can act on.

`check_config` validates a config against schemas/config.schema.yaml (JSON Schema 2020-12)
and raises ConfigError listing every problem as

    config.yaml:42: sft.learning_rate: expected a number > 0, got -1 (Peak learning rate.)

naming the file and line where the key was set (when it came from a file), the key's path,
what was expected and the key's description. The Snakefile calls it before any rule runs.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, Iterable, Iterator

from prefalign.errors import ConfigError
from prefalign.hashing import is_commit
from prefalign.yamlio import load_yaml, where

SCHEMA = Path(__file__).resolve().parents[3] / "schemas" / "config.schema.yaml"
_TYPE_NAMES = {"integer": "an integer", "number": "a number", "string": "a string", "boolean": "true or false",
               "array": "a list", "object": "a mapping", "null": "null"}


def load_schema(path: Path = SCHEMA) -> dict:
    return load_yaml(path)


def _describe(schema: dict) -> str:
    kinds = schema.get("type")
    if "enum" in schema:
        return "one of " + ", ".join(repr(v) if isinstance(v, str) else str(v) for v in schema["enum"])
    if kinds is None:
        return "a valid value"
    kinds = kinds if isinstance(kinds, list) else [kinds]
    text = " or ".join(_TYPE_NAMES.get(k, k) for k in kinds)
    bounds = [f"{op} {schema[k]}" for k, op in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="),
                                                ("exclusiveMaximum", "<")) if k in schema]
    return text + (" " + " and ".join(bounds) if bounds else "")


def _expected(error) -> str:
    kind, schema = error.validator, error.schema
    if kind == "additionalProperties":
        allowed = ", ".join(sorted(schema.get("properties", {})))
        return f"no such key (allowed here: {allowed})" if allowed else "no such key"
    if kind == "required":
        return error.message
    if kind == "enum":
        return _describe({"enum": error.validator_value})
    if kind == "type":
        return _describe({"type": error.validator_value})
    if kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        ops = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}
        return f"a number {ops[kind]} {error.validator_value}"
    if kind == "minItems":
        return f"at least {error.validator_value} item(s)"
    if kind == "minProperties":
        return f"at least {error.validator_value} entry(ies)"
    if kind == "uniqueItems":
        return "no repeated items"
    if kind == "pattern":
        return f"text matching {error.validator_value}"
    return error.message


def property_schema(root: dict, path: list) -> dict:
    """The schema that declares the key at `path` (where its description lives, even behind a $ref)."""
    node = root
    for key in path:
        if isinstance(key, int):
            node = node.get("items", {})
        elif key in node.get("properties", {}):
            node = node["properties"][key]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return {}
    return node


def format_errors(errors, sources: list[Path], root: dict | None = None) -> list[str]:
    messages = []
    for error in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path]):
        path = list(error.absolute_path)
        if error.validator == "additionalProperties":
            extra = sorted(set(error.instance) - set(error.schema.get("properties", {})), key=str)
            path = path + extra[:1]
        key = ".".join(str(p) for p in path) or "<top level>"
        located = where(sources, path)
        declared = property_schema(root, list(error.absolute_path)) if root else error.schema
        description = declared.get("description") if error.validator != "additionalProperties" else None
        got = "" if error.validator in ("additionalProperties", "required") else f", got {error.instance!r}"
        text = f"{key}: expected {_expected(error)}{got}"
        if description:
            text += f" ({' '.join(description.split())})"
        messages.append(f"{located}{text}")
    return messages


def check_config(config: dict, schema: dict | None = None, sources: Iterable[Path] = ()) -> None:
    """Raise ConfigError listing every schema violation of `config` (defaults not yet filled)."""
    from jsonschema import Draft202012Validator

    schema = schema if schema is not None else load_schema()
    if not isinstance(config, dict):
        raise ConfigError(f"the config must be a mapping of keys, got {type(config).__name__}")
    sources = [Path(s) for s in sources]
    not_numbers = list(_nan_paths(config))
    if not_numbers:
        raise ConfigError("invalid config:\n  " + "\n  ".join(
            f"{where(sources, path)}{'.'.join(map(str, path))}: expected a number, got nan" for path in not_numbers))
    errors = list(Draft202012Validator(schema).iter_errors(config))
    if errors:
        lines = format_errors(errors, sources, schema)
        raise ConfigError("invalid config:\n  " + "\n  ".join(lines))


def _nan_paths(value, path=()):
    """Key paths of NaN values: JSON Schema's bounds let NaN through (every comparison is false)."""
    if isinstance(value, float) and math.isnan(value):
        yield list(path)
    elif isinstance(value, dict):
        for key, sub in value.items():
            yield from _nan_paths(sub, path + (key,))
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            yield from _nan_paths(sub, path + (i,))


def with_defaults(config: dict, schema: dict | None = None) -> dict:
    """A copy of `config` with every missing key set to its schema default (recursively)."""
    schema = schema if schema is not None else load_schema()
    return _fill(copy.deepcopy(config), schema)


def _fill(value, schema):
    if isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = _fill(value[key], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in value:
                if key not in schema.get("properties", {}):
                    value[key] = _fill(value[key], extra)
    return value


def load_config(path: Path, schema: dict | None = None) -> dict:
    """Read, validate and complete a config file (what the Snakefile does, without Snakemake)."""
    schema = schema if schema is not None else load_schema()
    config = load_yaml(path) or {}
    check_config(config, schema, [path])
    apply_presets(config, [path], schema)
    return with_defaults(config, schema)


def apply_presets(config: dict, sources: Iterable[Path] = (), schema: dict | None = None) -> dict:
    """Expand `sample` caps and fill the preset's keys the config leaves unset, in place.

    Call after `check_config` and before the schema's defaults are filled (the Snakefile and
    `load_config` do), so the schema, Snakemake's params and the steps see the same values.
    Returns what was filled (prefalign.config.presets.resolve).
    """
    from prefalign.config import presets

    return presets.resolve(config, [Path(s) for s in sources], schema if schema is not None else load_schema())


def hub_artifacts(config: dict) -> Iterator[tuple[list, str, Any]]:
    """(key path of the revision, hub id, revision) of every hub model and dataset the config names.

    A pretrained model is a hub artifact unless name_or_path is an existing local folder;
    a dataset is one when its source is `hub`.
    """
    model = config.get("model", {})
    if model.get("source") == "pretrained" and model.get("name_or_path") and not Path(model["name_or_path"]).is_dir():
        yield ["model", "revision"], model["name_or_path"], model.get("revision")
    judge_model = config.get("eval", {}).get("reward_model")
    if judge_model and config["eval"].get("judge") in ("auto", "reward_model") and not Path(judge_model).is_dir():
        yield ["eval", "reward_model_revision"], judge_model, config["eval"].get("reward_model_revision")
    for name, dataset in config.get("datasets", {}).items():
        # Without a hub_id there is nothing to pin; normalize_values names that error.
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
    for name in config.get("datasets", {}):
        text = str(name)
        if text in ("", ".", "..") or any(c in text for c in "/\\\0") or text.startswith("."):
            problems.append(f"{where(sources, ['datasets', name])}datasets.{name}: expected a name that is one "
                            f"path component (it names results/data/<name>/), got {text!r}")
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))


def _build(section: str, cls, values: dict, sources: list[Path], line_keys: list):
    """cls(**values), with any ConfigError re-raised under the config key that caused it."""
    try:
        return cls(**values)
    except ConfigError as exc:
        key = str(exc).split(":", 1)[0]
        raise ConfigError(f"invalid config:\n  {where(sources, line_keys + [key])}{section}.{exc}") from None


def normalize_values(name: str, dataset: dict, data: dict) -> dict:
    """The normalize step's settings of one `datasets` entry (the source checked for its keys)."""
    source = dataset["source"]
    if source == "local" and not dataset.get("path"):
        raise ConfigError(f"invalid config:\n  datasets.{name}.path: expected a file path when source is local")
    if source == "hub" and not dataset.get("hub_id"):
        raise ConfigError(f"invalid config:\n  datasets.{name}.hub_id: expected owner/name when source is hub")
    values = {"format": dataset["format"], "name": name, "on_bad_record": data["on_bad_record"]}
    values.update({k: dataset[k] for k in ("split", "max_records", "languages", "pairing", "prompt_field",
                                           "chosen_field", "rejected_field", "id_field", "implicit_prompt")})
    if source == "local":
        values["file_format"] = dataset["file_format"]
    if source == "hub":
        values.update(hub_id=dataset["hub_id"], revision=dataset["revision"], hub_config=dataset["hub_config"],
                      data_files=dataset["data_files"])
    return values


def filter_values(config: dict) -> dict:
    """The normalize step's filter settings; tokenizer `auto` resolved (see prefalign.data.token_count)."""
    data = config["data"]
    values = {k: data[k] for k in ("drop_empty", "drop_identical", "min_score_ratio", "max_chars", "max_tokens",
                                   "tokenizer", "tokenizer_revision", "dedup")}
    if values["tokenizer"] == "auto":
        model = config["model"]
        if model["source"] == "pretrained":
            values.update(tokenizer=model["name_or_path"], tokenizer_revision=model["revision"])
        else:
            values["tokenizer"] = "bytes"
    return values


def step_settings(config: dict, sources: Iterable[Path] = ()) -> dict[str, Any]:
    """The typed settings of every step, built from a validated, defaults-filled config.

    Keys: synth:<dataset>, normalize:<dataset>, filters, split, model, sft, dpo, reward, judge (the resolved
    eval.judge: prefalign.evaluation.judges.JudgeChoice), judge_eval (a reward-model judge only), eval:<model>,
    compare, report, health, tracking, ab.
    Building them runs each step's own checks, so a value the schema allows but a step cannot
    use (hidden_size not divisible by num_heads, say) is refused before any rule runs.
    """
    from prefalign.data.filters import FilterSettings
    from prefalign.data.normalize import NormalizeSettings
    from prefalign.data.split import SplitSettings
    from prefalign.data.synthetic import SyntheticSettings
    from prefalign.evaluation.compare import CompareSettings
    from prefalign.evaluation.evaluate import REFERENCES, EvalSettings
    from prefalign.evaluation.judges import choose_judge
    from prefalign.report.render import ReportSettings
    from prefalign.train.base_model import BaseModelSettings
    from prefalign.train.dpo import DPOSettings
    from prefalign.train.reward import RewardSettings
    from prefalign.train.sft import SFTSettings

    sources = [Path(s) for s in sources]
    check_safety(config, sources)
    common = {"seed": config["seed"], "threads": config["threads"]}
    data = config["data"]
    out: dict[str, Any] = {}
    for name, dataset in config["datasets"].items():
        keys = ["datasets", name]
        if dataset["source"] == "synthetic":
            out[f"synth:{name}"] = _build(f"datasets.{name}", SyntheticSettings, {
                "format": dataset["format"], "records": dataset["records"], "seed": config["seed"], "name": name,
                **config["synthetic"]}, sources, keys)
        out[f"normalize:{name}"] = _build(f"datasets.{name}", NormalizeSettings,
                                          normalize_values(name, dataset, data), sources, keys)
    out["filters"] = _build("data", FilterSettings, filter_values(config), sources, ["data"])
    caps = [f"{name}={d['cap']}" for name, d in config["datasets"].items() if d["cap"] is not None]
    out["split"] = _build("data", SplitSettings, {
        **{k: data[k] for k in ("test_fraction", "split_seed", "near_dedup", "near_dup_threshold", "near_dup_ngram",
                                "minhash_perms", "decontaminate", "decontam_ngram", "decontam_overlap")},
        "caps": caps, "threads": config["threads"]}, sources, ["data"])
    out["model"] = _build("model", BaseModelSettings, {**config["model"], **common, "strict": config.get("strict", True)},
                          sources, ["model"])
    out["sft"] = _build("sft", SFTSettings, {**config["sft"], **common}, sources, ["sft"])
    out["dpo"] = _build("dpo", DPOSettings, {**config["dpo"], **common}, sources, ["dpo"])
    out["reward"] = _build("reward", RewardSettings, {**config["reward"], **common}, sources, ["reward"])
    evaluation = {k: v for k, v in config["eval"].items() if k not in ("models", "comparisons")}
    # eval.judge auto is resolved here, from the config alone: the DAG's inputs depend on it.
    choice = _build("eval", choose_judge, {"setting": config["eval"]["judge"],
                                           "reward_model": config["eval"]["reward_model"],
                                           "datasets": config["datasets"]}, sources, ["eval"])
    evaluation.update(judge=choice.kind, judge_reason=choice.why)
    out["judge"] = choice
    if choice.kind != "task":
        from prefalign.evaluation.judge_accuracy import JudgeEvalSettings

        given = choice.kind == "reward_model"
        out["judge_eval"] = _build("eval", JudgeEvalSettings, {
            "judge": choice.kind, "reward_model": config["eval"]["reward_model"] if given else None,
            "reward_model_revision": config["eval"]["reward_model_revision"] if given else None,
            **{k: config["eval"][k] for k in ("max_pairs", "batch_size", "bootstrap_samples")}, **common},
            sources, ["eval"])
    for model in config["eval"]["models"]:
        out[f"eval:{model}"] = _build("eval", EvalSettings, {
            **evaluation, **common, "name": model, "reference_name": REFERENCES[model],
            "beta": config["dpo"]["beta"]}, sources, ["eval"])
    for i, (model, baseline) in enumerate(config["eval"].get("comparisons", [])):
        if model == baseline or not {model, baseline} <= set(config["eval"]["models"]):
            raise ConfigError(f"invalid config:\n  {where(sources, ['eval', 'comparisons', i])}eval.comparisons: expected two different models of "
                              f"eval.models ({', '.join(config['eval']['models'])}), got [{model}, {baseline}]")
    out["compare"] = _build("eval", CompareSettings, {"bootstrap_samples": config["eval"]["bootstrap_samples"],
                                                      "seed": config["seed"]}, sources, ["eval"])
    out["report"] = _build("report", ReportSettings, config["report"], sources, ["report"])
    out.update(guidance_settings(config, sources))
    return out


def guidance_settings(config: dict, sources: list[Path]) -> dict[str, Any]:
    """health and tracking (flags of sft and dpo) and ab (flags of `prefalign ab export`)."""
    from prefalign.evaluation.ab import ABSettings
    from prefalign.train.watch.health import HealthSettings
    from prefalign.train.watch.tracking import TrackingSettings

    ab = {k: v for k, v in config["ab"].items() if k != "ratings"}  # ratings is an input file, not a setting
    return {
        "health": _build("health", HealthSettings, config["health"], sources, ["health"]),
        "tracking": _build("tracking", TrackingSettings, config["tracking"], sources, ["tracking"]),
        "ab": _build("ab", ABSettings, {**ab, "seed": config["seed"]}, sources, ["ab"]),
    }
