"""How far prefalign's DPO step under DDP (2 CPU processes, gloo) lands from one process: the spread
behind the tolerances of tests/train/test_ddp_cpu.py.

Runs that test's own DPO run (tests/train/ddp_probe.py: the workflow's launch line, the tiny_base
model and data, packed micro-batches, the cached reference, 4 steps of 8 pairs) for each seed,
once with one process and once with two, and compares the logged loss and gradient norm of every
step; the first seed's two-process run is repeated to see whether a run repeats itself exactly.
Prints the figures and writes JSON. CPU only; about 40 s per seed on 2 cores.

    python bench/ddp_cpu_spread.py --seeds 0-7 --out bench/results/ddp_cpu_spread.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO / "tests"), str(REPO / "tests/train")]

from conftest import make_tiny_base
from ddp_probe import DPO_FLAGS, STEP_PAIRS, launch_line, reference_logps, run_dpo


def seeds(text: str) -> list[int]:
    if "-" in text:
        first, last = text.split("-")
        return list(range(int(first), int(last) + 1))
    return [int(s) for s in text.split(",")]


def cut_shape(run: dict) -> list[list[list[int]]]:
    """Per step, per process, the pairs of each micro-batch that ran."""
    steps = len(run["records"][0]["steps"])
    return [[[len(g) for g in r["steps"][i]["ran"]] for r in run["records"]] for i in range(steps)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-7", help="data-order seeds: a range 0-7 or a list 0,3,7 (default 0-7)")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/ddp_cpu_spread.json", help="JSON output")
    args = parser.parse_args()
    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="prefalign-ddp-spread-") as scratch:
        root = Path(scratch)
        make_tiny_base(root / "tiny")
        base, train = root / "tiny/base", root / "tiny/train.jsonl"
        reference_logps(base, train, root / "reference.json")
        repeat = None
        for seed in seeds(args.seeds):
            one = run_dpo(root / f"s{seed}x1", 1, base, train, root / "reference.json", seed)
            two = run_dpo(root / f"s{seed}x2", 2, base, train, root / "reference.json", seed)
            for run in (one, two):
                if run["returncode"] != 0:
                    raise SystemExit(f"seed {seed}: a run failed:\n{run['output'][-4000:]}")
            if repeat is None:
                again = run_dpo(root / f"s{seed}x2again", 2, base, train, root / "reference.json", seed)
                repeat = {"seed": seed, "identical_log": again["log"] == two["log"],
                          "identical_model": (root / f"s{seed}x2/out/model/model.safetensors").read_bytes()
                          == (root / f"s{seed}x2again/out/model/model.safetensors").read_bytes()}
            for step, (a, b) in enumerate(zip(one["log"], two["log"]), start=1):
                ulp = float(np.spacing(np.float32(abs(a["loss"]))))
                rows.append({"seed": seed, "step": step, "loss_1": a["loss"], "loss_2": b["loss"],
                             "loss_diff": b["loss"] - a["loss"], "loss_diff_ulps": abs(b["loss"] - a["loss"]) / ulp,
                             "grad_norm_1": a["grad_norm"], "grad_norm_2": b["grad_norm"],
                             "grad_norm_rel": abs(b["grad_norm"] - a["grad_norm"]) / a["grad_norm"],
                             "cuts_2": cut_shape(two)[step - 1]})
            print(f"seed {seed}: " + ", ".join(f"{r['loss_diff_ulps']:.0f} ulp / {r['grad_norm_rel']:.1e}"
                                               for r in rows if r["seed"] == seed), flush=True)
    worst_ulps = max(r["loss_diff_ulps"] for r in rows)
    worst_rel = max(r["grad_norm_rel"] for r in rows)
    from prefalign.runtime import environment

    summary = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", "bench/ddp_cpu_spread.py", *sys.argv[1:]]),
        "what": "per logged step: loss and grad_norm of 2 CPU processes (gloo) minus 1 process, same 8 pairs per step",
        "launch": launch_line(2), "dpo_flags": DPO_FLAGS, "step_pairs": STEP_PAIRS,
        "wall_s": time.perf_counter() - started, "host": platform.node(), "cpu": cpu_model(),
        "environment": environment(), "repeat": repeat,
        "max_loss_diff_ulps": worst_ulps, "max_grad_norm_rel": worst_rel, "steps": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"{len(rows)} steps: largest loss difference {worst_ulps:.0f} ulp(s) of fp32, largest grad-norm difference "
          f"{worst_rel:.2e} relative; a rerun repeats exactly: {repeat}")
    print(f"wrote {args.out}")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
