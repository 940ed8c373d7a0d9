"""Presets, the `sample` shorthand, `prefalign config check | show | presets` and `prefalign init`."""

from __future__ import annotations

import copy

import pytest
import yaml
from conftest import REPO, run_cli, write_lines

from prefalign import presets
from prefalign.config.resolve import apply_presets, load_config
from prefalign.config.schema import check_config, load_schema, with_defaults
from prefalign.config.steps import step_settings
from prefalign.errors import ConfigError
from prefalign.runtime import Machine

SCHEMA = load_schema()
DEFAULT = yaml.safe_load((REPO / "config.yaml").read_text())


def resolved(config: dict, sources=()) -> dict:
    """What rules/common.smk does with a config: check, preset, defaults, the steps' settings."""
    config = copy.deepcopy(config)
    check_config(config, SCHEMA, list(sources))
    done = apply_presets(config, sources, SCHEMA)
    full = with_defaults(config, SCHEMA)
    return {"config": full, "done": done, "settings": step_settings(full, list(sources))}


@pytest.mark.parametrize("name", presets.NAMES)
def test_each_preset_validates_and_builds_every_steps_settings(name):
    out = resolved({**DEFAULT, "preset": name})
    assert out["done"]["preset"] == name
    for section, keys in presets.PRESETS[name].items():
        for key, value in keys.items():
            assert out["config"][section][key] == value, f"{section}.{key}"
    sft, dpo = out["settings"]["sft"], out["settings"]["dpo"]
    if name != "cpu-demo":  # the practice: DPO far below SFT, AdamW (0.9, 0.95), cosine, no weight decay
        assert dpo.learning_rate <= 5e-6 < 2e-4 == sft.learning_rate and dpo.beta == 0.1
        assert (sft.adam_beta1, sft.adam_beta2, sft.lr_scheduler, sft.weight_decay) == (0.9, 0.95, "cosine", 0.0)
        assert out["config"]["gpu"]["count"] == 1


def test_the_12gb_and_16gb_presets_carry_the_documented_hardware_values():
    small, large = presets.PRESETS["gpu-12gb"], presets.PRESETS["gpu-16gb"]
    assert (small["sft"]["precision"], small["sft"]["batch_size"], small["sft"]["gradient_accumulation_steps"],
            small["sft"]["lora_r"], small["sft"]["max_length"]) == ("4bit", 2, 4, 16, 1024)
    assert (large["sft"]["precision"], large["sft"]["batch_size"], large["sft"]["gradient_accumulation_steps"],
            large["sft"]["lora_r"], large["sft"]["max_length"]) == ("auto", 4, 2, 64, 2048)
    assert small["dpo"]["batch_size"] * small["dpo"]["gradient_accumulation_steps"] >= 16


def test_the_embedded_default_keeps_its_values_through_the_cpu_demo_preset():
    """config.yaml's sft/dpo values live in cpu-demo (docs/onpolicy.md: full-model DPO on on-policy pairs)."""
    config = load_config(REPO / "config.yaml", SCHEMA)
    assert {k: config["sft"][k] for k in ("max_steps", "batch_size", "learning_rate", "logging_steps")} == {
        "max_steps": 1000, "batch_size": 16, "learning_rate": 0.002, "logging_steps": 10}
    assert {k: config["dpo"][k] for k in ("max_steps", "batch_size", "learning_rate", "use_lora", "beta",
                                          "loss_type", "loss_weights", "pairs", "rounds")} == {
        "max_steps": 300, "batch_size": 16, "learning_rate": 0.001, "use_lora": False, "beta": 0.3,
        "loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, 3.0], "pairs": "onpolicy", "rounds": 1}
    assert config["dpo"]["cache_reference"] is True  # the reference is scored once, in rule reference_logps
    assert config["onpolicy"]["samples_per_prompt"] == 4 and config["onpolicy"]["temperature"] == 1.0
    # The schema defaults the old config.yaml relied on are what cpu-demo sets.
    for key in ("adam_beta2", "weight_decay", "lr_scheduler", "max_length", "precision"):
        assert config["sft"][key] == SCHEMA["properties"]["sft"]["properties"][key]["default"], key
    assert config["gpu"]["count"] == 0


def test_a_users_value_wins_over_the_preset_and_null_uses_schema_defaults():
    out = resolved({**DEFAULT, "preset": "gpu-16gb", "dpo": {"learning_rate": 1e-6}})
    assert out["config"]["dpo"]["learning_rate"] == 1e-6 and "dpo.learning_rate" not in out["done"]["from_preset"]
    assert out["config"]["dpo"]["lora_r"] == 64 and "dpo.lora_r" in out["done"]["from_preset"]
    plain = resolved({**DEFAULT, "preset": None})
    assert plain["done"]["from_preset"] == []
    assert plain["config"]["sft"]["learning_rate"] == SCHEMA["properties"]["sft"]["properties"]["learning_rate"][
        "default"]


def test_sample_caps_the_named_datasets(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({**DEFAULT, "sample": ["synth_hh:500"]}))
    config = load_config(path, SCHEMA)
    assert config["datasets"]["synth_hh"]["max_records"] == 500
    assert config["datasets"]["synth_shp"].get("max_records") is None


@pytest.mark.parametrize("sample, expected", [
    (["nope:5"], "sample[0]: expected a dataset named in `datasets`"),
    (["synth_hh:5", "synth_hh:6"], "sample[1]: synth_hh is sampled twice"),
])
def test_bad_sample_entries_name_file_line_and_entry(tmp_path, sample, expected):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({**DEFAULT, "sample": sample}, sort_keys=False))
    with pytest.raises(ConfigError) as info:
        load_config(path, SCHEMA)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if text.strip() == f"- {sample[-1]}")
    assert expected in str(info.value) and f"{path}:{line}" in str(info.value)


def test_config_check_explains_every_problem_in_words(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("preset: gpu-9gb\nsft:\n  learning_rate: 1e-6x\n  colour: 3\ndpo:\n  beta: -1\n")
    result = run_cli("config", "check", bad, check=False)
    assert result.returncode == 1, result.stderr
    out = result.stdout
    assert "4 problems" in out or "3 problems" in out
    assert f"{bad}:1: preset: expected one of 'cpu-demo'" in out
    assert f"{bad}:4: sft.colour: expected no such key" in out
    assert f"{bad}:6: dpo.beta" in out
    good = run_cli("config", "check", REPO / "config.yaml", cwd=REPO)
    assert "valid" in good.stdout and "preset cpu-demo: filled" in good.stdout


def test_config_show_marks_where_every_value_came_from():
    out = run_cli("config", "show", REPO / "config.yaml", cwd=REPO).stdout
    assert "learning_rate: 0.002  # preset cpu-demo" in out
    assert "seed: 1234\n" in out  # set in the file: unmarked
    assert "# default" in out


def test_the_docs_carry_the_presets_table():
    assert presets.markdown_table() in (REPO / "docs" / "usage.md").read_text()
    out = run_cli("config", "presets").stdout
    assert presets.markdown_table() in out


# ---------------------------------------------------------------- prefalign init

def test_init_writes_a_commented_config_that_validates(tmp_path):
    out = tmp_path / "config.yaml"
    run_cli("init", "--model", "tiny", "--dataset", "synthetic", "--out", out, cwd=tmp_path)
    text = out.read_text()
    assert text.startswith("# prefalign config, written by `prefalign init") and "# the training health" in text
    config = load_config(out, SCHEMA)
    step_settings(config, [out])
    # On this CPU machine it picks cpu-demo, so its values equal the embedded default's.
    default = load_config(REPO / "config.yaml", SCHEMA)
    for section in ("datasets", "model", "sft", "dpo", "gpu", "health", "tracking"):
        assert config[section] == default[section], section
    assert "valid" in run_cli("config", "check", out, cwd=tmp_path).stdout
    again = run_cli("init", "--model", "tiny", "--dataset", "synthetic", "--out", out, cwd=tmp_path, check=False)
    assert again.returncode != 0 and "--force" in again.stdout + again.stderr


@pytest.mark.parametrize("preset", presets.NAMES)
def test_init_with_every_preset_and_a_local_dataset_file_validates(tmp_path, preset, hh_row):
    data = write_lines(tmp_path / "hh.jsonl", [hh_row] * 3)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    out = tmp_path / "config.yaml"
    run_cli("init", "--model", model, "--dataset", f"{data}:2", "--preset", preset, "--out", out, cwd=tmp_path)
    config = load_config(out, SCHEMA)
    step_settings(config, [out])
    assert config["preset"] == preset and config["model"]["source"] == "pretrained"
    (dataset,) = config["datasets"].values()
    assert dataset["format"] == "hh-rlhf" and dataset["max_records"] == 2


def test_init_refuses_what_it_cannot_use(tmp_path):
    result = run_cli("init", "--model", "tiny", "--dataset", tmp_path / "missing.jsonl", "--out",
                     tmp_path / "c.yaml", check=False)
    assert result.returncode != 0 and "missing.jsonl" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("memory, expected", [(None, "cpu-demo"), (11.6, "gpu-12gb"), (15.9, "gpu-16gb"),
                                              (23.6, "gpu-16gb"), (79.2, "gpu-80gb"), (139.8, "gpu-80gb")])
def test_the_preset_follows_the_gpus_memory(memory, expected):
    assert presets.pick(memory) == expected


@pytest.mark.parametrize("model, machine, preset, gpu_count", [
    ("org/model@" + "a" * 40, ("NVIDIA H100 80GB HBM3", 79.2), "gpu-80gb", None),
    ("org/model@" + "a" * 40, ("NVIDIA GeForce RTX 3060", 11.6), "gpu-12gb", None),
    ("tiny", ("NVIDIA H100 80GB HBM3", 79.2), "cpu-demo", 1),  # from scratch: cpu-demo's values, on the GPU
    ("org/model@" + "a" * 40, (None, None), "cpu-demo", None),
])
def test_init_plans_by_the_detected_gpu(tmp_path, model, machine, preset, gpu_count):
    """A detected machine (the GPU machines are stood in for: this one has none) decides the
    preset; the written config validates with it."""
    import argparse

    from prefalign.config import init as init_config

    args = argparse.Namespace(model=model, dataset=["synthetic"], preset=None, revision=None, format=None)
    name, memory = machine
    plan = init_config.plan(args, Machine(cuda=name is not None, gpu_name=name, memory_gib=memory))
    assert (plan.preset, plan.gpu_count) == (preset, gpu_count)
    path = tmp_path / "config.yaml"
    path.write_text(init_config.render(plan, "prefalign init (test)"))
    config = load_config(path, SCHEMA)
    step_settings(config, [path])
    assert config["gpu"]["count"] == (gpu_count if gpu_count is not None else presets.PRESETS[preset]["gpu"]["count"])
    if machine[0]:
        assert machine[0] in path.read_text()  # the comment says what was detected
