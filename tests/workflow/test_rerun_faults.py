"""A rerun you can trust: the faults Snakemake alone does not see, with the real Snakemake.

One tiny pipeline (200 records, a 30k-parameter model, 30 SFT and 40 DPO steps, 16 judged
prompts) runs once; each test copies it (modification times kept) and breaks it:

1. kill -9 of Snakemake's process group during `--forcerun train_dpo`, after a checkpoint,
   then `--unlock` and a plain rerun. Before the fix: "Nothing to be done", exit 0, with
   results/dpo/ empty. Now the rerun rebuilds DPO (resumed: the same bytes) and what was
   made from it, and the manifest verifies.
2. One flipped byte in results/sft/model/model.safetensors (a directory output: Snakemake
   dates it by its .snakemake_timestamp). Before: "Nothing to be done". Now the workflow
   stops before any job, names the file, what was made from it and the --forcerun that
   repairs it; the manifest step refuses it too; verify lists the same.
3. A deleted intermediate (results/eval/sft/pairs.jsonl) whose consumers are newer. Before:
   "Nothing to be done", the file stays missing. Now it is rebuilt with what depends on it.
4. An extra file: in a directory output, and loose under results/. Before: nothing said.
   Now the workflow names them and refuses; verify reports the stray.
5. The two tricks of issue 21. A hand-edited results/eval/dpo/metrics.json: `snakemake check`
   printed "results reproduced" (the staleness check ran only for `all`). The same edit plus one
   byte appended to the job's benchmark file: the job counted as rerun, the manifest step
   recorded the edit and verify found nothing. Now `check` and `export` refuse edited, missing and
   stray artifacts before any job runs, and whether a job reran is Snakemake's own record.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import BIN, TINY_MODEL_CONFIG, run_cli, snakemake, snakemake_command, snakemake_environment

from prefalign.train.checkpoints import RECORD

pytestmark = pytest.mark.workflow

CONFIG = {
    "seed": 1234,
    "threads": 1,
    "datasets": {"hh": {"format": "hh-rlhf", "source": "synthetic", "records": 200}},
    "model": TINY_MODEL_CONFIG,
    "sft": {"max_steps": 30, "batch_size": 8, "logging_steps": 5, "checkpoint_steps": 10},
    # Offline pairs with LoRA: an SFT of 30 steps answers no task right, so on-policy sampling
    # (the cpu-demo preset's) would find no pair; these faults are about DPO's rerun, not its data.
    "dpo": {"max_steps": 40, "batch_size": 8, "logging_steps": 5, "checkpoint_steps": 10, "pairs": "offline",
            "use_lora": True},
    "eval": {"judge_prompts": 16, "max_new_tokens": 8, "bootstrap_samples": 200},
}


def planned(result: subprocess.CompletedProcess) -> set[str]:
    table = (result.stdout + result.stderr).split("Job stats:")[-1]  # a real run logs it on stderr
    return set(re.findall(r"^(\w+)\s+\d+$", table, flags=re.M)) - {"total"}


def verify(workdir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "prefalign"), "verify", str(workdir / "results/manifest.json")],
                          capture_output=True, text=True)


def hashes(workdir: Path) -> dict[str, str]:
    return {path: entry["sha256"] for path, entry in
            json.loads((workdir / "results/manifest.json").read_text())["artifacts"].items()}


@pytest.fixture(scope="module")
def configfile(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "tiny.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory, configfile) -> Path:
    workdir = tmp_path_factory.mktemp("finished")
    result = snakemake(workdir, "--cores", "2", configfile=configfile)
    assert result.returncode == 0, result.stderr[-4000:]
    assert verify(workdir).returncode == 0
    return workdir


@pytest.fixture
def run(finished, tmp_path) -> Path:
    """A copy of the finished run, with Snakemake's records and every modification time."""
    copy = tmp_path / "run"
    shutil.copytree(finished, copy, symlinks=True)
    return copy


def test_a_kill_during_forcerun_is_rebuilt_not_called_done(run, finished, configfile):
    log = open(run / "forcerun.out", "w")
    proc = subprocess.Popen(snakemake_command(run, "--cores", "2", "--forcerun", "train_dpo", configfile=configfile),
                            stdout=log, stderr=subprocess.STDOUT,
                            env=snakemake_environment(), start_new_session=True)
    folder = run / "results/checkpoints/train_dpo"
    deadline = time.monotonic() + 600
    while not (folder.is_dir() and any((c / RECORD).is_file() for c in folder.glob("checkpoint-*"))):
        assert proc.poll() is None, (run / "forcerun.out").read_text()[-3000:]
        assert time.monotonic() < deadline, "no DPO checkpoint in 10 minutes"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=120)
    assert not (run / "results/dpo/model").exists()  # the fault: Snakemake had removed DPO's outputs
    assert snakemake(run, "--cores", "2", "--unlock", configfile=configfile).returncode == 0

    result = snakemake(run, "--cores", "2", configfile=configfile)
    said = result.stdout + result.stderr
    assert result.returncode == 0, said[-4000:]
    assert "Nothing to be done" not in said
    assert {"train_dpo", "evaluate_model", "compare_models", "render_report", "write_manifest"} <= planned(result)
    assert "resuming from checkpoint-" in (run / "logs/train_dpo.log").read_text()
    assert verify(run).returncode == 0
    assert hashes(run) == hashes(finished)  # resumed from the checkpoint: the uninterrupted bytes


def test_a_flipped_byte_in_a_directory_output_stops_the_run_with_the_repair(run, configfile):
    weights = run / "results/sft/model/model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))

    sft_log = (run / "logs/train_sft.log").stat().st_mtime_ns
    for args in (("-n",), ()):
        result = snakemake(run, "--cores", "2", *args, configfile=configfile)
        said = result.stdout + result.stderr
        assert result.returncode != 0, said[-3000:]
        assert "results/sft/model/model.safetensors: differs from what train_sft made" in said
        assert "results/dpo/model/" in said and "results/report/report.html" in said  # what was made from it
        assert "snakemake --cores all --forcerun train_sft" in said
    assert (run / "logs/train_sft.log").stat().st_mtime_ns == sft_log  # refused before any job ran

    # Asking for a new manifest directly is refused too (the manifest step itself holds the run
    # to the previous manifest as well: tests/provenance/test_manifest.py); the old one stays.
    before = (run / "results/manifest.json").read_bytes()
    direct = snakemake(run, "--cores", "2", "--forcerun", "write_manifest", "results/manifest.json",
                       configfile=configfile)
    assert direct.returncode != 0 and "differs from what train_sft made" in direct.stdout + direct.stderr
    assert (run / "results/manifest.json").read_bytes() == before

    checked = verify(run)
    assert checked.returncode == 1
    assert "MISMATCH results/sft/model/model.safetensors: sha256" in checked.stdout
    assert "made by train_sft; made from it:" in checked.stdout and "results/dpo/model/" in checked.stdout
    assert "rebuild: snakemake --cores all --forcerun train_sft" in checked.stdout

    repair = snakemake(run, "--cores", "2", "-n", "--forcerun", "train_sft", configfile=configfile)
    assert repair.returncode == 0, (repair.stdout + repair.stderr)[-3000:]
    assert {"train_sft", "train_dpo", "evaluate_model", "render_report", "write_manifest"} <= planned(repair)


def test_a_deleted_intermediate_is_rebuilt_with_what_depends_on_it(run, finished, configfile):
    pairs = run / "results/eval/sft/pairs.jsonl"
    pairs.unlink()
    dry = snakemake(run, "--cores", "2", "-n", configfile=configfile)
    assert dry.returncode == 0 and "Nothing to be done" not in dry.stdout + dry.stderr
    assert {"evaluate_model", "render_report", "write_manifest"} <= planned(dry)
    assert not planned(dry) & {"train_sft", "train_dpo", "build_base_model"}
    result = snakemake(run, "--cores", "2", configfile=configfile)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert pairs.read_bytes() == (finished / "results/eval/sft/pairs.jsonl").read_bytes()
    assert verify(run).returncode == 0


def test_extra_files_under_results_are_named(run, configfile):
    inside = run / "results/dpo/adapter/notes.txt"
    inside.write_text("my notes\n")
    result = snakemake(run, "--cores", "2", "-n", configfile=configfile)
    said = result.stdout + result.stderr
    assert result.returncode != 0
    assert "results/dpo/adapter/notes.txt: appeared in results/dpo/adapter/ after train_dpo made it" in said
    assert "snakemake --cores all --forcerun train_dpo" in said
    assert "MISMATCH results/dpo/adapter/notes.txt: not in the manifest" in verify(run).stdout
    inside.unlink()

    stray = run / "results/eval/old_model.json"
    stray.write_text("{}\n")
    result = snakemake(run, "--cores", "2", "-n", configfile=configfile)
    said = result.stdout + result.stderr
    assert result.returncode != 0
    assert "1 file(s) under results/ that no job of this run makes:" in said and "results/eval/old_model.json" in said
    checked = verify(run)
    assert checked.returncode == 1
    assert "MISMATCH results/eval/old_model.json: not in the manifest: no job of the run made it" in checked.stdout
    stray.unlink()
    assert snakemake(run, "--cores", "2", "-n", configfile=configfile).returncode == 0
    assert verify(run).returncode == 0


def edit_metric(workdir: Path, name: str = "implicit_reward_accuracy", value: float = 1.0) -> Path:
    """The hand edit of the trick: a metric of results/eval/dpo/metrics.json set to `value`."""
    path = workdir / "results/eval/dpo/metrics.json"
    data = json.loads(path.read_text())
    data["metrics"][name] = value
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def with_check(tmp_path: Path, configfile: Path, **check) -> Path:
    """The tiny config with a `check` section of its own (written next to the test's files)."""
    config = yaml.safe_load(configfile.read_text())
    config["check"] = check
    path = tmp_path / "tiny-check.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def strict(tmp_path, configfile, finished) -> Path:
    """The tiny config whose expected bounds the run fails (DPO's held-out accuracy >= 0.99), and the
    finished run's digests published as `make digests` does (check.digests)."""
    expected = tmp_path / "strict.yaml"
    expected.write_text(yaml.safe_dump({"metrics": {"dpo.implicit_reward_accuracy": {"min": 0.99}}}))
    published = tmp_path / "tiny-digests.json"
    run_cli("digests", "--manifest", finished / "results/manifest.json", "--out", published)
    return with_check(tmp_path, configfile, expected=str(expected), digests=str(published))


def test_check_refuses_a_hand_edited_metric(run, strict):
    honest = snakemake(run, "--cores", "2", "check", configfile=strict)
    said = honest.stdout + honest.stderr
    assert honest.returncode != 0 and "NOT reproduced (1 out of bounds or missing)" in said, said[-3000:]
    count = sum(1 for entry in json.loads((run / "results/manifest.json").read_text())["artifacts"].values()
                if entry["kind"] != "machine")
    assert f"bit-identical to the published run: {count} of {count} artifacts" in said
    assert said.index("bit-identical") < said.index("| dpo.implicit_reward_accuracy")  # digests first, then bounds

    edit_metric(run)  # the trick: the failing metric made to pass by hand
    for target in ("check", "export"):
        result = snakemake(run, "--cores", "2", target, configfile=strict)
        said = result.stdout + result.stderr
        assert result.returncode != 0, said[-3000:]
        assert "results reproduced" not in said
        assert "results/eval/dpo/metrics.json: differs from what evaluate_model[model=dpo] made" in said
        assert "snakemake --cores all --forcerun evaluate_model" in said
    assert not (run / "results/check/expected.md").exists() and not (run / "results/export").exists()


def test_check_refuses_missing_and_stray_artifacts(run, strict):
    pairs = run / "results/eval/sft/pairs.jsonl"
    kept = pairs.read_bytes()
    pairs.unlink()
    for target in ("check", "export"):
        result = snakemake(run, "--cores", "2", "-n", target, configfile=strict)
        said = result.stdout + result.stderr
        assert result.returncode != 0, said[-3000:]
        assert "results/eval/sft/pairs.jsonl: missing" in said and "snakemake --cores all" in said
    pairs.write_bytes(kept)

    stray = run / "results/eval/old_model.json"
    stray.write_text("{}\n")
    result = snakemake(run, "--cores", "2", "-n", "check", configfile=strict)
    said = result.stdout + result.stderr
    assert result.returncode != 0 and "results/eval/old_model.json" in said, said[-3000:]
    stray.unlink()
    assert snakemake(run, "--cores", "2", "-n", "check", configfile=strict).returncode == 0


def test_a_changed_benchmark_file_does_not_exempt_a_job(run, configfile):
    edit_metric(run)
    with open(run / "benchmarks/evaluate_model/dpo.tsv", "a") as handle:
        handle.write("0")  # the trick: one byte appended, so the job looked as if it had run again
    before = (run / "results/manifest.json").read_bytes()

    result = snakemake(run, "--cores", "2", configfile=configfile)
    said = result.stdout + result.stderr
    assert result.returncode != 0, said[-3000:]
    assert "results/eval/dpo/metrics.json: differs from what evaluate_model[model=dpo] made" in said
    # Asked for directly, the manifest step refuses it as well; the old record stays.
    direct = snakemake(run, "--cores", "2", "--forcerun", "write_manifest", "results/manifest.json",
                       configfile=configfile)
    said = direct.stdout + direct.stderr
    assert direct.returncode != 0 and "differs from what evaluate_model[model=dpo] made" in said, said[-3000:]
    assert (run / "results/manifest.json").read_bytes() == before
    checked = verify(run)
    assert checked.returncode == 1 and "MISMATCH results/eval/dpo/metrics.json: " in checked.stdout


def test_a_job_snakemake_reran_before_the_manifest_is_recorded(run, finished, configfile):
    """The legitimate case the benchmark stood for: a job that Snakemake ran again after the manifest,
    in an invocation that stopped before the manifest step, is not held to the old record."""
    partial = snakemake(run, "--forcerun", "compare_models", "--cores", "2", "results/eval/compare/dpo_vs_sft.json",
                        configfile=configfile)
    assert partial.returncode == 0, (partial.stdout + partial.stderr)[-3000:]
    assert planned(partial) == {"compare_models"}
    result = snakemake(run, "--cores", "2", configfile=configfile)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "write_manifest" in planned(result)
    assert verify(run).returncode == 0
    assert hashes(run) == hashes(finished)  # the same bytes again: only the record is new


def test_diff_of_two_runs_made_with_different_settings(run, finished, configfile, tmp_path):
    """`prefalign diff` on the finished run and a copy made again with fewer DPO steps."""
    config = yaml.safe_load(configfile.read_text())
    config["dpo"]["max_steps"] = 30
    expected = tmp_path / "bounds.yaml"
    expected.write_text(yaml.safe_dump({"metrics": {"dpo.implicit_reward_accuracy": {"value": 0.5, "tolerance": 0.5},
                                                    "sft.implicit_reward_accuracy": {"min": 0.0}}}))
    config["check"] = {"expected": str(expected)}
    other = tmp_path / "fewer-steps.yaml"
    other.write_text(yaml.safe_dump(config))
    result = snakemake(run, "--cores", "2", configfile=other)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "train_sft" not in planned(result) and "train_dpo" in planned(result)

    md = run_cli("diff", finished, run, check=False, cwd=tmp_path)
    assert md.returncode == 1, md.stderr  # artifacts differ
    text = md.stdout
    assert "| results/dpo/model/model.safetensors | differs | train_dpo |" in text
    assert "| results/sft/model/model.safetensors | identical |" in text
    assert "| dpo.max_steps | 40 | 30 |" in text
    # A's check.expected is the default's relative expected/default.yaml, found neither beside A nor in
    # the current folder: B's, an absolute path, gives the bounds.
    assert f"## Metrics against {expected}" in text
    assert "| dpo.implicit_reward_accuracy |" in text and "## Packages\n\nidentical" in text
    assert "## Commit\n\nidentical" in text

    data = json.loads(run_cli("diff", finished, run, "--json", "--expected", expected, check=False).stdout)
    differ = {entry["path"] for entry in data["artifacts"]["differ"]}
    assert "results/dpo/metrics.json" in differ and "results/data/train.jsonl" in data["artifacts"]["identical"]
    assert not differ & {path for path in data["artifacts"]["identical"]}
    assert data["config"] == [{"key": "dpo.max_steps", "a": 40, "b": 30}]
    row = next(r for r in data["metrics"]["rows"] if r["metric"] == "dpo.implicit_reward_accuracy")
    assert row["delta"] == pytest.approx(row["b"] - row["a"]) and row["bound"] == "0.5 ± 0.5"
    assert data["artifacts"]["machine_records"] and data["cpu"]["changes"] == []
