"""Are a run's bytes the same on another CPU? The steps that compute with torch (build-base, sft, dpo,
evaluate with generation; tests/numerics_chain.py, a tiny model) at each pinning level of
prefalign.numerics, on this machine's CPU and under QEMU's user mode as other CPUs (their CPUID and
instruction sets, up to AVX2: QEMU 7.2 has no AVX-512), plus the chain's native wall time per level.

    python bench/cpu_numerics.py [--cpus Haswell EPYC-Rome SandyBridge] [--runs 3]

Prints a table (one row per level and CPU: the digests of the SFT and DPO weights, the generations
and the evaluation metrics; `same` when every output equals this machine's own run at that level)
and writes bench/results/cpu_numerics.json. A level a CPU cannot run (avx2 on a CPU without AVX2)
is skipped, and a CPU without AVX2 (SandyBridge: AVX only) runs `portable` only. A CPU without AVX
cannot run these libraries at all: under QEMU's Nehalem the DPO step died of SIGILL at every level.
`native` is the libraries' own choice, here under QEMU too, which is what differs.
Needs qemu-user (apt-get install qemu-user) for the emulated CPUs.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO / "tests")]

from conftest import make_tiny_base  # noqa: E402
from numerics_chain import OUTPUTS, chain_digests  # noqa: E402

from prefalign.runtime import cpu_model  # noqa: E402

# QEMU CPU models: their vendor and whether they have AVX2 (the avx2 level needs it).
CPUS = {"Haswell": ("GenuineIntel", True), "Icelake-Server": ("GenuineIntel", True),
        "EPYC-Rome": ("AuthenticAMD", True), "SandyBridge": ("GenuineIntel", False)}
LEVELS = ("native", "avx2", "portable")
SHOWN = ("sft/model.safetensors", "dpo/model.safetensors", "generations.jsonl", "eval.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus", nargs="*", default=["Haswell", "EPYC-Rome", "SandyBridge"], choices=list(CPUS),
                        help="QEMU CPU models to emulate (default: an Intel and an AMD with AVX2, one without)")
    parser.add_argument("--runs", type=int, default=3, help="native timings of the chain per level (median)")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/cpu_numerics.json")
    args = parser.parse_args()
    qemu = shutil.which("qemu-x86_64")
    if args.cpus and qemu is None:
        sys.exit("qemu-x86_64 not found: apt-get install qemu-user (or pass --cpus with no value)")

    rows, timings = [], {}
    with tempfile.TemporaryDirectory(prefix="prefalign-numerics-") as scratch:
        data = make_tiny_base(Path(scratch) / "data")
        for level in LEVELS:
            env = {"PREFALIGN_CPU_NUMERICS": level}
            walls, here = [], None
            for run in range(args.runs):
                start = time.perf_counter()
                digests = chain_digests(data, Path(scratch) / f"{level}-here-{run}", env)
                walls.append(time.perf_counter() - start)
                assert here in (None, digests), f"{level}: two runs on this CPU differ"
                here = digests
            timings[level] = {"runs_s": [round(w, 2) for w in walls], "median_s": round(statistics.median(walls), 2)}
            rows.append({"level": level, "cpu": "this machine", "digests": here, "same": True})
            print(f"{level:9s} this machine: chain median {timings[level]['median_s']:.1f} s", flush=True)
            for cpu in args.cpus:
                vendor, has_avx2 = CPUS[cpu]
                if level != "portable" and not has_avx2:
                    continue  # avx2 needs AVX2; such a CPU is the portable level's
                start = time.perf_counter()
                digests = chain_digests(data, Path(scratch) / f"{level}-{cpu}", env, (qemu, "-cpu", cpu))
                wall = time.perf_counter() - start
                rows.append({"level": level, "cpu": f"QEMU {cpu} ({vendor})", "digests": digests,
                             "same": digests == here, "differ": sorted(k for k in OUTPUTS if digests[k] != here[k]),
                             "wall_s": round(wall, 1)})
                print(f"{level:9s} {cpu}: {'same' if digests == here else 'DIFFERS'} ({wall:.0f} s)", flush=True)

    header = f"| level | CPU | {' | '.join(SHOWN)} | same as this machine's |"
    print(header + "\n|" + "---|" * (len(SHOWN) + 3))
    for row in rows:
        print(f"| {row['level']} | {row['cpu']} | " + " | ".join(row["digests"][k][:12] for k in SHOWN)
              + f" | {'yes' if row['same'] else 'no: ' + ', '.join(row['differ'])} |")
    base = timings["native"]["median_s"]
    for level in LEVELS:
        print(f"chain wall time, {level}: median {timings[level]['median_s']:.1f} s "
              f"({timings[level]['median_s'] / base:.2f} x native)")
    result = {
        "command": " ".join(["python bench/cpu_numerics.py", *sys.argv[1:]]), "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpu": cpu_model(), "platform": platform.platform(), "python": platform.python_version()},
        "chain": "tests/numerics_chain.py: build-base, sft 6 steps, dpo 3 steps, evaluate (8 judged prompts)",
        "rows": rows, "native_chain_timings": timings,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
