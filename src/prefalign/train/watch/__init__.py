"""What watches a training step: the health monitor, TensorBoard / W&B, and progress lines.

The sft and dpo steps add these flags with `add_arguments` and build a `Watch` in main();
its callbacks go to the trainer through the steps' `callbacks` argument and its sinks through
`report_to`, so the trainers themselves are built the same way with or without it. Building
a Watch imports no transformers (prefalign.train.watch.events), so Unsloth can still go first.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from prefalign.hashing import canonical_sha256, tree_digest
from prefalign.train.watch import health, tracking


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tensorboard-dir", type=Path,
                        help="output folder: TensorBoard event files (with --tensorboard; none: no event files)")
    parser.add_argument("--tracker-record", type=Path,
                        help="output: the W&B / MLflow run ids (JSON), for `prefalign track`; none: not written")
    health.HealthSettings.add_arguments(parser)
    tracking.TrackingSettings.add_arguments(parser)


@dataclass
class Watch:
    monitor: health.HealthMonitor
    report_to: list[str]
    progress: object | None
    record: object | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace, step: str, settings) -> "Watch":
        """Refuses (ConfigError) a tracking sink whose package is missing, before any model loads."""
        health_settings = health.HealthSettings.from_args(args)
        tracking_settings = tracking.TrackingSettings.from_args(args)
        print("watch:", json.dumps({"health": health_settings.to_dict(), "tracking": tracking_settings.to_dict()},
                                   sort_keys=True), flush=True)
        monitor = health.HealthMonitor(health_settings, step, settings.learning_rate, getattr(settings, "beta", None))
        sinks = tracking.report_to(tracking_settings, args.tensorboard_dir, step)
        record = None
        if {"wandb", "mlflow"} & set(sinks):
            inputs = {name: str(getattr(args, name)) for name in ("base", "sft", "train") if getattr(args, name, None)}
            settings_dict = settings.to_dict()
            payload = {"step": step, "settings": settings_dict, "settings_sha256": canonical_sha256(settings_dict),
                       "inputs": {path: tree_digest(Path(path)) for path in inputs.values()}}
            record = tracking.RunRecord(step, sinks, payload, args.tracker_record)
        return cls(monitor, sinks, tracking.progress_callback(step), record)

    def callbacks(self) -> list:
        extra = [c for c in (self.progress, self.record) if c is not None]
        return [health.HealthCallback(self.monitor)] + extra
