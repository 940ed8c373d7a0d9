"""Published digests, `check` against them and `prefalign diff`, on synthetic runs made here.

A synthetic run is a folder with a few artifacts and a manifest listing them as the manifest step
does (sha256, size, job, rule, kind), its steps' environment records in `jobs`. The workflow tests
(tests/workflow/test_rerun_faults.py) run the same commands on a real tiny run.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import pytest
import yaml
from conftest import run_cli

from prefalign.provenance import digests, published

NUMERICS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "threads": 2}
ENVIRONMENT = {"packages": {"python": "3.11.7", "torch": "2.13.0+cpu", "trl": "1.16.0"},
               "hardware": {"machine": "x86_64", "cpu": "Intel Xeon", "cpu_count": 2}, "platform": "Linux-x",
               "cpu_numerics": NUMERICS}
CONFIG = {"seed": 1234, "dpo": {"beta": 0.1}, "check": {"expected": "bounds.yaml"}}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_run(root: Path, *, weights: bytes = b"w" * 64, accuracy: float = 0.7, config: dict | None = None,
             environment: dict | None = None, commit: str = "a" * 40, gpus: list | None = None,
             container: dict | None = None) -> Path:
    """A finished run under `root`: files and their manifest, as `prefalign manifest` writes it."""
    environment = environment or ENVIRONMENT
    files = {
        "results/sft/model/model.safetensors": ("train_sft", weights),
        "results/sft/environment.json": ("train_sft", json.dumps({**environment, "hostname": str(root)}).encode()),
        "results/eval/dpo/metrics.json": ("evaluate_model[model=dpo]", json.dumps(
            {"model": "dpo", "metrics": {"implicit_reward_accuracy": accuracy, "kl_mean": 1.5},
             "intervals": {"implicit_reward_accuracy": {"low": accuracy - 0.05, "high": accuracy + 0.05}}}).encode()),
        "results/eval/compare/dpo_vs_sft.json": ("compare_models[baseline=sft,model=dpo]", json.dumps(
            {"model": "dpo", "baseline": "sft", "metrics": {"win_rate": 0.55},
             "greedy": {"interval": {"low": 0.51, "high": 0.59}}}).encode()),
    }
    artifacts = {}
    for path, (job, data) in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
        artifacts[path] = {"sha256": sha(data), "size": len(data), "job": job, "rule": job.split("[")[0],
                           **digests.marks(path)}
    manifest = {
        "manifest_version": 1, "path": "results/manifest.json", "artifacts": artifacts, "sources": {},
        "jobs": {"train_sft": {"rule": "train_sft", "outputs": [], "inputs": {}, "environment": environment}},
        "run": {"prefalign": "0.1.0", "seed": 1234, "date": "2026-12-06T20:00:00+00:00",
                "git": {"commit": commit, "dirty": False}, "container": container or {"runtime": None},
                "environment": {"packages": {"python": "3.11.7"}, "hardware": {"cpu": "manifest job's"}},
                "gpus": gpus or [], "config": config or CONFIG},
    }
    (root / "results/manifest.json").write_text(json.dumps(manifest, indent=2))
    (root / "bounds.yaml").write_text(yaml.safe_dump({"metrics": {
        "dpo.implicit_reward_accuracy": {"value": 0.7, "tolerance": 0.05},
        "dpo_vs_sft.win_rate.low": {"above": 0.5}}}))
    return root


@pytest.fixture
def run_a(tmp_path) -> Path:
    return make_run(tmp_path / "a")


# ---------------------------------------------------------------- kinds, one place

def test_an_artifacts_kind_is_decided_in_one_place(monkeypatch):
    assert digests.kind_of("results/sft/environment.json")[0] == digests.MACHINE
    assert digests.kind_of("results/model/environment.json")[0] == digests.MACHINE
    assert digests.kind_of("results/sft/model/model.safetensors") == (digests.RESULT, None)
    assert digests.kind_of("data/environment.json")[0] == digests.RESULT  # only the run's own records
    monkeypatch.setattr(digests, "NOT_IDENTICAL", (("results/eval/*/generations.jsonl", "sampling differs"),))
    assert digests.kind_of("results/eval/dpo/generations.jsonl") == (digests.BOUNDED, "sampling differs")
    assert digests.marks("results/eval/dpo/generations.jsonl") == {"kind": "bounded", "why": "sampling differs"}


def test_entries_keep_the_recorded_kind_and_classify_older_records():
    record = {"artifacts": {"results/a.json": {"sha256": "1", "size": 1, "kind": "bounded", "why": "x"},
                            "results/sft/environment.json": {"sha256": "2", "size": 1}}}
    entries = digests.entries(record)
    assert entries["results/a.json"]["kind"] == "bounded"  # as decided when the manifest was written
    assert entries["results/sft/environment.json"]["kind"] == "machine"  # no kind recorded: today's rule
    assert digests.recorded({**record, "sources": {"data/raw.jsonl": {"sha256": "3", "size": 1}}})[
        "data/raw.jsonl"]["kind"] == "source"


def test_compare_leaves_machine_records_out_and_names_every_difference():
    def entry(sha256, kind="result"):
        return {"sha256": sha256, "kind": kind}

    a = {"r/same": entry("1"), "r/changed": entry("2"), "r/env.json": entry("3", "machine"), "r/only_a": entry("4"),
         "r/bounded": entry("5", "bounded")}
    b = {"r/same": entry("1"), "r/changed": entry("9"), "r/env.json": entry("8", "machine"), "r/only_b": entry("4"),
         "r/bounded": entry("6", "bounded")}
    result = digests.compare(a, b)
    assert result.identical == ["r/same"] and result.differ == ["r/changed"] and result.bounded == ["r/bounded"]
    assert result.only_a == ["r/only_a"] and result.only_b == ["r/only_b"] and result.machine == ["r/env.json"]
    assert result.compared == 5 and not result.bit_identical
    assert digests.compare({"r/bounded": entry("5", "bounded")}, {"r/bounded": entry("6", "bounded")}).bit_identical


def test_made_by_reads_the_steps_records(run_a):
    manifest = json.loads((run_a / "results/manifest.json").read_text())
    made = digests.made_by(manifest)
    assert made["commit"] == "a" * 40 and made["date"] == "2026-12-06T20:00:00+00:00"
    assert made["cpu_numerics"] == NUMERICS and made["hardware"]["cpu"] == "Intel Xeon"  # the step's, not the manifest job's
    assert made["packages"]["torch"] == "2.13.0+cpu"
    two = copy.deepcopy(manifest)
    two["jobs"]["train_dpo"] = {"environment": {**ENVIRONMENT, "cpu_numerics": {**NUMERICS, "threads": 1}}}
    assert set(digests.made_by(two)["cpu_numerics"]) == {"train_sft", "train_dpo"}  # they differ: per step
    assert digests.changes({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}, "d": 4}) == [("a.c", 2, 3), ("d", None, 4)]


# ---------------------------------------------------------------- publishing and checking

def test_digests_publish_an_intact_run_only(run_a, tmp_path):
    out = tmp_path / "published.json"
    result = run_cli("digests", "--manifest", run_a / "results/manifest.json", "--out", out)
    assert "4 artifacts (3 results, 1 machine records, 0 bounded)" in result.stdout
    data = json.loads(out.read_text())
    assert data["format"] == published.FORMAT and "make digests" in data["written_by"]
    assert data["made_by"]["cpu_numerics"] == NUMERICS and data["made_by"]["commit"] == "a" * 40
    assert data["artifacts"]["results/sft/environment.json"]["kind"] == "machine"
    assert data["metrics"]["dpo"]["implicit_reward_accuracy"] == 0.7 and data["metrics"]["dpo_vs_sft"]["win_rate"] == 0.55
    assert data["config"]["dpo"] == {"beta": 0.1}

    (run_a / "results/eval/dpo/metrics.json").write_text("{}")  # a hand edit: not published
    refused = run_cli("digests", "--manifest", run_a / "results/manifest.json", "--out", tmp_path / "x.json",
                      check=False)
    assert refused.returncode == 5 and "MISMATCH results/eval/dpo/metrics.json" in refused.stderr
    assert not (tmp_path / "x.json").exists()


def check_cli(run: Path, digest_file: Path | None, *, check: bool = True):
    args = ["check", "--manifest", run / "results/manifest.json", "--expected", run / "bounds.yaml",
            "--eval-metrics", run / "results/eval/dpo/metrics.json",
            "--comparisons", run / "results/eval/compare/dpo_vs_sft.json", "--table", run / "results/check/expected.md"]
    return run_cli(*args, *(["--digests", digest_file] if digest_file else []), check=check)


def test_check_compares_the_published_digests_before_the_bounds(run_a, tmp_path):
    digest_file = tmp_path / "published.json"
    run_cli("digests", "--manifest", run_a / "results/manifest.json", "--out", digest_file)
    other = make_run(tmp_path / "b")  # the same run made on another machine: only its machine record differs
    out = check_cli(other, digest_file).stdout
    assert "run: 4 files match" in out
    assert "bit-identical to the published run: 3 of 3 artifacts; 1 machine records not compared" in out
    assert out.index("bit-identical") < out.index("| dpo.implicit_reward_accuracy")
    assert "results reproduced" in out
    assert "bit-identical to the published run: 3 of 3" in (other / "results/check/expected.md").read_text()

    changed = make_run(tmp_path / "c", weights=b"v" * 64,
                       environment={**ENVIRONMENT, "cpu_numerics": {**NUMERICS, "ATEN_CPU_CAPABILITY": "avx512"}})
    out = check_cli(changed, digest_file).stdout
    assert "NOT bit-identical to the published run" in out and "1 of 3 artifacts differ, 2 identical" in out
    assert "results/sft/model/model.safetensors (made by train_sft): sha256 " in out
    assert '"ATEN_CPU_CAPABILITY": "avx512"' in out and '"ATEN_CPU_CAPABILITY": "avx2"' in out  # what made each
    assert "results reproduced" in out  # the bounds decide

    other_config = make_run(tmp_path / "d", config={**CONFIG, "dpo": {"beta": 0.2}, "check": {"expected": "x"}})
    out = check_cli(other_config, digest_file).stdout
    assert "digests: not compared" in out and "another config (differs in dpo.beta)" in out  # check.* left out

    (other / "results/sft/model/model.safetensors").write_bytes(b"w" * 63 + b"x")  # edited after its manifest
    refused = check_cli(other, digest_file, check=False)
    assert refused.returncode == 5 and "results reproduced" not in refused.stdout
    assert "MISMATCH results/sft/model/model.safetensors" in refused.stderr


# ---------------------------------------------------------------- prefalign diff

def test_diff_two_runs_names_every_difference(tmp_path):
    a = make_run(tmp_path / "a")
    b = make_run(tmp_path / "b", weights=b"v" * 64, accuracy=0.76, commit="b" * 40,
                 config={**CONFIG, "dpo": {"beta": 0.2}},
                 environment={**ENVIRONMENT, "packages": {**ENVIRONMENT["packages"], "trl": "1.15.0"},
                              "cpu_numerics": {**NUMERICS, "ATEN_CPU_CAPABILITY": "avx512"}},
                 gpus=[{"name": "H100", "compute_capability": "9.0"}], container={"runtime": "apptainer",
                                                                                  "digest": "sha256:1"})
    result = run_cli("diff", a, b, check=False)
    assert result.returncode == 1, result.stderr  # something differs (as diff(1))
    md = result.stdout
    assert "3 compared: 1 identical, 2 differ; 1 machine records not compared" in md
    assert "| results/sft/model/model.safetensors | differs | train_sft |" in md
    assert "| results/eval/dpo/metrics.json | differs | evaluate_model[model=dpo] |" in md
    assert "| results/eval/compare/dpo_vs_sft.json | identical |" in md
    assert f"## Metrics against {a / 'bounds.yaml'}" in md  # A's check.expected, found beside the run
    assert "| dpo.implicit_reward_accuracy | 0.7 | 0.76 | 0.06 (OVER tolerance) | 0.7 ± 0.05 | ok | OUT |" in md
    assert "| dpo.beta | 0.1 | 0.2 |" in md and "check.expected" not in md
    assert "| trl | 1.16.0 | 1.15.0 |" in md
    assert "## CPU features and dispatch level (cpu_numerics)" in md and "| ATEN_CPU_CAPABILITY | avx2 | avx512 |" in md
    assert "H100" in md.split("## GPU")[1] and "apptainer" in md.split("## Container")[1]
    assert "a" * 40 in md.split("## Commit")[1]

    data = json.loads(run_cli("diff", a, b, "--json", check=False).stdout)
    assert data["artifacts"]["differ"][1] == {"path": "results/sft/model/model.safetensors", "job": "train_sft",
                                              "a": sha(b"w" * 64), "b": sha(b"v" * 64)}
    assert data["artifacts"]["machine_records"] == ["results/sft/environment.json"]
    row = next(r for r in data["metrics"]["rows"] if r["metric"] == "dpo.implicit_reward_accuracy")
    assert row["delta"] == pytest.approx(0.06) and row["delta_within_tolerance"] is False
    assert data["config"] == [{"key": "dpo.beta", "a": 0.1, "b": 0.2}]
    assert data["cpu"]["record"] == "cpu_numerics"
    assert data["cpu"]["changes"] == [{"key": "ATEN_CPU_CAPABILITY", "a": "avx2", "b": "avx512"}]
    assert {c["key"] for c in data["commit"]} == {"commit"}


def test_diff_a_run_against_published_digests_and_without_numerics(tmp_path):
    environment = {k: v for k, v in ENVIRONMENT.items() if k != "cpu_numerics"}
    a = make_run(tmp_path / "a", environment=environment)
    digest_file = tmp_path / "published.json"
    run_cli("digests", "--manifest", a / "results/manifest.json", "--out", digest_file)
    same = run_cli("diff", a / "results/manifest.json", digest_file)  # exit 0: bit-identical
    assert "(published digests," in same.stdout and "3 compared: 3 identical, bit-identical" in same.stdout
    assert "## CPU (hardware record; neither run recorded cpu_numerics)" in same.stdout

    b = make_run(tmp_path / "b", accuracy=0.72, environment={**environment, "hardware": {
        "machine": "x86_64", "cpu": "AMD EPYC", "cpu_count": 2}})
    md = run_cli("diff", digest_file, b, "--expected", b / "bounds.yaml", check=False).stdout
    assert "| dpo.implicit_reward_accuracy | 0.7 | 0.72 | 0.02 (within tolerance) |" in md
    assert "| cpu | Intel Xeon | AMD EPYC |" in md


def test_diff_refuses_what_is_not_a_run(tmp_path):
    (tmp_path / "x.json").write_text("[]")
    result = run_cli("diff", tmp_path / "x.json", tmp_path, check=False)
    assert result.returncode == 2 and "not a manifest or digest file" in result.stderr
    assert "Traceback" not in result.stderr
