"""Step `verify`: check a manifest (prefalign.provenance.manifest) against the files it describes.

Re-hashes every artifact and source, lists each one that is missing or whose size or
sha256 differs, each file that appeared in a directory output after the run, and each file
under results/ that no manifest entry accounts for. For every mismatch it names the job
that made the file (or read it, for a source), the downstream artifacts made from it, and
the `snakemake --forcerun ...` that rebuilds them; exits 1 when anything does not match, 0
when everything does. Reads only the manifest, the files it names and the listing of results/.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path, PurePosixPath

from prefalign.errors import ConfigError
from prefalign.hashing import sha256_file
from prefalign.provenance import digests
from prefalign.provenance.manifest import files_of
from prefalign.provenance.staleness import EXEMPT_PREFIXES, compact_outputs, downstream, repair_command, under


def root_of(manifest_path: Path, manifest: dict) -> Path:
    """The working directory the manifest's paths are relative to: where its own recorded path leads."""
    recorded = PurePosixPath(str(manifest.get("path", "results/manifest.json")))
    resolved = manifest_path.resolve()
    parts = resolved.parts
    if len(parts) > len(recorded.parts) and PurePosixPath(*parts[-len(recorded.parts):]) == recorded:
        return Path(*parts[: -len(recorded.parts)])
    return Path.cwd()


def verify(manifest: dict, root: Path) -> tuple[int, list[str]]:
    """(files checked, mismatches) of every artifact and source against the files under `root`."""
    problems = [f"{name}: {why}" for name, why, _ in mismatches(manifest, root)]
    return len(_entries(manifest)), problems


def _entries(manifest: dict) -> dict:
    return digests.recorded(manifest)


def mismatches(manifest: dict, root: Path) -> list[tuple[str, str, list[str]]]:
    """(path, what is wrong, ids of the jobs whose record it breaks) for every file that does not match."""
    found = []
    entries = _entries(manifest)
    jobs = manifest.get("jobs", {})
    readers: dict[str, list[str]] = {}
    for name, job in jobs.items():
        for path in job.get("inputs", {}):
            readers.setdefault(path, []).append(name)

    def owners(path: str) -> list[str]:
        artifact = manifest.get("artifacts", {}).get(path)
        return [artifact["job"]] if artifact and artifact.get("job") else readers.get(path, [])

    for name, want in sorted(entries.items()):
        path = root / name
        record = " (a machine record)" if want["kind"] == digests.MACHINE else ""
        if not path.is_file():
            found.append((name, "missing" + record, owners(name)))
            continue
        size = path.stat().st_size
        if size != want["size"]:
            found.append((name, f"size {size} != {want['size']} recorded{record}", owners(name)))
            continue
        got = sha256_file(path)
        if got != want["sha256"]:
            found.append((name, f"sha256 {got} != {want['sha256']} recorded{record}", owners(name)))
    folders = {folder: name for name, job in jobs.items() for folder in job.get("directories", [])}
    accounted = set(entries) | {str(manifest.get("path", "results/manifest.json"))}
    unrecorded = list(manifest.get("unrecorded", []))
    if (root / "results").is_dir():
        for file in files_of(root / "results"):
            name = file.relative_to(root).as_posix()
            if name in accounted or name.startswith(EXEMPT_PREFIXES) or under(name, unrecorded):
                continue
            folder = next((f for f in folders if name.startswith(f.rstrip("/") + "/")), None)
            if folder:
                found.append((name, f"not in the manifest (appeared in {folder}/ after the run)", [folders[folder]]))
            else:
                found.append((name, "not in the manifest: no job of the run made it (move it out of results/)", []))
    return found


def explain(found: list[tuple[str, str, list[str]]], manifest: dict) -> list[str]:
    """One MISMATCH line per file, then what was made from it and the command that rebuilds it."""
    jobs = manifest.get("jobs", {})
    lines, rules = [], set()
    for name, why, owners in found:
        lines.append(f"MISMATCH {name}: {why}")
        if not owners:
            continue
        made = name in manifest.get("artifacts", {}) or "appeared in" in why
        affected = ([] if made else owners) + downstream(jobs, set(owners))
        files = [path for job in affected for path in compact_outputs(jobs.get(job, {}))]
        owner_rules = sorted({jobs[o]["rule"] for o in owners if o in jobs})
        rules.update(owner_rules)
        lines.append(f"  {'made by' if made else 'read by'} {', '.join(owners)}; made from it: "
                     + (", ".join(files) if files else "nothing else"))
        lines.append(f"  rebuild: {repair_command(owner_rules)}")
    if rules:
        lines.append(f"repair all: {repair_command(sorted(rules))}")
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", type=Path, help="a manifest written by `prefalign manifest`")
    parser.add_argument("--root", type=Path, help="folder its paths are relative to (default: found from the "
                                                   "manifest's own recorded path, else the current folder)")


def main(args: argparse.Namespace) -> None:
    try:
        manifest = json.loads(args.manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{args.manifest}: cannot read the manifest ({exc})") from None
    if not isinstance(manifest, dict):
        raise ConfigError(f"{args.manifest}: not a prefalign manifest (expected a JSON object)")
    root = args.root or root_of(args.manifest, manifest)
    try:
        found = mismatches(manifest, root)
        lines = explain(found, manifest)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{args.manifest}: not a prefalign manifest ({type(exc).__name__}: {exc})") from None
    for line in lines:
        print(line)
    print(f"verify: {len(_entries(manifest))} files checked under {root}, {len(found)} mismatch(es)")
    if found:
        sys.exit(1)
