"""What checkpointing costs: `prefalign sft` and `prefalign dpo` with and without checkpoints.

Builds the default's data and model once (3000 hh-rlhf records, the default tiny Llama),
then runs each step with `--checkpoint-steps 0` (off) and at the default's density
(`--checkpoint-steps 100`, each checkpoint sha256-recorded), alternating, side by side, and
prints the median wall time of each, the ratio, and the cost per checkpoint. Also checks
that the weights are the same bytes either way. Because whole-process times on a shared
machine are noisy, it also times, inside one SFT and one DPO process, the seconds spent
saving checkpoints (the trainer's save plus the sha256 record) against the training time of
the same process: that share is the robust figure. Writes bench/results/checkpoint_overhead.json.

Timings on a shared machine are noisy: compare the ratio and the share, not the seconds.

    python bench/checkpoint_overhead.py [--runs 3] [--steps 300]
"""

from __future__ import annotations

import argparse
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
BIN = Path(sys.executable).parent


def cli(*args) -> float:
    """Run `prefalign <args>`; return its wall seconds."""
    start = time.perf_counter()
    result = subprocess.run([str(BIN / "prefalign"), *map(str, args)], capture_output=True, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    wall = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"prefalign {' '.join(map(str, args))} failed:\n{result.stderr[-3000:]}")
    return wall


def in_process_share(step: str, root: Path, args) -> dict:
    """Seconds spent saving checkpoints vs training, measured inside one process (robust to load)."""
    code = f"""
import json, time, transformers
from pathlib import Path
from prefalign.train import checkpoints
from prefalign.train.{step} import {step.upper()}Settings, {step.upper()}
spent = {{"save_s": 0.0, "saves": 0}}
def timed(fn):
    def wrapper(*a, **k):
        start = time.perf_counter(); out = fn(*a, **k); spent["save_s"] += time.perf_counter() - start
        return out
    return wrapper
original = transformers.Trainer._save_checkpoint
def save(*a, **k):
    spent["saves"] += 1
    return timed(original)(*a, **k)
transformers.Trainer._save_checkpoint = save
checkpoints.write_record = timed(checkpoints.write_record)
root = Path({str(root)!r})
settings = {step.upper()}Settings(max_steps={args.steps}, logging_steps=10, threads=2, checkpoint_steps={args.every})
start = time.perf_counter()
if "{step}" == "sft":
    SFT.train(root / "base", root / "train.jsonl", root / "inproc/sft", settings, checkpoint_dir=root / "inproc/ck")
else:
    DPO.train(root / "sft", root / "train.jsonl", root / "inproc/dpo", settings, checkpoint_dir=root / "inproc/ck")
total = time.perf_counter() - start
checkpoints.clear(root / "inproc/ck")
print(json.dumps({{**spent, "train_s": total, "share": spent["save_s"] / total}}))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE"})
    if result.returncode != 0:
        sys.exit(f"in-process {step} failed:\n{result.stderr[-3000:]}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"{step} in one process: {figures['saves']} saves took {figures['save_s']:.2f} s of "
          f"{figures['train_s']:.1f} s ({100 * figures['share']:.2f}%)", flush=True)
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each variant (default 3)")
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps per run (default 300)")
    parser.add_argument("--every", type=int, default=100, help="checkpoint_steps of the 'on' variant (default 100)")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/checkpoint_overhead.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="prefalign-bench-ckpt-") as scratch:
        root = Path(scratch)
        cli("synth", "--format", "hh-rlhf", "--name", "hh", "--records", 3000, "--out", root / "raw.jsonl")
        cli("normalize", "--format", "hh-rlhf", "--name", "hh", "--input", root / "raw.jsonl", "--records",
            root / "norm.jsonl", "--rejects", root / "rej.jsonl", "--stats", root / "stats.json")
        cli("split", "--inputs", root / "norm.jsonl", "--train", root / "train.jsonl", "--test", root / "test.jsonl",
            "--rejects", root / "dup.jsonl", "--stats", root / "split.json")
        cli("build-base", "--train", root / "train.jsonl", "--out", root / "base", "--vocab-size", 400)
        common = ["--max-steps", args.steps, "--logging-steps", 10, "--threads", 2]
        cli("sft", "--base", root / "base", "--train", root / "train.jsonl", "--out", root / "sft", "--metrics",
            root / "m.json", "--log-history", root / "h.jsonl", *common, "--checkpoint-steps", 0)

        variants = {"off": 0, "on": args.every}
        walls: dict[str, dict[str, list[float]]] = {step: {v: [] for v in variants} for step in ("sft", "dpo")}
        weights: dict[str, dict[str, bytes]] = {step: {} for step in ("sft", "dpo")}
        for run in range(args.runs):
            for variant, every in variants.items():  # alternate, so load changes hit both alike
                out = root / f"{variant}"
                ckpt = ["--checkpoint-steps", every, "--checkpoint-dir", out / "checkpoints"]
                walls["sft"][variant].append(cli(
                    "sft", "--base", root / "base", "--train", root / "train.jsonl", "--out", out / "sft",
                    "--metrics", out / "sm.json", "--log-history", out / "sh.jsonl", *common, *ckpt))
                walls["dpo"][variant].append(cli(
                    "dpo", "--sft", root / "sft", "--train", root / "train.jsonl", "--out", out / "dpo",
                    "--metrics", out / "dm.json", "--log-history", out / "dh.jsonl", *common, *ckpt))
                weights["sft"][variant] = (out / "sft/model.safetensors").read_bytes()
                weights["dpo"][variant] = (out / "dpo/model.safetensors").read_bytes()
                print(f"run {run + 1} {variant:3s}: sft {walls['sft'][variant][-1]:6.1f} s, "
                      f"dpo {walls['dpo'][variant][-1]:6.1f} s", flush=True)

        shares = {step: in_process_share(step, root, args) for step in ("sft", "dpo")}

    saves = -(-args.steps // args.every)  # every `every` steps, and at the last step
    summary = {"what": f"wall seconds of one `prefalign sft|dpo --max-steps {args.steps}` process (2 threads), "
                       f"checkpoints off vs every {args.every} steps ({saves} saves); shared machine, noisy",
               "runs_s": walls, "median_s": {}, "ratio_on_over_off": {}, "seconds_per_checkpoint": {},
               "same_weights": {step: weights[step]["on"] == weights[step]["off"] for step in weights},
               "in_process": shares,
               "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()}}
    for step in walls:
        off, on = (statistics.median(walls[step][v]) for v in ("off", "on"))
        summary["median_s"][step] = {"off": round(off, 2), "on": round(on, 2)}
        summary["ratio_on_over_off"][step] = round(on / off, 3)
        summary["seconds_per_checkpoint"][step] = round((on - off) / saves, 3)
        print(f"{step}: median off {off:.1f} s, on {on:.1f} s, ratio {on / off:.3f}, "
              f"{(on - off) / saves:+.2f} s per checkpoint, same weights: {summary['same_weights'][step]}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
