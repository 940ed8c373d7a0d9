"""A config is what runs: `config check|plan FILE`, `snakemake --configfile FILE` and the
manifest agree on exactly which datasets, models and settings run, for any valid config.

The dry runs here are real Snakemake (`--dry-run --printshellcmds`): every job it would run
and the command line of each, compared with `prefalign config plan FILE`.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml
from conftest import REPO, run_cli, snakemake
from data_fixtures import dataset_card, fake_hub_dataset, hh, oasst_tree, shp, ultrafeedback, write_rows

from prefalign.config.resolve import resolve
from prefalign.errors import ConfigError

# Rules that run a `prefalign <step>` with settings flags (record_config and write_manifest carry the
# whole config or plan instead).
PLANNED = re.compile(r"^rule (\w+):$")


def dry_run_jobs(workdir, configfile, *extra) -> dict[str, str]:
    """{job: shell command} of a dry run, jobs named like prefalign.config.plan (rule[wildcard])."""
    result = snakemake(workdir, "--cores", "1", "--dry-run", "--printshellcmds", *extra, configfile=configfile)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    jobs, rule, wildcards = {}, None, ""
    for line in result.stdout.splitlines():
        match = PLANNED.match(line)
        if match:
            rule, wildcards = match[1], ""
        elif line.strip().startswith("wildcards:"):
            values = dict(part.split("=", 1) for part in line.split(":", 1)[1].strip().split(", "))
            wildcards = f"{values['model']}_vs_{values['baseline']}" if "baseline" in values else \
                next(iter(values.values()))
        elif line.startswith("Shell command:") and rule not in ("record_config", "write_manifest", "all"):
            # without the environment a rule sets first (PREFALIGN_CONSOLE=3:... for its progress lines)
            command = re.sub(r"^(\w+=\S* )+", "", line.removeprefix("Shell command: "))
            jobs[f"{rule}[{wildcards}]" if wildcards else rule] = command
    return jobs


def planned(configfile, cwd) -> dict[str, dict]:
    return json.loads(run_cli("config", "plan", "--json", configfile, cwd=cwd).stdout)


def assert_same_plan(workdir, configfile, cwd):
    plan, ran = planned(configfile, cwd), dry_run_jobs(workdir, configfile)
    assert set(plan) == set(ran)
    for job, entry in plan.items():
        command = ran[job]
        assert command.startswith(f"prefalign {entry['step']} "), (job, command)
        assert f" {entry['flags']} " in f" {command} ", (job, entry["flags"], command)
        if "watch" in entry:
            assert f" {entry['watch']} " in f" {command} ", job


def write_config(path, datasets: dict, **sections) -> str:
    """A config of these datasets; without a synthetic one, no judge comparison (the task judge has
    nothing to judge: see test_a_task_judge_on_real_data_is_refused_before_the_run)."""
    if not any(d["source"] == "synthetic" for d in datasets.values()):
        sections = {**sections, "eval": {"comparisons": [], **sections.get("eval", {})}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"datasets": datasets, **sections}, sort_keys=False))
    return path


# ---------------------------------------------------------------- without Snakemake (fast)

def test_a_config_without_synthetic_data_resolves_to_just_its_dataset(tmp_path):
    write_rows(tmp_path / "hh.jsonl", [hh("Hi?", "Hello.", "Go away.")])
    resolved = resolve([write_config(tmp_path / "my.yaml", {
        "hh": {"format": "hh-rlhf", "source": "local", "path": "hh.jsonl"}})])
    assert list(resolved.config["datasets"]) == ["hh"]
    assert not [key for key in resolved.settings if key.startswith("synth:")]


def test_a_missing_raw_file_is_named_with_the_file_and_line_that_set_it(tmp_path):
    config = write_config(tmp_path / "my.yaml", {"hh": {"format": "hh-rlhf", "source": "local", "path": "nope.jsonl"}})
    line = next(i for i, text in enumerate(config.read_text().splitlines(), 1) if "path:" in text)
    with pytest.raises(ConfigError, match=re.escape(f"{config}:{line}: datasets.hh.path: no such file: "
                                                    f"{tmp_path / 'nope.jsonl'}")):
        resolve([config])
    result = run_cli("config", "check", config, check=False, cwd=tmp_path)
    assert result.returncode == 1 and f"{config}:{line}: datasets.hh.path: no such file" in result.stdout


def test_relative_paths_are_taken_from_the_config_files_folder(tmp_path):
    """The same raw file whichever folder a command runs in (a run folder per config)."""
    # enough pairs for one SFT and DPO batch: `config check` refuses fewer (prefalign.config.sufficiency)
    write_rows(tmp_path / "data/hh.jsonl", [hh(f"Hi {i}?", "Hello.", "Go away.") for i in range(30)])
    config = write_config(tmp_path / "data/my.yaml", {"hh": {"format": "hh-rlhf", "source": "local",
                                                             "path": "hh.jsonl"}})
    (tmp_path / "elsewhere").mkdir()
    assert resolve([config]).config["datasets"]["hh"]["path"] == str(tmp_path / "data/hh.jsonl")
    check = run_cli("config", "check", config, cwd=tmp_path / "elsewhere")
    assert f"hh: hh-rlhf, {tmp_path / 'data/hh.jsonl'}" in check.stdout
    check = run_cli("config", "check", "data/my.yaml", cwd=tmp_path)
    assert "hh: hh-rlhf, data/hh.jsonl" in check.stdout  # below the working directory: relative


def test_an_overlays_typo_is_blamed_on_the_overlay(tmp_path):
    write_rows(tmp_path / "hh.jsonl", [hh("Hi?", "Hello.", "Go away.")])
    base = write_config(tmp_path / "base.yaml", {"hh": {"format": "hh-rlhf", "source": "local", "path": "hh.jsonl"}})
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("seed: 7\ndatasets:\n  hh:\n    format: hh_rlhf\n")
    with pytest.raises(ConfigError, match=re.escape(f"{overlay}:4: datasets.hh.format: expected one of")):
        resolve([base, overlay])
    result = run_cli("config", "check", base, overlay, check=False, cwd=tmp_path)
    assert f"{overlay}:4: datasets.hh.format" in result.stdout and "did you mean 'hh-rlhf'" in result.stdout


def test_a_task_judge_on_real_data_is_refused_before_the_run(tmp_path):
    """Issue 13, item 3: the run used to stop at its last step (compare_models: no prompt answered by both)."""
    write_rows(tmp_path / "hh.jsonl", [hh("Hi?", "Hello.", "Go away.")])
    config = tmp_path / "my.yaml"
    config.write_text(yaml.safe_dump({"datasets": {"hh": {"format": "hh-rlhf", "source": "local",
                                                          "path": "hh.jsonl"}}, "eval": {"judge": "task"}}))
    line = config.read_text().splitlines().index("eval:") + 1  # comparisons is not set: its section is named
    with pytest.raises(ConfigError, match=re.escape(f"{config}:{line}: eval.comparisons: expected [] with judge task "
                                                    "on this data")):
        resolve([config])


# ---------------------------------------------------------------- with Snakemake (dry runs)

@pytest.mark.workflow
def test_a_config_without_a_synthetic_dataset_builds_its_dag(tmp_path):
    """Issue 13, item 1: `KeyError: 'synth:hh'` while building the DAG (an empty wildcard constraint)."""
    write_rows(tmp_path / "hh.jsonl", [hh(f"Question {i}?", "Yes.", "No.") for i in range(5)])
    config = write_config(tmp_path / "my.yaml", {"hh": {"format": "hh-rlhf", "source": "local", "path": "hh.jsonl"}})
    jobs = dry_run_jobs(tmp_path / "run", config)
    assert [job for job in jobs if job.startswith(("normalize_dataset", "generate_synthetic_raw"))] == [
        "normalize_dataset[hh]"]


@pytest.mark.workflow
def test_the_configfile_runs_exactly_its_datasets(tmp_path):
    """Issue 13, item 2: `--configfile my.yaml` was merged over config.yaml, keeping the demo's data.

    Run where a user runs it: in a folder that holds the demo's config.yaml (the checkout)."""
    config = write_config(tmp_path / "my.yaml", {"mine": {"format": "hh-rlhf", "source": "synthetic",
                                                          "records": 200}})
    (tmp_path / "run").mkdir()
    (tmp_path / "run/config.yaml").write_text((REPO / "config.yaml").read_text())
    jobs = dry_run_jobs(tmp_path / "run", config)
    assert sorted(job for job in jobs if job.startswith(("generate_synthetic_raw", "normalize_dataset"))) == [
        "generate_synthetic_raw[mine]", "normalize_dataset[mine]"]
    assert "--records 200" in jobs["generate_synthetic_raw[mine]"]
    check = run_cli("config", "check", config, cwd=tmp_path).stdout
    assert "mine: hh-rlhf, synthetic, 200 records" in check and "synth_hh" not in check


@pytest.mark.workflow
def test_config_check_prints_the_plan_the_workflow_runs_for_every_kind_of_config(tmp_path, monkeypatch):
    """No synthetic dataset, one, several; hub and local; every format and file type."""
    write_rows(tmp_path / "raw/hh.jsonl.gz", [hh(f"Question {i}?", "Yes.", "No.") for i in range(5)])
    write_rows(tmp_path / "raw/shp.json", [shp(f"Post {i}", "A.", "B.", 9, 2) for i in range(5)])
    write_rows(tmp_path / "raw/uf.parquet", [ultrafeedback(f"Ask {i}", "Good.", "Bad.") for i in range(5)])
    write_rows(tmp_path / "raw/oasst.jsonl", oasst_tree())
    write_rows(tmp_path / "raw/pairs.jsonl", [{"q": f"P{i}", "good": "A", "bad": "B"} for i in range(5)])
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    fake_hub_dataset(tmp_path / "hf/hub", "fakeorg/hh", "c" * 40, {
        "README.md": dataset_card({"default": {"train": "train.jsonl"}}),
        "train.jsonl": json.dumps(hh("Hub?", "Yes.", "No.")).encode()})
    local = {
        "hh": {"format": "hh-rlhf", "source": "local", "path": "raw/hh.jsonl.gz", "cap": 3},
        "shp": {"format": "shp", "source": "local", "path": "raw/shp.json"},
        "uf": {"format": "ultrafeedback", "source": "local", "path": "raw/uf.parquet", "max_records": 4},
        "oa": {"format": "oasst1", "source": "local", "path": "raw/oasst.jsonl", "languages": ["en"],
               "pairing": "all"},
        "pairs": {"format": "pairs", "source": "local", "path": "raw/pairs.jsonl", "prompt_field": "q",
                  "chosen_field": "good", "rejected_field": "bad"},
    }
    configs = {
        "one-local": ({"hh": local["hh"]}, {}),
        "every-format": (local, {"data": {"max_chars": 2000}, "eval": {"models": ["sft", "dpo"]}}),
        "hub-and-synthetic": ({"hub": {"format": "hh-rlhf", "source": "hub", "hub_id": "fakeorg/hh",
                                       "revision": "c" * 40},
                               "synth": {"format": "shp", "source": "synthetic", "records": 50}},
                              {"preset": "gpu-16gb", "eval": {"comparisons": []}}),
    }
    for name, (datasets, sections) in configs.items():
        config = write_config(tmp_path / f"{name}.yaml", datasets, **sections)
        assert_same_plan(tmp_path / f"run-{name}", config, tmp_path)


@pytest.mark.workflow
def test_two_configs_run_side_by_side_in_their_own_folders(tmp_path):
    """A run folder per config (`--directory runs/<name>`): the second run neither reads nor overwrites
    the first's results; a raw file that is not there stops the run before any rule, naming the line."""
    write_rows(tmp_path / "data/hh.jsonl", [hh(f"Question number {i} here?", "Yes.", "No.") for i in range(30)])
    write_rows(tmp_path / "data/shp.jsonl", [shp(f"Post number {i} here", "A.", "B.", 9, 2) for i in range(30)])
    a = write_config(tmp_path / "configs/a.yaml", {"hh": {"format": "hh-rlhf", "source": "local",
                                                          "path": "../data/hh.jsonl"}})
    b = write_config(tmp_path / "configs/b.yaml", {"shp": {"format": "shp", "source": "local",
                                                           "path": "../data/shp.jsonl"}})
    for config in (a, b):
        result = snakemake(tmp_path / "runs" / config.stem, "--cores", "1", "results/data/stats.json",
                           configfile=config)
        assert result.returncode == 0, result.stderr[-3000:]
    first = tmp_path / "runs/a/results/data/stats.json"
    stats = {name: json.loads((tmp_path / f"runs/{name}/results/data/stats.json").read_text()) for name in "ab"}
    assert set(stats["a"]["per_source"]) == {"hh"} and set(stats["b"]["per_source"]) == {"shp"}
    before = first.stat().st_mtime_ns
    again = snakemake(tmp_path / "runs/b", "--cores", "1", "results/data/stats.json", configfile=b)
    assert "Nothing to be done" in again.stdout + again.stderr and first.stat().st_mtime_ns == before

    (tmp_path / "data/shp.jsonl").unlink()
    gone = snakemake(tmp_path / "runs/b", "--cores", "1", "results/data/stats.json", configfile=b)
    line = next(i for i, text in enumerate(b.read_text().splitlines(), 1) if "path:" in text)
    assert gone.returncode != 0 and f"{b}:{line}: datasets.shp.path: no such file" in gone.stderr


@pytest.mark.workflow
def test_snakemake_blames_a_typo_on_the_overlay_that_made_it(tmp_path):
    """Issue 13, item 10: a format typo in an overlay was blamed on config.yaml:21 (the demo's line)."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run/config.yaml").write_text((REPO / "config.yaml").read_text())  # the checkout's demo
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("datasets:\n  synth_hh:\n    format: hh_rlhf\n    source: synthetic\n")
    result = snakemake(tmp_path / "run", "--cores", "1", "--dry-run", configfile=overlay)
    assert result.returncode != 0
    assert f"{overlay}:3: datasets.synth_hh.format: expected one of" in result.stderr + result.stdout
    assert "config.yaml:2" not in result.stderr
