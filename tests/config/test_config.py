import copy

import pytest
import yaml
from conftest import REPO

from prefalign.config.resolve import apply_presets, load_config
from prefalign.config.schema import check_config, load_schema, with_defaults
from prefalign.config.steps import step_settings
from prefalign.errors import ConfigError

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
        (lambda c: c["eval"].update(judge="gpt"), "eval.judge: expected one of 'auto', 'task', 'reward_model', 'trained'"),
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
    with pytest.raises(ConfigError, match=r"config.yaml:\d+: model.hidden_size: expected a multiple of num_heads"):
        load_config(path, SCHEMA)  # the one resolution runs every step's checks


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
    with pytest.raises(ConfigError, match=r"config.yaml:\d+: eval.comparisons: expected two different models of "
                                          r"eval.models \(base, sft\), got \[dpo, sft\]"):
        load_config(path, SCHEMA)


def test_reward_model_judge_needs_its_folder(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text((REPO / "config.yaml").read_text().replace("judge: auto", "judge: reward_model"))
    with pytest.raises(ConfigError, match=r"config.yaml:\d+: eval.reward_model: expected a reward model folder"):
        step_settings(load_config(path, SCHEMA), [path])


# ---------------------------------------------------------------- eval.judge auto (issue 14)

def hh_only(tmp_path, **eval_keys):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["datasets"] = {"hh": {"format": "hh-rlhf", "source": "local", "path": "raw/hh.jsonl"}}
    config["eval"].update(eval_keys)
    (tmp_path / "raw").mkdir(exist_ok=True)
    (tmp_path / "raw/hh.jsonl").touch()  # resolution checks that a local file exists; its rows are not read here
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return step_settings(load_config(path, SCHEMA), [path])


def test_auto_picks_the_task_judge_on_the_synthetic_demo_and_says_why():
    settings = step_settings(load_config(REPO / "config.yaml", SCHEMA))
    assert settings["judge"].kind == "task" and "judge_eval" not in settings
    assert settings["eval:dpo"].judge == "task"
    assert settings["eval:dpo"].judge_reason.startswith("eval.judge auto: every dataset (synth_hh, synth_shp) is "
                                                        "synthetic")


def test_auto_trains_a_judge_on_real_data_unless_the_config_names_a_reward_model(tmp_path):
    settings = hh_only(tmp_path)
    assert settings["judge"].kind == "trained" and settings["eval:sft"].judge == "trained"
    assert "hh (local) are not synthetic" in settings["judge"].why and "train_reward_model" in settings["judge"].why
    assert settings["judge_eval"].judge == "trained" and settings["judge_eval"].reward_model is None
    named = hh_only(tmp_path, reward_model=str(tmp_path))
    assert named["judge"].kind == "reward_model" and named["eval:dpo"].reward_model == str(tmp_path)
    assert named["judge_eval"].reward_model == str(tmp_path)
    assert hh_only(tmp_path, judge="task", comparisons=[])["judge"].why == "eval.judge: task (set in the config)"


def test_a_hub_reward_model_must_be_pinned(tmp_path):
    with pytest.raises(ConfigError, match=r"eval.reward_model_revision: expected a 40-hex-digit commit for hub "
                                          r"artifact 'org/rm'"):
        hh_only(tmp_path, reward_model="org/rm")
    assert hh_only(tmp_path, reward_model="org/rm", reward_model_revision="a" * 40)["judge"].kind == "reward_model"
