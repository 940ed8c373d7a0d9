"""The data rules under the real Snakemake, on a mix of sources and formats (no training)."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import REPO, read_jsonl, snakemake
from data_fixtures import dataset_card, fake_hub_dataset, hh, oasst_tree, ultrafeedback, write_rows

pytestmark = pytest.mark.workflow


def test_a_mixture_of_hub_local_and_synthetic_data_with_caps(tmp_path, monkeypatch):
    write_rows(tmp_path / "raw/uf.parquet", [ultrafeedback(f"Name a colour number {i}.", "Blue.", f"{i}") for i in
                                             range(40)])
    write_rows(tmp_path / "raw/oasst.jsonl.gz", oasst_tree())
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    rows = "".join(json.dumps(hh(f"Spell the number {i}.", f"n{i}", "?")) + "\n" for i in range(25))
    fake_hub_dataset(tmp_path / "hf/hub", "fakeorg/hh", "c" * 40, {
        "README.md": dataset_card({"default": {"train": "train.jsonl"}}), "train.jsonl": rows.encode()})
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["datasets"] = {
        "synth": {"format": "hh-rlhf", "source": "synthetic", "records": 300, "cap": 200},
        "uf": {"format": "ultrafeedback", "source": "local", "path": "raw/uf.parquet"},
        "oa": {"format": "oasst1", "source": "local", "path": "raw/oasst.jsonl.gz", "languages": ["en"]},
        "hub": {"format": "hh-rlhf", "source": "hub", "hub_id": "fakeorg/hh", "revision": "c" * 40},
    }
    path = tmp_path / "mix.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "--cores", "2", "results/data/stats.json", configfile=path)
    assert result.returncode == 0, result.stderr[-3000:]
    stats = json.loads((tmp_path / "results/data/stats.json").read_text())
    assert stats["per_source"]["synth"]["over_cap"] > 0
    assert sum(v for k, v in stats["per_source"]["synth"].items() if k in ("train", "test")) <= 200
    assert set(stats["per_source"]) == {"synth", "uf", "oa", "hub"}
    assert json.loads((tmp_path / "results/data/hub/stats.json").read_text())["kept"] == 25
    for name in ("synth", "uf", "oa", "hub"):
        dataset = json.loads((tmp_path / f"results/data/{name}/stats.json").read_text())
        ledger = read_jsonl(tmp_path / f"results/data/{name}/rejects.jsonl")
        assert dataset["in"] == dataset["kept"] + len(ledger)
    kept = read_jsonl(tmp_path / "results/data/train.jsonl") + read_jsonl(tmp_path / "results/data/test.jsonl")
    assert len(kept) + len(read_jsonl(tmp_path / "results/data/rejects.jsonl")) == stats["in"]
    assert (tmp_path / "benchmarks/normalize_dataset/uf.tsv").is_file()
