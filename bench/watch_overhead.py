"""What the health monitor and TensorBoard cost a training step, and that they change no result.

Runs `prefalign sft` and `prefalign dpo` on the default pipeline's data and models (the
embedded default's settings; --sft-steps / --dpo-steps shorten them) in three variants, side
by side, alternating within each round so that load on a shared machine falls on all alike:

  bare        --no-monitor --no-tensorboard   (what the steps did before the monitor)
  monitor     the health monitor, no TensorBoard
  default     the monitor and TensorBoard event files (the workflow's default)

Each run's wall and CPU seconds (of the child process: imports included, which is where
TensorBoard's import lands) are recorded; figures are medians over --rounds, with ratios to
`bare`. Every variant's checkpoint and log_history must be byte-identical to bare's: the
script fails otherwise.

    python bench/watch_overhead.py --workdir <a finished default run> [--rounds 3]

Writes bench/results/watch_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {
    "bare": ["--no-monitor", "--no-tensorboard"],
    "monitor": ["--monitor", "--no-tensorboard"],
    "default": ["--monitor", "--tensorboard"],
}


def flags(section: str) -> list[str]:
    """The step's flags from the embedded default's resolved config, as the workflow passes them."""
    sys.path.insert(0, str(REPO / "src"))
    from prefalign.config.resolve import load_config
    from prefalign.config.steps import step_settings
    from prefalign.settings import to_cli_flags

    settings = step_settings(load_config(REPO / "config.yaml"), [REPO / "config.yaml"])[section]
    return to_cli_flags(settings.to_dict()).split()


def run(step: str, workdir: Path, out: Path, variant: list[str], steps: int) -> dict:
    data = workdir / "results"
    common = ["--train", data / "data/train.jsonl", "--metrics", out / "metrics.json",
              "--log-history", out / "log_history.jsonl", "--tensorboard-dir", out / "tensorboard"]
    if step == "sft":
        args = ["sft", "--base", data / "model/base", "--out", out / "model", *common]
    else:
        args = ["dpo", "--sft", data / "sft/model", "--out", out / "model", "--adapter-out", out / "adapter", *common]
    args += [*flags(step), "--max-steps", str(steps), *variant]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run([str(Path(sys.executable).parent / "prefalign"), *map(str, args)], capture_output=True,
                            text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        sys.exit(f"prefalign {step} failed:\n{result.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu}


def same_results(a: Path, b: Path) -> bool:
    return all((a / name).read_bytes() == (b / name).read_bytes()
               for name in ("model/model.safetensors", "log_history.jsonl"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True, help="folder of a finished default run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sft-steps", type=int, default=1000, help="SFT steps (the default's 1000)")
    parser.add_argument("--dpo-steps", type=int, default=300, help="DPO steps (the default's 300)")
    args = parser.parse_args()

    out = {"command": " ".join(sys.argv), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                       "load_average_start": os.getloadavg()},
           "note": "shared development machine: other jobs ran at the same time; medians of side-by-side runs",
           "steps": {}}
    for step, steps in (("sft", args.sft_steps), ("dpo", args.dpo_steps)):
        times = {name: [] for name in VARIANTS}
        identical = True
        with tempfile.TemporaryDirectory(prefix=f"watch-{step}-") as scratch:
            for round_ in range(args.rounds):
                for name, variant in VARIANTS.items():
                    folder = Path(scratch) / f"{name}-{round_}"
                    times[name].append(run(step, args.workdir, folder, variant, steps))
                    identical &= same_results(Path(scratch) / f"bare-{round_}", folder)
                    print(f"{step} {name} round {round_ + 1}: {times[name][-1]['wall_s']:.1f} s wall, "
                          f"{times[name][-1]['cpu_s']:.1f} s CPU", flush=True)
        medians = {name: {k: statistics.median(t[k] for t in runs) for k in ("wall_s", "cpu_s")}
                   for name, runs in times.items()}
        out["steps"][step] = {
            "max_steps": steps, "runs": times, "median": medians, "identical_results": identical,
            "ratio_to_bare": {name: {k: medians[name][k] / medians["bare"][k] for k in ("wall_s", "cpu_s")}
                              for name in VARIANTS},
        }
        for name in VARIANTS:
            ratio = out["steps"][step]["ratio_to_bare"][name]
            print(f"{step} {name:8s} median {medians[name]['wall_s']:6.1f} s wall ({ratio['wall_s']:.3f}x bare), "
                  f"{medians[name]['cpu_s']:6.1f} s CPU ({ratio['cpu_s']:.3f}x)")
        print(f"{step}: checkpoints and log histories identical across variants: {identical}")
        if not identical:
            sys.exit(f"{step}: the monitor or TensorBoard changed a result")
    out["machine"]["load_average_end"] = os.getloadavg()
    path = REPO / "bench/results/watch_overhead.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
