"""Issue 22's floors from bench/dpo_throughput.py results: which are met, with the figures.

    python bench/dpo_floors.py --real R.json [--real-extra R2.json] --fixed F.json --out floors.json

On real hh-rlhf lengths, 32 pairs per optimizer step, reference pass counted (the `honest`
figure: cached setups pay the pass, one epoch), medians over the runs:
  - prefalign's fastest >= 5 x the faster TRL-standalone baseline and >= 2.8 x the faster
    Unsloth-standalone baseline (useful tokens/s);
  - its peak memory <= 0.6 x that TRL baseline's;
  - >= 80% of prefalign's own fixed-512 throughput (the fastest fixed-512 setup, also honest);
  - >= 40% MFU at fixed 512 by the stated convention (bench/dpo_throughput.py: LoRA 4N + 2N for
    the reference) against the spec peak.
A floor whose inputs did not run is reported as not measured, never as met. Results written
before the honest figure and the MFU convention (2026-11-29) are recomputed from their own numbers
(`recomputed: true`): honest = with the reference pass where it was timed, MFU = 6 N x honest.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

PREFIX_TRL, PREFIX_UNSLOTH = "trl-standalone", "unsloth-standalone"


def upgrade(result: dict, data: dict) -> dict:
    """A result written before the honest figure and the MFU convention existed, recomputed from its own numbers."""
    if "useful_tokens_per_s_honest_median" in result:
        return result
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from dpo_throughput import FLOPS_CONVENTION, flops_per_token, spec_peak_tflops

    honest = result.get("useful_tokens_per_s_with_reference_pass_median") or result["useful_tokens_per_s_median"]
    per_token, formula = flops_per_token(data["parameters"], lora=True, reference_forward=True)
    spec, _ = spec_peak_tflops(data.get("environment", {}).get("hardware", {}).get("gpu", {}).get("name"))
    achieved = per_token * honest / 1e12
    measured = data.get("bf16_matmul_peak_tflops")
    return {**result, "useful_tokens_per_s_honest_median": honest, "recomputed": True,
            "mfu": {"convention": FLOPS_CONVENTION, "flops_per_token": formula, "achieved_tflops_per_gpu": achieved,
                    "vs_spec_peak": achieved / spec if spec else None,
                    "vs_measured_peak": achieved / measured if measured else None}}


def load(paths) -> tuple[dict, dict]:
    results, meta = {}, {}
    for path in paths:
        if path and Path(path).exists():
            data = json.loads(Path(path).read_text())
            keys = ("date", "command", "bf16_matmul_peak_tflops", "spec_peak_tflops", "partial")
            meta[str(path)] = {k: data.get(k) for k in keys}
            meta[str(path)]["gpu"] = data.get("environment", {}).get("hardware", {}).get("gpu", {}).get("name")
            results.update({k: upgrade(v, data) for k, v in data["results"].items() if "error" not in v})
    return results, meta


def fastest(results: dict, pick) -> tuple[str, dict] | tuple[None, None]:
    rows = [(r["useful_tokens_per_s_honest_median"], name) for name, r in results.items() if pick(name)]
    if not rows:
        return None, None
    name = max(rows)[1]
    return name, results[name]


def floor(value, threshold, at_least: bool, what: str, **figures) -> dict:
    if value is None:
        return {"what": what, "met": None, "value": None, "threshold": threshold, "note": "not measured", **figures}
    met = value >= threshold if at_least else value <= threshold
    return {"what": what, "met": met, "value": value, "threshold": threshold, **figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, required=True)
    parser.add_argument("--real-extra", type=Path)
    parser.add_argument("--fixed", type=Path, nargs="+", required=True, help="fixed-512 result(s)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    real, real_meta = load([args.real, args.real_extra])
    fixed, fixed_meta = load(args.fixed)

    def ours(name):
        return not name.startswith(("trl-standalone", "unsloth-standalone")) and "-x" not in name

    best, best_r = fastest(real, ours)
    trl, trl_r = fastest(real, lambda n: n.startswith(PREFIX_TRL))
    uns, uns_r = fastest(real, lambda n: n.startswith(PREFIX_UNSLOTH))
    fbest, fbest_r = fastest(fixed, ours)
    tok = (lambda r: r["useful_tokens_per_s_honest_median"]) if best_r else None
    floors = {
        "vs_trl_standalone": floor(tok(best_r) / tok(trl_r) if best_r and trl_r else None, 5.0, True,
                                   "useful tok/s, fastest prefalign / faster TRL-standalone", ours=best, baseline=trl),
        "vs_unsloth_standalone": floor(tok(best_r) / tok(uns_r) if best_r and uns_r else None, 2.8, True,
                                       "useful tok/s, fastest prefalign / faster Unsloth-standalone", ours=best,
                                       baseline=uns),
        "memory_vs_trl": floor(best_r["peak_gib_median"] / trl_r["peak_gib_median"]
                               if best_r and trl_r and trl_r.get("peak_gib_median") else None, 0.6, False,
                               "peak GiB, fastest prefalign / that TRL baseline", ours=best, baseline=trl),
        "real_vs_fixed512": floor(tok(best_r) / fbest_r["useful_tokens_per_s_honest_median"]
                                  if best_r and fbest_r else None, 0.8, True,
                                  "useful tok/s on real lengths / prefalign's fastest at fixed 512", ours=best,
                                  fixed=fbest),
        "mfu_fixed512_spec": floor(fbest_r["mfu"]["vs_spec_peak"] if fbest_r else None, 0.4, True,
                                   "MFU at fixed 512 (LoRA 4N + 2N reference, honest) / spec peak", ours=fbest,
                                   vs_measured_peak=fbest_r["mfu"]["vs_measured_peak"] if fbest_r else None),
    }
    figures = {name: {k: r.get(k) for k in ("useful_tokens_per_s_median", "useful_tokens_per_s_honest_median",
                                            "useful_tokens_per_s_with_reference_pass_3_epochs_median",
                                            "peak_gib_median", "micro_batch", "accumulation", "mfu",
                                            "mfu_training_steps_only", "reference_pass_tokens_per_s",
                                            "timed_step_s_median", "useful_tokens_per_s_runs")}
               for name, r in {**{f"real/{k}": v for k, v in real.items()},
                               **{f"fixed512/{k}": v for k, v in fixed.items()}}.items()}
    import datetime
    import sys

    report = {"command": " ".join(["python", "bench/dpo_floors.py", *sys.argv[1:]]),
              "computed": datetime.date.today().isoformat(), "floors": floors, "figures": figures,
              "sources": {**real_meta, **fixed_meta}}
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    for name, f in floors.items():
        state = "not measured" if f["met"] is None else ("MET" if f["met"] else "missed")
        value = f"{f['value']:.3f}" if f["value"] is not None else "-"
        print(f"{name:24s} {state:12s} {value:>8s} (floor {'>=' if name != 'memory_vs_trl' else '<='} "
              f"{f['threshold']}) {f['what']}")


if __name__ == "__main__":
    main()
