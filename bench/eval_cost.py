"""What evaluation adds to the default pipeline: wall and CPU seconds of each evaluation job.

Runs the default pipeline once in a scratch directory (or reuses --workdir), then reruns
the evaluation jobs (`evaluate_model` for every model in eval.models and `compare_models`)
--rounds times with `--forcerun`, reading Snakemake's benchmark files after each round
(benchmarks/evaluate_model/<model>.tsv: `s` = wall seconds, `cpu_time` = CPU seconds).

With the default's `threads: 2` on a 2-core machine every job takes all the cores, so jobs
run one after another and the evaluation adds the sum of its jobs' wall seconds to the
pipeline. The training jobs' times from the same full run are printed beside them as the
baseline. The machine may be shared: figures are medians over the rounds, CPU seconds are
given because they barely depend on other load, and the load average is recorded.

    python bench/eval_cost.py [--rounds 3] [--cores 2] [--workdir DIR]

Writes bench/results/eval_cost.json.
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
EVAL_RULES = ("evaluate_model", "compare_models")
TRAIN_RULES = ("build_base_model", "train_sft", "train_dpo")


def benchmark(workdir: Path, rule: str) -> dict[str, dict[str, float]]:
    """job name -> {"s", "cpu_time"} from benchmarks/<rule>[/...].tsv."""
    found = {}
    paths = sorted((workdir / "benchmarks").glob(f"{rule}/*.tsv")) + sorted((workdir / "benchmarks").glob(f"{rule}.tsv"))
    for tsv in paths:
        with open(tsv, encoding="utf-8") as handle:
            row = next(csv.DictReader(handle, delimiter="\t"))
        name = rule if tsv.name == f"{rule}.tsv" else f"{rule}/{tsv.stem}"
        found[name] = {"s": float(row["s"]), "cpu_time": float(row["cpu_time"])}
    return found


def snakemake(workdir: Path, cores: str, options: tuple[str, ...] = (), targets: tuple[str, ...] = ()) -> float:
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1"}
    command = [str(bin_dir / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores", cores,
               "--configfile", str(REPO / "config.yaml"), *options, "--quiet", "all", "--", *targets]
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"snakemake {' '.join(options + targets)} failed:\n{result.stderr[-4000:]}")
    return time.perf_counter() - start


def median_by_job(rounds: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    jobs = sorted(set().union(*rounds))
    return {job: {key: round(statistics.median(r[job][key] for r in rounds if job in r), 2) for key in ("s", "cpu_time")}
            for job in jobs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="evaluation reruns measured (default 3)")
    parser.add_argument("--cores", default="2", help="snakemake --cores (default 2, the figure's condition)")
    parser.add_argument("--workdir", type=Path, help="reuse this run directory (default: a fresh scratch one)")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/eval_cost.json", help="JSON output")
    args = parser.parse_args()

    scratch = None if args.workdir else tempfile.TemporaryDirectory(prefix="prefalign-evalcost-")
    workdir = args.workdir or Path(scratch.name)
    load_before = os.getloadavg()
    full = snakemake(workdir, args.cores)  # builds whatever is missing (everything, in a fresh directory)
    training = {job: v for rule in TRAIN_RULES for job, v in benchmark(workdir, rule).items()}
    # The evaluation's outputs as targets (`--until` with two rules trips Snakemake 9.27's scheduler).
    targets = sorted(str(p.relative_to(workdir)) for p in workdir.glob("results/eval/**/*.json"))
    rounds, walls = [], []
    for n in range(1, args.rounds + 1):
        walls.append(snakemake(workdir, args.cores, ("--forcerun", *EVAL_RULES), tuple(targets)))
        rounds.append({job: v for rule in EVAL_RULES for job, v in benchmark(workdir, rule).items()})
        total = sum(v["s"] for v in rounds[-1].values())
        print(f"round {n}: evaluation jobs {total:.1f} s wall, "
              f"{sum(v['cpu_time'] for v in rounds[-1].values()):.1f} s CPU; snakemake command {walls[-1]:.1f} s",
              flush=True)
    per_job = median_by_job(rounds)
    totals = [sum(v["s"] for v in r.values()) for r in rounds]
    cpu_totals = [sum(v["cpu_time"] for v in r.values()) for r in rounds]
    summary = {
        "command": f"snakemake --cores {args.cores} results/eval/... --forcerun {' '.join(EVAL_RULES)}",
        "note": "shared machine: medians over rounds; CPU seconds are the steadier figure",
        "rounds": args.rounds,
        "eval_jobs_median": per_job,
        "eval_added_s_per_round": [round(t, 2) for t in totals],
        "eval_added_s_median": round(statistics.median(totals), 2),
        "eval_cpu_s_median": round(statistics.median(cpu_totals), 2),
        "snakemake_command_s_median": round(statistics.median(walls), 2),
        "training_jobs_same_run": training,
        "training_s": round(sum(v["s"] for v in training.values()), 2),
        "full_pipeline_first_command_s": round(full, 2),
        "budget_s": 30,
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
    }
    print(f"\nevaluation of {', '.join(j for j in per_job if j.startswith('evaluate_model'))} + comparisons "
          f"(median of {args.rounds}):")
    for job, v in per_job.items():
        print(f"  {job:40s} {v['s']:6.1f} s wall {v['cpu_time']:6.1f} s CPU")
    print(f"  {'added to the pipeline (sum, jobs serial)':40s} {summary['eval_added_s_median']:6.1f} s wall "
          f"{summary['eval_cpu_s_median']:6.1f} s CPU   (budget 30 s)")
    print("baseline, same run: training jobs")
    for job, v in training.items():
        print(f"  {job:40s} {v['s']:6.1f} s wall {v['cpu_time']:6.1f} s CPU")
    if summary["training_s"]:
        print(f"evaluation / training wall: {summary['eval_added_s_median'] / summary['training_s']:.2f}")
    print(f"load average before/after: {summary['load_average_before_after']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out}")
    if scratch:
        scratch.cleanup()


if __name__ == "__main__":
    main()
