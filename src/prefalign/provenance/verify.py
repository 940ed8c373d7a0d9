"""Step `verify`: check a manifest (prefalign.provenance.manifest) against the files it describes.

Re-hashes every artifact and source, lists each one that is missing or whose size or
sha256 differs, and each file that appeared in a directory output after the run; exits 1
when anything does not match, 0 when everything does. Reads only the manifest and the
files it names.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path, PurePosixPath

from prefalign.errors import ConfigError
from prefalign.hashing import sha256_file
from prefalign.provenance.manifest import files_of


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
    problems = []
    entries = {**manifest.get("sources", {}), **manifest.get("artifacts", {})}
    for name, want in sorted(entries.items()):
        path = root / name
        if not path.is_file():
            problems.append(f"{name}: missing")
            continue
        size = path.stat().st_size
        if size != want["size"]:
            problems.append(f"{name}: size {size} != {want['size']} recorded")
            continue
        got = sha256_file(path)
        if got != want["sha256"]:
            problems.append(f"{name}: sha256 {got} != {want['sha256']} recorded")
    for job in manifest.get("jobs", {}).values():
        for folder in job.get("directories", []):
            if (root / folder).is_dir():
                for file in files_of(root / folder):
                    name = file.relative_to(root).as_posix()
                    if name not in entries:
                        problems.append(f"{name}: not in the manifest (appeared in {folder}/ after the run)")
    return len(entries), problems


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
        checked, problems = verify(manifest, root)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{args.manifest}: not a prefalign manifest ({type(exc).__name__}: {exc})") from None
    for line in problems:
        print(f"MISMATCH {line}")
    print(f"verify: {checked} files checked under {root}, {len(problems)} mismatch(es)")
    if problems:
        sys.exit(1)
