"""Safe defaults: pinned hub artifacts under strict, safetensors only, no remote code, no
config path that writes outside results/ logs/ benchmarks/.

The HF_TOKEN search over a whole run's outputs is in tests/workflow/test_workflow.py.
"""

from __future__ import annotations

import ast
import copy
import json
import pickle
from pathlib import Path

import pytest
import yaml
from conftest import REPO, run_cli

from prefalign.config.resolve import load_config
from prefalign.config.schema import load_schema, with_defaults
from prefalign.config.steps import check_safety, step_settings
from prefalign.errors import ConfigError
from prefalign.settings import to_cli_flags

SCHEMA = load_schema(REPO / "schemas" / "config.schema.yaml")
DEFAULT = yaml.safe_load((REPO / "config.yaml").read_text())
PIN = "0123456789abcdef0123456789abcdef01234567"


def config_file(tmp_path, change) -> Path:
    config = copy.deepcopy(DEFAULT)
    change(config)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def hub_model(**extra):
    def change(config):
        config["model"] = {"source": "pretrained", "name_or_path": "org/some-model", **extra}
    return change


def test_strict_refuses_an_unpinned_hub_model_naming_file_line_and_key(tmp_path):
    path = config_file(tmp_path, hub_model())
    with pytest.raises(ConfigError) as info:
        step_settings(load_config(path, SCHEMA), [path])
    line = next(i for i, l in enumerate(path.read_text().splitlines(), 1) if l.startswith("model:"))
    assert (f"{path}:{line}: model.revision: expected a 40-hex-digit commit for hub artifact 'org/some-model', "
            "got None (strict: true pins") in str(info.value)


@pytest.mark.parametrize("revision", ["main", "v1.0", PIN[:-1], PIN.upper()])
def test_strict_refuses_branches_tags_and_short_hashes(tmp_path, revision):
    path = config_file(tmp_path, hub_model(revision=revision))
    with pytest.raises(ConfigError, match=r"model.revision: expected a 40-hex-digit commit"):
        step_settings(load_config(path, SCHEMA), [path])


def test_a_pinned_hub_model_or_a_local_folder_passes(tmp_path):
    step_settings(load_config(config_file(tmp_path, hub_model(revision=PIN)), SCHEMA))
    local = tmp_path / "local-model"
    local.mkdir()
    step_settings(load_config(config_file(tmp_path, lambda c: c.update(
        model={"source": "pretrained", "name_or_path": str(local)})), SCHEMA))


def test_strict_false_allows_unpinned_and_reaches_the_step(tmp_path):
    path = config_file(tmp_path, lambda c: (hub_model()(c), c.update(strict=False)))
    settings = step_settings(load_config(path, SCHEMA), [path])
    assert settings["model"].strict is False and "--no-strict" in to_cli_flags(settings["model"].to_dict())
    default = step_settings(with_defaults(DEFAULT, SCHEMA))
    assert default["model"].strict is True


def test_strict_covers_hub_datasets():
    config = with_defaults(DEFAULT, SCHEMA)
    config["datasets"]["web"] = {"format": "pairs", "source": "hub", "hub_id": "org/prefs", "revision": "main"}
    with pytest.raises(ConfigError, match=r"datasets.web.revision: expected a 40-hex-digit commit for hub artifact "
                                          r"'org/prefs', got 'main'"):
        check_safety(config)
    config["datasets"]["web"]["revision"] = PIN
    check_safety(config)


@pytest.mark.parametrize("name", ["..", ".", ".hidden", "a/b", "a\\b"])
def test_dataset_names_stay_one_path_component(name):
    config = with_defaults(DEFAULT, SCHEMA)
    config["datasets"][name] = config["datasets"].pop("synth_hh")
    with pytest.raises(ConfigError, match=rf"datasets\.{__import__('re').escape(name)}: expected a name that is one "
                                          r"path component"):
        check_safety(config)


def test_the_schema_already_refuses_path_like_dataset_names(tmp_path):
    path = config_file(tmp_path, lambda c: c["datasets"].update({"../../etc": {"format": "pairs", "source": "synthetic"}}))
    with pytest.raises(ConfigError, match=r"datasets: expected text matching"):
        load_config(path, SCHEMA)


@pytest.mark.workflow
def test_a_rule_writing_outside_the_trees_stops_the_workflow_before_any_job(tmp_path):
    """The real Snakefile plus a rule whose output path comes from a config value: refused at parse time."""
    import shutil
    import subprocess

    from conftest import BIN

    flow = tmp_path / "flow"
    shutil.copytree(REPO / "rules", flow / "rules")
    shutil.copytree(REPO / "schemas", flow / "schemas")
    shutil.copy(REPO / "config.yaml", flow / "config.yaml")
    (flow / "rules/rogue.smk").write_text(
        'rule rogue:\n    output:\n        config["report"]["title"] + "/x.txt",\n'
        '    log:\n        "logs/rogue.log",\n    shell:\n        "touch {output}"\n')
    snakefile = (REPO / "Snakefile").read_text().replace(
        'include: "rules/manifest.smk"', 'include: "rules/rogue.smk"\ninclude: "rules/manifest.smk"')
    (flow / "Snakefile").write_text(snakefile)
    config = flow / "evil.yaml"
    config.write_text((REPO / "config.yaml").read_text() + f"\nreport:\n  title: {tmp_path}/outside\n")
    result = subprocess.run([str(BIN / "snakemake"), "-s", str(flow / "Snakefile"), "-d", str(tmp_path / "work"),
                             "--configfile", str(config), "-n"], capture_output=True, text=True,
                            env={"PATH": f"{BIN}:/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    assert result.returncode != 0
    assert (f"rule rogue would write '{tmp_path}/outside/x.txt' (from config key report.title): outside results/, "
            "logs/, benchmarks/") in result.stdout + result.stderr
    assert not (tmp_path / "outside").exists() and not (tmp_path / "work/results").exists()


# ---------------------------------------------------------------- loading pretrained models

def tiny_tokenizer(folder: Path):
    from prefalign.train.base_model import train_tokenizer

    records = [{"prompt": [{"role": "user", "content": f"what is {i} + {i}?"}],
                "chosen": [{"role": "assistant", "content": str(2 * i)}],
                "rejected": [{"role": "assistant", "content": "no"}]} for i in range(50)]
    train_tokenizer(records, 300).save_pretrained(folder)


class Bomb:
    """Unpickling this creates a marker file: proof that a pickle was loaded."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_pickle_weights_are_never_loaded(tmp_path):
    folder, marker = tmp_path / "model", tmp_path / "PICKLE_WAS_LOADED"
    tiny_tokenizer(folder)
    (folder / "config.json").write_text(json.dumps({
        "model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 300, "hidden_size": 16,
        "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2}))
    with open(folder / "pytorch_model.bin", "wb") as handle:
        pickle.dump({"model.embed_tokens.weight": Bomb(str(marker))}, handle)
    result = run_cli("build-base", "--source", "pretrained", "--name-or-path", folder, "--out", tmp_path / "out",
                     check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "cannot load" in result.stderr and "safetensors only" in result.stderr
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_remote_code_is_never_run(tmp_path):
    folder, marker = tmp_path / "model", tmp_path / "REMOTE_CODE_RAN"
    tiny_tokenizer(folder)
    (folder / "config.json").write_text(json.dumps({
        "model_type": "evil", "architectures": ["EvilForCausalLM"],
        "auto_map": {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilForCausalLM"}}))
    (folder / "evil.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n")
    result = run_cli("build-base", "--source", "pretrained", "--name-or-path", folder, "--out", tmp_path / "out",
                     check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr and "cannot load" in result.stderr
    assert not marker.exists()


def model_loads(tree: ast.AST):
    """(file line, call) of every `<Model class>.from_pretrained(...)` in a module."""
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "from_pretrained"
                and isinstance(node.func.value, ast.Name)
                and (node.func.value.id.startswith("AutoModel") or node.func.value.id.endswith("ForCausalLM"))):
            yield node


def test_every_model_load_in_the_package_is_safetensors_only_and_no_remote_code():
    checked = 0
    for path in sorted((REPO / "src/prefalign").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            for keyword in getattr(node, "keywords", []) or []:
                if keyword.arg == "trust_remote_code":
                    assert isinstance(keyword.value, ast.Constant) and keyword.value.value is False, \
                        f"{path}:{node.lineno}: trust_remote_code must be the constant False"
        for call in model_loads(tree):
            flags = {k.arg: k.value for k in call.keywords}
            value = flags.get("use_safetensors")
            assert isinstance(value, ast.Constant) and value.value is True, \
                f"{path}:{call.lineno}: a model load without use_safetensors=True"
            checked += 1
    assert checked >= 4  # base model, SFT, DPO, evaluation (model and reference)
