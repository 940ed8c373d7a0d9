"""The README's "Bring your own data" commands, run as written (on files in each dataset's
published shape at the README's paths; `<commit>` stands for a made-up commit). The whole run
of what init writes, per format, is tests/workflow/test_workflow_formats.py."""

from __future__ import annotations

import shlex

import pytest
import real_shapes
from conftest import REPO, run_cli, snakemake
from data_fixtures import write_rows

COMMIT = "0123456789abcdef0123456789abcdef01234567"
FILES = {
    "data/hh-rlhf/harmless-base/train.jsonl.gz": lambda: real_shapes.hh_rlhf(40),
    "data/SHP/askscience/train.json": lambda: real_shapes.shp(40),
    "data/ultrafeedback_binarized/data/train_prefs-00000-of-00001.parquet": lambda: real_shapes.ultrafeedback(40),
    "data/oasst1/2023-04-12_oasst_ready.trees.jsonl.gz": lambda: real_shapes.trees(real_shapes.oasst1(10)),
    "data/my_pairs.jsonl": lambda: real_shapes.pairs(40),
}


def section_blocks() -> list[list[str]]:
    """The command blocks of the README's "Bring your own data" section (each run from the checkout)."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Bring your own data", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    blocks, current = [], []
    for line in section.splitlines():
        if line.startswith("    ") and line.strip().split()[0] in ("source", "prefalign", "cd", "snakemake",
                                                                   "HF_HUB_OFFLINE=0"):
            current.append(line.strip().split("   #")[0].strip())
        elif current:
            blocks.append(current)
            current = []
    return blocks + ([current] if current else [])


def test_the_section_has_the_commands_init_prints():
    blocks = section_blocks()
    assert blocks[0] == [
        "source .venv/bin/activate",
        "prefalign init --model tiny --dataset data/hh-rlhf/harmless-base/train.jsonl.gz --out configs/hh.yaml",
        "cd configs", "prefalign config check hh.yaml",
        "snakemake -s ../Snakefile --configfile hh.yaml --directory runs/hh --cores all"]
    assert sum(c.startswith("prefalign init") for block in blocks for c in block) == 6


@pytest.mark.workflow
def test_every_command_of_the_section_runs(tmp_path):
    for relative, rows in FILES.items():
        path = tmp_path / relative
        if path.name.endswith(".json"):  # SHP: JSON Lines under a .json name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(__import__("json").dumps(r) + "\n" for r in rows()))
        else:
            write_rows(path, rows())
    for block in section_blocks():
        run_block(tmp_path, block)


def run_block(root, block):
    cwd = root
    for command in block:
        args = shlex.split(command.replace("<commit>", COMMIT))
        if args[0] == "source":
            continue  # the tests run in the environment it activates
        if args[0] == "cd":
            cwd = cwd / args[1]
            continue
        if args[0].startswith("HF_HUB_OFFLINE="):
            args = args[1:]
        if args[0] == "prefalign":
            result = run_cli(*args[1:], cwd=cwd)
            assert "Traceback" not in result.stderr
        else:  # snakemake: a dry run here (the full run of each format: tests/workflow/test_workflow_formats.py)
            config = cwd / args[args.index("--configfile") + 1]
            workdir = cwd / args[args.index("--directory") + 1]
            dry = snakemake(workdir, "--cores", "1", "--dry-run", configfile=config)
            assert dry.returncode == 0, dry.stderr[-3000:]
            if "qwen" not in config.name:
                assert "normalize_dataset" in dry.stdout and "generate_synthetic_raw" not in dry.stdout
