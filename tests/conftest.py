"""Shared fixtures: toy data the tests make themselves, and the repository's paths."""

from __future__ import annotations

import json
import os
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


@pytest.fixture
def hh_row():
    return {
        "chosen": "\n\nHuman: What is 2 + 3?\n\nAssistant: 5",
        "rejected": "\n\nHuman: What is 2 + 3?\n\nAssistant: 6",
    }
