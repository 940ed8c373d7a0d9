"""Published digests: a finished run's artifact digests, committed under expected/, and a run
held to them.

`prefalign digests --manifest results/manifest.json --out expected/default-digests.json` (what
`make digests` runs after `make run`; never edited by hand) first re-hashes the run against its
manifest (a run that no longer is what it recorded is not published: StaleError), then writes
every artifact's sha256, size, kind and job (prefalign.provenance.digests), what made them
(commit, date, CPU, the steps' `cpu_numerics`, packages, GPUs, container), the run's config and
its evaluation's metrics (for `prefalign diff` against a digest file).

`audit` is what `prefalign check --manifest ... --digests ...` runs before the metric bounds: the
run against its own manifest (refused when anything differs, is missing or stray), then against
the published digests: "bit-identical to the published run: N of N artifacts", or the artifacts
that differ with what made each side. Machine records are never compared; `bounded` artifacts
are named when they differ but do not count. A published run of another config is not compared
(its keys that differ are named instead).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

from prefalign.errors import ConfigError, StaleError
from prefalign.evaluation.check import load_sources  # the expected file's contract: <source>.<metric>
from prefalign.jsonl import write_text
from prefalign.provenance import digests
from prefalign.provenance import verify as verifying

FORMAT = "prefalign-digests/1"
SHOWN = 20  # differing artifacts listed by name before "... and N more"


def read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the {what} ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("artifacts"), dict):
        raise ConfigError(f"{path}: not a {what} (expected a JSON object with `artifacts`)")
    return data


def read_record(path: Path) -> dict:
    """A manifest or a published digest file (what `check` and `diff` compare)."""
    return read_json(path, "manifest or digest file")


def require_intact(manifest_path: Path, manifest: dict) -> Path:
    """The run's folder; StaleError listing every file that differs from the manifest, is missing or stray."""
    root = verifying.root_of(Path(manifest_path), manifest)
    found = verifying.mismatches(manifest, root)
    if found:
        raise StaleError(f"the run in {root} does not match {manifest_path}; nothing is compared (files remade "
                         "since the manifest, by another config? `snakemake --cores all` records them first).\n"
                         + "\n".join(verifying.explain(found, manifest)))
    return root


def run_metrics(manifest: dict, root: Path) -> dict[str, dict]:
    """source -> flat metrics of a run's evaluation, as `check` reads them (prefalign.evaluation.check)."""
    files = {rule: sorted(path for path, entry in manifest.get("artifacts", {}).items()
                          if entry.get("rule") == rule and path.endswith(".json"))
             for rule in ("evaluate_model", "compare_models", "evaluate_reward_model")}
    models = [Path(root) / p for p in files["evaluate_model"] if Path(p).name == "metrics.json"]
    judge = [Path(root) / p for p in files["evaluate_reward_model"]]
    return load_sources(models, [Path(root) / p for p in files["compare_models"]], judge[0] if judge else None)


def publish(manifest_path: Path) -> dict:
    """The digest file of a finished, intact run."""
    manifest = read_json(manifest_path, "manifest")
    root = require_intact(manifest_path, manifest)
    made = digests.made_by(manifest)
    if not made.get("date"):  # a manifest written before it recorded its date
        made["date"] = datetime.fromtimestamp(Path(manifest_path).stat().st_mtime, UTC).isoformat(
            timespec="seconds")
    artifacts = {path: {k: v for k, v in entry.items() if v is not None}
                 for path, entry in digests.entries(manifest).items()}
    return {"format": FORMAT,
            "written_by": "make digests (prefalign digests --manifest results/manifest.json --out <this file>)",
            "made_by": made, "config": manifest.get("run", {}).get("config", {}), "metrics": run_metrics(manifest, root),
            "artifacts": artifacts}


# ---------------------------------------------------------------- a run against published digests

def comparison_lines(run: dict, published: dict, published_path: Path) -> list[str]:
    """What `check` prints about the run's artifacts against the published ones."""
    config_changes = digests.changes(digests.config_of(run), digests.config_of(published))
    if config_changes:
        keys = ", ".join(key for key, _, _ in config_changes[:8])
        more = f" and {len(config_changes) - 8} more" if len(config_changes) > 8 else ""
        return [f"digests: not compared: {published_path} is a run of another config (differs in {keys}{more})"]
    mine, theirs = digests.entries(run), digests.entries(published)
    result = digests.compare(mine, theirs)
    machine = f"; {len(result.machine)} machine records not compared (results/**/environment.json)"
    if result.bit_identical:
        lines = [f"bit-identical to the published run: {len(result.identical)} of {result.compared} artifacts{machine}"]
        lines += [f"  {path}: differs, as marked ({theirs[path]['why']})" for path in result.bounded]
        return lines
    bad = result.differ + result.only_a + result.only_b
    head = (f"NOT bit-identical to the published run ({published_path}): {len(bad)} of {result.compared} "
            f"artifacts differ, {len(result.identical)} identical{machine}")
    lines = [head]
    for path in bad[:SHOWN]:
        job = (mine.get(path) or theirs.get(path))["job"]
        if path in result.only_a:
            what = "not in the published run"
        elif path in result.only_b:
            what = "missing here"
        else:
            what = f"sha256 {mine[path]['sha256'][:12]} here, {theirs[path]['sha256'][:12]} published"
        lines.append(f"  {path} (made by {job}): {what}")
    if len(bad) > SHOWN:
        lines.append(f"  ... and {len(bad) - SHOWN} more")
    lines += [f"  {path}: differs, as marked ({theirs[path]['why']})" for path in result.bounded]
    lines += [f"  made here by:      {digests.cpu_line(digests.made_by(run))}",
              f"  published made by: {digests.cpu_line(digests.made_by(published))}",
              "  (`prefalign diff results/manifest.json <digest file>` shows every difference)"]
    return lines


def audit(manifest_path: Path, published_path: Path | None) -> list[str]:
    """The run against its manifest (StaleError when it does not match), then against the published digests."""
    manifest = read_json(manifest_path, "manifest")
    require_intact(manifest_path, manifest)
    count = len(digests.recorded(manifest))
    lines = [f"run: {count} files match {manifest_path} (no file edited, missing or stray)"]
    if published_path is not None:
        lines += comparison_lines(manifest, read_json(published_path, "digest file"), published_path)
    return lines


# ---------------------------------------------------------------- CLI `prefalign digests`

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", type=Path, required=True, help="a finished run's manifest (results/manifest.json)")
    parser.add_argument("--out", type=Path, required=True,
                        help="output: the digest file (JSON), e.g. expected/default-digests.json")


def main(args: argparse.Namespace) -> None:
    data = publish(args.manifest)
    write_text(args.out, json.dumps(data, indent=1, sort_keys=True) + "\n")
    kinds = [entry["kind"] for entry in data["artifacts"].values()]
    made = data["made_by"]
    print(f"digests: {len(kinds)} artifacts ({kinds.count(digests.RESULT)} results, "
          f"{kinds.count(digests.MACHINE)} machine records, {kinds.count(digests.BOUNDED)} bounded) -> {args.out}")
    print(f"made by: {digests.cpu_line(made)}")
    if made.get("dirty") or not made.get("commit"):
        print("warning: the workflow's checkout was not a clean commit; commit first so the digests name the code")
