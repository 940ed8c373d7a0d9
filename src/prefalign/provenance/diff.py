"""Step `diff`: two runs side by side (`prefalign diff A B`).

A and B are each a run folder (its results/manifest.json), a manifest, or a published digest
file (expected/*-digests.json, `make digests`). Printed as Markdown (JSON with --json):

- artifacts: which are identical and which differ (sha256, and the job that made each), those
  only one side has; machine records (results/**/environment.json) are not compared
  (prefalign.provenance.digests decides an artifact's kind, as for the manifest and `check`);
- metrics: each metric of the expected file, A, B and B - A against its bound (the `--expected`
  file, else A's check.expected, else B's: its allowed range for each side, and |B - A| against
  the tolerance of a `value +- tolerance` entry); without an expected file, every metric that
  differs;
- what made them: the config keys that differ (the `check` section left out), packages, the
  CPU's numeric code paths (the steps' `cpu_numerics`, where either side has one; else the
  hardware record: CPU model, cores), GPUs, container and commit.

Exit status 0 when every compared artifact is identical, 1 when any differs (as diff(1)), 2 on
a file that is not a run, a manifest or a digest file.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from prefalign import tables
from prefalign.errors import ConfigError
from prefalign.evaluation import check as bounds
from prefalign.provenance import digests, published
from prefalign.provenance.verify import root_of

MANIFEST = Path("results/manifest.json")


@dataclass
class Side:
    """One side of the diff: a run (with its folder) or a published digest file."""

    label: str
    record: dict
    root: Path | None  # the run's folder; None for a digest file

    @property
    def kind(self) -> str:
        return "published digests" if self.root is None else "run"

    def metrics(self) -> dict[str, dict]:
        if self.root is None:
            return self.record.get("metrics") or {}
        return published.run_metrics(self.record, self.root)


def load_side(path: Path) -> Side:
    """A run folder, a manifest or a digest file; ConfigError for anything else."""
    path = Path(path)
    if path.is_dir():
        if not (path / MANIFEST).is_file():
            raise ConfigError(f"{path}: no {MANIFEST} (not a finished run's folder)")
        return Side(str(path), published.read_record(path / MANIFEST), path)
    record = published.read_record(path)
    if "made_by" in record:
        return Side(str(path), record, None)
    return Side(str(path), record, root_of(path, record))


# ---------------------------------------------------------------- the parts of the diff

def artifact_part(a: Side, b: Side) -> dict:
    ea, eb = digests.entries(a.record), digests.entries(b.record)
    result = digests.compare(ea, eb)
    differ = [{"path": p, "job": ea[p]["job"], "a": ea[p]["sha256"], "b": eb[p]["sha256"]}
              for p in result.differ + result.bounded]
    return {"compared": result.compared, "identical": result.identical, "differ": differ,
            "bounded": result.bounded, "only_a": result.only_a, "only_b": result.only_b,
            "machine_records": result.machine, "bit_identical": result.bit_identical}


def expected_path(a: Side, b: Side, given: Path | None) -> Path | None:
    """The expected file: --expected, else the sides' check.expected (found beside a run or here)."""
    if given is not None:
        return given
    for side in (a, b):
        config = side.record.get("config") if side.root is None else side.record.get("run", {}).get("config")
        name = ((config or {}).get("check") or {}).get("expected")
        if not name:
            continue
        for base in ([side.root] if side.root else []) + [Path.cwd()]:
            candidate = Path(name) if Path(name).is_absolute() else base / name
            if candidate.is_file():
                return candidate
    return None


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def metric_part(a: Side, b: Side, expected: Path | None) -> dict:
    sa, sb = a.metrics(), b.metrics()
    if expected is None:
        rows = []
        for source in sorted(set(sa) | set(sb)):
            for metric in sorted(set(sa.get(source, {})) | set(sb.get(source, {}))):
                va, vb = _number(sa.get(source, {}).get(metric)), _number(sb.get(source, {}).get(metric))
                if va != vb:
                    rows.append({"metric": f"{source}.{metric}", "a": va, "b": vb,
                                 "delta": None if va is None or vb is None else vb - va})
        return {"expected": None, "rows": rows}
    entries = bounds.load_expected(expected)
    ra, rb = bounds.check_metrics(entries, sa), bounds.check_metrics(entries, sb)
    rows = []
    for name, row_a, row_b in zip(entries, ra, rb):
        delta = None if row_a["value"] is None or row_b["value"] is None else row_b["value"] - row_a["value"]
        tolerance = entries[name].get("tolerance")
        rows.append({"metric": name, "a": row_a["value"], "b": row_b["value"], "delta": delta,
                     "bound": row_a["expected"], "status_a": row_a["status"], "status_b": row_b["status"], "tolerance": tolerance,
                     "delta_within_tolerance": (None if tolerance is None or delta is None
                                                else abs(delta) <= tolerance)})
    return {"expected": str(expected), "rows": rows}


def made_part(a: Side, b: Side) -> dict:
    ma, mb = digests.made_by(a.record), digests.made_by(b.record)

    def rows(x, y) -> list[dict]:
        return [{"key": k, "a": va, "b": vb} for k, va, vb in digests.changes(x, y)]

    numerics = ma.get("cpu_numerics") is not None or mb.get("cpu_numerics") is not None
    cpu_key = "cpu_numerics" if numerics else "hardware"
    return {
        "config": rows(digests.config_of(a.record), digests.config_of(b.record)),
        "packages": rows(ma.get("packages"), mb.get("packages")),
        "cpu": {"record": cpu_key, "changes": rows(ma.get(cpu_key), mb.get(cpu_key)),
                "hardware": {"a": ma.get("hardware"), "b": mb.get("hardware")}},
        "gpu": rows({"gpus": ma.get("gpus")}, {"gpus": mb.get("gpus")}),
        "container": rows(ma.get("container"), mb.get("container")),
        "commit": rows({k: ma.get(k) for k in ("commit", "dirty", "prefalign")},
                       {k: mb.get(k) for k in ("commit", "dirty", "prefalign")}),
        "date": {"a": ma.get("date"), "b": mb.get("date")},
    }


def diff(a: Side, b: Side, expected: Path | None = None) -> dict:
    return {"a": {"path": a.label, "kind": a.kind}, "b": {"path": b.label, "kind": b.kind},
            "artifacts": artifact_part(a, b), "metrics": metric_part(a, b, expected_path(a, b, expected)),
            **made_part(a, b)}


# ---------------------------------------------------------------- Markdown

def _value(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return "nan" if math.isnan(x) else f"{x:.6g}"
    return x if isinstance(x, str) else json.dumps(x, sort_keys=True)


def _changes(title: str, changes: list[dict], same: str) -> list[str]:
    if not changes:
        return [f"## {title}", "", same, ""]
    return [f"## {title}", "", tables.markdown(["key", "A", "B"], [[c["key"], _value(c["a"]), _value(c["b"])]
                                                                    for c in changes])]


def markdown(result: dict) -> str:
    art = result["artifacts"]
    lines = ["# prefalign diff", "", f"- A: `{result['a']['path']}` ({result['a']['kind']}, {result['date']['a']})",
             f"- B: `{result['b']['path']}` ({result['b']['kind']}, {result['date']['b']})", "", "## Artifacts", ""]
    verdict = "bit-identical" if art["bit_identical"] else f"{len(art['differ']) + len(art['only_a']) + len(art['only_b'])} differ"
    lines.append(f"{art['compared']} compared: {len(art['identical'])} identical, {verdict}; "
                 f"{len(art['machine_records'])} machine records not compared (results/**/environment.json).")
    lines.append("")
    rows = [[d["path"], "differs" + (" (bounded)" if d["path"] in art["bounded"] else ""), d["job"] or "-",
             d["a"][:12], d["b"][:12]] for d in art["differ"]]
    rows += [[p, "only in A", "-", "", ""] for p in art["only_a"]] + [[p, "only in B", "-", "", ""] for p in art["only_b"]]
    rows += [[p, "identical", "", "", ""] for p in art["identical"]]
    lines += [tables.markdown(["artifact", "", "made by", "A sha256", "B sha256"], rows)]

    metrics = result["metrics"]
    if metrics["expected"]:
        lines += [f"## Metrics against {metrics['expected']}", "",
                  tables.markdown(["metric", "A", "B", "B - A", "bound", "A", "B"],
                                  [[r["metric"], _value(r["a"]), _value(r["b"]), _value(r["delta"])
                                    + ("" if r["delta_within_tolerance"] is None else
                                       (" (within tolerance)" if r["delta_within_tolerance"] else " (OVER tolerance)")),
                                    r["bound"] or "-", r["status_a"], r["status_b"]] for r in metrics["rows"]])]
    else:
        lines += ["## Metrics that differ (no expected file: pass --expected for bounds)", ""]
        lines += [tables.markdown(["metric", "A", "B", "B - A"],
                                  [[r["metric"], _value(r["a"]), _value(r["b"]), _value(r["delta"])]
                                   for r in metrics["rows"]]) if metrics["rows"] else "none\n"]
    lines += _changes("Config", result["config"], "identical (the `check` section left out)")
    lines += _changes("Packages", result["packages"], "identical")
    cpu = result["cpu"]
    title = "CPU features and dispatch level (cpu_numerics)" if cpu["record"] == "cpu_numerics" else \
        "CPU (hardware record; neither run recorded cpu_numerics)"
    lines += _changes(title, cpu["changes"], "identical")
    lines += _changes("GPU", result["gpu"], "identical")
    lines += _changes("Container", result["container"], "identical")
    lines += _changes("Commit", result["commit"], "identical")
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------- CLI

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", type=Path, help="a run folder, its results/manifest.json, or a published digest file")
    parser.add_argument("b", type=Path, help="the other run folder, manifest or digest file")
    parser.add_argument("--expected", type=Path, help="expected bounds (YAML) for the metric deltas (default: "
                                                      "check.expected of A's config, else B's, where found)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")


def main(args: argparse.Namespace) -> None:
    result = diff(load_side(args.a), load_side(args.b), args.expected)
    print(json.dumps(result, indent=2, sort_keys=True, default=str) if args.json else markdown(result), end="\n"
          if args.json else "")
    if not result["artifacts"]["bit_identical"]:
        sys.stdout.flush()
        sys.exit(1)
