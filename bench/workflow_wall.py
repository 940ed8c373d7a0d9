"""Wall time of the whole default pipeline: `snakemake --cores all --forceall`, N times.

Runs in a scratch copy of the working directory (the repository's Snakefile and config),
prints each run's wall time and the median, the per-rule times from Snakemake's benchmark
files of the last run, and writes everything to bench/results/workflow_wall.json.

With `--baseline-overlay FILE` and/or `--baseline-env VAR=VALUE` the runs alternate with runs
of the default plus that overlay (a config file that restores an earlier recipe, say) or under
that environment (PREFALIGN_CPU_NUMERICS=native: the CPU's code paths not pinned), in a
scratch folder of their own, so both see the same machine load; the JSON then holds the
baseline's runs and median, and the ratio of the medians, too.

    python bench/workflow_wall.py [--runs 3] [--cores all] [--baseline-overlay old.yaml]
                                  [--baseline-env PREFALIGN_CPU_NUMERICS=native]
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
    parser.add_argument("--baseline-overlay", type=Path, help="config overlay of a baseline run alternated with "
                                                             "the default's runs (optional)")
    parser.add_argument("--baseline-env", action="append", default=[], metavar="VAR=VALUE",
                        help="environment of the baseline runs (repeatable; optional)")
    parser.add_argument("--keep", type=Path, help="copy the last default run's folder here (results, logs, "
                                                  "benchmarks), e.g. to check it against expected/ (optional)")
    args = parser.parse_args()

    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1"}
    walls, baseline_walls = [], []
    baseline_env = dict(item.split("=", 1) for item in args.baseline_env)
    has_baseline = bool(args.baseline_overlay or baseline_env)

    def timed(workdir: Path, configs: list[Path], label: str, extra_env: dict | None = None) -> float:
        command = [str(bin_dir / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--configfile",
                   *map(str, configs), "--cores", args.cores, "--forceall", "--quiet", "all"]
        start = time.perf_counter()
        result = subprocess.run(command, env={**env, **(extra_env or {})}, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if result.returncode != 0:
            sys.exit(f"{label} failed:\n{result.stderr[-4000:]}")
        print(f"{label}: {wall:.1f} s (load average {os.getloadavg()[0]:.1f})", flush=True)
        return wall

    with tempfile.TemporaryDirectory(prefix="prefalign-bench-") as scratch:
        workdir, basedir = Path(scratch) / "default", Path(scratch) / "baseline"
        for run in range(1, args.runs + 1):
            if has_baseline:
                overlay = [args.baseline_overlay.resolve()] if args.baseline_overlay else []
                baseline_walls.append(timed(basedir, [REPO / "config.yaml", *overlay], f"baseline run {run}",
                                            baseline_env))
            walls.append(timed(workdir, [REPO / "config.yaml"], f"run {run}"))
        per_rule = rule_times(workdir)
        if args.keep:
            import shutil

            shutil.copytree(workdir, args.keep, symlinks=True, dirs_exist_ok=True)
        dpo = json.loads((workdir / "results/eval/dpo/metrics.json").read_text())["metrics"]
        sft = json.loads((workdir / "results/eval/sft/metrics.json").read_text())["metrics"]
        baseline = None
        if has_baseline:
            base_dpo = json.loads((basedir / "results/eval/dpo/metrics.json").read_text())["metrics"]
            baseline = {"overlay": str(args.baseline_overlay) if args.baseline_overlay else None,
                        "environment": baseline_env, "runs_s": [round(w, 2) for w in baseline_walls],
                        "median_s": round(statistics.median(baseline_walls), 2),
                        "last_run_rule_s": rule_times(basedir),
                        "judge_accuracy": {"dpo": base_dpo["judge_accuracy"]}}
    from prefalign.runtime import cpu_model

    summary = {
        "command": " ".join(["python bench/workflow_wall.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d"),
        "pipeline": "snakemake --cores %s --forceall" % args.cores,
        "runs_s": [round(w, 2) for w in walls],
        "median_s": round(statistics.median(walls), 2),
        "last_run_rule_s": per_rule,
        "dpo_implicit_reward_accuracy": dpo["implicit_reward_accuracy"],
        "judge_accuracy": {"sft": sft["judge_accuracy"], "dpo": dpo["judge_accuracy"]},
        "machine": {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
    }
    if baseline:
        summary["baseline"] = baseline
        summary["median_over_baseline"] = round(summary["median_s"] / baseline["median_s"], 3)
        print(f"baseline median of {len(baseline_walls)}: {baseline['median_s']:.1f} s "
              f"(default / baseline: {summary['median_over_baseline']:.3f})")
    print(f"median of {len(walls)}: {summary['median_s']:.1f} s")
    for name, seconds in per_rule.items():
        print(f"  {name:45s} {seconds:7.1f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
