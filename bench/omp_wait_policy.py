"""Two training steps at once on a small machine: OpenMP threads spinning vs sleeping.

Builds toy data and a tiny base model in a scratch folder, then times `prefalign sft`
(150 steps, 2 threads) alone and two at once, with OMP_WAIT_POLICY=ACTIVE (spin, the
OpenMP default) and PASSIVE (sleep, what `prefalign` sets unless the variable is set).
Both policies run in this one script, side by side; prints the figures and writes
bench/results/omp_wait_policy.json.

    python bench/omp_wait_policy.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PREFALIGN = str(Path(sys.executable).parent / "prefalign")


def sh(*args, env=None):
    subprocess.run([PREFALIGN, *map(str, args)], check=True, capture_output=True, env=env)


def sft(root: Path, tag: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen([PREFALIGN, "sft", "--base", root / "base", "--train", root / "train.jsonl", "--out",
                             root / tag, "--metrics", root / f"{tag}.json", "--log-history", root / f"{tag}.jsonl",
                             "--max-steps", "150"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def timed(root: Path, policy: str, parallel: int) -> float:
    env = {**os.environ, "OMP_WAIT_POLICY": policy}
    start = time.perf_counter()
    procs = [sft(root, f"{policy}{i}", env) for i in range(parallel)]
    if any(p.wait() for p in procs):
        sys.exit("a training run failed")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="prefalign-omp-") as scratch:
        root = Path(scratch)
        sh("synth", "--records", "1500", "--out", root / "raw.jsonl")
        sh("normalize", "--input", root / "raw.jsonl", "--records", root / "n.jsonl", "--rejects", root / "r.jsonl",
           "--stats", root / "s.json")
        sh("split", "--inputs", root / "n.jsonl", "--train", root / "train.jsonl", "--test", root / "test.jsonl",
           "--rejects", root / "x.jsonl", "--stats", root / "x.json")
        sh("build-base", "--train", root / "train.jsonl", "--out", root / "base", "--vocab-size", "400")
        results = {}
        for parallel in (1, 2):
            for policy in ("ACTIVE", "PASSIVE"):  # alternated, so drift in machine load hits both
                results.setdefault(f"{policy}_x{parallel}", [])
            for _ in range(args.repeats):
                for policy in ("ACTIVE", "PASSIVE"):
                    results[f"{policy}_x{parallel}"].append(timed(root, policy, parallel))
    medians = {k: statistics.median(v) for k, v in results.items()}
    summary = {
        "what": "wall seconds of `prefalign sft --max-steps 150` (2 threads), alone (x1) and two at once (x2)",
        "cpu_count": os.cpu_count(),
        "runs_s": {k: [round(x, 2) for x in v] for k, v in results.items()},
        "median_s": {k: round(v, 2) for k, v in medians.items()},
        "ratio_active_over_passive": {
            "x1": round(medians["ACTIVE_x1"] / medians["PASSIVE_x1"], 2),
            "x2": round(medians["ACTIVE_x2"] / medians["PASSIVE_x2"], 2),
        },
    }
    for key, value in summary["median_s"].items():
        print(f"{key:12s} median {value:6.1f} s")
    print("ACTIVE / PASSIVE:", summary["ratio_active_over_passive"])
    out = REPO / "bench/results/omp_wait_policy.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
