"""An artifact's digest and its kind, in one place: what the manifest records
(prefalign.provenance.manifest), `verify` re-hashes, `check` compares with the published digests
(prefalign.provenance.published) and `prefalign diff` shows side by side.

Kinds (`kind_of`):

- `result`: expected bit-identical on any x86-64 CPU, given the same config, commit, packages
  and numeric code paths (the steps' `cpu_numerics` record). Every artifact of the default is one,
  except:
- `machine`: a record of the machine a step ran on, results/**/environment.json (CPU model and
  core count, GPU, platform, container). It differs between machines by design: it is recorded
  and verified, never compared with another run.
- `bounded`: an artifact that cannot be made identical on every x86-64 CPU, with why. It is
  compared and a difference is named, but not counted against the run: its metrics are held to
  check.expected's bounds instead. On the CPU there is none today (NOT_IDENTICAL is empty); an
  entry added there is marked in every manifest written after it.

A record is a manifest (results/manifest.json) or a published digest file (expected/*-digests.json,
`prefalign digests`): both list `artifacts` as {path: {sha256, size, job, rule, kind, why}}.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import PurePosixPath

RESULT, MACHINE, BOUNDED, SOURCE = "result", "machine", "bounded", "source"
MACHINE_WHY = ("records the machine that ran the step (CPU model, cores, GPU, platform): differs between "
               "machines by design, never compared")
# (pattern of a path under results/, why it cannot be bit-identical on every x86-64 CPU).
NOT_IDENTICAL: tuple[tuple[str, str], ...] = ()
# Config sections that say how a run is audited, not how it is made: left out when configs are compared.
AUDIT_SECTIONS = ("check",)


def kind_of(path: str) -> tuple[str, str | None]:
    """(kind, why) of the artifact at `path` (relative to the run's folder)."""
    pure = PurePosixPath(path)
    if pure.parts[:1] == ("results",) and pure.name == "environment.json":
        return MACHINE, MACHINE_WHY
    for pattern, why in NOT_IDENTICAL:
        if fnmatchcase(path, pattern):
            return BOUNDED, why
    return RESULT, None


def marks(path: str) -> dict:
    """What the manifest adds to an artifact's entry: its kind, and why for any but a result."""
    kind, why = kind_of(path)
    return {"kind": kind, **({"why": why} if why else {})}


def entries(record: dict) -> dict[str, dict]:
    """path -> {sha256, size, kind, why, job, rule} of every artifact a manifest or digest file lists.

    The kind is the record's own (what was decided when it was written); an older record without
    one gets today's `kind_of`.
    """
    out = {}
    for path, entry in (record.get("artifacts") or {}).items():
        kind, why = (entry["kind"], entry.get("why")) if "kind" in entry else kind_of(path)
        out[path] = {"sha256": entry["sha256"], "size": entry.get("size"), "kind": kind, "why": why,
                     "job": entry.get("job"), "rule": entry.get("rule")}
    return out


def recorded(manifest: dict) -> dict[str, dict]:
    """Every file a manifest holds the run to: its sources (kind `source`) and its artifacts."""
    sources = {path: {"sha256": entry["sha256"], "size": entry.get("size"), "kind": SOURCE, "why": None,
                      "job": None, "rule": None} for path, entry in (manifest.get("sources") or {}).items()}
    return {**sources, **entries(manifest)}


# ---------------------------------------------------------------- what made a run

def _distinct(values: dict[str, object]) -> object:
    """One value when every job agrees (the usual case), else {job: value}."""
    unique = {json.dumps(v, sort_keys=True, default=str) for v in values.values()}
    if not values:
        return None
    return next(iter(values.values())) if len(unique) == 1 else dict(sorted(values.items()))


def made_by(record: dict) -> dict:
    """What made a run: commit, date, CPU, numeric code paths, packages, GPUs, container, seed.

    From a manifest: the steps' environment records (environment.json, in the manifest's jobs)
    where there are any, else the manifest step's own; `cpu_numerics` is the steps' record of the
    processor-dependent code paths (prefalign.runtime), None where the steps did not write one.
    A published digest file carries it as written.
    """
    if "made_by" in record:
        return record["made_by"]
    run = record.get("run", {})
    environments = {name: job["environment"] for name, job in (record.get("jobs") or {}).items()
                    if isinstance(job.get("environment"), dict)}
    own = run.get("environment", {})
    hardware = {name: {k: v for k, v in env.get("hardware", {}).items() if k != "gpu"}
                for name, env in environments.items()} or {"manifest": own.get("hardware", {})}
    packages = {name: env.get("packages", {}) for name, env in environments.items()} or {
        "manifest": own.get("packages", {})}
    numerics = {name: env["cpu_numerics"] for name, env in environments.items() if "cpu_numerics" in env}
    git = run.get("git", {})
    return {"commit": git.get("commit"), "dirty": git.get("dirty"), "date": run.get("date"),
            "prefalign": run.get("prefalign"), "seed": run.get("seed"), "hardware": _distinct(hardware),
            "cpu_numerics": _distinct(numerics), "packages": _distinct(packages), "gpus": run.get("gpus", []),
            "container": run.get("container")}


def config_of(record: dict) -> dict:
    """The run's config (a manifest's run.config, a digest file's config), audit sections left out."""
    config = record.get("config") if "made_by" in record else record.get("run", {}).get("config")
    return {k: v for k, v in (config or {}).items() if k not in AUDIT_SECTIONS}


def flatten(value, prefix: str = "") -> dict[str, object]:
    """{dotted key: leaf value} of nested mappings (lists are leaves)."""
    if isinstance(value, dict) and value:
        out = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value} if prefix else {}


def changes(a, b) -> list[tuple[str, object, object]]:
    """(dotted key, value in a, value in b) of every leaf that differs; a missing side is None."""
    fa, fb = flatten(a), flatten(b)
    return [(key, fa.get(key), fb.get(key)) for key in sorted(set(fa) | set(fb)) if fa.get(key) != fb.get(key)]


def cpu_line(made: dict) -> str:
    """One line on what made a run: commit, date, CPU, numeric code paths."""
    hardware = made.get("hardware") or {}
    cpu = hardware.get("cpu") if isinstance(hardware, dict) and "cpu" in hardware else hardware
    commit = (made.get("commit") or "unknown")[:12] + (" (dirty)" if made.get("dirty") else "")
    numerics = made.get("cpu_numerics")
    return (f"commit {commit}, {made.get('date') or 'date unknown'}, CPU {cpu or 'unknown'}, cpu_numerics "
            + (json.dumps(numerics, sort_keys=True) if numerics is not None else "not recorded"))


# ---------------------------------------------------------------- comparing two records

@dataclass
class Comparison:
    """Artifacts of run `a` against run `b` (a published run, or a second run), by kind."""

    identical: list[str] = field(default_factory=list)
    differ: list[str] = field(default_factory=list)  # results whose sha256 differs: not reproduced
    bounded: list[str] = field(default_factory=list)  # `bounded` artifacts that differ: named, not counted
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)
    machine: list[str] = field(default_factory=list)  # machine records: not compared

    @property
    def compared(self) -> int:
        """Artifacts compared: both sides' results and bounded artifacts (machine records left out)."""
        return len(self.identical) + len(self.differ) + len(self.bounded) + len(self.only_a) + len(self.only_b)

    @property
    def bit_identical(self) -> bool:
        return not (self.differ or self.only_a or self.only_b)


def compare(a: dict[str, dict], b: dict[str, dict]) -> Comparison:
    """Compare the `entries` of two records; a machine record on either side is not compared."""
    out = Comparison()
    for path in sorted(set(a) | set(b)):
        kind = (a.get(path) or b.get(path))["kind"]
        if kind == MACHINE or (b.get(path) or {}).get("kind") == MACHINE:
            out.machine.append(path)
        elif path not in b:
            out.only_a.append(path)
        elif path not in a:
            out.only_b.append(path)
        elif a[path]["sha256"] == b[path]["sha256"]:
            out.identical.append(path)
        elif kind == BOUNDED:
            out.bounded.append(path)
        else:
            out.differ.append(path)
    return out
