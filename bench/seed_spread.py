"""The spread of the default's metrics over seeds and CPU dispatch levels: the runs that
bench/derive_bounds.py sets expected/default.yaml's bounds from.

Runs a config (the embedded default, config.yaml, unless --config says otherwise) once per
run, each in its own scratch folder, one after the other, with `snakemake --cores all`:

- `seed-N` (role `bounds`) for each of --seeds: `--config seed=N` (the config's `seed` seeds the
  synthetic data, and so the split, the model's initialisation and every sampling step);
- `seed-S-native-L` (role `bounds`) for each dispatch level L of --variants, at the config's own
  seed S: the workflow's pinning of the CPU's numeric code paths off (PREFALIGN_CPU_NUMERICS=
  native) and torch's kernel level set to L in the environment (ATEN_CPU_CAPABILITY=L), i.e.
  what an unpinned reviewer's machine of that level computes;
- `seed-N` (role `validation`) for each of --validation-seeds: runs the bounds are checked
  against, never derived from.

Every other run gets none of the numeric variables (PREFALIGN_CPU_NUMERICS, ATEN_CPU_CAPABILITY,
MKL_CBWR, ...) from the calling shell: the workflow pins them. Of each run it records every
metric in the check's naming (prefalign.evaluation.check.load_sources: `<source>.<metric>`,
with `.low`, `.high`, `.half_width` of each 95% interval), the wall time (the whole Snakemake
call: every rule of the run, on this machine's load) and each rule's time, the date, the
commit, the CPU numerics the steps recorded and the exact command; the machine (CPU model,
cores, platform) once. The JSON (bench/results/seed_spread.json) is written after every run
and read back on start: a run already in it is skipped, so a sweep that stopped goes on where
it stopped (a JSON of another config is refused). About 5-8 minutes a run on 2 cores.

    python bench/seed_spread.py [--seeds 1234 1 2 3 4] [--variants avx512 default]
                                [--validation-seeds 5 6] [--config config.yaml] [--out ...]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from prefalign.evaluation.check import load_sources
from prefalign.numerics import LEVEL_VAR, PINS

# Variables that change the CPU's numeric code paths (prefalign.numerics pins them in every step): a
# bound-setting run takes none of them from the calling shell (the variants set their own).
NUMERIC_VARIABLES = (LEVEL_VAR, *sorted({name for pins in PINS.values() for name in pins}), "MKL_ENABLE_INSTRUCTIONS",
                     "DNNL_MAX_CPU_ISA", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def plan(seeds: list[int], variants: list[str], validation: list[int], config_seed: int) -> list[dict]:
    """The runs, in order: label, role, seed and the environment it adds."""
    runs = [{"label": f"seed-{s}", "role": "bounds", "seed": s, "env": {}} for s in seeds]
    runs += [{"label": f"seed-{config_seed}-native-{level}", "role": "bounds", "seed": config_seed,
              "env": {"PREFALIGN_CPU_NUMERICS": "native", "ATEN_CPU_CAPABILITY": level}} for level in variants]
    runs += [{"label": f"seed-{s}", "role": "validation", "seed": s, "env": {}} for s in validation]
    labels = [r["label"] for r in runs]
    duplicated = sorted({label for label in labels if labels.count(label) > 1})
    if duplicated:
        sys.exit(f"seed_spread: runs named twice: {', '.join(duplicated)} (a validation seed must not also set bounds)")
    return runs


def flat_metrics(workdir: Path) -> dict[str, float]:
    """Every numeric metric of a finished run, named as the check names it (`<source>.<metric>`)."""
    results = workdir / "results/eval"
    judge = results / "judge.json"
    sources = load_sources(sorted(p for p in results.glob("*/metrics.json") if p.parent.name != "compare"),
                           sorted((results / "compare").glob("*.json")), judge if judge.is_file() else None)
    return {f"{source}.{name}": value for source, metrics in sorted(sources.items())
            for name, value in sorted(metrics.items())
            if isinstance(value, (int, float)) and not isinstance(value, bool)}


def rule_times(workdir: Path) -> dict[str, float]:
    times = {}
    for tsv in sorted((workdir / "benchmarks").rglob("*.tsv")):
        with open(tsv, encoding="utf-8") as handle:
            row = next(csv.DictReader(handle, delimiter="\t"))
        times[tsv.relative_to(workdir / "benchmarks").as_posix()] = round(float(row["s"]), 2)
    return times


def cpu_numerics(workdir: Path) -> dict:
    """What each training/evaluation step recorded of the CPU's numeric code paths (environment.json), if any."""
    found = {}
    for path in sorted((workdir / "results").rglob("environment.json")):
        record = json.loads(path.read_text(encoding="utf-8")).get("cpu_numerics")
        if record is not None:
            found[path.relative_to(workdir).as_posix()] = record
    return found


def machine() -> dict:
    model, flags = "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "unknown":
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    import torch

    return {"cpu": model, "cpu_count": os.cpu_count(), "avx2": "avx2" in flags, "avx512f": "avx512f" in flags,
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__,
            "platform": platform.platform(), "python": platform.python_version()}


def git_commit() -> dict:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], check=False, cwd=REPO, capture_output=True, text=True).stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def write(out: Path, data: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".json.partial")
    partial.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    partial.replace(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=[1234, 1, 2, 3, 4],
                        help="seeds of the bound-setting runs (default: 1234 1 2 3 4)")
    parser.add_argument("--variants", nargs="*", default=["avx512", "default"],
                        help="torch CPU dispatch levels (ATEN_CPU_CAPABILITY) of the unpinned bound-setting runs at "
                             "the config's seed (default: avx512 default)")
    parser.add_argument("--validation-seeds", type=int, nargs="*", default=[5, 6],
                        help="seeds of the validation runs, never used to set bounds (default: 5 6)")
    parser.add_argument("--config", type=Path, default=REPO / "config.yaml", help="config file (default config.yaml)")
    parser.add_argument("--cores", default="all", help="snakemake --cores (default all)")
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/prefalign-seed-spread"),
                        help="folder of the runs' folders, one per run, kept (default /tmp/prefalign-seed-spread)")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/seed_spread.json", help="JSON output")
    args = parser.parse_args()

    config_path = args.config.resolve()
    config_sha = hashlib.sha256(config_path.read_bytes()).hexdigest()
    config_seed = int(yaml.safe_load(config_path.read_text(encoding="utf-8")).get("seed", 1234))
    runs = plan(args.seeds, args.variants, args.validation_seeds, config_seed)

    data = {"description": __doc__.splitlines()[0], "config": str(config_path.relative_to(REPO))
            if config_path.is_relative_to(REPO) else str(config_path), "config_sha256": config_sha,
            "machine": machine(), "runs": []}
    if args.out.is_file():
        data = json.loads(args.out.read_text(encoding="utf-8"))
        if data.get("config_sha256") != config_sha:
            sys.exit(f"seed_spread: {args.out} holds runs of another config (sha256 {data.get('config_sha256')}, "
                     f"not {config_sha} of {config_path}): name another --out, or move it away to start over")
    done = {r["label"]: r for r in data["runs"]}

    bin_dir = Path(sys.executable).parent
    base_env = {k: v for k, v in os.environ.items() if k not in NUMERIC_VARIABLES}
    base_env.update({"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1"})
    sweep_start = time.perf_counter()
    for run in runs:
        if run["label"] in done:
            kept = done[run["label"]]
            if kept["role"] != run["role"]:
                # A run made in one role and now planned in another (validation seeds that later set bounds):
                # the role changes, and the run says what it was made as.
                kept.setdefault("made_as", kept["role"])
                kept["role"] = run["role"]
                write(args.out, data)
                print(f"{run['label']}: in {args.out} already, now a {run['role']} run (made as {kept['made_as']})",
                      flush=True)
            else:
                print(f"{run['label']}: in {args.out} already, skipped", flush=True)
            continue
        workdir = args.scratch / run["label"]
        if workdir.exists():
            shutil.rmtree(workdir)  # a run that stopped: start it over, so that its wall time is a whole run's
        workdir.mkdir(parents=True)
        command = [str(bin_dir / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--configfile",
                   str(config_path), "--config", f"seed={run['seed']}", "--cores", args.cores, "all"]
        shown = " ".join([*(f"{k}={v}" for k, v in run["env"].items()),
                          "snakemake", "--configfile", str(data["config"]), "--config", f"seed={run['seed']}",
                          "--cores", args.cores])
        print(f"{run['label']} ({run['role']}): {shown}", flush=True)
        date = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        start = time.perf_counter()
        result = subprocess.run(command, check=False, env={**base_env, **run["env"]}, capture_output=True, text=True)
        wall = time.perf_counter() - start
        (workdir / "snakemake.log").write_text(result.stdout + result.stderr, encoding="utf-8")
        if result.returncode != 0:
            sys.exit(f"{run['label']} failed (exit {result.returncode}; {workdir / 'snakemake.log'}):\n"
                     f"{result.stderr[-4000:]}")
        metrics = flat_metrics(workdir)
        data["runs"].append({**run, "command": shown, "argv": shlex.join(command), "date": date,
                             "wall_s": round(wall, 1), "load_average_end": round(os.getloadavg()[0], 2),
                             "rule_s": rule_times(workdir), "git": git_commit(),
                             "cpu_numerics": cpu_numerics(workdir), "workdir": str(workdir), "metrics": metrics})
        write(args.out, data)
        print(f"{run['label']}: {wall:.0f} s, {len(metrics)} metrics; dpo_vs_sft.win_rate_sampled "
              f"{metrics.get('dpo_vs_sft.win_rate_sampled', float('nan')):.4f}; wrote {args.out}", flush=True)
    print(f"sweep: {len(data['runs'])} runs in {args.out} ({time.perf_counter() - sweep_start:.0f} s this call)")


if __name__ == "__main__":
    main()
