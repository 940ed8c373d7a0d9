"""Step `track`: add the run's manifest sha256 to its W&B and MLflow runs.

The training steps log to W&B / MLflow while they run (prefalign.train.watch.tracking), when
the manifest does not exist yet; they note their run ids in a record (`--tracker-record`).
Once the manifest is written, `prefalign track --manifest results/manifest.json --records
logs/tracking/train_sft.json ...` opens each run again and sets `prefalign.manifest_sha256`
(an MLflow tag; a W&B summary and config value, in the run's own mode: offline runs stay
offline, to be synced with `wandb sync`). The workflow does this in rule track_runs when
tracking.wandb or tracking.mlflow is on.

Records that are missing (a tracker that was off) are skipped and said; a record whose
tracker package is missing is a ConfigError naming the key.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from prefalign.errors import ConfigError
from prefalign.hashing import sha256_file
from prefalign.jsonl import write_json


def tag_mlflow(entry: dict, manifest_sha: str, manifest_path: str) -> None:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ConfigError("tracking.mlflow: the run used MLflow, but mlflow is not installed (`make trackers`)") from None
    uri = entry["tracking_uri"]
    if uri.startswith("file:"):
        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    client = MlflowClient(tracking_uri=uri)
    client.set_tag(entry["run_id"], "prefalign.manifest_sha256", manifest_sha)
    client.set_tag(entry["run_id"], "prefalign.manifest", manifest_path)


def tag_wandb(entry: dict, manifest_sha: str, manifest_path: str) -> None:
    try:
        import wandb
    except ImportError:
        raise ConfigError("tracking.wandb: the run used W&B, but wandb is not installed (`make trackers`)") from None
    run = wandb.init(id=entry["id"], project=entry["project"], entity=entry.get("entity"), dir=entry.get("dir"),
                     mode=entry.get("mode") or "online", resume="allow")
    run.config.update({"prefalign_manifest_sha256": manifest_sha}, allow_val_change=True)
    run.summary["prefalign/manifest_sha256"] = manifest_sha
    run.summary["prefalign/manifest"] = manifest_path
    run.finish()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", type=Path, required=True, help="the run's manifest (results/manifest.json)")
    parser.add_argument("--records", type=Path, nargs="+", required=True,
                        help="tracker records of the training steps (--tracker-record of prefalign sft/dpo)")
    parser.add_argument("--out", type=Path, required=True, help="output: what was tagged (JSON)")


def main(args: argparse.Namespace) -> None:
    if not args.manifest.is_file():
        raise ConfigError(f"{args.manifest}: no manifest to cite")
    digest = sha256_file(args.manifest)
    tagged = []
    for path in args.records:
        if not path.is_file():
            print(f"track: {path}: no record (that step logged to no tracker), skipped")
            continue
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ConfigError(f"{path}: not a tracker record ({exc})") from None
        if "mlflow" in record:
            tag_mlflow(record["mlflow"], digest, str(args.manifest))
            tagged.append({"step": record.get("step"), "tracker": "mlflow", "run": record["mlflow"]["run_id"]})
        if "wandb" in record:
            tag_wandb(record["wandb"], digest, str(args.manifest))
            tagged.append({"step": record.get("step"), "tracker": "wandb", "run": record["wandb"]["id"]})
    write_json(args.out, {"manifest": str(args.manifest), "manifest_sha256": digest, "runs": tagged})
    print(f"track: manifest sha256 {digest} added to {len(tagged)} run(s)")
