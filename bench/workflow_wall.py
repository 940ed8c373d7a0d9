"""Wall time of the whole default pipeline: `snakemake --cores all --forceall`, N times.

Runs in a scratch copy of the working directory (the repository's Snakefile and config),
prints each run's wall time and the median, the per-rule times from Snakemake's benchmark
files of the last run, and writes everything to bench/results/workflow_wall.json.

    python bench/workflow_wall.py [--runs 3] [--cores all]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def rule_times(workdir: Path) -> dict[str, float]:
    times = {}
    for tsv in sorted((workdir / "benchmarks").rglob("*.tsv")):
        with open(tsv, encoding="utf-8") as handle:
            row = next(csv.DictReader(handle, delimiter="\t"))
        times[str(tsv.relative_to(workdir / "benchmarks"))] = float(row["s"])
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="number of full runs (default 3)")
    parser.add_argument("--cores", default="all", help="snakemake --cores (default all)")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/workflow_wall.json", help="JSON output")
    args = parser.parse_args()

    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1"}
    walls = []
    with tempfile.TemporaryDirectory(prefix="prefalign-bench-") as scratch:
        workdir = Path(scratch)
        for run in range(1, args.runs + 1):
            command = [str(bin_dir / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--configfile",
                       str(REPO / "config.yaml"), "--cores", args.cores, "--forceall", "--quiet", "all"]
            start = time.perf_counter()
            result = subprocess.run(command, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - start
            if result.returncode != 0:
                sys.exit(f"run {run} failed:\n{result.stderr[-4000:]}")
            walls.append(wall)
            print(f"run {run}: {wall:.1f} s", flush=True)
        per_rule = rule_times(workdir)
        dpo = json.loads((workdir / "results/eval/dpo/metrics.json").read_text())["metrics"]
        sft = json.loads((workdir / "results/eval/sft/metrics.json").read_text())["metrics"]
    summary = {
        "command": "snakemake --cores %s --forceall" % args.cores,
        "runs_s": [round(w, 2) for w in walls],
        "median_s": round(statistics.median(walls), 2),
        "last_run_rule_s": per_rule,
        "dpo_implicit_reward_accuracy": dpo["implicit_reward_accuracy"],
        "judge_accuracy": {"sft": sft["judge_accuracy"], "dpo": dpo["judge_accuracy"]},
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
    }
    print(f"median of {len(walls)}: {summary['median_s']:.1f} s")
    for name, seconds in per_rule.items():
        print(f"  {name:45s} {seconds:7.1f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
