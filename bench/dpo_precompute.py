"""What precomputing the reference's log-probs saves the default's full-model DPO on the CPU.

Trains the default's DPO step (prefalign.train.dpo, the cpu-demo preset's settings) on the
on-policy pairs of a finished default run, `--steps` steps, with `precompute_ref_log_probs`
off and on, alternating, `--rounds` times, in this process; prints and writes each wall time
and the medians. (Off: TRL keeps a second copy of the model as the reference and runs it on
every batch; on: one pass over the pairs before training, no reference model.)

    python bench/dpo_precompute.py --run /tmp/default-run --steps 100 --rounds 2 \
        --out bench/results/dpo_precompute.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI sets it (prefalign.cli), before torch loads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="working directory of a finished default run")
    parser.add_argument("--steps", type=int, default=100, help="DPO steps per timing (default 100)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of off and on (default 2)")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/dpo_precompute.json", help="JSON output")
    args = parser.parse_args()

    from prefalign.config.schema import load_config, step_settings
    from prefalign.train import dpo

    base = step_settings(load_config(REPO / "config.yaml"))["dpo"]
    pairs = args.run / "results/onpolicy/round-1/pairs.jsonl"
    sft = args.run / "results/sft/model"
    times: dict[str, list[float]] = {"off": [], "on": []}
    for round_ in range(1, args.rounds + 1):
        for label, precompute in (("off", False), ("on", True)):
            settings = dataclasses.replace(base, max_steps=args.steps, precompute_ref_log_probs=precompute)
            start = time.perf_counter()
            metrics, _ = dpo.train(sft, pairs, None, None, settings)
            seconds = time.perf_counter() - start
            times[label].append(round(seconds, 2))
            print(f"round {round_}, precompute {label}: {seconds:.1f} s, final loss {metrics['train']['loss']:.4f}, "
                  f"load average {os.getloadavg()[0]:.1f}", flush=True)
    summary = {
        "command": "python " + " ".join(sys.argv),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "steps": args.steps, "pairs": str(pairs), "wall_s": times,
        "median_s": {k: statistics.median(v) for k, v in times.items()},
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "load_average": os.getloadavg()},
    }
    print(f"median: off {summary['median_s']['off']:.1f} s, on {summary['median_s']['on']:.1f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
