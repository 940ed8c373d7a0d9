"""Fault tolerance with the real Snakemake: kill -9 during SFT and during DPO, corrupt the
newest checkpoint each time, resume with --rerun-incomplete, and get the very bytes of an
uninterrupted run.

One tiny pipeline (300 records, a 30k-parameter model, 200 SFT and 120 DPO steps) runs
twice: once straight through without checkpoints (the reference: so this also shows that
checkpointing does not change the numbers), once with a checkpoint every 20 steps and two
kills:

1. SFT: once two checkpoints are complete, kill -9 the training process (Snakemake sees
   the job fail and deletes its outputs, not the checkpoints). The newest checkpoint is
   then truncated: the rerun must report it and resume from the one before.
2. DPO: once two checkpoints are complete, kill -9 Snakemake and the job together (a lost
   node: nothing cleans up). One byte of the newest checkpoint's adapter is flipped; a
   half-written metrics.json is left where a kill during the output writes would leave
   one: Snakemake must refuse it as incomplete until --rerun-incomplete reruns the job.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import yaml
from conftest import TINY_MODEL_CONFIG, TRAINING_ARTIFACTS, snakemake, snakemake_command, snakemake_environment

from prefalign.train.checkpoints import RECORD

pytestmark = pytest.mark.workflow

CONFIG = {
    "seed": 1234,
    "threads": 1,
    "datasets": {"hh": {"format": "hh-rlhf", "source": "synthetic", "records": 300}},
    "model": TINY_MODEL_CONFIG,
    "sft": {"max_steps": 200, "batch_size": 8, "logging_steps": 10, "checkpoint_steps": 20},
    # LoRA on the offline pairs: the kill lands in a run with an adapter to corrupt.
    "dpo": {"max_steps": 120, "batch_size": 8, "logging_steps": 10, "checkpoint_steps": 20, "use_lora": True,
            "pairs": "offline"},
}


def comparable(path: Path) -> bytes:
    """The file's bytes; for metrics.json without settings.checkpoint_steps (the one setting that differs)."""
    if path.name != "metrics.json":
        return path.read_bytes()
    metrics = json.loads(path.read_text())
    del metrics["settings"]["checkpoint_steps"]
    return json.dumps(metrics, sort_keys=True).encode()


def complete_checkpoints(workdir: Path, rule: str) -> list[Path]:
    root = workdir / "results/checkpoints" / rule
    found = [p for p in root.glob("checkpoint-*") if (p / RECORD).is_file()] if root.is_dir() else []
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def run_until(workdir: Path, configfile: Path, rule: str, count: int, *args: str) -> subprocess.Popen:
    """Start Snakemake in its own session; return once `rule` has `count` complete checkpoints."""
    log = open(workdir / f"snakemake-{rule}.out", "w")
    proc = subprocess.Popen(snakemake_command(workdir, "--cores", "2", *args, configfile=configfile),
                            stdout=log, stderr=subprocess.STDOUT,
                            env=snakemake_environment(), start_new_session=True)
    deadline = time.monotonic() + 600
    while len(complete_checkpoints(workdir, rule)) < count:
        assert proc.poll() is None, f"Snakemake ended before {rule} saved {count} checkpoints: " + (
            workdir / f"snakemake-{rule}.out").read_text()[-3000:]
        assert time.monotonic() < deadline, f"no {count} checkpoints of {rule} in 10 minutes"
        time.sleep(0.01)
    return proc


def training_process(proc: subprocess.Popen, step: str) -> psutil.Process:
    for child in psutil.Process(proc.pid).children(recursive=True):
        try:
            if step in child.cmdline()[1:] and any("prefalign" in part for part in child.cmdline()):
                return child
        except psutil.NoSuchProcess:
            continue
    raise AssertionError(f"no `prefalign {step}` process under Snakemake")


@pytest.fixture(scope="module")
def configfile(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "tiny.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    config = {**CONFIG, "sft": {**CONFIG["sft"], "checkpoint_steps": 0}, "dpo": {**CONFIG["dpo"], "checkpoint_steps": 0}}
    configfile = tmp_path_factory.mktemp("config") / "no-checkpoints.yaml"
    configfile.write_text(yaml.safe_dump(config))
    workdir = tmp_path_factory.mktemp("uninterrupted")
    result = snakemake(workdir, "--cores", "2", "train_dpo", configfile=configfile)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


def test_kill_corrupt_and_resume_gives_the_uninterrupted_bytes(reference, configfile, tmp_path):
    workdir = tmp_path

    # 1. SFT: kill -9 the training process after two complete checkpoints.
    proc = run_until(workdir, configfile, "train_sft", 2, "train_dpo")
    training_process(proc, "sft").kill()
    assert proc.wait(timeout=120) != 0
    assert not (workdir / "results/sft/model").exists()  # Snakemake removed the failed job's outputs...
    survivors = complete_checkpoints(workdir, "train_sft")
    assert len(survivors) == 2  # ...but not the checkpoints
    previous, newest = survivors
    weights = newest / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # truncated

    # 2. Rerun; once DPO has two complete checkpoints, kill -9 Snakemake and the job together.
    proc = run_until(workdir, configfile, "train_dpo", 2, "--rerun-incomplete", "train_dpo")
    sft_log = (workdir / "logs/train_sft.log").read_text()
    assert f"{newest.name}: corrupt: model.safetensors has" in sft_log
    assert f"resuming from {previous.name} (step {previous.name.split('-')[1]}), verified by sha256" in sft_log
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=120)
    previous, newest = complete_checkpoints(workdir, "train_dpo")
    adapter = newest / "adapter_model.safetensors"
    data = bytearray(adapter.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit, same size
    adapter.write_bytes(bytes(data))

    # 3. A half-written output where the kill left the job: Snakemake must not take it as done.
    half = workdir / "results/dpo/metrics.json"
    half.parent.mkdir(parents=True, exist_ok=True)
    half.write_text('{"settings": {')
    assert snakemake(workdir, "--cores", "2", "--unlock", configfile=configfile).returncode == 0
    dry = snakemake(workdir, "--cores", "2", "-n", "train_dpo", configfile=configfile)
    said = dry.stdout + dry.stderr
    assert dry.returncode != 0 and "Incomplete files:\nresults/dpo/metrics.json" in said

    # 4. Resume to the end.
    result = snakemake(workdir, "--cores", "2", "--rerun-incomplete", "train_dpo", configfile=configfile)
    assert result.returncode == 0, result.stderr[-3000:]
    dpo_log = (workdir / "logs/train_dpo.log").read_text()
    assert f"{newest.name}: corrupt: adapter_model.safetensors sha256" in dpo_log
    assert f"resuming from {previous.name}" in dpo_log

    for name in [*TRAINING_ARTIFACTS, "results/dpo/adapter/adapter_model.safetensors"]:  # DPO with LoRA here
        assert comparable(workdir / name) == comparable(reference / name), f"{name} differs after the resumes"
    assert not (workdir / "results/checkpoints/train_sft").exists()  # deleted once the step succeeded
    assert not (workdir / "results/checkpoints/train_dpo").exists()
