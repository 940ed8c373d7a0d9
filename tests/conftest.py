"""Shared fixtures: toy data the tests make themselves, and the repository's paths."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# What the training steps write (the files a resumed or repeated run must reproduce byte for byte).
TRAINING_ARTIFACTS = [
    "results/sft/model/model.safetensors",
    "results/sft/metrics.json",
    "results/sft/log_history.jsonl",
    "results/dpo/model/model.safetensors",
    "results/dpo/metrics.json",
    "results/dpo/log_history.jsonl",
]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


DEMO_CONFIG = REPO / "config.yaml"
# A credential in the environment of every workflow run of the tests; no output may contain it
# (tests/workflow/test_workflow.py searches a whole run for it).
PLANTED_TOKEN = "hf_plantedByTestWorkflow0123456789abcdef"


def snakemake_environment() -> dict:
    """The environment of the tests' Snakemake runs: the venv's tools first, offline, a planted token."""
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1",
            "HF_TOKEN": PLANTED_TOKEN}


def snakemake_command(workdir: Path, *args: str, configfile: Path = DEMO_CONFIG) -> list[str]:
    return [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--configfile",
            str(configfile), *map(str, args)]


def snakemake(workdir: Path, *args: str, configfile: Path = DEMO_CONFIG) -> subprocess.CompletedProcess:
    """The real Snakemake on the project's workflow in `workdir`, as a user runs it."""
    return subprocess.run(snakemake_command(workdir, *args, configfile=configfile), capture_output=True, text=True,
                          env=snakemake_environment())


@pytest.fixture(scope="session")
def default_run(tmp_path_factory) -> Path:
    """The embedded default, run once per test session by the real Snakemake (`--cores all`).

    Every workflow test that only reads it shares it; a test that changes a run works on
    `copy_of(default_run, tmp_path)`. PREFALIGN_DEFAULT_RUN names the folder to run it in and keep:
    CI sets it, and its SLURM and container steps compare their own runs of the default with this
    one instead of making another (.ci/run). Snakemake decides what to (re)run there, so a kept
    folder from an older checkout is brought up to date, not trusted. Snakemake's log is kept as
    snakemake.log beside results/ (the SLURM step reads its job table).
    """
    named = os.environ.get("PREFALIGN_DEFAULT_RUN")
    folder = Path(named).resolve() if named else tmp_path_factory.mktemp("default-run")
    folder.mkdir(parents=True, exist_ok=True)
    result = snakemake(folder, "--cores", "all")
    (folder / "snakemake.log").write_text(result.stdout + result.stderr, encoding="utf-8")
    assert result.returncode == 0, result.stderr[-5000:]
    return folder


def copy_of(run: Path, tmp_path: Path) -> Path:
    """A copy of a finished run's folder, with Snakemake's records and modification times, for a test
    that changes it (a shared run stays as it was made)."""
    copy = tmp_path / "run"
    shutil.copytree(run, copy, symlinks=True)
    return copy


def run_cli(*args: str, check: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run `prefalign <args>` as a user would, in a subprocess."""
    result = subprocess.run([str(BIN / "prefalign"), *map(str, args)], capture_output=True, text=True, cwd=cwd)
    if check and result.returncode != 0:
        raise AssertionError(f"prefalign {' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}")
    return result


def write_lines(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return path


def read_jsonl(path: Path) -> list:
    # split("\n"), not splitlines(): JSON text may hold U+0085 or U+2028 unescaped, which splitlines() cuts at
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").split("\n") if line.strip()]


# A 30k-parameter Llama (prefalign build-base flags): training steps of it take seconds.
# The tests' tiny model: config section `model` of a workflow test, and the same as build-base flags.
TINY_MODEL_CONFIG = {"vocab_size": 320, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2}
TINY_MODEL = [*(arg for key, value in TINY_MODEL_CONFIG.items() for arg in (f"--{key.replace('_', '-')}", str(value))),
              "--threads", "1"]


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    """120 synthetic hh-rlhf rows through synth, normalize and split, and a tiny base model built on
    the train split: raw.jsonl, normalized.jsonl, train.jsonl, test.jsonl, base/. Shared by the
    session: read it, or copy it before writing into it."""
    return make_tiny_base(tmp_path_factory.mktemp("tiny_base"))


def make_tiny_base(root: Path) -> Path:
    """What the tiny_base fixture holds, made in `root` (bench/ddp_cpu_spread.py makes its own)."""
    run_cli("synth", "--format", "hh-rlhf", "--name", "hh", "--records", "120", "--out", root / "raw.jsonl")
    run_cli("normalize", "--format", "hh-rlhf", "--name", "hh", "--input", root / "raw.jsonl",
            "--records", root / "normalized.jsonl", "--rejects", root / "rejects.jsonl", "--stats", root / "stats.json")
    run_cli("split", "--inputs", root / "normalized.jsonl", "--train", root / "train.jsonl", "--test",
            root / "test.jsonl", "--rejects", root / "split_rejects.jsonl", "--stats", root / "split.json",
            "--test-fraction", "0.1")
    run_cli("build-base", "--train", root / "train.jsonl", "--out", root / "base", "--environment",
            root / "base_env.json", *TINY_MODEL)
    return root


@pytest.fixture
def hh_row():
    return {
        "chosen": "\n\nHuman: What is 2 + 3?\n\nAssistant: 5",
        "rejected": "\n\nHuman: What is 2 + 3?\n\nAssistant: 6",
    }
