"""Model cards and the upload folder through the CLI, validated with huggingface_hub's parser.

The workflow tests check the cards of a real run (tests/workflow/test_workflow.py); here a small
made-up run: a model folder, training and evaluation metrics, a resolved config.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import run_cli
from huggingface_hub import ModelCard

from prefalign.hashing import sha256_file
from prefalign.publish.card import MANIFEST_MARK


@pytest.fixture
def run(tmp_path) -> Path:
    (tmp_path / "results/sft/model").mkdir(parents=True)
    (tmp_path / "results/sft/model/model.safetensors").write_bytes(b"\x00weights" * 10)
    (tmp_path / "results/sft/model/config.json").write_text('{"architectures": ["LlamaForCausalLM"]}\n')
    (tmp_path / "results/sft/model/.snakemake_timestamp").write_text("")
    (tmp_path / "results/sft/metrics.json").write_text(json.dumps({
        "settings": {"learning_rate": 0.002, "max_steps": 1000, "use_lora": False},
        "resolved": {"backend": "trl", "precision": "fp32", "device": "cpu"},
        "train": {"steps": 1000, "train_loss": 0.81}}))
    (tmp_path / "results/sft/environment.json").write_text(json.dumps(
        {"packages": {"torch": "2.13.0+cpu", "transformers": "5.23.0", "trl": "1.16.0"}}))
    (tmp_path / "results/eval/sft").mkdir(parents=True)
    (tmp_path / "results/eval/sft/metrics.json").write_text(json.dumps({
        "model": "sft", "reference": "base",
        "metrics": {"implicit_reward_accuracy": 0.71, "kl_mean": 3.2, "judge_accuracy": 0.36, "pairs": 335},
        "intervals": {"implicit_reward_accuracy": {"low": 0.66, "high": 0.76},
                      "kl_mean": {"low": 2.9, "high": 3.5}}}))
    (tmp_path / "results/model/base").mkdir(parents=True)
    (tmp_path / "results/model/base/prefalign_base.json").write_text(json.dumps(
        {"architecture": "LlamaForCausalLM", "parameters": 520000, "vocab_size": 732}))
    config = {"seed": 1234, "datasets": {
        "hh": {"source": "hub", "format": "hh-rlhf", "hub_id": "Anthropic/hh-rlhf", "revision": "a" * 40},
        "mine": {"source": "local", "format": "pairs", "path": "raw/mine.jsonl"}},
        "model": {"source": "pretrained", "name_or_path": "Qwen/Qwen2.5-0.5B-Instruct", "revision": "b" * 40},
        "data": {"test_fraction": 0.1, "split_seed": "prefalign"}, "report": {"title": "my run"}}
    (tmp_path / "results/config").mkdir(parents=True)
    (tmp_path / "results/config/resolved.yaml").write_text("# resolved\n" + yaml.safe_dump(config))
    return tmp_path


def write_card(root: Path, *extra: str, check: bool = True):
    return run_cli("card", "--kind", "sft", "--model", "results/sft/model", "--train-metrics", "results/sft/metrics.json",
                   "--eval-metrics", "results/eval/sft/metrics.json", "--base-info",
                   "results/model/base/prefalign_base.json", "--environment", "results/sft/environment.json",
                   "--config", "results/config/resolved.yaml", "--out", "results/cards/sft/README.md",
                   "--license", "apache-2.0", *extra, cwd=root, check=check)


def test_the_card_parses_with_huggingface_hub_and_says_what_made_the_model(run):
    write_card(run, "--tags", "my-lab")
    card = ModelCard.load(run / "results/cards/sft/README.md")
    data = card.data
    assert data.base_model == "Qwen/Qwen2.5-0.5B-Instruct" and data.license == "apache-2.0"
    assert data.library_name == "transformers" and data.datasets == ["Anthropic/hh-rlhf"]
    assert {"prefalign", "trl", "sft", "my-lab"} <= set(data.tags)
    results = {r.metric_type: r.metric_value for r in data.eval_results}  # model-index, parsed by the hub library
    assert results == {"implicit_reward_accuracy": 0.71, "judge_accuracy": 0.36, "kl_mean": 3.2}
    text = card.text
    assert f"revision {'a' * 40}" in text and f"`Qwen/Qwen2.5-0.5B-Instruct` at revision `{'b' * 40}`" in text
    assert "| implicit_reward_accuracy | 0.7100 | [0.6600, 0.7600] |" in text  # evaluation with its interval
    assert '| `learning_rate` | 0.002 |' in text and "backend trl, precision fp32" in text  # the training procedure
    assert f"`model.safetensors`: `{sha256_file(run / 'results/sft/model/model.safetensors')}`" in text
    assert sha256_file(run / "results/config/resolved.yaml") in text and MANIFEST_MARK in text  # how to reproduce
    assert "snakemake --cores all --configfile" in text


def test_the_card_is_the_same_bytes_twice(run):
    write_card(run)
    first = (run / "results/cards/sft/README.md").read_bytes()
    write_card(run)
    assert (run / "results/cards/sft/README.md").read_bytes() == first


def test_a_bad_license_is_refused_by_key(run):
    result = write_card(run, "--license", "my license", check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "card.license: expected a Hub license id without spaces" in result.stderr


def manifest_of(root: Path, files: list[str]) -> Path:
    path = root / "results/manifest.json"
    path.write_text(json.dumps({"artifacts": {f: {"sha256": sha256_file(root / f), "job": "train_sft"}
                                              for f in files}}))
    return path


def test_export_lays_out_weights_and_card_with_the_manifest_sha256(run):
    write_card(run)
    files = ["results/sft/model/model.safetensors", "results/sft/model/config.json", "results/cards/sft/README.md"]
    manifest = manifest_of(run, files)
    run_cli("export", "--model", "results/sft/model", "--card", "results/cards/sft/README.md", "--manifest",
            "results/manifest.json", "--out", "results/export/sft", cwd=run)
    out = run / "results/export/sft"
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert (out / "model.safetensors").read_bytes() == (run / "results/sft/model/model.safetensors").read_bytes()
    card = ModelCard.load(out / "README.md")
    assert f"sha256 `{sha256_file(manifest)}`" in card.text and MANIFEST_MARK not in card.text


def test_export_refuses_a_checkpoint_that_is_not_what_the_run_made(run):
    write_card(run)
    manifest_of(run, ["results/sft/model/model.safetensors", "results/sft/model/config.json",
                      "results/cards/sft/README.md"])
    (run / "results/sft/model/model.safetensors").write_bytes(b"\x01weights" * 10)
    result = run_cli("export", "--model", "results/sft/model", "--card", "results/cards/sft/README.md", "--manifest",
                     "results/manifest.json", "--out", "results/export/sft", cwd=run, check=False)
    assert result.returncode == 5 and "Traceback" not in result.stderr
    assert "results/sft/model/model.safetensors: sha256 differs from the manifest (made by train_sft)" in result.stderr
    assert not (run / "results/export/sft").exists()


def test_an_adapter_card_names_peft_and_its_base(run):
    """A LoRA DPO run's adapter (the demo trains all weights, so the workflow tests have no adapter card)."""
    adapter = run / "results/dpo/adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_model.safetensors").write_bytes(b"\x00lora" * 10)
    (adapter / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 16}\n')
    (run / "results/dpo/metrics.json").write_text(json.dumps({
        "settings": {"learning_rate": 0.001, "max_steps": 300, "use_lora": True, "beta": 0.1},
        "resolved": {"backend": "trl", "precision": "fp32", "device": "cpu"}, "train": {"steps": 300}}))
    run_cli("card", "--kind", "dpo-adapter", "--model", "results/dpo/adapter", "--train-metrics",
            "results/dpo/metrics.json", "--base-info", "results/model/base/prefalign_base.json", "--environment",
            "results/sft/environment.json", "--config", "results/config/resolved.yaml", "--out",
            "results/cards/dpo-adapter/README.md", "--license", "apache-2.0", cwd=run)
    card = ModelCard.load(run / "results/cards/dpo-adapter/README.md")
    assert card.data.library_name == "peft" and card.data.license == "apache-2.0"
    assert "LoRA adapter: its base is the SFT checkpoint" in card.text
    assert "`adapter_model.safetensors`" in card.text and "| `use_lora` | true |" in card.text.lower()
