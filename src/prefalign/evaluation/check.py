"""Step `check`: do a run's metrics fall within the expected bounds? (artifact evaluation)

The expected file (expected/default.yaml for the embedded default) names metrics as
`<source>.<metric>`, where source is an evaluated model (`dpo`, from results/eval/dpo/
metrics.json), a comparison (`dpo_vs_sft`) or the reward-model judge (`judge`, from
results/eval/judge.json, when the run has one), and gives each metric bounds:

    metrics:
      dpo.implicit_reward_accuracy: {min: 0.75}              # a floor
      dpo.kl_mean: {value: 0.9, tolerance: 0.5}              # a measured value, +- tolerance
      dpo.judge_accuracy: {min: sft.judge_accuracy}          # a bound may name another metric
      base.reward_margin_mean: {value: 0.0, tolerance: 0, max: 0.0}

Keys of an entry: `value` with `tolerance` (absolute), `min`, `max` (inclusive), `above`,
`below` (strict); several narrow each other. A bound is a number, a metric name, or a sum of
them joined by ` + `. Every metric with a 95% interval also has `<metric>.low`, `.high` and
`.half_width` (a model's `intervals`; a comparison's greedy interval for `win_rate`, its
sampled one for `win_rate_sampled`), so claims about intervals can be written:

      dpo_vs_sft.win_rate.low: {above: 0.5}                  # the interval lies above 0.5
      dpo.judge_accuracy: {above: sft.judge_accuracy + dpo.judge_accuracy.half_width}

A third top key, `spread`, records how much a metric moves between reruns of the same config
with other seeds (bench/seed_spread.py measures it), one entry per metric name as above:

    spread:
      dpo_vs_sft.win_rate: {sd: 0.012, min: 0.49, max: 0.53, runs: 7, source: bench/results/seed_spread.json}

`sd` (the standard deviation over the runs, >= 0) and `runs` (an integer >= 2) are required;
`min` and `max` (numbers, min <= max) and `source` (text) are optional. The report reads it
(`load_spread`) to call a win-rate gain smaller than the rerun spread "within rerun noise"
(prefalign.evaluation.verdict); the check itself does not bound anything with it.

The step prints one table row per metric (value, allowed range, ok / OUT / MISSING), writes
the table, and exits 1 when any row is not ok. A malformed expected file is refused with its
file, line and key (exit 2). Given the run's manifest (--manifest), it first re-hashes the run
against it and refuses a run that does not match (exit 5), then compares the artifacts with the
published digests (--digests; prefalign.provenance.published) and prints the result above the
table: a digest that differs is named, and the bounds decide.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from prefalign import tables
from prefalign.errors import ConfigError
from prefalign.yamlio import load_yaml, where

ENTRY_KEYS = ("value", "tolerance", "min", "max", "above", "below")
BOUND_KEYS = ("min", "max", "above", "below")
TOP_KEYS = ("description", "metrics", "spread")
SPREAD_KEYS = ("sd", "min", "max", "runs", "source")


def _where(path: Path, keys: list) -> str:
    """`file:line` of the key (or its deepest set parent) in the expected file, else the file."""
    return where([path], keys).removesuffix(": ") or str(path)


class _At:
    """`file:line` of a key, looked up only when a message is formatted: each lookup parses the file again, so
    computing it for every entry of a valid file cost seconds."""

    def __init__(self, path: Path, keys: list):
        self.path, self.keys = path, keys

    def __format__(self, spec: str) -> str:
        return format(_where(self.path, self.keys), spec)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_spread(path: Path, spread) -> dict[str, dict]:
    """The `spread` mapping, validated (see the module doc); ConfigError names file, line and key."""
    if not isinstance(spread, dict):
        raise ConfigError(f"{_where(path, ['spread'])}: spread: expected a mapping of metric names to "
                          f"{{sd, runs, min, max, source}}, got {spread!r}")
    for name, entry in spread.items():
        where = _At(path, ["spread", name])
        if not isinstance(name, str) or "." not in name:
            raise ConfigError(f"{where}: spread.{name}: expected a name <source>.<metric>, e.g. dpo_vs_sft.win_rate")
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: spread.{name}: expected a mapping of {', '.join(SPREAD_KEYS)}, got {entry!r}")
        for key in entry:
            if key not in SPREAD_KEYS:
                raise ConfigError(f"{_where(path, ['spread', name, key])}: spread.{name}.{key}: expected one of "
                                  f"{', '.join(SPREAD_KEYS)}")
        for key in ("sd", "runs"):
            if key not in entry:
                raise ConfigError(f"{where}: spread.{name}: expected `{key}` (sd and runs are required)")
        checks = {"sd": (_number(entry["sd"]) and entry["sd"] >= 0, "a number >= 0"),
                  "runs": (isinstance(entry["runs"], int) and not isinstance(entry["runs"], bool)
                           and entry["runs"] >= 2, "an integer >= 2 (a spread needs two runs)"),
                  "min": (_number(entry.get("min", 0)), "a number"), "max": (_number(entry.get("max", 0)), "a number"),
                  "source": (isinstance(entry.get("source", ""), str), "a path or text")}
        for key, (ok, expected) in checks.items():
            if not ok:
                raise ConfigError(f"{_where(path, ['spread', name, key])}: spread.{name}.{key}: expected {expected}, "
                                  f"got {entry[key]!r}")
        if "min" in entry and "max" in entry and entry["min"] > entry["max"]:
            raise ConfigError(f"{where}: spread.{name}: expected min <= max, got min {entry['min']!r} > max "
                              f"{entry['max']!r}")
    return spread


def load_spread(path: Path) -> dict[str, dict]:
    """The expected file's `spread` (metric name -> {sd, runs, ...}), validated with the whole file; {} when it has none."""
    load_expected(path)
    return load_yaml(path).get("spread") or {}


def load_expected(path: Path) -> dict[str, dict]:
    """The `metrics` mapping of an expected file, validated (its `spread` too); ConfigError names file, line and key."""
    data = load_yaml(path)
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict) or not data["metrics"]:
        raise ConfigError(f"{path}: expected a mapping with a non-empty `metrics` mapping")
    for key in data:
        if key not in TOP_KEYS:
            raise ConfigError(f"{_where(path, [key])}: {key}: expected no such key (allowed: {', '.join(TOP_KEYS)})")
    if "spread" in data:
        _check_spread(path, data["spread"])
    for name, entry in data["metrics"].items():
        where = _At(path, ["metrics", name])
        if not isinstance(name, str) or "." not in name:
            raise ConfigError(f"{where}: metrics.{name}: expected a name <source>.<metric>, e.g. dpo.kl_mean")
        if not isinstance(entry, dict) or not entry:
            raise ConfigError(f"{where}: metrics.{name}: expected a mapping of {', '.join(ENTRY_KEYS)}, got {entry!r}")
        for key, bound in entry.items():
            where = _At(path, ["metrics", name, key])
            if key not in ENTRY_KEYS:
                raise ConfigError(f"{where}: metrics.{name}.{key}: expected one of {', '.join(ENTRY_KEYS)}")
            numeric = isinstance(bound, (int, float)) and not isinstance(bound, bool)
            if key in ("value", "tolerance") and not numeric:
                raise ConfigError(f"{where}: metrics.{name}.{key}: expected a number, got {bound!r}")
            if key in BOUND_KEYS and not (numeric or (isinstance(bound, str) and _terms(bound) is not None)):
                raise ConfigError(f"{where}: metrics.{name}.{key}: expected a number, a metric name or a sum of them "
                                  f"joined by ' + ', got {bound!r}")
        if ("value" in entry) != ("tolerance" in entry):
            raise ConfigError(f"{_where(path, ['metrics', name])}: metrics.{name}: expected value and tolerance together")
        if entry.get("tolerance", 0) < 0:
            raise ConfigError(f"{_where(path, ['metrics', name, 'tolerance'])}: metrics.{name}.tolerance: "
                              f"expected a number >= 0, got {entry['tolerance']!r}")
    return data["metrics"]


def _terms(text: str) -> list[str] | None:
    """The terms of a bound `a + b + ...` (each a number or a metric name <source>.<metric>), or None."""
    terms = [t.strip() for t in text.split(" + ")]
    for term in terms:
        try:
            float(term)
        except ValueError:
            if "." not in term or " " in term or not term:
                return None
    return terms


def with_intervals(metrics: dict, intervals: dict) -> dict:
    """The flat metrics plus <metric>.low, .high and .half_width of every 95% interval."""
    out = dict(metrics)
    for key, interval in intervals.items():
        if isinstance(interval, dict) and {"low", "high"} <= set(interval):
            out[f"{key}.low"], out[f"{key}.high"] = interval["low"], interval["high"]
            out[f"{key}.half_width"] = (interval["high"] - interval["low"]) / 2
    return out


def load_sources(eval_metrics: list[Path], comparisons: list[Path], judge_eval: Path | None = None) -> dict[str, dict]:
    """source name -> its flat metrics: models by their name, comparisons as <model>_vs_<baseline>, the judge as judge."""
    sources = {}
    if judge_eval is not None:
        sources["judge"] = json.loads(Path(judge_eval).read_text(encoding="utf-8"))["metrics"]
    for path in eval_metrics:
        result = json.loads(Path(path).read_text(encoding="utf-8"))
        sources[result["model"]] = with_intervals(result["metrics"], result.get("intervals", {}))
    for path in comparisons:
        result = json.loads(Path(path).read_text(encoding="utf-8"))
        intervals = {"win_rate": (result.get("greedy") or {}).get("interval"),
                     "win_rate_sampled": (result.get("sampled") or {}).get("interval")}
        sources[f"{result['model']}_vs_{result['baseline']}"] = with_intervals(result["metrics"], intervals)
    return sources


def lookup(sources: dict[str, dict], name: str):
    source, _, metric = name.partition(".")
    value = sources.get(source, {}).get(metric)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def resolve_bound(sources: dict[str, dict], bound) -> tuple[float | None, list[str]]:
    """(value, names not found) of a bound: a number, a metric name or a sum of them."""
    if not isinstance(bound, str):
        return float(bound), []
    total, missing = 0.0, []
    for term in _terms(bound) or [bound]:
        try:
            total += float(term)
        except ValueError:
            value = lookup(sources, term)
            if value is None:
                missing.append(term)
            else:
                total += value
    return (None if missing else total), missing


def check_metrics(expected: dict[str, dict], sources: dict[str, dict]) -> list[dict]:
    """One row per expected metric: value, allowed [low, high], status ok / OUT / MISSING."""
    rows = []
    for name, entry in expected.items():
        value = lookup(sources, name)
        low, high, missing = -math.inf, math.inf, []
        low_open = high_open = False  # strict bounds (above, below) exclude their end
        if "value" in entry:
            low, high = entry["value"] - entry["tolerance"], entry["value"] + entry["tolerance"]
        for key in BOUND_KEYS:
            if key not in entry:
                continue
            bound, not_found = resolve_bound(sources, entry[key])
            if bound is None:
                missing += not_found
                continue
            if key in ("min", "above") and (bound > low or (bound == low and key == "above")):
                low, low_open = bound, key == "above"
            elif key in ("max", "below") and (bound < high or (bound == high and key == "below")):
                high, high_open = bound, key == "below"
        if value is None or missing:
            status = "MISSING"
        else:
            inside = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
            status = "ok" if inside and math.isfinite(value) else "OUT"
        expected_text = f"{entry['value']:g} ± {entry['tolerance']:g}" if "value" in entry else ""
        named = [f"{k} {entry[k]}" for k in BOUND_KEYS if k in entry]
        rows.append({"metric": name, "value": value, "low": low, "high": high, "status": status,
                     "low_open": low_open, "high_open": high_open,
                     "expected": "; ".join([t for t in [expected_text, *named] if t]),
                     "missing": [name] if value is None else missing})
    return rows


def _num(x: float | None) -> str:
    if x is None:
        return "-"
    if math.isinf(x):
        return "-inf" if x < 0 else "inf"
    return f"{x:.4f}"


def _range(row: dict) -> str:
    """[low, high], with ( or ) at an end a strict bound excludes."""
    return (f"{'(' if row.get('low_open') else '['}{_num(row['low'])}, "
            f"{_num(row['high'])}{')' if row.get('high_open') else ']'}")


def format_table(rows: list[dict]) -> str:
    header = ["metric", "value", "expected", "allowed range", "status"]
    body = [[r["metric"], _num(r["value"]), r["expected"] or "-", _range(r),
             r["status"] + (f" (not found: {', '.join(r['missing'])})" if r["status"] == "MISSING" else "")]
            for r in rows]
    return tables.text(header, body)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--expected", type=Path, required=True, help="expected bounds (YAML), e.g. expected/default.yaml")
    parser.add_argument("--eval-metrics", type=Path, nargs="+", required=True, help="evaluate outputs (JSON)")
    parser.add_argument("--comparisons", type=Path, nargs="*", default=[], help="compare outputs (JSON)")
    parser.add_argument("--judge-eval", type=Path, help="evaluate-judge output (JSON): source `judge`")
    parser.add_argument("--table", type=Path, required=True, help="output: the table (markdown), written on success")


def main(args: argparse.Namespace, audit: str = "") -> None:
    """The bounds check; `audit` (prefalign.provenance.run_check: the run's files and digests) is printed
    first and heads the table."""
    print(audit, end="", flush=True)
    expected = load_expected(args.expected)
    rows = check_metrics(expected, load_sources(args.eval_metrics, args.comparisons, args.judge_eval))
    table = format_table(rows)
    bad = [r for r in rows if r["status"] != "ok"]
    verdict = (f"check: {len(rows) - len(bad)} of {len(rows)} metrics within the bounds of {args.expected}: "
               + ("results reproduced." if not bad else f"NOT reproduced ({len(bad)} out of bounds or missing)."))
    print(table + verdict, flush=True)
    if bad:
        sys.exit(1)
    args.table.parent.mkdir(parents=True, exist_ok=True)
    args.table.write_text(audit + table + "\n" + verdict + "\n", encoding="utf-8")
