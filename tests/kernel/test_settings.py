import argparse
import dataclasses
import os
import subprocess
from pathlib import Path

import pytest
from conftest import BIN

from prefalign.config.resolve import resolve
from prefalign.config.schema import load_schema
from prefalign.config.steps import SETTINGS_CLASSES, WORKFLOW_KEYS
from prefalign.data.normalize import NormalizeSettings
from prefalign.data.split import SplitSettings
from prefalign.errors import ConfigError
from prefalign.settings import to_cli_flags
from prefalign.train.base_model import BaseModelSettings
from prefalign.train.dpo import DPOSettings
from prefalign.train.sft import SFTSettings

ALL = list(SETTINGS_CLASSES)
SCHEMA = load_schema()
REPO = Path(__file__).resolve().parents[2]


def schema_node(key: str) -> dict | None:
    """The schema of config key `a.b.c` (`*`: any dataset), or None when the schema has no such key."""
    node = SCHEMA
    for part in key.split("."):
        if part == "*":
            node = node.get("additionalProperties")
        else:
            node = node.get("properties", {}).get(part)
        if not isinstance(node, dict):
            return None
    return node


def schema_keys(node=SCHEMA, prefix="") -> list[str]:
    """Every leaf key of the schema (`*` for each dataset's keys)."""
    keys = []
    children = dict(node.get("properties", {}))
    if isinstance(node.get("additionalProperties"), dict) and "properties" in node["additionalProperties"]:
        children["*"] = node["additionalProperties"]
    for name, sub in children.items():
        key = f"{prefix}{name}"
        if "properties" in sub or (isinstance(sub.get("additionalProperties"), dict)
                                   and "properties" in sub["additionalProperties"]):
            keys += schema_keys(sub, key + ".")
        else:
            keys.append(key)
    return keys


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_every_field_has_one_default_the_schemas(cls):
    """One source of truth per key: a settings field's default is its config key's schema default."""
    for f in dataclasses.fields(cls):
        key = cls.config_key(f)
        if key is None:
            assert f.metadata.get("job") or f.metadata.get("derived"), f"{cls.__name__}.{f.name} has no config key"
            continue
        node = schema_node(key)
        assert node is not None and "default" in node, f"{cls.__name__}.{f.name}: schema has no key {key}"
        assert cls.default_of(f) == node["default"], (
            f"{cls.__name__}.{f.name}: default {cls.default_of(f)!r} != schema {key} default {node['default']!r}")


def test_every_config_key_reaches_a_step_through_its_settings():
    consumers = {SETTINGS_CLASSES[i].config_key(f) for i in range(len(SETTINGS_CLASSES))
                 for f in dataclasses.fields(SETTINGS_CLASSES[i])}
    consumers |= {f.metadata["derived"] for cls in SETTINGS_CLASSES for f in dataclasses.fields(cls)
                  if f.metadata.get("derived")}
    unread = [key for key in schema_keys() if key not in consumers and key not in WORKFLOW_KEYS]
    assert unread == [], f"config keys no step reads: {unread}"


# `prefalign <step> --help`, and the settings of the default run each step's flags carry.
STEP_HELP = [("synth", ["synth:synth_hh"]), ("normalize", ["normalize:synth_hh", "filters"]), ("split", ["split"]),
             ("build-base", ["model"]), ("sft", ["sft", "health", "tracking"]), ("dpo", ["dpo", "health", "tracking"]),
             ("reference-logps", ["reference"]),
             ("evaluate", ["eval:dpo"]), ("compare", ["compare"]), ("report", ["report"])]


def flag_help(text: str) -> dict[str, str]:
    """--flag -> its help paragraph, from argparse's --help output."""
    found, flag = {}, None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("--"):
            flag = stripped.split()[0].rstrip(",")
            found[flag] = stripped
        elif flag and stripped and line.startswith("   "):
            found[flag] += " " + stripped
        else:
            flag = None
    return found


@pytest.mark.parametrize("step, keys", STEP_HELP, ids=[s for s, _ in STEP_HELP])
def test_help_shows_what_the_default_run_uses(step, keys):
    default_run = resolve([REPO / "config.yaml"]).settings
    result = subprocess.run([str(BIN / "prefalign"), step, "--help"], capture_output=True, text=True,
                            env={**os.environ, "COLUMNS": "1000"}, check=True)
    helps = flag_help(result.stdout)
    for key in keys:
        settings = default_run[key]
        for f in dataclasses.fields(settings):
            key = settings.config_key(f)
            if key is None or key.startswith("datasets.*."):  # a dataset's keys are its declaration, not defaults
                continue
            text = helps["--" + f.name.replace("_", "-")]
            assert repr(getattr(settings, f.name)) in text, (
                f"prefalign {step} --help, --{f.name}: the default run uses {getattr(settings, f.name)!r}: {text}")


@pytest.mark.parametrize("cls", ALL)
def test_defaults_round_trip_through_the_flags(cls):
    parser = argparse.ArgumentParser()
    cls.add_arguments(parser)
    settings = cls()
    flags = to_cli_flags(settings.to_dict())
    import shlex

    assert cls.from_args(parser.parse_args(shlex.split(flags))) == settings


@pytest.mark.parametrize("cls", ALL)
def test_every_flag_has_help(cls):
    parser = argparse.ArgumentParser()
    cls.add_arguments(parser)
    for action in parser._actions:
        if action.dest != "help":
            assert action.help and "(default:" in action.help, action.dest


def test_non_default_values_round_trip():
    import shlex

    parser = argparse.ArgumentParser()
    DPOSettings.add_arguments(parser)
    settings = DPOSettings(beta=0.25, loss_type=["sigmoid", "sft"], use_lora=False, precompute_ref_log_probs=True)
    parsed = DPOSettings.from_args(parser.parse_args(shlex.split(to_cli_flags(settings.to_dict()))))
    assert parsed == settings
    parser = argparse.ArgumentParser()
    BaseModelSettings.add_arguments(parser)
    settings = BaseModelSettings(source="pretrained", name_or_path="some dir/with space", revision=None)
    assert BaseModelSettings.from_args(parser.parse_args(shlex.split(to_cli_flags(settings.to_dict())))) == settings


@pytest.mark.parametrize(
    "build, key",
    [
        (lambda: SFTSettings(learning_rate=-1.0), "learning_rate"),
        (lambda: SFTSettings(max_steps=0), "max_steps"),
        (lambda: DPOSettings(beta=0.0), "beta"),
        (lambda: DPOSettings(loss_type=["dpo"]), "loss_type"),
        (lambda: BaseModelSettings(hidden_size=130, num_heads=4), "hidden_size"),
        (lambda: BaseModelSettings(source="pretrained"), "name_or_path"),
        (lambda: SplitSettings(test_fraction=1.0), "test_fraction"),
        (lambda: NormalizeSettings(on_bad_record="skip"), "on_bad_record"),
    ],
)
def test_bad_settings_name_their_key(build, key):
    with pytest.raises(ConfigError, match=f"^{key}: expected"):
        build()


def test_optional_lists_round_trip():
    import shlex

    parser = argparse.ArgumentParser()
    DPOSettings.add_arguments(parser)
    for weights in (None, [1.0, 0.5]):
        settings = DPOSettings(loss_type=["sigmoid", "sft"], loss_weights=weights)
        assert DPOSettings.from_args(parser.parse_args(shlex.split(to_cli_flags(settings.to_dict())))) == settings
    with pytest.raises(ConfigError, match="loss_weights: expected one weight per loss_type"):
        DPOSettings(loss_type=["sigmoid"], loss_weights=[1.0, 2.0])
