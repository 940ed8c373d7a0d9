"""GPU reruns of one config: what each run made, how far the runs spread, and the bounds derived from it.

    python bench/gpu_spread.py summarize RUN_DIR --label det1 --rc 0 --wall-s 231 --out RUN_DIR/summary.json
    python bench/gpu_spread.py derive S1.json S2.json ... --template expected/default.yaml \
        --expected-out expected/gpu-demo.yaml --out bench/results/gpu_reruns_<gpu>.json

`summarize` reads one finished run folder: every metric `check` can name (through
prefalign.evaluation.check.load_sources, so the names are the same), the manifest's artifact
digests, each rule's wall time (its Snakemake benchmark file), the backend and precision each
training step resolved, the GPU-determinism state in force (environment.json), and the torch ops
that warned they have no deterministic implementation (the steps' logs).

`derive` compares the runs: which artifacts are bit-identical across the runs made with the
deterministic settings (and across all), each metric's values, range and standard deviation,
and writes an expected file for `snakemake check` in the format of expected/default.yaml, with
the same metrics and claims as the template (the CPU default's), each entry with its derivation
beside it:

    value      the median over the deterministic runs
    tolerance  the largest of: the range over *all* runs (deterministic and not: GPU
               nondeterminism is part of what a rerun elsewhere will see), 3 x the standard
               deviation over all runs, and 3 x the metric's own standard error (its 95%
               bootstrap interval's half-width / 1.96, the mean over the runs) where it has one;
               rounded up at the 4th decimal (integers: up to a whole number). Never tighter than
               the observed range.
    claims     (min / max / above / below of the template) kept where every run satisfies them;
               a claim some run breaks is left out, and the file says which and why.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import re
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

NONDETERMINISTIC = re.compile(r"(\w[\w.:]*) does not have a deterministic implementation")
TRAINING_STEPS = {"sft": "results/sft/metrics.json", "dpo": "results/dpo/metrics.json",
                  "reward": "results/reward_model/metrics.json"}


# ---------------------------------------------------------------- summarize one run

def rule_seconds(run: Path) -> dict[str, float]:
    out = {}
    for path in sorted((run / "benchmarks").rglob("*.tsv")):
        with open(path, encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        if rows:
            out[str(path.relative_to(run / "benchmarks")).removesuffix(".tsv")] = float(rows[-1]["s"])
    return out


def summarize(run: Path, label: str, rc: int, wall_s: float, deterministic: bool) -> dict:
    from prefalign.evaluation.check import load_sources

    results = run / "results"
    eval_files = sorted(results.glob("eval/*/metrics.json"))
    comparisons = sorted(results.glob("eval/compare/*.json"))
    judge = results / "eval" / "judge.json"
    try:
        sources = load_sources(eval_files, comparisons, judge if judge.exists() else None)
    except (OSError, ValueError, KeyError) as exc:
        sources = {"error": str(exc)}
    manifest_path = results / "manifest.json"
    artifacts = {}
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        artifacts = {path: entry["sha256"] for path, entry in manifest.get("artifacts", {}).items()}
    resolved = {}
    for step, path in {**TRAINING_STEPS, "reference": "results/reference/logps.json"}.items():
        if (run / path).exists():
            data = json.loads((run / path).read_text(encoding="utf-8"))
            resolved[step] = data.get("resolved")
    dpo_train = None
    if (run / TRAINING_STEPS["dpo"]).exists():
        dpo_train = json.loads((run / TRAINING_STEPS["dpo"]).read_text(encoding="utf-8"))["train"]
    environments = {str(p.relative_to(run)): json.loads(p.read_text(encoding="utf-8")).get("gpu_determinism")
                    for p in sorted(results.rglob("environment.json"))}
    warned: dict[str, set] = {}
    for log in sorted((run / "logs").rglob("*.log")):
        for op in NONDETERMINISTIC.findall(log.read_text(encoding="utf-8", errors="replace")):
            warned.setdefault(op, set()).add(str(log.relative_to(run)))
    return {"label": label, "run": str(run), "pipeline_rc": rc, "pipeline_wall_s": wall_s,
            "deterministic_requested": deterministic, "metrics": sources, "artifacts": artifacts,
            "rule_seconds": rule_seconds(run), "resolved": resolved, "dpo_train": dpo_train,
            "gpu_determinism": environments,
            "nondeterministic_ops": {op: sorted(logs) for op, logs in warned.items()}}


# ---------------------------------------------------------------- derive the bounds

def metric(summary: dict, name: str) -> float | None:
    from prefalign.evaluation.check import lookup

    return lookup(summary["metrics"], name)


def round_up(x: float, integer: bool) -> float:
    if integer:
        return float(math.ceil(x - 1e-9))
    return math.ceil(x * 10_000 - 1e-9) / 10_000


def holds(summary: dict, key: str, bound, value: float) -> bool:
    from prefalign.evaluation.check import resolve_bound

    limit, missing = resolve_bound(summary["metrics"], bound)
    if limit is None or missing:
        return False
    return {"min": value >= limit, "max": value <= limit, "above": value > limit, "below": value < limit}[key]


def derive_entry(name: str, template: dict, runs: list[dict], deterministic: list[dict]) -> tuple[dict, str]:
    """(the expected entry, its derivation as a comment) for one metric."""
    values = [metric(r, name) for r in runs]
    if any(v is None for v in values):
        return {}, f"left out: missing in run(s) {', '.join(r['label'] for r, v in zip(runs, values) if v is None)}"
    det_values = [metric(r, name) for r in deterministic] or values
    entry: dict = {}
    notes = []
    if "value" in template:
        integer = all(float(v).is_integer() for v in values) and float(template["value"]).is_integer()
        centre = statistics.median(det_values)
        spread = max(values) - min(values)
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        se_terms = []
        for r in runs:
            half = metric(r, f"{name}.half_width")
            if half is not None:
                se_terms.append(half / 1.96)
        se = statistics.mean(se_terms) if se_terms else None
        value = int(round(centre)) if integer else round(centre, 4)
        candidates = {"range": spread, "3 sd": 3 * sd}
        if se is not None:
            candidates["3 SE"] = 3 * se
        # The written value is rounded: the tolerance also covers every run's distance from it.
        candidates["runs' distance from the value"] = max(abs(v - value) for v in values)
        tolerance = round_up(max(candidates.values()), integer)
        if name.startswith("base.") and spread == 0.0 and template.get("tolerance", 1) == 0.0 and value == centre:
            tolerance = 0.0  # exact by construction (the base is its own reference), and exact in every run
            notes.append("exact by construction")
        entry["value"] = value
        entry["tolerance"] = int(tolerance) if integer else tolerance
        notes.append("runs " + ", ".join(f"{r['label']} {v:.4g}" for r, v in zip(runs, values)))
        notes.append(", ".join(f"{k} {v:.4g}" for k, v in candidates.items()) + f" -> tolerance {entry['tolerance']}")
    dropped = []
    for key in ("min", "max", "above", "below"):
        if key not in template:
            continue
        broken = [r["label"] for r, v in zip(runs, values) if not holds(r, key, template[key], v)]
        if broken:
            dropped.append(f"claim {key} {template[key]} left out: broken in {', '.join(broken)}")
        else:
            entry[key] = template[key]
    notes += dropped
    return entry, "; ".join(notes)


def yaml_scalar(value) -> str:
    if isinstance(value, str):
        return value if re.fullmatch(r"[A-Za-z_][\w.]*", value) else json.dumps(value)
    return repr(value) if isinstance(value, float) else str(value)


def render_expected(entries: list[tuple[str, dict, str]], runs: list[dict], header: dict) -> str:
    det = [r["label"] for r in runs if r["deterministic_requested"]]
    lines = [
        "# What the GPU demo (configs/gpu-demo.yaml on config.yaml, profile gpu) must reproduce:",
        "# `snakemake check --profile profiles/gpu --configfile config.yaml configs/gpu-demo.yaml`.",
        "#",
        "# Written by bench/gpu_spread.py (never by hand) from GPU reruns of the same config and seed:",
        f"#   {header['gpu']}, {header['date']}, command: {header['command']}",
        f"#   runs: {', '.join(r['label'] for r in runs)} (deterministic GPU settings on: {', '.join(det) or 'none'})",
        "# Format: expected/default.yaml. Each value is the median over the deterministic runs; each",
        "# tolerance is the largest of the range over all runs, 3 sd over all runs and 3 x the metric's",
        "# own standard error (95% bootstrap interval / 1.96), rounded up; never tighter than the",
        "# observed range. The claims are the CPU default's (expected/default.yaml), kept where every",
        "# GPU run satisfies them. The derivation of each entry is the comment above it.",
        f"description: GPU demo (configs/gpu-demo.yaml), {header['gpu']}, derived from {len(runs)} reruns",
        "",
        "metrics:",
    ]
    for name, entry, note in entries:
        lines.append(f"  # {note}")
        if not entry:
            lines.append(f"  # {name}: (left out)")
            continue
        body = ", ".join(f"{k}: {yaml_scalar(v)}" for k, v in entry.items())
        lines.append(f"  {name}: {{{body}}}")
    return "\n".join(lines) + "\n"


def derive(summaries: list[dict], template_path: Path) -> tuple[list, dict]:
    from prefalign.evaluation.check import load_expected

    template = load_expected(template_path)
    finished = [s for s in summaries if s["pipeline_rc"] == 0]
    deterministic = [s for s in finished if s["deterministic_requested"]]
    entries = []
    for name, tmpl in template.items():
        entry, note = derive_entry(name, tmpl, finished, deterministic)
        entries.append((name, entry, note))
    return entries, spread_report(finished, deterministic)


def spread_report(runs: list[dict], deterministic: list[dict]) -> dict:
    def identical(group):
        if len(group) < 2:
            return None
        paths = sorted(set().union(*(r["artifacts"] for r in group)))
        same = [p for p in paths if len({r["artifacts"].get(p) for r in group}) == 1]
        return {"runs": [r["label"] for r in group], "artifacts": len(paths), "identical": len(same),
                "differ": [p for p in paths if p not in same]}

    names = sorted({f"{source}.{key}" for r in runs for source, flat in r["metrics"].items()
                    if isinstance(flat, dict) for key in flat})
    metrics = {}
    for name in names:
        values = [metric(r, name) for r in runs]
        if any(v is None for v in values):
            continue
        det_values = [metric(r, name) for r in deterministic]
        metrics[name] = {"values": dict(zip([r["label"] for r in runs], values)),
                         "range": max(values) - min(values),
                         "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
                         "deterministic_range": (max(det_values) - min(det_values)) if det_values else None}
    rules = sorted({k for r in runs for k in r["rule_seconds"]})
    seconds = {rule: {r["label"]: r["rule_seconds"].get(rule) for r in runs} for rule in rules}
    return {"identical_deterministic": identical(deterministic), "identical_all": identical(runs),
            "metrics": metrics, "rule_seconds": seconds,
            "pipeline_wall_s": {r["label"]: r["pipeline_wall_s"] for r in runs},
            "nondeterministic_ops": {r["label"]: r["nondeterministic_ops"] for r in runs},
            "resolved": {r["label"]: r["resolved"] for r in runs}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("summarize", help="one run folder -> its summary (JSON)")
    s.add_argument("run", type=Path)
    s.add_argument("--label", required=True)
    s.add_argument("--rc", type=int, required=True, help="the pipeline's exit status")
    s.add_argument("--wall-s", type=float, required=True, help="the pipeline's wall time (seconds)")
    s.add_argument("--deterministic", choices=["0", "1"], required=True, help="PREFALIGN_GPU_DETERMINISTIC of the run")
    s.add_argument("--out", type=Path, required=True)
    d = sub.add_parser("derive", help="summaries -> spread report (JSON) and an expected file (YAML)")
    d.add_argument("summaries", type=Path, nargs="+")
    d.add_argument("--template", type=Path, default=REPO / "expected/default.yaml",
                   help="expected file whose metrics and claims to carry over")
    d.add_argument("--expected-out", type=Path, required=True)
    d.add_argument("--out", type=Path, required=True, help="the spread report (JSON)")
    d.add_argument("--made-by", default="bash bench/gpu_reruns.sh", help="the command that made the runs")
    args = parser.parse_args()
    if args.command == "summarize":
        summary = summarize(args.run, args.label, args.rc, args.wall_s, args.deterministic == "1")
        args.out.write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        return
    summaries = [json.loads(p.read_text(encoding="utf-8")) for p in args.summaries]
    finished = [s for s in summaries if s["pipeline_rc"] == 0]
    if len([s for s in finished if s["deterministic_requested"]]) < 2:
        # Bounds from fewer than two finished reruns would be no spread at all: write none.
        report = {"error": f"{len(finished)} of {len(summaries)} runs finished; no bounds derived",
                  "runs": [{k: s[k] for k in ("label", "pipeline_rc", "pipeline_wall_s")} for s in summaries]}
        args.out.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        print(report["error"])
        sys.exit(1)
    entries, report = derive(summaries, args.template)
    gpu = next((e["hardware"]["gpu"]["name"] for e in gpu_environments(summaries)), "GPU")
    header = {"gpu": gpu, "date": datetime.date.today().isoformat(), "command": args.made_by}
    args.expected_out.write_text(render_expected(entries, [s for s in summaries if s["pipeline_rc"] == 0], header),
                                 encoding="utf-8")
    report.update(header=header, expected_file=str(args.expected_out),
                  entries={name: {"entry": entry, "derivation": note} for name, entry, note in entries},
                  runs=[{k: s[k] for k in ("label", "pipeline_rc", "pipeline_wall_s", "deterministic_requested",
                                           "gpu_determinism", "dpo_train")} for s in summaries])
    args.out.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    ident = report["identical_deterministic"]
    if ident:
        print(f"deterministic runs {ident['runs']}: {ident['identical']} of {ident['artifacts']} artifacts identical")
    if report["identical_all"]:
        print(f"all runs: {report['identical_all']['identical']} of {report['identical_all']['artifacts']} identical")
    print(f"wrote {args.expected_out} and {args.out}")


def gpu_environments(summaries: list[dict]):
    """The environment.json records of the runs' GPU steps (hardware with a GPU)."""
    for s in summaries:
        run = Path(s["run"])
        for path in sorted((run / "results").rglob("environment.json")):
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("hardware", {}).get("gpu"):
                yield data


if __name__ == "__main__":
    main()
