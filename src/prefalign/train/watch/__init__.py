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

from prefalign.train.watch import health, tracking


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tensorboard-dir", type=Path,
                        help="output folder: TensorBoard event files (with --tensorboard; none: no event files)")
    health.HealthSettings.add_arguments(parser)
    tracking.TrackingSettings.add_arguments(parser)


@dataclass
class Watch:
    monitor: health.HealthMonitor
    report_to: list[str]
    progress: object | None

    @classmethod
    def from_args(cls, args: argparse.Namespace, step: str, settings) -> "Watch":
        """Refuses (ConfigError) a tracking sink whose package is missing, before any model loads."""
        health_settings = health.HealthSettings.from_args(args)
        tracking_settings = tracking.TrackingSettings.from_args(args)
        print("watch:", json.dumps({"health": health_settings.to_dict(), "tracking": tracking_settings.to_dict()},
                                   sort_keys=True), flush=True)
        monitor = health.HealthMonitor(health_settings, step, settings.learning_rate, getattr(settings, "beta", None))
        sinks = tracking.report_to(tracking_settings, args.tensorboard_dir, step)
        return cls(monitor, sinks, tracking.progress_callback(step))

    def callbacks(self) -> list:
        return [health.HealthCallback(self.monitor)] + ([self.progress] if self.progress is not None else [])
