"""The documentation's `prefalign init` walk-throughs, run as written: every command block of
README.md and docs/*.md that holds a `prefalign init --...` (README "Bring your own data": every
format, CPU and GPU; docs/usage.md "Writing and checking a config"), wherever it lives, on files in
each dataset's published shape at the paths the blocks name (`<commit>` stands for a made-up
commit). The whole run of what init writes, per format, is tests/workflow/test_workflow_formats.py."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import real_shapes
from conftest import REPO, run_cli, snakemake
from data_fixtures import write_rows

COMMIT = "0123456789abcdef0123456789abcdef01234567"
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FILES = {
    "data/hh-rlhf/harmless-base/train.jsonl.gz": lambda: real_shapes.hh_rlhf(40),
    "data/SHP/askscience/train.json": lambda: real_shapes.shp(40),
    "data/ultrafeedback_binarized/data/train_prefs-00000-of-00001.parquet": lambda: real_shapes.ultrafeedback(40),
    "data/oasst1/2023-04-12_oasst_ready.trees.jsonl.gz": lambda: real_shapes.trees(real_shapes.oasst1(10)),
    "data/my_pairs.jsonl": lambda: real_shapes.pairs(40),
    "data/hh.jsonl.gz": lambda: real_shapes.hh_rlhf(40),  # docs/usage.md, "Writing and checking a config"
}
# The first words of the lines of a command block (indented by four spaces) that the tests run.
COMMANDS = ("source", "prefalign", "cd", "snakemake", "HF_HUB_OFFLINE=0")


def command_blocks(text: str) -> list[list[str]]:
    """The runs of consecutive indented command lines in Markdown `text`, their comments cut."""
    blocks, current = [], []
    for line in text.splitlines():
        words = line.split()
        if line.startswith("    ") and words and words[0] in COMMANDS:
            current.append(line.strip().split("   #")[0].strip())
        elif current:
            blocks.append(current)
            current = []
    return blocks + ([current] if current else [])


def section(path: Path, heading: str) -> str:
    """The text under `heading` (e.g. "## Bring your own data") up to the next heading of its level or above."""
    level = len(heading.split(" ", 1)[0])
    lines = path.read_text().split(f"\n{heading}\n", 1)[1].splitlines()
    end = next((i for i, line in enumerate(lines) if (m := re.match(r"(#+) ", line)) and len(m[1]) <= level),
               len(lines))
    return "\n".join(lines[:end])


def init_blocks() -> dict[str, list[list[str]]]:
    """Every command block of README.md and docs/*.md with a `prefalign init --...` in it, by file."""
    found = {}
    for path in DOCS:
        blocks = [b for b in command_blocks(path.read_text()) if any(c.startswith("prefalign init --") for c in b)]
        if blocks:
            found[path.relative_to(REPO).as_posix()] = blocks
    return found


def test_the_readme_walks_through_what_init_prints_for_every_format():
    blocks = command_blocks(section(REPO / "README.md", "## Bring your own data"))
    assert blocks[0] == [
        "source .venv/bin/activate",
        "prefalign init --model tiny --dataset data/hh-rlhf/harmless-base/train.jsonl.gz --out configs/hh.yaml",
        "cd configs", "prefalign config check hh.yaml",
        "snakemake -s ../Snakefile --configfile hh.yaml --directory runs/hh --cores all"]
    datasets = [shlex.split(c)[shlex.split(c).index("--dataset") + 1]
                for block in blocks for c in block if c.startswith("prefalign init --")]
    # A local file of each of the five formats, and a hub dataset with a hub model (the GPU example).
    assert set(datasets) == {*FILES} - {"data/hh.jsonl.gz"} | {
        "HuggingFaceH4/ultrafeedback_binarized@<commit>:20000"}, datasets


def test_the_docs_walk_throughs_are_found_where_they_live():
    found = init_blocks()
    assert set(found) >= {"README.md", "docs/usage.md"}, sorted(found)
    for blocks in found.values():
        for block in blocks:
            for command in block:
                if command.startswith("prefalign init --") and "synthetic" not in command:
                    path = re.sub(r":[0-9]+$", "", shlex.split(command)[shlex.split(command).index("--dataset") + 1])
                    assert path in FILES or "@" in path, f"{command}: a local file this test does not make"


@pytest.mark.workflow
def test_every_init_walk_through_of_the_docs_runs(tmp_path):
    for relative, rows in FILES.items():
        path = tmp_path / relative
        if path.name.endswith(".json"):  # SHP: JSON Lines under a .json name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(r) + "\n" for r in rows()))
        else:
            write_rows(path, rows())
    for blocks in init_blocks().values():
        for block in blocks:
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
