"""Your own data, end to end, in each of the five formats (issue 13's done-when).

For each format: a raw file in that dataset's published row shape and file layout
(tests/real_shapes.py), `prefalign init --model tiny --dataset FILE`, then the snakemake command
the written config's header prints, run as printed with one test overlay as a second
--configfile (a few steps per training rule, a few prompts per sampling and judging step, two
evaluated models). No synthetic dataset anywhere. The run must write the report; the manifest's
jobs must carry the flags `prefalign config plan` prints.

Evaluation on real data: eval.judge auto trains a reward model on the train split (the task
verifier scores only the synthetic tasks), which judges SFT's and DPO's answers and the
on-policy samples; the report has its held-out accuracy and DPO's win rate over SFT.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess

import pytest
import real_shapes
import yaml
from conftest import BIN, run_cli
from data_fixtures import write_rows

pytestmark = pytest.mark.workflow

# format -> (the file as the dataset publishes it, the rows, the dataset name init gives it)
FIXTURES = {
    "hh-rlhf": ("hh-rlhf/harmless-base/train.jsonl.gz", lambda: real_shapes.hh_rlhf(90), "harmless-base"),
    "shp": ("SHP/askscience/train.json", lambda: real_shapes.shp(90), "askscience"),
    "ultrafeedback": ("ultrafeedback_binarized/data/train_prefs-00000-of-00001.parquet",
                      lambda: real_shapes.ultrafeedback(90), "ultrafeedback_binarized"),
    "oasst1": ("oasst1/2023-04-12_oasst_ready.trees.jsonl.gz",
               lambda: real_shapes.trees(real_shapes.oasst1(30)), "2023-04-12_oasst_ready"),
    "pairs": ("my_pairs.jsonl", lambda: real_shapes.pairs(90), "my_pairs"),
}
# The smallest run that still makes every rule's outputs: a few optimizer steps per training rule,
# a few prompts per sampling and judging step (the CI budget; the recipe's values are init's).
OVERLAY = {
    "sft": {"max_steps": 8, "logging_steps": 4},
    "dpo": {"max_steps": 4, "logging_steps": 2},
    "reward": {"max_steps": 8, "logging_steps": 4},
    "onpolicy": {"max_prompts": 12, "samples_per_prompt": 2, "max_new_tokens": 8},
    "eval": {"models": ["sft", "dpo"], "max_new_tokens": 8, "bootstrap_samples": 200, "judge_prompts": 12,
             "kl_prompts": 12},
}


def write_fixture(root, fmt):
    relative, rows, name = FIXTURES[fmt]
    path = root / "data" / relative
    if path.name.endswith(".json"):  # SHP ships JSON Lines under a .json name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows()))
    else:
        write_rows(path, rows())
    return path, name


def plan_name(job: dict) -> str:
    """A manifest job's name as prefalign.config.plan names it: rule[wildcard] (rule[model_vs_baseline])."""
    wildcards = job["wildcards"]
    if not wildcards:
        return job["rule"]
    value = f"{wildcards['model']}_vs_{wildcards['baseline']}" if "baseline" in wildcards else \
        next(iter(wildcards.values()))
    return f"{job['rule']}[{value}]"


def header_commands(config):
    """The `cd` folder and the snakemake command the config's header prints."""
    lines = [line.removeprefix("#   ") for line in config.read_text().splitlines() if line.startswith("#   ")]
    folder = shlex.split(next(line for line in lines if line.startswith("cd ")))[1]
    command = next(line for line in lines if line.startswith("snakemake "))
    return folder, shlex.split(command)


@pytest.mark.parametrize("fmt", list(FIXTURES))
def test_init_then_the_printed_command_runs_the_whole_chain(tmp_path, fmt):
    raw, name = write_fixture(tmp_path, fmt)
    config = tmp_path / "configs" / "mine.yaml"
    init = run_cli("init", "--model", "tiny", "--dataset", raw, "--out", config, cwd=tmp_path)
    assert f"datasets {name}" in init.stdout
    written = yaml.safe_load(config.read_text())
    entry = {"format": fmt, "source": "local", "path": os.path.relpath(raw, config.parent)}
    assert written["datasets"] == {name: entry}
    assert written["sft"]["max_steps"] < 100  # scaled to ~80 pairs, not the preset's 1000
    overlay = tmp_path / "configs" / "test-overlay.yaml"
    overlay.write_text(yaml.safe_dump(OVERLAY))

    folder, command = header_commands(config)
    assert folder == str(config.parent.resolve()) and command[:2] == ["snakemake", "-s"]
    assert "valid" in run_cli("config", "check", config.name, cwd=folder).stdout
    command[command.index("--configfile") + 1:command.index("--configfile") + 2] = [config.name, overlay.name]
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([str(BIN / "snakemake"), *command[1:]], cwd=folder, capture_output=True, text=True,
                            env=env)
    assert result.returncode == 0, result.stderr[-4000:]

    run = config.parent / "runs" / "mine"
    assert not (run / "results/raw").exists()  # no synthetic data
    stats = json.loads((run / f"results/data/{name}/stats.json").read_text())
    ledger = (run / f"results/data/{name}/rejects.jsonl").read_text().splitlines()
    assert stats["format"] == fmt and stats["kept"] > 40 and stats["in"] == stats["kept"] + len(ledger)
    split = json.loads((run / "results/data/stats.json").read_text())
    assert split["train"] > 30 and split["test"] > 0 and set(split["per_source"]) == {name}

    report = (run / "results/report/report.md").read_text()
    for section in ("## Summary", "## Training health", "## Evaluation on the held-out split", "## Data ledger"):
        assert section in report, section
    dpo = json.loads((run / "results/eval/dpo/metrics.json").read_text())["metrics"]
    assert dpo["pairs"] == split["test"] and 0.0 <= dpo["implicit_reward_accuracy"] <= 1.0
    assert f"| {name} |" in report or f"{name}" in report.split("## Data ledger", 1)[1]
    # The trained judge: its held-out accuracy, and a win rate on prompts it judged for both models.
    judge = json.loads((run / "results/eval/judge.json").read_text())["metrics"]
    assert 0.0 <= judge["accuracy"] <= 1.0, judge
    comparison = json.loads((run / "results/eval/compare/dpo_vs_sft.json").read_text())
    assert comparison["metrics"]["prompts"] > 0 and 0.0 <= comparison["metrics"]["win_rate"] <= 1.0
    assert json.loads((run / "results/eval/dpo/metrics.json").read_text())["judge_choice"]["kind"] == "trained"

    # The manifest records the jobs `prefalign config plan` prints, with the same flags.
    plan = json.loads(run_cli("config", "plan", "--json", config.name, overlay.name, cwd=folder).stdout)
    manifest = json.loads((run / "results/manifest.json").read_text())
    recorded = {plan_name(job): manifest["config_slices"][job["config_sha256"]] for job in manifest["jobs"].values()}
    for job, entry in plan.items():
        assert recorded[job]["flags"] == entry["flags"], job
        assert recorded[job].get("watch") == entry.get("watch"), job
