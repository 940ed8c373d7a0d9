"""W&B (offline) and MLflow (a local file store) with the real packages, through the CLI.

A tiny SFT run logs to both at once; the runs must hold TRL's metrics, prefalign's record
(the step's settings and the sha256 of its inputs) and, after `prefalign track`, the sha256
of the run's manifest. No network: W&B offline, MLflow's store in a temporary folder.
The packages come from envs/trackers.lock.txt (`make trackers`, part of `make test`); CI
must have them, so there a missing package fails instead of skipping.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from conftest import BIN

from prefalign.hashing import canonical_sha256, sha256_file, tree_digest

pytestmark = pytest.mark.slow

if not os.environ.get("CI"):
    pytest.importorskip("wandb")
    pytest.importorskip("mlflow")


def cli(cwd, *args, env=None):
    result = subprocess.run([str(BIN / "prefalign"), *map(str, args)], capture_output=True, text=True, cwd=cwd,
                            env={**os.environ, "WANDB_SILENT": "true", **(env or {})})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def tracked(tmp_path_factory, tiny_base):
    root = tmp_path_factory.mktemp("trackers") / "run"
    shutil.copytree(tiny_base, root)
    store = root / "mlruns"
    cli(root, "sft", "--base", "base", "--train", "train.jsonl", "--out", "sft", "--metrics", "sft.json",
        "--log-history", "sft_log.jsonl", "--max-steps", "10", "--batch-size", "8", "--logging-steps", "5",
        "--threads", "1", "--no-tensorboard", "--wandb", "--wandb-mode", "offline", "--wandb-project", "t",
        "--mlflow", "--mlflow-tracking-uri", f"file:{store}", "--mlflow-experiment", "exp",
        "--tracker-record", "logs/tracking/train_sft.json")
    manifest = root / "results/manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text('{"artifacts": {}}\n')  # any file: `track` cites its sha256
    cli(root, "track", "--manifest", manifest, "--records", "logs/tracking/train_sft.json",
        "logs/tracking/train_dpo.json", "--out", "logs/tracking/manifest.json")
    return root


def test_the_record_names_both_runs(tracked):
    record = json.loads((tracked / "logs/tracking/train_sft.json").read_text())
    assert record["step"] == "sft" and record["wandb"]["mode"] == "offline" and record["mlflow"]["run_id"]
    tagged = json.loads((tracked / "logs/tracking/manifest.json").read_text())
    assert tagged["manifest_sha256"] == sha256_file(tracked / "results/manifest.json")
    assert {run["tracker"] for run in tagged["runs"]} == {"wandb", "mlflow"}


def test_mlflow_file_store_holds_metrics_record_and_manifest(tracked):
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    from mlflow.tracking import MlflowClient

    record = json.loads((tracked / "logs/tracking/train_sft.json").read_text())["mlflow"]
    client = MlflowClient(tracking_uri=f"file:{tracked / 'mlruns'}")
    run = client.get_run(record["run_id"])
    assert client.get_experiment(run.info.experiment_id).name == "exp"
    assert "loss" in run.data.metrics and run.data.params["max_steps"] == "10"  # TRL's own logging
    tags = run.data.tags
    assert tags["prefalign.step"] == "sft"
    assert tags["prefalign.input.train.jsonl"] == sha256_file(tracked / "train.jsonl")
    assert tags["prefalign.input.base"] == tree_digest(tracked / "base")
    assert tags["prefalign.manifest_sha256"] == sha256_file(tracked / "results/manifest.json")
    settings = json.loads((tracked / "sft.json").read_text())["settings"]
    assert tags["prefalign.settings_sha256"] == canonical_sha256(settings)
    artifact = client.download_artifacts(run.info.run_id, "prefalign/record.json", str(tracked / "dl"))
    assert json.loads(open(artifact).read())["settings"] == settings


def wandb_records(path):
    """The protobuf records of a W&B offline run file (run-<id>.wandb: LevelDB's log format
    behind a 7-byte W&B header; wandb 0.31 has no reader of its own in Python)."""
    import struct

    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7]) if left >= 7 else (0, 0, 0)
        if kind == 0:  # the padding at a block's end
            pos += left
            continue
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):  # a whole record, or its last piece
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def wandb_values(path) -> dict:
    """{"config": {key: value}, "summary": {...}, "history": [keys]} of an offline run file."""
    found = {"config": {}, "summary": {}, "history": set()}
    for record in wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind in ("config", "summary"):
            for item in getattr(record, kind).update:
                found[kind][item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
        elif kind == "history":
            found["history"].update(item.key or "/".join(item.nested_key) for item in record.history.item)
    return found


def test_wandb_offline_run_holds_config_record_and_manifest(tracked):
    runs = sorted((tracked / "logs/wandb").glob("offline-run-*"))
    record = json.loads((tracked / "logs/tracking/train_sft.json").read_text())["wandb"]
    assert len(runs) == 2 and all(run.name.endswith(record["id"]) for run in runs)  # training, then `track`
    training = wandb_values(runs[0] / f"run-{record['id']}.wandb")
    ours = training["config"]["prefalign"]
    assert ours["settings"]["max_steps"] == 10 and ours["inputs"]["train.jsonl"] == sha256_file(tracked / "train.jsonl")
    assert training["config"]["learning_rate"] > 0  # TrainingArguments, logged by transformers
    assert "train/loss" in training["history"]
    tagged = wandb_values(runs[1] / f"run-{record['id']}.wandb")
    assert tagged["summary"]["prefalign/manifest_sha256"] == sha256_file(tracked / "results/manifest.json")


def test_a_missing_tracker_package_is_refused_by_key(tmp_path):
    (tmp_path / "hidden/mlflow").mkdir(parents=True)  # shadows the real package for this process
    (tmp_path / "hidden/mlflow/__init__.py").write_text("raise ImportError('hidden by the test')\n")
    (tmp_path / "m.json").write_text("{}\n")
    (tmp_path / "r.json").write_text(json.dumps({"step": "sft", "mlflow": {"run_id": "x", "tracking_uri": "file:x"}}))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "hidden"), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([str(BIN / "prefalign"), "track", "--manifest", tmp_path / "m.json", "--records",
                             tmp_path / "r.json", "--out", tmp_path / "o.json"], capture_output=True, text=True, env=env)
    assert result.returncode == 2, result.stderr
    assert "tracking.mlflow: the run used MLflow, but mlflow is not installed" in result.stderr
