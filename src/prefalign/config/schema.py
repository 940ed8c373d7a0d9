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
import re
from pathlib import Path
from typing import Any, Iterable, Iterator

import yaml

from prefalign.settings import ConfigError

SCHEMA = Path(__file__).resolve().parents[3] / "schemas" / "config.schema.yaml"
_TYPE_NAMES = {"integer": "an integer", "number": "a number", "string": "a string", "boolean": "true or false",
               "array": "a list", "object": "a mapping", "null": "null"}


def load_yaml(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config ({exc.strerror or exc})") from None


def load_schema(path: Path = SCHEMA) -> dict:
    return load_yaml(path)


def key_line(path: Path, keys: Iterable[Any]) -> int | None:
    """1-based line where the key path is set in the YAML file `path`, or None."""
    try:
        node = yaml.compose(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    line = None
    for key in keys:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == str(key)), None)
            if match is None:
                return line
            line = next(k for k, v in node.value if k.value == str(key)).start_mark.line + 1
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            return line
    return line


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
        where = None
        for source in reversed(sources):
            line = key_line(source, path)
            if line is not None:
                where = f"{source}:{line}"
                break
        declared = property_schema(root, list(error.absolute_path)) if root else error.schema
        description = declared.get("description") if error.validator != "additionalProperties" else None
        got = "" if error.validator in ("additionalProperties", "required") else f", got {error.instance!r}"
        text = f"{key}: expected {_expected(error)}{got}"
        if description:
            text += f" ({' '.join(description.split())})"
        messages.append(f"{where}: {text}" if where else text)
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
            f"{_where(sources, path)}{'.'.join(map(str, path))}: expected a number, got nan" for path in not_numbers))
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


COMMIT = re.compile(r"[0-9a-f]{40}")


def _where(sources: list[Path], keys: list) -> str:
    for source in reversed(sources):
        line = key_line(source, keys)
        if line is not None:
            return f"{source}:{line}: "
    return ""


def hub_artifacts(config: dict) -> Iterator[tuple[list, str, Any]]:
    """(key path of the revision, hub id, revision) of every hub model and dataset the config names.

    A pretrained model is a hub artifact unless name_or_path is an existing local folder;
    a dataset is one when its source is `hub`.
    """
    model = config.get("model", {})
    if model.get("source") == "pretrained" and model.get("name_or_path") and not Path(model["name_or_path"]).is_dir():
        yield ["model", "revision"], model["name_or_path"], model.get("revision")
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
            if not (isinstance(revision, str) and COMMIT.fullmatch(revision)):
                problems.append(
                    f"{_where(sources, keys) or _where(sources, keys[:-1])}{'.'.join(keys)}: expected a 40-hex-digit "
                    f"commit for hub artifact {hub_id!r}, got {revision!r} (strict: true pins every hub model and "
                    "dataset so reruns load the same bytes; set strict: false to allow unpinned ones)")
    for name in config.get("datasets", {}):
        text = str(name)
        if text in ("", ".", "..") or any(c in text for c in "/\\\0") or text.startswith("."):
            problems.append(f"{_where(sources, ['datasets', name])}datasets.{name}: expected a name that is one "
                            f"path component (it names results/data/<name>/), got {text!r}")
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))


def _build(section: str, cls, values: dict, sources: list[Path], line_keys: list):
    """cls(**values), with any ConfigError re-raised under the config key that caused it."""
    try:
        return cls(**values)
    except ConfigError as exc:
        key = str(exc).split(":", 1)[0]
        where = None
        for source in reversed(sources):
            line = key_line(source, line_keys + [key]) or key_line(source, line_keys)
            if line is not None:
                where = f"{source}:{line}"
                break
        message = f"{section}.{exc}"
        raise ConfigError(f"invalid config:\n  {where + ': ' if where else ''}{message}") from None


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

    Keys: synth:<dataset>, normalize:<dataset>, filters, split, model, sft, dpo, eval:<model>, compare, report,
    health, tracking, ab.
    Building them runs each step's own checks, so a value the schema allows but a step cannot
    use (hidden_size not divisible by num_heads, say) is refused before any rule runs.
    """
    from prefalign.train.base_model import BaseModelSettings
    from prefalign.evaluation.compare import CompareSettings
    from prefalign.evaluation.evaluate import REFERENCES, EvalSettings
    from prefalign.data.filters import FilterSettings
    from prefalign.data.normalize import NormalizeSettings
    from prefalign.report.render import ReportSettings
    from prefalign.data.split import SplitSettings
    from prefalign.data.synthetic import SyntheticSettings
    from prefalign.train.dpo import DPOSettings
    from prefalign.train.sft import SFTSettings

    sources = [Path(s) for s in sources]
    check_safety(config, sources)
    common = {"seed": config["seed"], "threads": config["threads"]}
    data = config["data"]
    out: dict[str, Any] = {}
    for name, dataset in config["datasets"].items():
        where = ["datasets", name]
        if dataset["source"] == "synthetic":
            out[f"synth:{name}"] = _build(f"datasets.{name}", SyntheticSettings, {
                "format": dataset["format"], "records": dataset["records"], "seed": config["seed"], "name": name,
                **config["synthetic"]}, sources, where)
        out[f"normalize:{name}"] = _build(f"datasets.{name}", NormalizeSettings,
                                          normalize_values(name, dataset, data), sources, where)
    out["filters"] = _build("data", FilterSettings, filter_values(config), sources, ["data"])
    caps = [f"{name}={d['cap']}" for name, d in config["datasets"].items() if d["cap"] is not None]
    out["split"] = _build("data", SplitSettings, {
        **{k: data[k] for k in ("test_fraction", "split_seed", "near_dedup", "near_dup_threshold", "near_dup_ngram",
                                "minhash_perms", "decontaminate", "decontam_ngram", "decontam_overlap")},
        "caps": caps, "threads": config["threads"]}, sources, ["data"])
    out["model"] = _build("model", BaseModelSettings, {**config["model"], **common, "strict": config.get("strict", True)},
                          sources, ["model"])
    out["sft"] = _build("sft", SFTSettings, {**config["sft"], **common}, sources, ["sft"])
    dpo = {k: v for k, v in config["dpo"].items() if k not in DPO_PAIRS_KEYS}
    out["dpo"] = _build("dpo", DPOSettings, {**dpo, **common}, sources, ["dpo"])
    evaluation = {k: v for k, v in config["eval"].items() if k not in ("models", "comparisons")}
    for model in config["eval"]["models"]:
        out[f"eval:{model}"] = _build("eval", EvalSettings, {
            **evaluation, **common, "name": model, "reference_name": REFERENCES[model],
            "beta": config["dpo"]["beta"]}, sources, ["eval"])
    for i, (model, baseline) in enumerate(config["eval"].get("comparisons", [])):
        if model == baseline or not {model, baseline} <= set(config["eval"]["models"]):
            where = next((f"{s}:{key_line(s, ['eval', 'comparisons', i])}: " for s in reversed(sources)
                          if key_line(s, ["eval", "comparisons", i])), "")
            raise ConfigError(f"invalid config:\n  {where}eval.comparisons: expected two different models of "
                              f"eval.models ({', '.join(config['eval']['models'])}), got [{model}, {baseline}]")
    out["compare"] = _build("eval", CompareSettings, {"bootstrap_samples": config["eval"]["bootstrap_samples"],
                                                      "seed": config["seed"]}, sources, ["eval"])
    out["report"] = _build("report", ReportSettings, config["report"], sources, ["report"])
    out.update(guidance_settings(config, sources))
    out.update(onpolicy_settings(config, sources))
    return out


# Keys of the dpo section that wire the workflow's rounds rather than set the DPO step (prefalign.onpolicy.plan).
DPO_PAIRS_KEYS = ("pairs", "mix_ratio", "rounds")


def onpolicy_settings(config: dict, sources: list[Path]) -> dict[str, Any]:
    """dpo_pairs (dpo.pairs, mix_ratio, rounds), onpolicy (`prefalign onpolicy sample`) and mix (`... mix`)."""
    from prefalign.onpolicy.command import MixSettings
    from prefalign.onpolicy.plan import PairsSettings
    from prefalign.onpolicy.sample import OnPolicySettings

    pairs = {k: config["dpo"][k] for k in DPO_PAIRS_KEYS}
    common = {"seed": config["seed"], "threads": config["threads"]}
    judge = {"judge": config["eval"]["judge"], "reward_model": config["eval"].get("reward_model")}
    return {
        "dpo_pairs": _build("dpo", PairsSettings, pairs, sources, ["dpo"]),
        "onpolicy": _build("onpolicy", OnPolicySettings, {**config["onpolicy"], **judge, **common}, sources,
                           ["onpolicy"]),
        "mix": _build("dpo", MixSettings, {"mix_ratio": pairs["mix_ratio"], "seed": config["seed"]}, sources,
                      ["dpo"]),
    }


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
