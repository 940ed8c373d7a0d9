"""The one resolution of a config: what `snakemake`, `prefalign config check|show` and the
manifest all run.

    files -> merged (later files overlay earlier ones, as Snakemake's --configfile does)
          -> checked against the schema (file:line of every problem)
          -> `sample` shorthand expanded, the preset's keys filled where the files set none
          -> the schema's defaults filled, checked again
          -> local paths taken from the folder of the config file that sets them, checked to
             exist (prefalign.config.paths)
          -> every step's typed settings built (each step's own checks; prefalign.config.steps)

A config is what runs: the workflow reads the files it is given (`--configfile`), and only
when it is given none the embedded demo's config.yaml; nothing from the demo leaks into a
user's config. Raises ConfigError naming the file and line that set a bad key.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from prefalign import presets
from prefalign.config.paths import resolve_paths
from prefalign.config.schema import check_config, load_schema, with_defaults
from prefalign.config.steps import step_settings
from prefalign.errors import ConfigError
from prefalign.settings import Settings
from prefalign.yamlio import load_yaml, where

# `sample: [name:N, ...]` is shorthand for datasets.<name>.<SAMPLE_KEY>: N.
SAMPLE_KEY = "max_records"
SAMPLE = re.compile(r"^(?P<name>[A-Za-z0-9_-]+):(?P<count>[0-9]+)$")


@dataclass
class ResolvedConfig:
    config: dict  # complete: every key, preset and schema defaults filled
    sources: list[Path]  # the files, in the order they were merged
    preset: dict  # {"preset": name, "from_preset": [section.key, ...], "sample": {dataset: cap}}
    user_keys: list[str]  # `section` and `section.key` of every key the files set
    settings: dict[str, Settings] = field(default_factory=dict)  # every step's settings (prefalign.config.steps)


def merge(base: dict, overlay: dict) -> dict:
    """`overlay` merged into `base` (recursively for mappings): Snakemake's order of config files."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_files(paths: Iterable[Path]) -> dict:
    config: dict = {}
    for path in paths:
        data = load_yaml(path)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of keys at the top level, got {type(data).__name__}")
        config = merge(config, data)
    return config


def key_paths(config: dict) -> set[str]:
    """`section` and `section.key` of every key a (not yet completed) config sets."""
    paths = set()
    for section, value in config.items():
        paths.add(section)
        if isinstance(value, dict) and section != "datasets":
            paths.update(f"{section}.{k}" for k in value)
    return paths


def expand_samples(config: dict, sources: list[Path], schema: dict) -> dict[str, int]:
    """`sample: [hh:50000]` -> datasets.hh.max_records = 50000 (in place); {dataset: cap}."""
    entries = config.get("sample") or []
    if not entries:
        return {}
    if "datasets" not in config:  # the shorthand caps the default datasets too
        config["datasets"] = copy.deepcopy(schema["properties"]["datasets"]["default"])
    datasets = config["datasets"]
    problems, caps = [], {}
    for i, entry in enumerate(entries):
        at = where(sources, ["sample", i])
        match = SAMPLE.match(str(entry))
        if match is None:
            problems.append(f"{at}sample[{i}]: expected <dataset>:<count>, got {entry!r}")
            continue
        name, count = match["name"], int(match["count"])
        dataset = datasets.get(name)
        if not isinstance(dataset, dict):
            problems.append(f"{at}sample[{i}]: expected a dataset named in `datasets` "
                            f"({', '.join(map(str, datasets))}), got {name!r}")
        elif name in caps:
            problems.append(f"{at}sample[{i}]: {name} is sampled twice; give one cap per dataset")
        elif dataset.get(SAMPLE_KEY) not in (None, count):
            other = where(sources, ["datasets", name, SAMPLE_KEY]).rstrip(": ")
            problems.append(f"{at}sample[{i}]: {name}:{count} contradicts datasets.{name}.{SAMPLE_KEY}: "
                            f"{dataset[SAMPLE_KEY]}{f' ({other})' if other else ''}; set the cap in one place")
        else:
            dataset[SAMPLE_KEY] = count
            caps[name] = count
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
    return caps


def apply_presets(config: dict, sources: Iterable[Path] = (), schema: dict | None = None) -> dict:
    """Expand `sample` caps, then fill the preset's keys the config does not set; in place.

    Assumes `config` passed the schema check and has no defaults filled yet. Returns
    {"preset": name, "from_preset": [section.key, ...], "sample": {dataset: cap}}.
    """
    schema = schema if schema is not None else load_schema()
    caps = expand_samples(config, [Path(s) for s in sources], schema)
    name = config.get("preset", presets.DEFAULT)
    filled = presets.apply(config, name) if name is not None else []
    return {"preset": name, "from_preset": filled, "sample": caps}


def resolve_mapping(config: dict, sources: Iterable[Path] = (), schema: dict | None = None,
                    cwd: Path | None = None) -> ResolvedConfig:
    """Resolve an already merged config (what Snakemake hands the Snakefile), `sources` its files.

    `cwd`: the folder the run writes results/ in (default: the working directory), which
    resolved local paths are written relative to.
    """
    schema = schema if schema is not None else load_schema()
    sources = [Path(s) for s in sources]
    config = copy.deepcopy(config)
    check_config(config, schema, sources)
    user_keys = sorted(key_paths(config))
    done = apply_presets(config, sources, schema)
    config = with_defaults(config, schema)
    check_config(config, schema, sources)
    problems = resolve_paths(config, sources, cwd) + judge_problems(config, sources)
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
    return ResolvedConfig(config, sources, done, user_keys, step_settings(config, sources))


def judge_problems(config: dict, sources: list[Path]) -> list[str]:
    """A task judge with comparisons but no synthetic dataset: no prompt could be judged, so the run
    would stop at its last step (compare_models: "no prompt answered by both"). Said now instead."""
    evaluation = config["eval"]
    if evaluation.get("judge") != "task" or not evaluation["comparisons"]:
        return []
    if any(d["source"] == "synthetic" for d in config["datasets"].values()):
        return []
    return [f"{where(sources, ['eval', 'comparisons'])}eval.comparisons: expected [] with judge task on this data, got "
            f"{evaluation['comparisons']} (the task judge scores only the synthetic tasks' prompts and no dataset "
            "here is synthetic, so no answer could be judged: set eval.judge: auto or trained (a reward model "
            "trained on the train split judges), eval.judge: reward_model with eval.reward_model: <folder>, or "
            "eval.comparisons: [])"]


def resolve(paths: Iterable[Path], schema: dict | None = None) -> ResolvedConfig:
    """Resolve config files exactly as the workflow does (`snakemake --configfile a.yaml b.yaml`)."""
    paths = [Path(p) for p in paths]
    return resolve_mapping(read_files(paths), paths, schema)


def load_config(path: Path, schema: dict | None = None) -> dict:
    """The complete config of one file (what a run of it uses)."""
    return resolve([path], schema).config
