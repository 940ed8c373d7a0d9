import copy
import dataclasses

import pytest
import yaml

from prefalign.config.schema import apply_presets, check_config, load_config, load_schema, step_settings, with_defaults
from prefalign.settings import ConfigError

from conftest import REPO

SCHEMA = load_schema(REPO / "schemas" / "config.schema.yaml")
DEFAULT = yaml.safe_load((REPO / "config.yaml").read_text())


def walk(schema, path="config"):
    """Yield (path, property schema) for every key the schema declares."""
    for key, sub in schema.get("properties", {}).items():
        yield f"{path}.{key}", sub
        yield from walk(sub, f"{path}.{key}")
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        yield from walk(extra, f"{path}.<name>")


def test_the_embedded_default_is_valid():
    check_config(DEFAULT, SCHEMA, [REPO / "config.yaml"])
    step_settings(load_config(REPO / "config.yaml", SCHEMA))


def test_every_key_is_described_with_a_default_and_objects_are_closed():
    for path, sub in walk(SCHEMA):
        assert sub.get("description"), f"{path} has no description"
        assert "default" in sub, f"{path} has no default"
        if sub.get("type") == "object" and "properties" in sub:
            assert sub.get("additionalProperties") is False, f"{path} allows unknown keys"
    assert SCHEMA["additionalProperties"] is False


def test_an_empty_config_is_the_schema_defaults_and_runs():
    config = with_defaults({}, SCHEMA)
    check_config(config, SCHEMA)
    settings = step_settings(config)
    assert set(settings) >= {"synth:synth_hh", "normalize:synth_shp", "model", "sft", "dpo", "eval:dpo", "report"}


def test_schema_defaults_match_the_steps_own_defaults():
    """A key means the same with or without Snakemake: schema default == dataclass default."""
    from prefalign.train.base_model import BaseModelSettings
    from prefalign.evaluation.evaluate import EvalSettings
    from prefalign.train.dpo import DPOSettings
    from prefalign.train.sft import SFTSettings

    from prefalign.config.schema import DPO_PAIRS_KEYS
    from prefalign.onpolicy.plan import PairsSettings
    from prefalign.onpolicy.sample import OnPolicySettings

    pairs = [("sft", SFTSettings), ("dpo", DPOSettings), ("eval", EvalSettings), ("model", BaseModelSettings),
             ("onpolicy", OnPolicySettings)]
    for section, cls in pairs:
        props = SCHEMA["properties"][section]["properties"]
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for key, sub in props.items():
            if key in ("models", "comparisons"):  # workflow-level: which rules run, not step settings
                continue
            if section == "dpo" and key in DPO_PAIRS_KEYS:  # what DPO trains on, round by round
                fields_ = {f.name: f for f in dataclasses.fields(PairsSettings)}
                assert sub["default"] == fields_[key].default, f"dpo.{key}: schema != PairsSettings"
                continue
            assert key in fields, f"{section}.{key} is not a setting of {cls.__name__}"
            default = fields[key].default if fields[key].default is not dataclasses.MISSING else fields[key].default_factory()
            if section == "model" and key == "vocab_size":
                continue  # the tiny demo asks for a smaller vocabulary than the step's generic default
            assert sub["default"] == default, f"{section}.{key}: schema {sub['default']!r} != step {default!r}"


def test_errors_name_file_line_key_and_expectation(tmp_path):
    path = tmp_path / "config.yaml"
    text = (REPO / "config.yaml").read_text() + "\nsft:\n  learning_rate: -1\n"  # sft's values come from the preset
    text = text.replace("  test_fraction: 0.1", "  test_fraction: 0.1\n  colour: blue")
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, SCHEMA)
    message = str(info.value)
    line = next(i for i, l in enumerate(text.splitlines(), 1) if "learning_rate: -1" in l)
    assert f"{path}:{line}: sft.learning_rate: expected a number > 0, got -1 (Peak learning rate.)" in message
    assert "data.colour: expected no such key (allowed here:" in message


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda c: c.setdefault("dpo", {}).update(loss_type="sigmoid"), "dpo.loss_type: expected a list"),
        (lambda c: c["model"].update(source="hub"), "model.source: expected one of 'tiny', 'pretrained'"),
        (lambda c: c["datasets"]["synth_hh"].update(format="csv"), "datasets.synth_hh.format: expected one of"),
        (lambda c: c.update(threads=0), "threads: expected a number >= 1"),
        (lambda c: c["eval"].update(models=["dpo", "dpo"]), "eval.models: expected no repeated items"),
        (lambda c: c["eval"].update(judge="gpt"), "eval.judge: expected one of 'task', 'reward_model'"),
        (lambda c: c["eval"].update(comparisons=[["dpo"]]), "eval.comparisons.0: expected at least 2 item"),
    ],
)
def test_schema_errors(change, expected):
    config = copy.deepcopy(DEFAULT)
    change(config)
    with pytest.raises(ConfigError, match=expected):
        check_config(config, SCHEMA)


def test_step_checks_run_before_any_rule(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text((REPO / "config.yaml").read_text().replace("hidden_size: 128", "hidden_size: 130"))
    config = load_config(path, SCHEMA)
    with pytest.raises(ConfigError, match=r"config.yaml:\d+: model.hidden_size: expected a multiple of num_heads"):
        step_settings(config, [path])


def test_local_dataset_needs_a_path():
    config = with_defaults({"datasets": {"mine": {"format": "pairs", "source": "local"}}}, SCHEMA)
    with pytest.raises(ConfigError, match="datasets.mine.path"):
        step_settings(config)


def test_yaml_syntax_errors_name_the_line(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("seed: 1\nsft: [unclosed\n")
    with pytest.raises(ConfigError, match=r"config.yaml:\d+: not valid YAML"):
        load_config(path, SCHEMA)


def test_data_settings_reach_the_data_steps():
    config = with_defaults({"datasets": {
        "mine": {"format": "pairs", "source": "local", "path": "raw/mine.parquet", "cap": 500,
                 "prompt_field": "question", "implicit_prompt": False},
        "oa": {"format": "oasst1", "source": "hub", "hub_id": "OpenAssistant/oasst1", "revision": "a" * 40,
               "languages": ["en", "de"], "pairing": "all", "split": "validation"},
    }, "data": {"near_dup_threshold": 0.9, "max_tokens": 256}}, SCHEMA)
    check_config(config, SCHEMA)
    settings = step_settings(config)
    assert settings["normalize:mine"].prompt_field == "question" and settings["normalize:mine"].hub_id is None
    oa = settings["normalize:oa"]
    assert (oa.hub_id, oa.revision, oa.languages, oa.pairing, oa.split) == (
        "OpenAssistant/oasst1", "a" * 40, ["en", "de"], "all", "validation")
    assert settings["split"].caps == ["mine=500"] and settings["split"].near_dup_threshold == 0.9
    assert settings["filters"].max_tokens == 256 and settings["filters"].tokenizer == "bytes"  # tiny model


def test_the_token_filter_uses_the_pretrained_models_tokenizer():
    config = with_defaults({"model": {"source": "pretrained", "name_or_path": "org/model", "revision": "b" * 40}},
                           SCHEMA)
    filters = step_settings(config)["filters"]
    assert (filters.tokenizer, filters.tokenizer_revision) == ("org/model", "b" * 40)


@pytest.mark.parametrize("dataset, expected", [
    ({"format": "shp", "source": "hub"}, "datasets.x.hub_id: expected owner/name when source is hub"),
    ({"format": "shp", "source": "hub", "hub_id": "a/b", "revision": "main"},
     "datasets.x.revision: expected a 40-hex-digit commit"),
    ({"format": "oasst1", "source": "local", "path": "x.jsonl", "pairing": "some"}, "pairing: expected one of"),
])
def test_dataset_sources_are_checked_before_any_rule(dataset, expected):
    config = with_defaults({"datasets": {"x": dataset}}, SCHEMA)
    with pytest.raises(ConfigError, match=expected):
        check_config(config, SCHEMA)
        step_settings(config)


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_validate_as_overlays_of_the_default(path):
    """configs/*.yaml are used as `--configfile` overlays on config.yaml: the merge must validate."""
    from snakemake.utils import update_config

    config = copy.deepcopy(DEFAULT)
    update_config(config, yaml.safe_load(path.read_text()))
    check_config(config, SCHEMA, [path])
    apply_presets(config, [path], SCHEMA)  # as rules/common.smk does
    step_settings(with_defaults(config, SCHEMA), [path])


def test_comparisons_must_name_evaluated_models(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text((REPO / "config.yaml").read_text().replace("models: [base, sft, dpo]", "models: [base, sft]"))
    config = load_config(path, SCHEMA)
    with pytest.raises(ConfigError, match=r"config.yaml:\d+: eval.comparisons: expected two different models of "
                                          r"eval.models \(base, sft\), got \[dpo, sft\]"):
        step_settings(config, [path])


def test_reward_model_judge_needs_its_folder(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text((REPO / "config.yaml").read_text().replace("judge: task", "judge: reward_model"))
    with pytest.raises(ConfigError, match=r"config.yaml:\d+: eval.reward_model: expected a reward model folder"):
        step_settings(load_config(path, SCHEMA), [path])
